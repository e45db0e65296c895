"""Quorum arithmetic, flow control and progress state transitions."""

import pytest

from kvdb.raft.errors import FlowControlError
from kvdb.raft.progress import Inflights, Progress, ProgressState
from kvdb.raft.quorum import INFINITE_INDEX, JointConfig, VoteResult, majority_value


def test_majority_value_is_what_a_majority_reached() -> None:
    acked = {1: 5, 2: 3, 3: 9}
    assert majority_value([1, 2, 3], acked.get) == 5
    assert majority_value([1, 2, 3, 4], lambda i: acked.get(i, 0)) == 3
    assert majority_value([], acked.get) == INFINITE_INDEX


def test_joint_commit_needs_both_majorities() -> None:
    acked = {1: 10, 2: 10, 3: 1, 4: 1, 5: 1}
    joint = JointConfig({3, 4, 5}, {1, 2, 3})
    assert joint.committed(acked.get) == 1
    acked[4] = acked[5] = 7
    assert joint.committed(acked.get) == 7
    assert JointConfig({1, 2, 3}).committed(acked.get) == 10


def test_joint_vote_results() -> None:
    joint = JointConfig({1, 2, 3}, {3, 4, 5})
    assert joint.vote_result({1: True, 2: True}) == VoteResult.PENDING
    assert joint.vote_result({1: True, 2: True, 3: True}) == VoteResult.PENDING
    assert joint.vote_result({1: True, 2: True, 3: True, 4: True}) == VoteResult.WON
    assert joint.vote_result({4: False, 5: False}) == VoteResult.LOST
    assert JointConfig().vote_result({}) == VoteResult.WON


def test_inflights_bound_count_and_bytes() -> None:
    inflights = Inflights(3, max_bytes=100)
    inflights.add(1, 10)
    inflights.add(2, 10)
    assert not inflights.full()
    inflights.add(3, 10)
    assert inflights.full()
    inflights.free_le(2)
    assert inflights.count() == 1 and inflights.bytes == 10
    inflights.add(4, 95)
    assert inflights.full()


def test_inflights_refuse_an_add_when_full_by_count_or_bytes() -> None:
    by_count = Inflights(2)
    by_count.add(1, 10)
    by_count.add(2, 10)
    with pytest.raises(FlowControlError):
        by_count.add(3, 10)
    assert by_count.count() == 2 and by_count.bytes == 20, "a refused add changes nothing"
    by_count.free_le(1)
    by_count.add(3, 10)
    by_bytes = Inflights(100, max_bytes=30)
    by_bytes.add(1, 20)
    by_bytes.add(2, 20)  # admitted below the limit: the byte limit is soft, by one append
    with pytest.raises(FlowControlError):
        by_bytes.add(3, 1)
    assert by_bytes.bytes == 40


def test_empty_append_on_a_full_window_takes_no_slot() -> None:
    pr = Progress(5, Inflights(1))
    pr.match = 4
    pr.become_replicate()
    pr.sent_entries(1, 10)
    assert pr.is_paused()
    pr.paused = False  # a heartbeat response
    pr.sent_entries(0, 0)
    assert pr.is_paused() and pr.inflights.count() == 1 and pr.next == 6


def test_commit_is_worth_sending_only_if_it_can_advance_the_peers() -> None:
    pr = Progress(5, Inflights(4))
    pr.match = 4
    pr.become_replicate()
    pr.sent_entries(2, 20)  # entries 5 and 6 in flight
    pr.sent_commit = 4
    assert pr.can_bump_commit(5)
    assert not pr.can_bump_commit(4), "already sent"
    pr.sent_commit = 6
    assert not pr.can_bump_commit(7), "the peer can commit no further than it was sent"
    pr.maybe_decrease_to(6, 4)  # the peer rejected: what was sent past its log did not land
    assert pr.sent_commit == 4 and pr.can_bump_commit(7) is False and pr.next == 5


def test_probe_sends_one_append_at_a_time() -> None:
    pr = Progress(5, Inflights(10))
    assert not pr.is_paused()
    pr.sent_entries(2, 20)
    assert pr.is_paused() and pr.next == 5
    assert pr.maybe_update(6)
    assert not pr.is_paused()


def test_replicate_pipelines_until_inflight_window_full() -> None:
    pr = Progress(5, Inflights(2))
    pr.match = 4
    pr.become_replicate()
    pr.sent_entries(3, 30)
    assert pr.next == 8 and not pr.is_paused()
    pr.sent_entries(1, 10)
    assert pr.is_paused()
    pr.maybe_update(7)
    pr.inflights.free_le(7)
    assert not pr.is_paused() and pr.inflights.count() == 1


def test_rejection_backs_off_using_hint_and_ignores_stale_rejections() -> None:
    pr = Progress(10, Inflights(4))
    assert not pr.maybe_decrease_to(5, 3)  # stale: we did not probe at 5
    assert pr.maybe_decrease_to(9, 3)
    assert pr.next == 4
    pr.match = 6
    pr.become_replicate()
    assert not pr.maybe_decrease_to(6, 0)  # at or below match: stale
    assert pr.maybe_decrease_to(8, 0) and pr.next == 7


def test_snapshot_state_pauses_and_probe_resumes_after_it() -> None:
    pr = Progress(3, Inflights(4))
    pr.become_snapshot(20)
    assert pr.is_paused() and pr.state == ProgressState.SNAPSHOT
    pr.become_probe()
    assert pr.next == 21 and not pr.is_paused()

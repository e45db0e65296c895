"""Membership changes are computed on copies and validated before they take effect."""

import pytest

from kvdb.raft import ConfChangeError, ConfState
from kvdb.raft.confchange import Changer, restore
from kvdb.raft.progress import ProgressTracker
from kvdb.raft.types import ConfChangeSingle, ConfChangeType

ADD, LEARNER, REMOVE = ConfChangeType.ADD_NODE, ConfChangeType.ADD_LEARNER, ConfChangeType.REMOVE_NODE


def tracker(voters: list[int], learners: list[int] | None = None) -> ProgressTracker:
    trk = ProgressTracker(16)
    trk.config, trk.progress = restore(trk, ConfState(voters=voters, learners=learners), 10)
    return trk


def cc(*pairs: tuple[int, int]) -> list[ConfChangeSingle]:
    return [ConfChangeSingle(t, n) for t, n in pairs]


def test_simple_change_allows_one_voter_at_a_time() -> None:
    trk = tracker([1, 2, 3])
    cfg, prs = Changer(trk, 10).simple(cc((ADD, 4)))
    assert cfg.voters.incoming == {1, 2, 3, 4} and 4 in prs
    with pytest.raises(ConfChangeError, match="more than one voter"):
        Changer(trk, 10).simple(cc((ADD, 4), (REMOVE, 1)))
    # Nothing changed on the live tracker.
    assert trk.config.voters.incoming == {1, 2, 3} and 4 not in trk.progress


def test_cannot_remove_every_voter() -> None:
    with pytest.raises(ConfChangeError, match="removed all voters"):
        Changer(tracker([1]), 10).simple(cc((REMOVE, 1)))


def test_joint_replacement_and_leave() -> None:
    trk = tracker([1, 2, 3])
    trk.config, trk.progress = Changer(trk, 10).enter_joint(True, cc((ADD, 4), (REMOVE, 1)))
    assert trk.config.voters.incoming == {2, 3, 4}
    assert trk.config.voters.outgoing == {1, 2, 3}
    assert 1 in trk.progress and trk.config.auto_leave
    with pytest.raises(ConfChangeError, match="already joint"):
        Changer(trk, 10).enter_joint(False, cc((ADD, 5)))
    with pytest.raises(ConfChangeError, match="simple config change in joint"):
        Changer(trk, 10).simple(cc((ADD, 5)))
    trk.config, trk.progress = Changer(trk, 10).leave_joint()
    assert trk.config.voters.incoming == {2, 3, 4} and not trk.config.voters.is_joint()
    assert 1 not in trk.progress and not trk.config.auto_leave


def test_demoting_an_outgoing_voter_waits_in_learners_next() -> None:
    trk = tracker([1, 2, 3])
    trk.config, trk.progress = Changer(trk, 10).enter_joint(False, cc((LEARNER, 3)))
    assert trk.config.learners_next == {3} and not trk.progress[3].is_learner
    trk.config, trk.progress = Changer(trk, 10).leave_joint()
    assert trk.config.learners == {3} and trk.progress[3].is_learner


def test_restore_round_trips_joint_conf_state() -> None:
    cs = ConfState(
        voters=[2, 3, 4], learners=[6], voters_outgoing=[1, 2, 3], learners_next=[1], auto_leave=True
    )
    trk = tracker([1])
    trk.config, trk.progress = restore(trk, cs, 5)
    assert trk.conf_state() == cs


def test_promote_learner() -> None:
    trk = tracker([1, 2, 3], learners=[4])
    cfg, prs = Changer(trk, 10).simple(cc((ADD, 4)))
    assert 4 in cfg.voters.incoming and not prs[4].is_learner and 4 not in cfg.learners
    assert trk.progress[4].is_learner  # the live progress is untouched

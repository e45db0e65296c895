"""Membership changes that would cost a range its quorum are refused before anything is proposed,
and a failed voter is replaced through joint consensus (``Store.change_peers``)."""

from __future__ import annotations

import logging

import pytest

from kvdb.pb import metapb_pb2, pdpb_pb2
from kvdb.raft import ConfChangeType
from kvdb.server.pd_worker import execute_operator
from kvdb.storage.memory import MemEngine
from kvdb.store.config import StoreConfig
from kvdb.store.errors import ServerBusyError, StoreError
from kvdb.store.membership import LOSES_QUORUM, MAX_TRANSFER_LAG, REMOVES_LEADER, UnsafeConfChangeError
from kvdb.store.store import Store
from tests.store.local_cluster import LocalCluster, new_peer
from tests.store.test_store import write_keys

ELECTION = 0.6
"""Seconds past an election timeout (10 ticks of 50 ms): the leader's CheckQuorum has run."""


def _refused(leader: Store, change: int, peer: metapb_pb2.Peer) -> UnsafeConfChangeError:
    """Propose ``change``: it must be refused at once, with nothing appended to the log."""
    raft = leader.peers[1].raw.raft
    last, conf = raft.raft_log.last_index(), leader.peers[1].conf_state
    with pytest.raises(UnsafeConfChangeError) as refused:
        leader.change_peer(1, change, peer, lambda result: pytest.fail(f"answered {result}"))
    assert raft.raft_log.last_index() == last and leader.peers[1].conf_state == conf
    return refused.value


def _leader_with_one_voter_down() -> tuple[LocalCluster, Store, int, int]:
    """Three voters, one of them (not the leader) cut off for longer than an election timeout:
    returns the cluster, the leader, the live follower's and the silent voter's store ids."""
    # Awake throughout: the liveness rules are judged by a ticking leader's CheckQuorum.
    cluster = LocalCluster([1, 2, 3], StoreConfig(hibernate=False))
    leader = cluster.elect()
    write_keys(cluster, 3)
    silent, live = [sid for sid in (1, 2, 3) if sid != leader.store_id]
    cluster.isolate(silent)
    cluster.advance(ELECTION * 2)
    assert cluster.leader() is leader
    _past_liveness_recheck(cluster, leader)
    return cluster, leader, live, silent


def _past_liveness_recheck(cluster: LocalCluster, leader: Store) -> None:
    """Tick until the current CheckQuorum period is old enough for every live voter to have
    answered (early in a period the leader answers "busy" instead of judging)."""
    raft = leader.peers[1].raw.raft
    for _ in range(2 * raft.election_timeout):  # a period restarts within one election timeout
        if raft.election_elapsed > 2 * raft.heartbeat_timeout:
            return
        cluster.advance(cluster.config.tick_interval)
    raise AssertionError(f"the leader's CheckQuorum period stayed young: {raft.election_elapsed} ticks")


def test_at_the_start_of_a_check_quorum_period_live_voters_still_count_as_live() -> None:
    """CheckQuorum has just cleared every peer's "recently active" flag; the followers' echoes of
    the leader's latest rounds still show them alive, so a safe removal goes ahead."""
    cluster = LocalCluster([1, 2, 3])
    leader = cluster.elect()
    raft = leader.peers[1].raw.raft
    for node_id, pr in raft.trk.progress.items():
        if node_id != raft.id:
            pr.recent_active = False  # as CheckQuorum leaves them (here they answer at once)
    follower = next(sid for sid in (1, 2, 3) if sid != leader.store_id)
    results: list[object] = []
    leader.change_peer(1, ConfChangeType.REMOVE_NODE, new_peer(follower, follower), results.append)
    cluster.advance(0.3)
    assert follower not in [p.id for p in results[0].peers]


def test_early_in_a_period_a_voter_not_heard_from_yet_makes_the_leader_busy_not_final() -> None:
    """A new leader that has not heard from a voter yet cannot tell it from a dead one: "retry"."""
    cluster = LocalCluster([1, 2, 3])
    leader = cluster.elect()
    raft = leader.peers[1].raw.raft
    while raft.election_elapsed != 0:
        cluster.advance(cluster.config.tick_interval)
    for node_id, pr in raft.trk.progress.items():
        if node_id != raft.id:
            pr.recent_active, pr.acked_round = False, 0  # as for a leader nobody answered yet
    follower = next(sid for sid in (1, 2, 3) if sid != leader.store_id)
    with pytest.raises(ServerBusyError):
        leader.change_peer(1, ConfChangeType.REMOVE_NODE, new_peer(follower, follower), lambda r: None)


def test_removing_or_demoting_the_leader_is_refused() -> None:
    cluster = LocalCluster([1, 2])
    leader = cluster.elect()
    me = new_peer(leader.store_id, leader.store_id)
    for change in (ConfChangeType.REMOVE_NODE, ConfChangeType.ADD_LEARNER):
        err = _refused(leader, change, me)
        assert err.reason == REMOVES_LEADER and "transfer leadership" in str(err)
        assert err.to_pb().HasField("invalid_argument")
    # The other voter may go: the leader goes on alone.
    other = 3 - leader.store_id
    results: list[object] = []
    leader.change_peer(1, ConfChangeType.REMOVE_NODE, new_peer(other, other), results.append)
    cluster.advance(0.3)
    assert [p.id for p in results[0].peers] == [leader.store_id]


def test_removing_a_live_voter_while_another_is_down_is_refused() -> None:
    """{A, B, C} with C silent: removing B leaves {A, C}, one live voter of two. Removing C, the
    silent one, is fine; so is adding a learner."""
    cluster, leader, live, silent = _leader_with_one_voter_down()
    err = _refused(leader, ConfChangeType.REMOVE_NODE, new_peer(live, live))
    assert err.reason == LOSES_QUORUM and err.unreachable == [silent], err
    # A new voter cannot vote before it has caught up: adding one directly is refused as well.
    cluster.engines[4] = MemEngine()
    cluster.start(4)
    err = _refused(leader, ConfChangeType.ADD_NODE, new_peer(4, 4))
    assert err.reason == LOSES_QUORUM and err.unreachable == sorted([4, silent])
    results: list[object] = []
    leader.change_peer(1, ConfChangeType.ADD_LEARNER, new_peer(4, 4), results.append)
    cluster.advance(0.3)
    leader.change_peer(1, ConfChangeType.REMOVE_NODE, new_peer(silent, silent), results.append)
    cluster.advance(0.3)
    assert not any(isinstance(r, StoreError) for r in results), results
    assert leader.peers[1].conf_state.voters == sorted([leader.store_id, live])


def test_a_failed_voter_is_replaced_in_one_joint_change() -> None:
    """Promote the caught-up learner and demote the silent voter at once: the range goes through
    the joint configuration and leaves it by itself, and no configuration on the way has fewer
    live voters than its quorum (removing first would leave two, promoting first four voters)."""
    cluster, leader, live, silent = _leader_with_one_voter_down()
    cluster.engines[4] = MemEngine()
    cluster.start(4)
    results: list[object] = []
    leader.change_peer(1, ConfChangeType.ADD_LEARNER, new_peer(4, 4), results.append)
    cluster.advance(0.3)
    _past_liveness_recheck(cluster, leader)
    peer = leader.peers[1]
    seen = []  # every configuration the leader applies
    apply = peer.raw.apply_conf_change
    peer.raw.apply_conf_change = lambda cc: seen.append(apply(cc)) or seen[-1]
    alive = {leader.store_id, live, 4}
    leader.change_peers(1, [(ConfChangeType.ADD_NODE, new_peer(4, 4)),
                            (ConfChangeType.ADD_LEARNER, new_peer(silent, silent))], results.append)
    cluster.advance(0.3)
    assert not any(isinstance(r, StoreError) for r in results), results
    assert len(seen) == 2, seen  # into the joint configuration, and out of it
    joint, final = seen
    assert (joint.voters, joint.voters_outgoing) == (sorted([leader.store_id, live, 4]),
                                                     sorted([leader.store_id, live, silent]))
    assert (final.voters, final.voters_outgoing, final.learners) == (
        sorted([leader.store_id, live, 4]), [], [silent])
    for cs in seen:
        for config in (cs.voters, cs.voters_outgoing):
            assert not config or len(alive & set(config)) >= len(config) // 2 + 1, cs
    voter, learner = metapb_pb2.VOTER, metapb_pb2.LEARNER
    assert {p.id: p.role for p in peer.desc.peers} == {leader.store_id: voter, live: voter, 4: voter,
                                                       silent: learner}
    write_keys(cluster, 3, b"after")


def test_leadership_goes_only_to_a_live_voter_not_far_behind(caplog: pytest.LogCaptureFixture) -> None:
    cluster, leader, live, silent = _leader_with_one_voter_down()
    peer = leader.peers[1]
    silent_peer = next(p for p in peer.desc.peers if p.store_id == silent)
    live_peer = next(p for p in peer.desc.peers if p.store_id == live)
    op = pdpb_pb2.Operator(kind=pdpb_pb2.Operator.TRANSFER_LEADER, peer=silent_peer)
    with caplog.at_level(logging.DEBUG, logger="kvdb.server.pd_worker"):
        for _ in range(3):  # PD re-sends the step with every heartbeat answer
            execute_operator(leader, peer, op)
    refusals = [r for r in caplog.records if "refused for now" in r.getMessage()]
    assert [r.levelno for r in refusals] == [logging.INFO, logging.DEBUG, logging.DEBUG]
    assert f"peer {silent_peer.id} has not answered the leader recently" in refusals[0].getMessage()
    assert peer.raw.raft.lead_transferee == 0  # nothing started: proposals still go through
    write_keys(cluster, 3)

    progress = peer.raw.raft.trk.progress[live_peer.id]
    progress.match = peer.raw.raft.raft_log.last_index() - MAX_TRANSFER_LAG - 1  # as if far behind
    with pytest.raises(ServerBusyError, match=f"{MAX_TRANSFER_LAG + 1} entries behind"):
        leader.transfer_leader(1, live_peer.id)
    progress.match = peer.raw.raft.raft_log.last_index()
    leader.transfer_leader(1, live_peer.id)
    cluster.pump()
    assert cluster.leader().store_id == live

"""The replica checker, table-driven: a cluster in (stores in given states and loads, one range),
the operators out, and their steps as the controller hands them to a leader that carries each out
(``drive``). Every scenario here is a past bug or a rule of placement/schedule/checkers/replica.py.
"""

from __future__ import annotations

import pytest

from kvdb.pb import pdpb_pb2
from placement.cluster import store_state
from placement.schedule.operator import Priority
from tests.placement.scheduling import (
    DISCONNECTED,
    DOWN,
    LEARNER,
    OFFLINE,
    TOMBSTONE,
    UP,
    VOTER,
    Cluster,
    Ids,
    Op,
    S,
    drive,
    learner_step,
    no_ids,
    range_info,
    traced,
    voters,
)


def steps(op) -> list[tuple]:
    return [traced(step) for step in op.steps]


def test_new_cluster_grows_to_three_replicas_one_learner_at_a_time_on_the_emptiest_stores():
    cluster = Cluster(S(1, ranges=9), S(2, ranges=4), S(3, ranges=1))
    rng = range_info([(10, 1, VOTER)], leader=10)
    trace = drive(cluster, rng)
    assert trace == [("add", 100, 3), None, ("promote", 100, 3), ("add", 101, 2), None, ("promote", 101, 2)]
    assert cluster.ids.handed_out == [100, 101]
    assert voters(rng) == {10: 1, 100: 3, 101: 2}
    assert cluster.checker.check(rng, cluster.now) is None
    assert cluster.controller.outcomes == {("add-replica", "success"): 2}


def test_added_learner_has_a_fresh_id_the_chosen_store_and_the_learner_role():
    cluster = Cluster(S(1), S(2), ids=Ids(first=77))
    op = cluster.check(range_info([(10, 1, VOTER)], leader=10))
    assert (op.kind, op.origin, op.priority) == ("add-replica", "replica-checker", Priority.REPAIR)
    assert op.steps[0] == learner_step(77, 2)
    assert steps(op) == [("add", 77, 2), ("promote", 77, 2)]


def test_candidate_is_an_up_store_without_a_replica_with_fewest_ranges_then_lowest_id():
    cluster = Cluster(
        S(1),  # hosts the leader
        S(2, DOWN),  # hosts the down voter: never a candidate
        S(3, ranges=5),
        S(4, DISCONNECTED),
        S(5, OFFLINE),
        S(6, TOMBSTONE),
        S(7, DOWN),
        S(8, ranges=2),
        S(9, ranges=2),
    )
    op = cluster.check(range_info([(10, 1, VOTER), (11, 2, VOTER)], leader=10))
    assert steps(op)[0] == ("add", 100, 8)


def test_voter_on_a_down_store_is_replaced_in_one_joint_step_then_removed_as_a_learner():
    cluster = Cluster(S(1), S(2), S(3, DOWN), S(4, ranges=3), S(5, ranges=1))
    rng = range_info([(10, 1, VOTER), (11, 2, VOTER), (12, 3, VOTER)], leader=10)
    assert drive(cluster, rng) == [("add", 100, 5), None, ("replace", 100, 5, 12), ("remove", 12, 3)]
    assert voters(rng) == {10: 1, 11: 2, 100: 5}
    assert cluster.controller.outcomes == {("replace-replica", "success"): 1}


def test_voter_on_a_store_pd_does_not_know_counts_as_gone():
    cluster = Cluster(S(1), S(2), S(4))
    rng = range_info([(10, 1, VOTER), (11, 2, VOTER), (12, 3, VOTER)], leader=10)
    assert drive(cluster, rng) == [("add", 100, 4), None, ("replace", 100, 4, 12), ("remove", 12, 3)]


def test_nothing_is_planned_while_the_range_is_in_a_joint_configuration():
    cluster = Cluster(S(1), S(2), S(3, DOWN), S(4))
    rng = range_info([(10, 1, VOTER), (11, 2, VOTER), (12, 3, VOTER), (100, 4, VOTER)], leader=10)
    rng.joint = True  # 12 is an outgoing voter the leader is about to demote
    assert cluster.check(rng) is None


def test_a_learner_nobody_needs_any_more_is_removed_not_promoted():
    """The failed voter's store came back while its replacement caught up (or a demoted voter's
    store returned): promoting would only make a fourth voter to remove again."""
    cluster = Cluster(S(1), S(2), S(3), S(4))
    rng = range_info([(10, 1, VOTER), (11, 2, VOTER), (12, 3, VOTER), (100, 4, LEARNER)], leader=10)
    assert drive(cluster, rng) == [("remove", 100, 4)]


def test_five_voters_two_silent_shrink_by_removing_the_silent_ones():
    """What the issue reproduced: replica count 3, five voters of which two are DISCONNECTED;
    removing a live voter on the fullest store left 2 of 4 voters alive."""
    cluster = Cluster(S(1, ranges=1), S(2, ranges=9), S(3, ranges=8), S(4, DISCONNECTED), S(5, DISCONNECTED))
    rng = range_info([(10 + i, i, VOTER) for i in range(1, 6)], leader=11)
    assert steps(cluster.check(rng)) == [("remove", 15, 5)]
    assert drive(cluster, rng) == [("remove", 15, 5), ("remove", 14, 4)]
    assert voters(rng) == {11: 1, 12: 2, 13: 3}


def test_no_surplus_voter_is_removed_when_no_choice_keeps_a_live_quorum():
    cluster = Cluster(S(1), S(2), S(3, DISCONNECTED), S(4, DISCONNECTED), S(5, DISCONNECTED))
    assert cluster.check(range_info([(10 + i, i, VOTER) for i in range(1, 6)], leader=11)) is None


@pytest.mark.parametrize(
    ("replicas", "states", "removed"),
    [
        (3, [UP, UP, DOWN], None),  # a DOWN store may come back: its voter stays
        (3, [UP, UP, TOMBSTONE], 12),  # a store gone for good: its voter goes
        (3, [UP, DISCONNECTED, OFFLINE], 12),  # a DISCONNECTED voter still counts towards the majority
        (3, [UP, DOWN, DOWN], None),
        (3, [UP, DISCONNECTED, DOWN, DOWN], 12),  # beyond the replica count a DOWN voter goes too
        (5, [UP, UP, UP, DOWN, DOWN], None),
        (5, [UP, UP, UP, TOMBSTONE, DOWN], 13),
        (5, [UP, UP, TOMBSTONE, DOWN, DOWN], None),
    ],
)
def test_without_a_spare_store_only_a_gone_voter_is_removed_and_only_if_a_majority_stays_healthy(
    replicas, states, removed
):
    cluster = Cluster(*(S(i + 1, state) for i, state in enumerate(states)), replicas=replicas, ids=no_ids)
    op = cluster.check(range_info([(10 + i, i + 1, VOTER) for i in range(len(states))], leader=10))
    if removed is None:
        assert op is None
    else:
        assert op.kind == "remove-replica"
        assert [(s.kind, s.peer.id) for s in op.steps] == [(Op.REMOVE_PEER, removed)]


def test_voter_on_a_disconnected_store_is_neither_replaced_nor_removed():
    cluster = Cluster(S(1), S(2), S(3, DISCONNECTED), S(4), ids=no_ids)
    assert cluster.check(range_info([(10, 1, VOTER), (11, 2, VOTER), (12, 3, VOTER)], leader=10)) is None


def test_pending_learner_blocks_a_second_learner_and_removals():
    cluster = Cluster(S(1), S(2), S(3, DOWN), S(4), S(5), S(6), ids=no_ids)
    rng = range_info([(10, 1, VOTER), (11, 2, VOTER), (12, 3, VOTER), (100, 4, LEARNER)], leader=10,
                     pending=(100,))
    assert cluster.check(rng) is None
    del rng.pending_peer_ids[:]
    op = cluster.check(rng)
    assert (op.kind, steps(op)) == ("replace-replica", [("replace", 100, 4, 12), ("remove", 12, 3)])


def test_learner_on_a_disconnected_store_is_not_promoted_and_not_doubled():
    cluster = Cluster(S(1), S(2), S(3, DOWN), S(4, DISCONNECTED), S(5), ids=no_ids)
    rng = range_info([(10, 1, VOTER), (11, 2, VOTER), (12, 3, VOTER), (100, 4, LEARNER)], leader=10)
    assert cluster.check(rng) is None


@pytest.mark.parametrize("state", [DOWN, OFFLINE, TOMBSTONE])
def test_learner_on_a_failed_store_is_removed_even_while_pending(state):
    cluster = Cluster(S(1), S(2), S(3), S(4, state), S(5), ids=Ids(first=101))
    rng = range_info([(10, 1, VOTER), (11, 2, VOTER), (100, 4, LEARNER)], leader=10, pending=(100,))
    assert drive(cluster, rng) == [("remove", 100, 4), ("add", 101, 3), None, ("promote", 101, 3)]


def test_leader_on_an_offline_store_hands_over_leadership_then_moves_off():
    """Decommission: a leader is never demoted, so leadership moves first (to the UP voter leading
    the fewest ranges), then the replica moves to the spare store through a learner."""
    cluster = Cluster(S(1, OFFLINE), S(2, leaders=5), S(3, leaders=1), S(4, leaders=3))
    rng = range_info([(10, 1, VOTER), (11, 2, VOTER), (12, 3, VOTER)], leader=10)
    assert drive(cluster, rng) == [
        ("transfer", 12, 3),
        ("add", 100, 4),
        None,
        ("replace", 100, 4, 10),
        ("remove", 10, 1),
    ]
    assert rng.leader.id == 12
    assert voters(rng) == {11: 2, 12: 3, 100: 4}
    assert cluster.model.range_count(1) == 0
    assert cluster.controller.outcomes == {("replace-replica", "success"): 1}


def test_follower_on_an_offline_store_moves_off_without_a_leader_change():
    cluster = Cluster(S(1), S(2, OFFLINE), S(3), S(4))
    rng = range_info([(10, 1, VOTER), (11, 2, VOTER), (12, 3, VOTER)], leader=10)
    assert drive(cluster, rng) == [("add", 100, 4), None, ("replace", 100, 4, 11), ("remove", 11, 2)]
    assert voters(rng) == {10: 1, 12: 3, 100: 4}


def test_leader_on_an_offline_store_without_a_spare_transfers_before_removal():
    cluster = Cluster(S(1, OFFLINE), S(2), S(3), ids=no_ids)
    rng = range_info([(10, 1, VOTER), (11, 2, VOTER), (12, 3, VOTER)], leader=10)
    assert drive(cluster, rng) == [("transfer", 11, 2), ("remove", 10, 1)]


def test_leadership_never_goes_to_a_disconnected_or_failed_voter():
    cluster = Cluster(S(1, OFFLINE), S(2, DISCONNECTED), S(3, DOWN), S(4, leaders=9), ids=no_ids)
    rng = range_info([(10, 1, VOTER), (11, 2, VOTER), (12, 3, VOTER), (13, 4, VOTER)], leader=10)
    # The non-leader failed voter goes first; then the only UP voter takes over.
    assert drive(cluster, rng) == [("remove", 12, 3), ("transfer", 13, 4), ("remove", 10, 1)]
    cluster.set_state(4, DISCONNECTED)
    assert cluster.check(range_info([(10, 1, VOTER), (11, 2, VOTER), (13, 4, VOTER)], leader=10)) is None


def test_too_many_voters_removes_a_non_leader_on_the_fullest_store_ties_to_highest_store_id():
    cluster = Cluster(S(1, ranges=50), S(2, ranges=7), S(3, ranges=9), S(4, ranges=9), ids=no_ids)
    rng = range_info([(10, 1, VOTER), (11, 2, VOTER), (12, 3, VOTER), (13, 4, VOTER)], leader=10)
    assert steps(cluster.check(rng)) == [("remove", 13, 4)]


def test_five_voters_shrink_to_three_one_removal_at_a_time():
    cluster = Cluster(*(S(i, ranges=i) for i in range(1, 6)), ids=no_ids)
    rng = range_info([(10 + i, i, VOTER) for i in range(1, 6)], leader=15)
    assert drive(cluster, rng) == [("remove", 14, 4), ("remove", 13, 3)]
    assert voters(rng) == {11: 1, 12: 2, 15: 5}


def test_new_id_is_called_only_when_a_learner_is_added():
    cluster = Cluster(S(1), S(2), S(3), S(4, OFFLINE), ids=no_ids)
    cases = [
        range_info([(10, 1, VOTER), (11, 2, VOTER), (12, 3, VOTER)], leader=10),  # done
        range_info([(10, 1, VOTER), (11, 2, VOTER), (100, 3, LEARNER)], leader=10),  # promote
        range_info([(10, 1, VOTER), (11, 2, VOTER), (100, 3, LEARNER)], leader=10, pending=(100,)),
        range_info([(10, 1, VOTER), (11, 2, VOTER), (12, 3, VOTER), (13, 4, VOTER)], leader=10),
        range_info([(10, 4, VOTER), (11, 2, VOTER), (12, 3, VOTER), (13, 1, VOTER)], leader=10),
    ]
    for rng in cases:
        cluster.check(rng)
    cluster.ids = Ids()
    cluster.check(range_info([(10, 1, VOTER)], leader=10))
    assert cluster.ids.handed_out == [100]


def test_no_candidate_store_falls_through_without_allocating_an_id():
    cluster = Cluster(S(1), S(2, DISCONNECTED), S(3, OFFLINE), ids=no_ids)
    assert cluster.check(range_info([(10, 1, VOTER)], leader=10)) is None


def test_an_unset_replica_count_never_shrinks_a_range():
    cluster = Cluster(S(1), S(2), S(3), replicas=0, ids=no_ids)
    assert cluster.check(range_info([(10, 1, VOTER), (11, 2, VOTER), (12, 3, VOTER)], leader=10)) is None


@pytest.mark.parametrize(
    ("stored", "silent_ms", "expected"),
    [
        (UP, 0, UP),
        (UP, 9_999, UP),
        (UP, 10_000, DISCONNECTED),
        (UP, 59_999, DISCONNECTED),
        (UP, 60_000, DOWN),
        (DOWN, 0, UP),  # a store that heartbeats again is back
        (DISCONNECTED, 1, UP),
        (OFFLINE, 0, OFFLINE),
        (OFFLINE, 100_000, OFFLINE),
        (TOMBSTONE, 0, TOMBSTONE),
        (TOMBSTONE, 100_000, TOMBSTONE),
    ],
)
def test_store_state(stored, silent_ms, expected):
    info = pdpb_pb2.StoreInfo(id=1, state=stored, last_heartbeat_ms=1_000_000)
    assert store_state(info, 1_000_000 + silent_ms, disconnect_ms=10_000, down_ms=60_000) == expected


def _ranges(cluster: Cluster, count: int, peers: list[tuple[int, int]]) -> list:
    """``count`` ranges side by side in key order, voters on the stores of ``peers`` (peer id
    offset, store id), led by the first."""
    infos = []
    for i in range(count):
        info = range_info([(100 * (i + 1) + off, store, VOTER) for off, store in peers],
                          leader=100 * (i + 1) + peers[0][0], range_id=i + 1)
        info.descriptor.start_key = b"" if i == 0 else b"r%02d" % i
        info.descriptor.end_key = b"r%02d" % (i + 1)
        cluster.report(info)
        infos.append(info)
    return infos


def test_repairs_spread_over_the_stores_that_are_not_at_their_limit():
    """A dead store's ranges go to the emptiest store only while it has room, then to the next
    (all onto one store, the rest would wait behind its limit); once every candidate is full
    the next range waits, without taking an id."""
    cluster = Cluster(S(1), S(2), S(3, DOWN), S(4), S(5, ranges=5), store_limit=2, ids=Ids(first=1000))
    infos = _ranges(cluster, 5, [(0, 1), (1, 2), (2, 3)])
    targets = []
    for info in infos[:4]:
        op = cluster.checker.check(info, cluster.now)
        assert cluster.controller.add(op, cluster.now)
        targets.append(op.steps[0].peer.store_id)
    assert targets == [4, 4, 5, 5]
    assert cluster.controller.store_load(3) == 4  # a DOWN store is never at its limit
    cluster.ids = no_ids
    assert cluster.checker.check(infos[4], cluster.now) is None


def test_a_decommission_waits_for_its_store_limit_and_never_shrinks_the_range_instead():
    cluster = Cluster(S(1), S(2), S(3, OFFLINE), S(4), S(5), store_limit=2, ids=Ids(first=1000))
    infos = _ranges(cluster, 3, [(0, 1), (1, 2), (2, 3)])
    for info in infos[:2]:
        assert cluster.controller.add(cluster.checker.check(info, cluster.now), cluster.now)
    cluster.ids = no_ids  # the third range waits: no operator, no id, and no removal
    assert cluster.checker.check(infos[2], cluster.now) is None
    cluster.controller.cancel(cluster.controller.get(1).id, cluster.now)
    cluster.ids = Ids(first=2000)
    op = cluster.checker.check(infos[2], cluster.now)
    assert (op.kind, op.steps[0].peer.id, op.steps[-1].peer.store_id) == ("replace-replica", 2000, 3)

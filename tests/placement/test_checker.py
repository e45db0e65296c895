"""The replica checker's step order and the operator tracker, driven against simulated ranges."""

from __future__ import annotations

import pytest

from kvdb.pb import metapb_pb2, pdpb_pb2
from placement.checker import OperatorTracker, check_replicas, store_state

Op = pdpb_pb2.Operator
UP, DISCONNECTED, DOWN = pdpb_pb2.UP, pdpb_pb2.DISCONNECTED, pdpb_pb2.DOWN
OFFLINE, TOMBSTONE = pdpb_pb2.OFFLINE, pdpb_pb2.TOMBSTONE
VOTER, LEARNER = metapb_pb2.VOTER, metapb_pb2.LEARNER
THREE = pdpb_pb2.ScheduleConfig(replica_count=3)
KIND = {
    Op.ADD_LEARNER: "add",
    Op.PROMOTE_LEARNER: "promote",
    Op.REMOVE_PEER: "remove",
    Op.TRANSFER_LEADER: "transfer",
    Op.SPLIT: "split",
    Op.REPLACE_VOTER: "replace",
}


def store(store_id: int, state: int = UP, ranges: int = 0, leaders: int = 0) -> pdpb_pb2.StoreInfo:
    stats = pdpb_pb2.StoreStats(range_count=ranges, leader_count=leaders)
    return pdpb_pb2.StoreInfo(id=store_id, state=state, stats=stats)


def stores_of(*infos: pdpb_pb2.StoreInfo) -> dict[int, pdpb_pb2.StoreInfo]:
    return {s.id: s for s in infos}


def range_info(
    peers: list[tuple[int, int, int]], leader: int, pending: tuple[int, ...] = (), range_id: int = 1
) -> pdpb_pb2.RangeInfo:
    """`peers` as (peer id, store id, role); `leader` a peer id."""
    desc = metapb_pb2.RangeDescriptor(
        id=range_id,
        epoch=metapb_pb2.RangeEpoch(conf_ver=1, version=1),
        peers=[metapb_pb2.Peer(id=i, store_id=s, role=r) for i, s, r in peers],
    )
    lead = next(p for p in desc.peers if p.id == leader)
    return pdpb_pb2.RangeInfo(descriptor=desc, leader=lead, pending_peer_ids=pending)


class Ids:
    """A peer id allocator that records every allocation."""

    def __init__(self, first: int = 100) -> None:
        self.next = first
        self.handed_out: list[int] = []

    def __call__(self) -> int:
        self.handed_out.append(self.next)
        self.next += 1
        return self.handed_out[-1]


def no_ids() -> int:
    raise AssertionError("new_peer_id called without adding a peer")


def apply(rng: pdpb_pb2.RangeInfo, op: pdpb_pb2.Operator) -> None:
    """What the range's leader would do with `op`; an added learner starts out pending."""
    desc = rng.descriptor
    if op.kind == Op.ADD_LEARNER:
        desc.peers.append(op.peer)
        rng.pending_peer_ids.append(op.peer.id)
    elif op.kind == Op.PROMOTE_LEARNER:
        next(p for p in desc.peers if p.id == op.peer.id).role = VOTER
    elif op.kind == Op.REPLACE_VOTER:  # into the joint configuration and out of it
        next(p for p in desc.peers if p.id == op.peer.id).role = VOTER
        next(p for p in desc.peers if p.id == op.demote_peer.id).role = LEARNER
        desc.epoch.conf_ver += 1
    elif op.kind == Op.REMOVE_PEER:
        keep = [p for p in desc.peers if p.id != op.peer.id]
        del desc.peers[:]
        desc.peers.extend(keep)
        if op.peer.id in rng.pending_peer_ids:
            rng.pending_peer_ids.remove(op.peer.id)
    elif op.kind == Op.TRANSFER_LEADER:
        rng.leader.CopyFrom(op.peer)
        return
    desc.epoch.conf_ver += 1


def drive(rng, stores, config=THREE, ids=None, max_steps=20) -> list[tuple | None]:
    """Runs the checker to a fixed point: a None with a learner pending lets the learner catch up.

    Returns the trace: (kind, peer id, store id) per operator, None per wait.
    """
    ids = ids if ids is not None else Ids()
    trace: list[tuple | None] = []
    for _ in range(max_steps):
        op = check_replicas(rng, stores, config, ids)
        if op is None:
            if not rng.pending_peer_ids:
                return trace
            trace.append(None)
            del rng.pending_peer_ids[:]
            continue
        step = (KIND[op.kind], op.peer.id, op.peer.store_id)
        if op.kind == Op.REPLACE_VOTER:
            step += (op.demote_peer.id,)
        trace.append(step)
        apply(rng, op)
    raise AssertionError(f"no fixed point after {max_steps} steps: {trace}")


def voters(rng: pdpb_pb2.RangeInfo) -> dict[int, int]:
    return {p.id: p.store_id for p in rng.descriptor.peers if p.role == VOTER}


# ------------------------------------------------------------------------------- check_replicas


def test_new_cluster_grows_to_three_replicas_one_learner_at_a_time_on_the_emptiest_stores():
    stores = stores_of(store(1, ranges=9), store(2, ranges=4), store(3, ranges=1))
    rng = range_info([(10, 1, VOTER)], leader=10)
    ids = Ids()
    trace = drive(rng, stores, ids=ids)
    assert trace == [
        ("add", 100, 3),
        None,
        ("promote", 100, 3),
        ("add", 101, 2),
        None,
        ("promote", 101, 2),
    ]
    assert ids.handed_out == [100, 101]
    assert voters(rng) == {10: 1, 100: 3, 101: 2}
    assert check_replicas(rng, stores, THREE, no_ids) is None


def test_added_learner_has_a_fresh_id_the_chosen_store_and_the_learner_role():
    stores = stores_of(store(1), store(2))
    op = check_replicas(range_info([(10, 1, VOTER)], leader=10), stores, THREE, Ids(first=77))
    assert op == Op(kind=Op.ADD_LEARNER, peer=metapb_pb2.Peer(id=77, store_id=2, role=LEARNER))


def test_candidate_is_an_up_store_without_a_replica_with_fewest_ranges_then_lowest_id():
    stores = stores_of(
        store(1, ranges=0),  # hosts the leader
        store(2, DOWN, ranges=0),  # hosts the down voter: never a candidate
        store(3, ranges=5),
        store(4, DISCONNECTED, ranges=0),
        store(5, OFFLINE, ranges=0),
        store(6, TOMBSTONE, ranges=0),
        store(7, DOWN, ranges=0),
        store(8, ranges=2),
        store(9, ranges=2),
    )
    rng = range_info([(10, 1, VOTER), (11, 2, VOTER)], leader=10)
    op = check_replicas(rng, stores, THREE, Ids())
    assert (op.kind, op.peer.store_id) == (Op.ADD_LEARNER, 8)


def test_voter_on_a_down_store_is_replaced_in_one_joint_step_then_removed_as_a_learner():
    stores = stores_of(store(1), store(2), store(3, DOWN), store(4, ranges=3), store(5, ranges=1))
    rng = range_info([(10, 1, VOTER), (11, 2, VOTER), (12, 3, VOTER)], leader=10)
    trace = drive(rng, stores)
    assert trace == [("add", 100, 5), None, ("replace", 100, 5, 12), ("remove", 12, 3)]
    assert voters(rng) == {10: 1, 11: 2, 100: 5}


def test_voter_on_a_store_pd_does_not_know_counts_as_gone():
    stores = stores_of(store(1), store(2), store(4))
    rng = range_info([(10, 1, VOTER), (11, 2, VOTER), (12, 3, VOTER)], leader=10)
    assert drive(rng, stores) == [("add", 100, 4), None, ("replace", 100, 4, 12), ("remove", 12, 3)]


def test_nothing_is_planned_while_the_range_is_in_a_joint_configuration():
    stores = stores_of(store(1), store(2), store(3, DOWN), store(4))
    rng = range_info([(10, 1, VOTER), (11, 2, VOTER), (12, 3, VOTER), (100, 4, VOTER)], leader=10)
    rng.joint = True  # 12 is an outgoing voter the leader is about to demote
    assert check_replicas(rng, stores, THREE, no_ids) is None


def test_a_learner_nobody_needs_any_more_is_removed_not_promoted():
    """The failed voter's store came back while its replacement caught up (or a demoted voter's
    store returned): promoting would only make a fourth voter to remove again."""
    stores = stores_of(store(1), store(2), store(3), store(4))
    rng = range_info([(10, 1, VOTER), (11, 2, VOTER), (12, 3, VOTER), (100, 4, LEARNER)], leader=10)
    assert drive(rng, stores) == [("remove", 100, 4)]


def test_five_voters_two_silent_shrink_by_removing_the_silent_ones():
    """What the issue reproduced: replica count 3, five voters of which two are DISCONNECTED;
    removing a live voter on the fullest store left 2 of 4 voters alive."""
    stores = stores_of(store(1, ranges=1), store(2, ranges=9), store(3, ranges=8),
                       store(4, DISCONNECTED, ranges=0), store(5, DISCONNECTED, ranges=0))
    rng = range_info([(10 + i, i, VOTER) for i in range(1, 6)], leader=11)
    op = check_replicas(rng, stores, THREE, no_ids)
    assert (op.kind, op.peer.id) == (Op.REMOVE_PEER, 15)
    assert drive(rng, stores) == [("remove", 15, 5), ("remove", 14, 4)]
    assert voters(rng) == {11: 1, 12: 2, 13: 3}


def test_no_surplus_voter_is_removed_when_no_choice_keeps_a_live_quorum():
    stores = stores_of(store(1), store(2), store(3, DISCONNECTED), store(4, DISCONNECTED),
                       store(5, DISCONNECTED))
    rng = range_info([(10 + i, i, VOTER) for i in range(1, 6)], leader=11)
    assert check_replicas(rng, stores, THREE, no_ids) is None


@pytest.mark.parametrize(
    ("replicas", "states", "removed"),
    [
        (3, [UP, UP, DOWN], 12),
        (3, [UP, DISCONNECTED, OFFLINE], 12),  # a DISCONNECTED voter still counts towards the majority
        (3, [UP, DOWN, DOWN], None),
        (3, [UP, DISCONNECTED, DOWN, DOWN], 12),  # the rule counts against replica_count
        (5, [UP, UP, UP, DOWN, DOWN], 13),
        (5, [UP, UP, TOMBSTONE, DOWN, DOWN], None),
    ],
)
def test_without_a_spare_store_a_failed_voter_is_removed_only_if_a_majority_stays_healthy(
    replicas, states, removed
):
    stores = stores_of(*(store(i + 1, state) for i, state in enumerate(states)))
    rng = range_info([(10 + i, i + 1, VOTER) for i in range(len(states))], leader=10)
    config = pdpb_pb2.ScheduleConfig(replica_count=replicas)
    op = check_replicas(rng, stores, config, no_ids)
    if removed is None:
        assert op is None
    else:
        assert (op.kind, op.peer.id) == (Op.REMOVE_PEER, removed)


def test_voter_on_a_disconnected_store_is_neither_replaced_nor_removed():
    stores = stores_of(store(1), store(2), store(3, DISCONNECTED), store(4))
    rng = range_info([(10, 1, VOTER), (11, 2, VOTER), (12, 3, VOTER)], leader=10)
    assert check_replicas(rng, stores, THREE, no_ids) is None


def test_pending_learner_blocks_a_second_learner_and_removals():
    stores = stores_of(store(1), store(2), store(3, DOWN), store(4), store(5), store(6))
    rng = range_info(
        [(10, 1, VOTER), (11, 2, VOTER), (12, 3, VOTER), (100, 4, LEARNER)], leader=10, pending=(100,)
    )
    assert check_replicas(rng, stores, THREE, no_ids) is None
    del rng.pending_peer_ids[:]
    op = check_replicas(rng, stores, THREE, no_ids)
    assert (op.kind, op.peer.id, op.demote_peer.id) == (Op.REPLACE_VOTER, 100, 12)


def test_learner_on_a_disconnected_store_is_not_promoted_and_not_doubled():
    stores = stores_of(store(1), store(2), store(3, DOWN), store(4, DISCONNECTED), store(5))
    rng = range_info([(10, 1, VOTER), (11, 2, VOTER), (12, 3, VOTER), (100, 4, LEARNER)], leader=10)
    assert check_replicas(rng, stores, THREE, no_ids) is None


@pytest.mark.parametrize("state", [DOWN, OFFLINE, TOMBSTONE])
def test_learner_on_a_failed_store_is_removed_even_while_pending(state):
    stores = stores_of(store(1), store(2), store(3), store(4, state), store(5))
    rng = range_info([(10, 1, VOTER), (11, 2, VOTER), (100, 4, LEARNER)], leader=10, pending=(100,))
    assert drive(rng, stores, ids=Ids(first=101)) == [
        ("remove", 100, 4),
        ("add", 101, 3),
        None,
        ("promote", 101, 3),
    ]


def test_leader_on_an_offline_store_is_replaced_then_hands_over_leadership_then_is_removed():
    stores = stores_of(
        store(1, OFFLINE), store(2, leaders=5), store(3, leaders=1), store(4, ranges=0, leaders=3)
    )
    rng = range_info([(10, 1, VOTER), (11, 2, VOTER), (12, 3, VOTER)], leader=10)
    trace = drive(rng, stores)
    assert trace == [
        ("add", 100, 4),
        None,
        ("promote", 100, 4),
        ("transfer", 12, 3),  # the UP voter leading the fewest ranges
        ("remove", 10, 1),
    ]
    assert rng.leader.id == 12
    assert voters(rng) == {11: 2, 12: 3, 100: 4}


def test_leader_on_an_offline_store_without_a_spare_transfers_before_removal():
    stores = stores_of(store(1, OFFLINE), store(2), store(3))
    rng = range_info([(10, 1, VOTER), (11, 2, VOTER), (12, 3, VOTER)], leader=10)
    assert drive(rng, stores) == [("transfer", 11, 2), ("remove", 10, 1)]


def test_leadership_never_goes_to_a_disconnected_or_failed_voter():
    stores = stores_of(store(1, OFFLINE), store(2, DISCONNECTED), store(3, DOWN), store(4, leaders=9))
    rng = range_info([(10, 1, VOTER), (11, 2, VOTER), (12, 3, VOTER), (13, 4, VOTER)], leader=10)
    # The non-leader failed voter goes first; then the only UP voter takes over.
    assert drive(rng, stores) == [("remove", 12, 3), ("transfer", 13, 4), ("remove", 10, 1)]
    stores[4].state = DISCONNECTED
    rng = range_info([(10, 1, VOTER), (11, 2, VOTER), (13, 4, VOTER)], leader=10)
    assert check_replicas(rng, stores, THREE, no_ids) is None


def test_too_many_voters_removes_a_non_leader_on_the_fullest_store_ties_to_highest_store_id():
    stores = stores_of(store(1, ranges=50), store(2, ranges=7), store(3, ranges=9), store(4, ranges=9))
    rng = range_info([(10, 1, VOTER), (11, 2, VOTER), (12, 3, VOTER), (13, 4, VOTER)], leader=10)
    op = check_replicas(rng, stores, THREE, no_ids)
    assert (op.kind, op.peer.id) == (Op.REMOVE_PEER, 13)


def test_five_voters_shrink_to_three_one_removal_at_a_time():
    stores = stores_of(*(store(i, ranges=i) for i in range(1, 6)))
    rng = range_info([(10 + i, i, VOTER) for i in range(1, 6)], leader=15)
    assert drive(rng, stores) == [("remove", 14, 4), ("remove", 13, 3)]
    assert voters(rng) == {11: 1, 12: 2, 15: 5}


def test_new_peer_id_is_called_only_when_a_learner_is_added():
    stores = stores_of(store(1), store(2), store(3), store(4, OFFLINE))
    cases = [
        range_info([(10, 1, VOTER), (11, 2, VOTER), (12, 3, VOTER)], leader=10),  # done
        range_info([(10, 1, VOTER), (11, 2, VOTER), (100, 3, LEARNER)], leader=10),  # promote
        range_info([(10, 1, VOTER), (11, 2, VOTER), (100, 3, LEARNER)], leader=10, pending=(100,)),
        range_info([(10, 1, VOTER), (11, 2, VOTER), (12, 3, VOTER), (13, 4, VOTER)], leader=10),
        range_info([(10, 4, VOTER), (11, 2, VOTER), (12, 3, VOTER), (13, 1, VOTER)], leader=10),
    ]
    for rng in cases:
        check_replicas(rng, stores, THREE, no_ids)
    ids = Ids()
    check_replicas(range_info([(10, 1, VOTER)], leader=10), stores, THREE, ids)
    assert ids.handed_out == [100]


def test_no_candidate_store_falls_through_without_allocating_an_id():
    stores = stores_of(store(1), store(2, DISCONNECTED), store(3, OFFLINE))
    rng = range_info([(10, 1, VOTER)], leader=10)
    assert check_replicas(rng, stores, THREE, no_ids) is None


def test_an_unset_replica_count_never_shrinks_a_range():
    stores = stores_of(store(1), store(2), store(3))
    rng = range_info([(10, 1, VOTER), (11, 2, VOTER), (12, 3, VOTER)], leader=10)
    assert check_replicas(rng, stores, pdpb_pb2.ScheduleConfig(), no_ids) is None


# ---------------------------------------------------------------------------------- store_state


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


# ------------------------------------------------------------------------------ OperatorTracker


class Check:
    """A check() that hands out the queued results and counts its calls."""

    def __init__(self, *results: pdpb_pb2.Operator | None) -> None:
        self.results = list(results)
        self.calls = 0

    def __call__(self) -> pdpb_pb2.Operator | None:
        self.calls += 1
        return self.results.pop(0)


def add_learner(peer_id: int = 100, store_id: int = 4) -> pdpb_pb2.Operator:
    return Op(kind=Op.ADD_LEARNER, peer=metapb_pb2.Peer(id=peer_id, store_id=store_id, role=LEARNER))


def three_voters(range_id: int = 1) -> pdpb_pb2.RangeInfo:
    return range_info([(10, 1, VOTER), (11, 2, VOTER), (12, 3, VOTER)], leader=10, range_id=range_id)


def test_tracker_resends_the_same_operator_without_checking_again_until_done():
    tracker = OperatorTracker(timeout_ms=1_000)
    rng = three_voters()
    op = add_learner()
    check = Check(op, None)
    assert tracker.next_operator(rng, 0, check) is op
    for now in (100, 500, 999):
        assert tracker.next_operator(rng, now, check) is op
    assert check.calls == 1
    assert tracker.pending() == {1: op}
    apply(rng, op)
    assert tracker.next_operator(rng, 999, check) is None
    assert check.calls == 2
    assert tracker.pending() == {}
    assert tracker.timed_out == 0


def test_tracker_times_out_counts_it_and_checks_afresh():
    tracker = OperatorTracker(timeout_ms=1_000)
    rng = three_voters()
    first, second = add_learner(100, 4), add_learner(101, 5)
    check = Check(first, second)
    tracker.next_operator(rng, 5_000, check)
    assert tracker.next_operator(rng, 5_999, check) is first
    assert tracker.next_operator(rng, 6_000, check) is second
    assert (tracker.timed_out, check.calls) == (1, 2)
    # The fresh operator gets its own clock.
    assert tracker.next_operator(rng, 6_999, check) is second
    assert tracker.timed_out == 1


def test_tracker_prefers_done_over_timed_out():
    tracker = OperatorTracker(timeout_ms=1_000)
    rng = three_voters()
    op = add_learner()
    tracker.next_operator(rng, 0, Check(op))
    apply(rng, op)
    assert tracker.next_operator(rng, 50_000, Check(None)) is None
    assert tracker.timed_out == 0


def test_tracker_does_not_track_no_operator():
    tracker = OperatorTracker(timeout_ms=1_000)
    check = Check(None, None)
    rng = three_voters()
    assert tracker.next_operator(rng, 0, check) is None
    assert tracker.next_operator(rng, 1, check) is None
    assert check.calls == 2
    assert tracker.pending() == {}


def test_tracker_keeps_ranges_independent():
    tracker = OperatorTracker(timeout_ms=1_000)
    one, two = three_voters(range_id=1), three_voters(range_id=2)
    op_one, op_two = add_learner(100, 4), add_learner(101, 5)
    tracker.next_operator(one, 0, Check(op_one))
    assert tracker.next_operator(two, 10, Check(op_two)) is op_two
    assert tracker.pending() == {1: op_one, 2: op_two}
    apply(one, op_one)
    assert tracker.next_operator(one, 20, Check(None)) is None
    assert tracker.pending() == {2: op_two}
    # Range 2's operator keeps its own start time: not timed out at 1_009, timed out at 1_010.
    assert tracker.next_operator(two, 1_009, Check()) is op_two
    assert tracker.next_operator(two, 1_010, Check(None)) is None
    assert tracker.timed_out == 1


def test_tracker_pending_is_a_copy():
    tracker = OperatorTracker(timeout_ms=1_000)
    rng = three_voters()
    op = add_learner()
    tracker.next_operator(rng, 0, Check(op))
    tracker.pending().clear()
    assert tracker.next_operator(rng, 1, Check()) is op


def _peer(peer_id: int, store_id: int, role: int = VOTER) -> metapb_pb2.Peer:
    return metapb_pb2.Peer(id=peer_id, store_id=store_id, role=role)


@pytest.mark.parametrize(
    ("op", "not_done", "done"),
    [
        (
            Op(kind=Op.ADD_LEARNER, peer=_peer(100, 4, LEARNER)),
            [(10, 1, VOTER)],
            [(10, 1, VOTER), (100, 4, LEARNER)],
        ),
        (  # already promoted by the time PD hears back: done as well
            Op(kind=Op.ADD_LEARNER, peer=_peer(100, 4, LEARNER)),
            [(10, 1, VOTER), (101, 4, LEARNER)],
            [(10, 1, VOTER), (100, 4, VOTER)],
        ),
        (
            Op(kind=Op.PROMOTE_LEARNER, peer=_peer(100, 4, LEARNER)),
            [(10, 1, VOTER), (100, 4, LEARNER)],
            [(10, 1, VOTER), (100, 4, VOTER)],
        ),
        (
            Op(kind=Op.REMOVE_PEER, peer=_peer(11, 2)),
            [(10, 1, VOTER), (11, 2, VOTER)],
            [(10, 1, VOTER)],
        ),
    ],
)
def test_tracker_done_conditions_for_membership_changes(op, not_done, done):
    tracker = OperatorTracker(timeout_ms=1_000)
    tracker.next_operator(range_info(not_done, leader=10), 0, Check(op))
    assert tracker.next_operator(range_info(not_done, leader=10), 1, Check()) is op
    assert tracker.next_operator(range_info(done, leader=10), 2, Check(None)) is None
    assert tracker.pending() == {}


def test_tracker_keeps_a_replacement_through_its_joint_configuration_until_it_is_left():
    tracker = OperatorTracker(timeout_ms=1_000)
    op = Op(kind=Op.REPLACE_VOTER, peer=_peer(100, 4, LEARNER), demote_peer=_peer(12, 3))
    before = range_info([(10, 1, VOTER), (11, 2, VOTER), (12, 3, VOTER), (100, 4, LEARNER)], leader=10)
    tracker.next_operator(before, 0, Check(op))
    joint = range_info([(10, 1, VOTER), (11, 2, VOTER), (12, 3, VOTER), (100, 4, VOTER)], leader=10)
    joint.joint = True
    joint.descriptor.epoch.conf_ver += 1
    assert tracker.next_operator(joint, 1, Check()) is op
    left = range_info([(10, 1, VOTER), (11, 2, VOTER), (12, 3, LEARNER), (100, 4, VOTER)], leader=10)
    left.descriptor.epoch.conf_ver += 2
    assert tracker.next_operator(left, 2, Check(None)) is None
    assert (tracker.pending(), tracker.stale) == ({}, 0)


def test_tracker_transfer_leader_is_done_when_the_target_leads():
    tracker = OperatorTracker(timeout_ms=1_000)
    op = Op(kind=Op.TRANSFER_LEADER, peer=_peer(11, 2))
    peers = [(10, 1, VOTER), (11, 2, VOTER), (12, 3, VOTER)]
    tracker.next_operator(range_info(peers, leader=10), 0, Check(op))
    assert tracker.next_operator(range_info(peers, leader=12), 1, Check()) is op
    assert tracker.next_operator(range_info(peers, leader=11), 2, Check(None)) is None


def test_tracker_split_is_done_when_the_epoch_version_moves():
    tracker = OperatorTracker(timeout_ms=1_000)
    rng = three_voters()
    op = Op(kind=Op.SPLIT, split_keys=[b"m"])
    tracker.next_operator(rng, 0, Check(op))
    rng.descriptor.epoch.conf_ver += 1
    assert tracker.next_operator(rng, 1, Check()) is op
    rng.descriptor.epoch.version += 1
    assert tracker.next_operator(rng, 2, Check(None)) is None


def test_checker_behind_the_tracker_allocates_one_id_per_learner_despite_resends():
    """A leader that carries out each operator only on its third delivery (lost replies)."""
    stores = stores_of(store(1, ranges=9), store(2, ranges=4), store(3, ranges=1))
    rng = range_info([(10, 1, VOTER)], leader=10)
    ids = Ids()
    tracker = OperatorTracker(timeout_ms=10_000)
    sent: list[tuple[str, int]] = []
    deliveries = 0
    for now in range(0, 60_000, 100):
        op = tracker.next_operator(rng, now, lambda: check_replicas(rng, stores, THREE, ids))
        if op is None:
            del rng.pending_peer_ids[:]  # the learner catches up while nothing is asked of it
            continue
        if not sent or sent[-1] != (KIND[op.kind], op.peer.id):
            sent.append((KIND[op.kind], op.peer.id))
            deliveries = 0
        deliveries += 1
        if deliveries == 3:
            apply(rng, op)
    assert sent == [("add", 100), ("promote", 100), ("add", 101), ("promote", 101)]
    assert ids.handed_out == [100, 101]
    assert voters(rng) == {10: 1, 100: 3, 101: 2}
    assert tracker.timed_out == 0
    assert tracker.pending() == {}

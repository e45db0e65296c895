"""The operator controller, table-driven: operators in, what it accepts and the steps it hands a
range's leader out. Scenarios from the operator tracker it replaced (re-sends, timeouts, done and
stale conditions) plus its own rules: priority, store limits, held promotions, cancel, history."""

from __future__ import annotations

import pytest

from kvdb.pb import metapb_pb2, pdpb_pb2
from placement.schedule import operator as ops
from placement.schedule.controller import OperatorController
from placement.schedule.operator import (
    CANCELLED,
    REPLACED,
    RUNNING,
    STALE,
    SUCCESS,
    TIMEOUT,
    Operator,
    Priority,
    Step,
)
from tests.placement.scheduling import (
    DISCONNECTED,
    LEARNER,
    NOW,
    TIMEOUT_MS,
    UP,
    VOTER,
    Cluster,
    Ids,
    Op,
    S,
    apply,
    learner_step,
    range_info,
    voters,
)


def three_voters(range_id: int = 1, end: bytes = b"m") -> pdpb_pb2.RangeInfo:
    info = range_info([(10, 1, VOTER), (11, 2, VOTER), (12, 3, VOTER)], leader=10, range_id=range_id)
    info.descriptor.end_key = end
    return info


def cluster_with(*infos: pdpb_pb2.RangeInfo, store_limit: int = 0, stores: int = 6) -> Cluster:
    cluster = Cluster(*(S(i) for i in range(1, stores + 1)), store_limit=store_limit)
    for info in infos:
        cluster.report(info)
    return cluster


def one_step(info: pdpb_pb2.RangeInfo, step: Step, priority: Priority = Priority.REPAIR,
             origin: str = "test") -> Operator:
    return Operator(info.descriptor.id, "test", origin, "a test operator", [step], priority)


def add_learner_op(info: pdpb_pb2.RangeInfo, peer_id: int = 100, store_id: int = 4,
                   priority: Priority = Priority.REPAIR, origin: str = "test") -> Operator:
    return one_step(info, learner_step(peer_id, store_id), priority, origin)


def test_resends_the_same_step_until_the_heartbeat_shows_it_done():
    rng = three_voters()
    cluster = cluster_with(rng)
    op = add_learner_op(rng)
    assert cluster.controller.add(op, NOW)
    assert (op.id, op.status, cluster.controller.running()) == (1, RUNNING, [op])
    for now in (NOW + 100, NOW + 500, NOW + 999):
        assert cluster.controller.step_for(rng, now) == op.steps[0]
    apply(rng, op.steps[0])
    assert cluster.controller.step_for(rng, NOW + 999) is None
    assert (op.status, cluster.controller.running(), cluster.controller.history()) == (SUCCESS, [], [op])
    assert cluster.controller.outcomes == {("test", SUCCESS): 1}


def test_a_step_times_out_from_when_its_leader_is_first_told():
    """An operator made between heartbeats is not late before its range's leader heard of it."""
    rng = three_voters()
    cluster = cluster_with(rng)
    op = add_learner_op(rng)
    cluster.controller.add(op, NOW)
    first_sent = NOW + TIMEOUT_MS - 1
    assert cluster.controller.step_for(rng, first_sent) == op.steps[0]
    assert cluster.controller.step_for(rng, first_sent + TIMEOUT_MS - 1) == op.steps[0]
    assert cluster.controller.step_for(rng, first_sent + TIMEOUT_MS) is None
    assert op.status == TIMEOUT
    assert cluster.controller.outcomes == {("test", TIMEOUT): 1}
    # A fresh operator gets its own clock.
    again = add_learner_op(rng, 101, 5)
    assert cluster.controller.add(again, first_sent + TIMEOUT_MS)
    assert cluster.controller.step_for(rng, first_sent + TIMEOUT_MS + 1) == again.steps[0]


def test_done_wins_over_timed_out():
    rng = three_voters()
    cluster = cluster_with(rng)
    op = add_learner_op(rng)
    cluster.controller.add(op, NOW)
    cluster.controller.step_for(rng, NOW)
    apply(rng, op.steps[0])
    assert cluster.controller.step_for(rng, NOW + 50 * TIMEOUT_MS) is None
    assert op.status == SUCCESS


def test_expire_ends_operators_of_ranges_gone_silent_and_of_ranges_gone():
    one, two = three_voters(1, b"c"), three_voters(2, b"m")
    two.descriptor.start_key = b"c"
    cluster = cluster_with(one, two)
    first, second = add_learner_op(one), add_learner_op(two, 101, 5)
    assert cluster.controller.add(first, NOW) and cluster.controller.add(second, NOW)
    cluster.controller.step_for(two, NOW + 10)
    cluster.controller.expire(NOW + TIMEOUT_MS - 1)
    assert (first.status, second.status) == (RUNNING, RUNNING)
    cluster.controller.expire(NOW + TIMEOUT_MS)  # the first one was never handed out: from creation
    assert (first.status, second.status) == (TIMEOUT, RUNNING)
    merged = three_voters(3, b"m")  # a newer report over both ranges' keys replaces them
    merged.descriptor.epoch.version = 5
    cluster.report(merged)
    cluster.controller.expire(NOW + TIMEOUT_MS + 1)
    assert (second.status, cluster.controller.running()) == (STALE, [])


def test_keeps_ranges_independent():
    one, two = three_voters(1, b"c"), three_voters(2, b"m")
    two.descriptor.start_key = b"c"
    cluster = cluster_with(one, two)
    op_one, op_two = add_learner_op(one), add_learner_op(two, 101, 5)
    cluster.controller.add(op_one, NOW)
    cluster.controller.add(op_two, NOW)
    assert cluster.controller.step_for(two, NOW + 10) == op_two.steps[0]
    assert cluster.controller.step_for(one, NOW) == op_one.steps[0]
    apply(one, op_one.steps[0])
    assert cluster.controller.step_for(one, NOW + 20) is None
    assert cluster.controller.running() == [op_two]
    # Range 2's step keeps its own clock: handed out at NOW + 10.
    assert cluster.controller.step_for(two, NOW + 10 + TIMEOUT_MS - 1) == op_two.steps[0]
    assert cluster.controller.step_for(two, NOW + 10 + TIMEOUT_MS) is None
    assert cluster.controller.outcomes == {("test", SUCCESS): 1, ("test", TIMEOUT): 1}


def _peer(peer_id: int, store_id: int, role: int = VOTER) -> metapb_pb2.Peer:
    return metapb_pb2.Peer(id=peer_id, store_id=store_id, role=role)


@pytest.mark.parametrize(
    ("step", "not_done", "done"),
    [
        (
            Op(kind=Op.ADD_LEARNER, peer=_peer(100, 4, LEARNER)),
            [(10, 1, VOTER)],
            [(10, 1, VOTER), (100, 4, LEARNER)],
        ),
        (  # already promoted by the time PD hears back: done as well
            Op(kind=Op.ADD_LEARNER, peer=_peer(100, 4, LEARNER)),
            [(10, 1, VOTER), (101, 5, LEARNER)],
            [(10, 1, VOTER), (100, 4, VOTER)],
        ),
        (
            Op(kind=Op.PROMOTE_LEARNER, peer=_peer(100, 4, LEARNER)),
            [(10, 1, VOTER), (100, 4, LEARNER)],
            [(10, 1, VOTER), (100, 4, VOTER)],
        ),
        (Op(kind=Op.REMOVE_PEER, peer=_peer(11, 2)), [(10, 1, VOTER), (11, 2, VOTER)], [(10, 1, VOTER)]),
    ],
)
def test_done_conditions_for_membership_changes(step, not_done, done):
    before = range_info(not_done, leader=10)
    cluster = cluster_with(before)
    op = one_step(before, step)
    cluster.controller.add(op, NOW)
    assert cluster.controller.step_for(range_info(not_done, leader=10), NOW + 1) == step
    after = range_info(done, leader=10)
    after.descriptor.epoch.conf_ver += 1
    assert cluster.controller.step_for(after, NOW + 2) is None
    assert op.status == SUCCESS


def test_a_replacement_runs_through_its_joint_configuration_until_it_is_left():
    before = range_info([(10, 1, VOTER), (11, 2, VOTER), (12, 3, VOTER), (100, 4, LEARNER)], leader=10)
    cluster = cluster_with(before)
    step = Op(kind=Op.REPLACE_VOTER, peer=_peer(100, 4, LEARNER), demote_peer=_peer(12, 3))
    op = one_step(before, step)
    cluster.controller.add(op, NOW)
    joint = range_info([(10, 1, VOTER), (11, 2, VOTER), (12, 3, VOTER), (100, 4, VOTER)], leader=10)
    joint.joint = True
    joint.descriptor.epoch.conf_ver += 1
    assert cluster.controller.step_for(joint, NOW + 1) == step
    left = range_info([(10, 1, VOTER), (11, 2, VOTER), (12, 3, LEARNER), (100, 4, VOTER)], leader=10)
    left.descriptor.epoch.conf_ver += 2
    assert cluster.controller.step_for(left, NOW + 2) is None
    assert op.status == SUCCESS


def test_transfer_leader_is_done_when_the_target_leads():
    rng = three_voters()
    cluster = cluster_with(rng)
    op = ops.transfer_leader(rng, rng.descriptor.peers[1], "test")
    cluster.controller.add(op, NOW)
    rng.leader.CopyFrom(rng.descriptor.peers[2])
    assert cluster.controller.step_for(rng, NOW + 1) == op.steps[0]
    rng.leader.CopyFrom(rng.descriptor.peers[1])
    assert cluster.controller.step_for(rng, NOW + 2) is None
    assert op.status == SUCCESS


def test_split_survives_a_membership_change_and_is_done_when_the_version_moves():
    rng = three_voters()
    cluster = cluster_with(rng)
    op = ops.split(rng, [b"f"], [pdpb_pb2.SplitID(new_range_id=7, new_peer_ids=[70, 71, 72])], "admin")
    cluster.controller.add(op, NOW)
    rng.descriptor.epoch.conf_ver += 1
    assert cluster.controller.step_for(rng, NOW + 1) == op.steps[0]
    rng.descriptor.epoch.version += 1
    assert cluster.controller.step_for(rng, NOW + 2) is None
    assert op.status == SUCCESS


def test_an_operator_planned_for_a_membership_gone_ends_stale():
    """What ``--seed 5215 --stores 3 --pd`` found (see tests/test_storesim_pd.py): a step re-sent
    against a membership it was not planned for adds a voter that never exists."""
    rng = range_info([(10, 1, VOTER), (11, 2, VOTER), (100, 3, LEARNER)], leader=10)
    cluster = cluster_with(rng)
    op = one_step(rng, Op(kind=Op.PROMOTE_LEARNER, peer=_peer(100, 3, LEARNER)))
    cluster.controller.add(op, NOW)
    apply(rng, Op(kind=Op.REMOVE_PEER, peer=_peer(100, 3, LEARNER)))  # a late removal applied
    assert cluster.controller.step_for(rng, NOW + 1) is None
    assert (op.status, cluster.controller.outcomes) == (STALE, {("test", STALE): 1})


@pytest.mark.parametrize("why", ["pending", "disconnected"])
def test_a_learner_is_made_a_voter_only_once_caught_up_on_an_up_store(why):
    rng = range_info([(10, 1, VOTER), (11, 2, VOTER), (100, 4, LEARNER)], leader=10)
    cluster = cluster_with(rng)
    step = Op(kind=Op.PROMOTE_LEARNER, peer=_peer(100, 4, LEARNER))
    op = one_step(rng, step)
    cluster.controller.add(op, NOW)
    if why == "pending":
        rng.pending_peer_ids.append(100)
    else:
        cluster.set_state(4, DISCONNECTED)
    assert cluster.controller.step_for(rng, NOW + 1) is None
    assert op.status == RUNNING
    del rng.pending_peer_ids[:]
    cluster.set_state(4, UP)
    assert cluster.controller.step_for(rng, NOW + 2) == step


def test_a_higher_priority_replaces_a_running_operator_never_the_reverse():
    rng = three_voters()
    cluster = cluster_with(rng)
    balance = add_learner_op(rng, 100, 4, Priority.SCHEDULE, "balance-region")
    repair = add_learner_op(rng, 101, 5, Priority.REPAIR, "replica-checker")
    admin = add_learner_op(rng, 102, 6, Priority.ADMIN, "admin")
    assert cluster.controller.add(balance, NOW)
    assert not cluster.controller.add(add_learner_op(rng, 103, 6, Priority.SCHEDULE), NOW)
    assert cluster.controller.add(repair, NOW + 1)
    assert balance.status == REPLACED
    assert not cluster.controller.add(add_learner_op(rng, 104, 6, Priority.REPAIR), NOW + 2)
    assert not cluster.controller.add(balance, NOW + 2)
    assert cluster.controller.add(admin, NOW + 3)
    assert (repair.status, cluster.controller.get(1)) == (REPLACED, admin)
    assert not cluster.controller.add(add_learner_op(rng, 105, 6, Priority.ADMIN), NOW + 4)
    assert [op.id for op in cluster.controller.history()] == [1, 2]
    assert admin.id == 3  # ids only for accepted operators, in order
    assert cluster.controller.created == {"balance-region": 1, "replica-checker": 1, "admin": 1}
    assert cluster.controller.step_for(rng, NOW + 5) == admin.steps[0]


def test_an_operator_on_a_range_pd_does_not_know_is_refused():
    cluster = cluster_with(three_voters())
    assert not cluster.controller.add(add_learner_op(three_voters(range_id=9)), NOW)
    assert cluster.controller.created == {}


def test_store_limit_counts_operators_moving_data_on_a_store_admin_exempt():
    infos = [three_voters(i, b"%02d" % i) for i in range(1, 6)]
    for prev, info in zip(infos, infos[1:], strict=False):
        info.descriptor.start_key = prev.descriptor.end_key
    cluster = cluster_with(*infos, store_limit=2)
    controller = cluster.controller
    ids = Ids()
    balance = ops.add_replica(infos[0], 4, ids(), "balance-region", Priority.SCHEDULE)
    assert controller.add(balance, NOW)
    assert controller.add(ops.move_replica(infos[1], 2, 4, ids(), "balance-region"), NOW)  # stores 2, 4
    assert (controller.store_load(4), controller.store_load(2), controller.store_load(5)) == (2, 1, 0)
    assert not controller.add(ops.add_replica(infos[2], 4, ids(), "replica-checker"), NOW)  # 4 is full
    # Leader transfers move no data: no limit applies.
    assert controller.add(ops.transfer_leader(infos[2], infos[2].descriptor.peers[1], "balance-leader"), NOW)
    # An operator replacing one of a range frees that one's slot.
    assert controller.add(ops.add_replica(infos[0], 4, ids(), "replica-checker"), NOW)
    assert balance.status == REPLACED and controller.store_load(4) == 2
    # An admin's operator is never held back by the limits.
    assert controller.add(ops.add_replica(infos[3], 4, ids(), "admin", Priority.ADMIN), NOW)
    assert controller.store_load(4) == 3
    assert (controller.count("balance-region"), controller.count("replica-checker")) == (1, 1)


def test_cancel_ends_the_running_operator_by_id():
    rng = three_voters()
    cluster = cluster_with(rng)
    op = add_learner_op(rng)
    cluster.controller.add(op, NOW)
    assert cluster.controller.cancel(op.id + 1, NOW) is None
    assert cluster.controller.cancel(op.id, NOW + 1) is op
    assert (op.status, op.finished_ms, cluster.controller.get(1)) == (CANCELLED, NOW + 1, None)
    assert cluster.controller.step_for(rng, NOW + 2) is None
    assert cluster.controller.cancel(op.id, NOW + 3) is None  # finished: nothing to cancel


def test_history_keeps_the_most_recent_finished_operators_oldest_first():
    rng = three_voters()
    cluster = cluster_with(rng)
    controller = OperatorController(cluster.model, history=3)
    made = []
    for i in range(5):
        op = add_learner_op(rng, 100 + i)
        assert controller.add(op, NOW + i)
        controller.cancel(op.id, NOW + i)
        made.append(op)
    assert controller.history() == made[2:]
    assert controller.outcomes == {("test", CANCELLED): 5}


def test_a_multi_step_move_resends_each_step_and_allocates_nothing_per_resend():
    """A leader that carries out each step only on its third delivery (lost replies): one peer id
    for the whole move, each step re-sent until a heartbeat shows it done."""
    rng = three_voters()
    cluster = cluster_with(rng)
    ids = Ids()
    op = ops.move_replica(rng, 3, 4, ids(), "test", Priority.REPAIR)
    assert cluster.controller.add(op, NOW)
    sent: list[int] = []
    deliveries = 0
    for now in range(NOW, NOW + 10_000, 100):
        cluster.report(rng)
        step = cluster.controller.step_for(rng, now)
        if step is None:
            if cluster.controller.get(1) is None:
                break
            del rng.pending_peer_ids[:]  # the learner catches up while nothing is asked of it
            continue
        if not sent or sent[-1] != step.kind:
            sent.append(step.kind)
            deliveries = 0
        deliveries += 1
        if deliveries == 3:
            apply(rng, step)
    assert sent == [Op.ADD_LEARNER, Op.REPLACE_VOTER, Op.REMOVE_PEER]
    assert ids.handed_out == [100]
    assert voters(rng) == {10: 1, 11: 2, 100: 4}
    assert (op.status, cluster.controller.outcomes) == (SUCCESS, {("move-replica", SUCCESS): 1})

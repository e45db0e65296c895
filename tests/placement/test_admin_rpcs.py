"""The admin RPCs' checks, table-driven on a cluster model: what a hand-made operator, a store
state change or a setting is refused for (the refusal names the reason, and nothing is built or
changed), and the operator built when it is allowed."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from kvdb.pb import pdpb_pb2
from placement.admin_rpcs import AdminRpcs, check_labels
from placement.rpc import RequestError, now_ms
from placement.schedule import operator as ops
from tests.placement.test_cluster_model import LEARNER, VOTER, Kind, model, rng

SCHEDULERS = ["balance-region", "balance-leader", "hot-region", "evict-leader"]


def rpcs(stores: int = 5, offline: tuple[int, ...] = (), silent: tuple[int, ...] = ()) -> AdminRpcs:
    """Range 1 on stores 1-3 (leader on 1), range 2 with a learner on store 4, ``stores`` stores
    UP now except the ``offline`` (decommissioning) and ``silent`` (DOWN) ones."""
    second = rng(2, b"m", b"", [(21, 1, VOTER), (22, 2, VOTER), (23, 3, VOTER), (24, 4, LEARNER)], leader=22)
    m = model(rng(1, b"", b"m", [(11, 1, VOTER), (12, 2, VOTER), (13, 3, VOTER)], leader=11), second,
              stores=stores)
    now = now_ms()
    m.serving_since_ms = now - 60_000  # silence counts from here: every store would be DOWN ...
    for sid in m.stores:
        if sid not in silent:
            m.store_heartbeat(sid, pdpb_pb2.StoreStats(), now)  # ... but these heartbeat
    for sid in offline:
        m.stores[sid].state = pdpb_pb2.OFFLINE
    service = AdminRpcs()
    config = SimpleNamespace(store_disconnect_ms=1_000, member_id=1)
    service.member = SimpleNamespace(cluster=m, config=config,
                                     coordinator=SimpleNamespace(scheduler_names=lambda: SCHEDULERS))
    return service


def move(range_id: int, from_store: int, to_store: int) -> pdpb_pb2.AddOperatorRequest:
    return pdpb_pb2.AddOperatorRequest(range_id=range_id, move_replica=pdpb_pb2.MoveReplica(
        from_store=from_store, to_store=to_store))


def transfer(range_id: int, to_store: int) -> pdpb_pb2.AddOperatorRequest:
    to = pdpb_pb2.TransferLeaderTo(to_store=to_store)
    return pdpb_pb2.AddOperatorRequest(range_id=range_id, transfer_leader=to)


@pytest.mark.parametrize(("request_", "words"), [
    (move(9, 1, 4), "range 9 is unknown"),
    (pdpb_pb2.AddOperatorRequest(range_id=1), "needs move_replica or transfer_leader"),
    (move(1, 1, 1), "to itself"),
    (move(1, 4, 5), "range 1 has no replica on store 4 (it has replicas on stores 1, 2, 3)"),
    (move(1, 2, 9), "store 9 is unknown"),
    (move(1, 9, 4), "store 9 is unknown"),
    (move(1, 2, 3), "range 1 already has a replica on store 3"),
    (move(1, 2, 5), "store 5 is DOWN, not UP"),
    (transfer(1, 1), "store 1 already leads range 1"),
    (transfer(2, 4), "replica on store 4 is a learner, not a voter"),
    (transfer(1, 5), "no replica on store 5"),
])
def test_bad_operators_are_refused_with_the_reason(request_: pdpb_pb2.AddOperatorRequest, words: str) -> None:
    with pytest.raises(RequestError, match=words.replace("(", r"\(").replace(")", r"\)")) as caught:
        rpcs(silent=(5,))._admin_operator(request_, peer_id=99)
    assert caught.value.kind == {"invalid_argument": True}


def test_a_range_mid_way_through_a_membership_change_gets_no_operator() -> None:
    service = rpcs()
    peers = [(11, 1, VOTER), (12, 2, VOTER), (13, 3, VOTER)]
    joint = rng(1, b"", b"m", peers, leader=11, conf_ver=2, joint=True)
    service.member.cluster.put_range(joint)
    with pytest.raises(RequestError, match="mid-way through a membership change"):
        service._admin_operator(move(1, 2, 4), peer_id=99)


def test_moving_the_leader_hands_leadership_to_the_least_loaded_voter_first() -> None:
    op = rpcs()._admin_operator(move(1, 1, 4), peer_id=99)
    assert (op.kind, op.origin, op.priority) == ("move-replica", "admin", ops.Priority.ADMIN)
    # Store 2 leads range 2, store 3 leads nothing: store 3 takes over range 1.
    assert [(s.kind, s.peer.store_id) for s in op.steps] == [
        (Kind.TRANSFER_LEADER, 3), (Kind.ADD_LEARNER, 4), (Kind.REPLACE_VOTER, 4), (Kind.REMOVE_PEER, 1)]
    assert op.steps[1].peer.id == 99
    op = rpcs()._admin_operator(transfer(1, 2), peer_id=0)
    assert [(s.kind, s.peer.id) for s in op.steps] == [(Kind.TRANSFER_LEADER, 12)]


def test_a_leader_with_no_live_voter_to_hand_over_to_cannot_move() -> None:
    with pytest.raises(RequestError, match="no other voter on an UP store"):
        rpcs(silent=(2, 3))._admin_operator(move(1, 1, 4), peer_id=99)


@pytest.mark.parametrize(("stores", "offline", "store", "target", "words"), [
    (4, (), 1, pdpb_pb2.OFFLINE, None),  # 3 others left for 3 replicas
    (3, (), 1, pdpb_pb2.OFFLINE, "would leave 2 UP stores for 3 replicas per range: add a store first"),
    (5, (2, 3), 1, pdpb_pb2.OFFLINE, "would leave 2 UP stores"),  # decommissioning ones do not count
    (4, (), 9, pdpb_pb2.OFFLINE, "store 9 is unknown"),
    (4, (), 1, pdpb_pb2.UP, "store 1 is not being decommissioned (it is UP)"),
    (4, (1,), 1, pdpb_pb2.UP, None),
    (4, (1,), 1, pdpb_pb2.OFFLINE, None),  # again: nothing to do, no error
])
def test_store_state_changes(stores: int, offline: tuple[int, ...], store: int, target: int,
                             words: str | None) -> None:
    service = rpcs(stores, offline)
    if words is None:
        service._check_state_change(store, target, now_ms())
        return
    with pytest.raises(RequestError, match=words.replace("(", r"\(").replace(")", r"\)")):
        service._check_state_change(store, target, now_ms())


def test_a_tombstone_stays_one() -> None:
    service = rpcs()
    service.member.cluster.stores[4].state = pdpb_pb2.TOMBSTONE
    for target in (pdpb_pb2.UP, pdpb_pb2.OFFLINE):
        with pytest.raises(RequestError, match="TOMBSTONE: it left the cluster for good"):
            service._check_state_change(4, target, now_ms())


@pytest.mark.parametrize(("key", "value", "expected", "words"), [
    ("paused_schedulers", "+balance-region", ["balance-region"], None),
    ("paused_schedulers", "balance-leader,hot-region", ["balance-leader", "hot-region"], None),
    ("paused_schedulers", "+balance-merge", None, "unknown scheduler 'balance-merge'; known: balance-region"),
    ("evict_leader_stores", "+3", [1, 3], None),
    ("evict_leader_stores", "+1", [1], None),  # already there: once
    ("evict_leader_stores", "-1", [], None),
    ("evict_leader_stores", "+9", None, "store 9 is unknown"),
    ("store_down_ms", "500", None, r"must exceed the store disconnect time \(1000 ms\)"),
    ("replica_count", "2", None, "odd"),
])
def test_settings_checked_against_the_cluster(key: str, value: str, expected: list | None,
                                              words: str | None) -> None:
    service = rpcs()
    config = pdpb_pb2.ScheduleConfig(evict_leader_stores=[1])
    if words is None:
        service._apply_setting(config, key, value)
        assert list(getattr(config, key)) == expected
    else:
        with pytest.raises(RequestError, match=words):
            service._apply_setting(config, key, value)


@pytest.mark.parametrize("labels", [[("zone", "")], [("", "a")], [("zo=ne", "a")], [("zone", "a,b")],
                                    [("zone", " a")], [("zone", "a"), ("zone", "b")]])
def test_bad_labels_are_refused(labels: list[tuple[str, str]]) -> None:
    with pytest.raises(RequestError):
        check_labels([pdpb_pb2.StoreLabel(key=k, value=v) for k, v in labels])
    check_labels([pdpb_pb2.StoreLabel(key="zone", value="a"), pdpb_pb2.StoreLabel(key="rack", value="r1")])

"""The cluster model's per-store indexes and store states; operators stepping through range reports."""

from __future__ import annotations

import pytest

from kvdb.pb import metapb_pb2, pdpb_pb2
from placement.cluster import ClusterModel
from placement.schedule import operator as ops

VOTER, LEARNER = metapb_pb2.VOTER, metapb_pb2.LEARNER
Kind = pdpb_pb2.Operator


def rng(range_id: int, start: bytes, end: bytes, peers: list[tuple[int, int, int]], leader: int,
        conf_ver: int = 1, version: int = 1, size: int = 0, joint: bool = False) -> pdpb_pb2.RangeInfo:
    """``peers`` as (peer id, store id, role); ``leader`` a peer id."""
    desc = metapb_pb2.RangeDescriptor(id=range_id, start_key=start, end_key=end,
                                      epoch=metapb_pb2.RangeEpoch(conf_ver=conf_ver, version=version),
                                      peers=[metapb_pb2.Peer(id=i, store_id=s, role=r) for i, s, r in peers])
    info = pdpb_pb2.RangeInfo(descriptor=desc, joint=joint, stats=pdpb_pb2.RangeStats(approximate_size=size))
    info.leader.CopyFrom(next(p for p in desc.peers if p.id == leader))
    return info


def model(*ranges: pdpb_pb2.RangeInfo, stores: int = 4) -> ClusterModel:
    config = pdpb_pb2.ScheduleConfig(replica_count=3, store_down_ms=10_000)
    records = [pdpb_pb2.StoreInfo(id=i, address=f"s{i}") for i in range(1, stores + 1)]
    return ClusterModel(config, 1_000, records, ranges)


def test_indexes_follow_replaced_reports_and_splits() -> None:
    m = model(rng(1, b"", b"", [(1, 1, VOTER), (2, 2, VOTER), (3, 3, VOTER)], leader=1, size=100))
    assert (m.range_count(1), m.leader_count(1), m.range_size(2)) == (1, 1, 100)
    # A child of a split reports before its parent: it replaces the parent's wider record.
    child = rng(2, b"m", b"", [(4, 1, VOTER), (5, 2, VOTER), (6, 4, VOTER)], leader=6, version=2, size=40)
    assert m.put_range(child) == [1]
    assert m.ranges_on(3) == set() and m.ranges_on(4) == {2} and m.leaders_on(1) == set()
    assert m.range_size(2) == 40
    parent = rng(1, b"", b"m", [(1, 1, VOTER), (2, 2, VOTER), (3, 3, VOTER)], leader=2, version=2, size=60)
    assert m.put_range(parent) == []
    assert (m.range_count(2), m.leader_count(2), m.range_size(2)) == (2, 1, 100)
    assert [i.descriptor.id for i in m.all_ranges()] == [1, 2]


def test_heartbeats_live_in_memory_and_states_follow_silence() -> None:
    m = model()
    assert m.state(1, now_ms=500) == pdpb_pb2.UP  # silence counts from serving_since_ms (0)
    assert m.state(1, now_ms=5_000) == pdpb_pb2.DISCONNECTED
    assert m.state(1, now_ms=20_000) == pdpb_pb2.DOWN
    assert m.store_heartbeat(1, pdpb_pb2.StoreStats(used_bytes=7), now_ms=19_900)
    assert m.state(1, now_ms=20_000) == pdpb_pb2.UP
    assert not m.store_heartbeat(9, pdpb_pb2.StoreStats(), now_ms=1)
    assert m.state(9, now_ms=1) == pdpb_pb2.TOMBSTONE  # unknown: gone for good
    # A re-registered record keeps the liveness PD has in memory.
    m.put_store(pdpb_pb2.StoreInfo(id=1, address="s1-new"))
    assert m.stores[1].last_heartbeat_ms == 19_900 and m.stores[1].stats.used_bytes == 7
    offline = pdpb_pb2.StoreInfo(id=2, address="s2", state=pdpb_pb2.OFFLINE)
    m.put_store(offline)
    assert m.state(2, now_ms=0) == pdpb_pb2.OFFLINE  # an operator's decision, not silence


V123 = [(1, 1, VOTER), (2, 2, VOTER), (3, 3, VOTER)]


def three() -> pdpb_pb2.RangeInfo:
    return rng(7, b"", b"", V123, leader=1)


def test_move_of_the_leaders_replica_transfers_first_then_steps_through_a_learner() -> None:
    info = three()
    with pytest.raises(ValueError, match="leads"):
        ops.move_replica(info, 1, 4, peer_id=10, origin="admin")
    op = ops.move_replica(info, 1, 4, peer_id=10, origin="admin", leader_to=info.descriptor.peers[1])
    assert [s.kind for s in op.steps] == [Kind.TRANSFER_LEADER, Kind.ADD_LEARNER, Kind.REPLACE_VOTER,
                                          Kind.REMOVE_PEER]
    assert op.stores_moved() == {1, 4}
    op.start(info, now_ms=0)
    assert op.check(info, 10, step_timeout_ms=1000).kind == Kind.TRANSFER_LEADER
    moved = rng(7, b"", b"", V123, leader=2)
    assert op.check(moved, 20, 1000).kind == Kind.ADD_LEARNER
    added = rng(7, b"", b"", [*V123, (10, 4, LEARNER)], leader=2, conf_ver=2)
    assert op.check(added, 30, 1000).kind == Kind.REPLACE_VOTER
    joint = rng(7, b"", b"", [*V123, (10, 4, VOTER)], leader=2, conf_ver=3, joint=True)
    assert op.check(joint, 40, 1000).kind == Kind.REPLACE_VOTER  # its own half-way point: not stale
    left = rng(7, b"", b"", [(1, 1, LEARNER), (2, 2, VOTER), (3, 3, VOTER), (10, 4, VOTER)], leader=2,
               conf_ver=4)
    assert op.check(left, 50, 1000).kind == Kind.REMOVE_PEER
    done = rng(7, b"", b"", [(2, 2, VOTER), (3, 3, VOTER), (10, 4, VOTER)], leader=2, conf_ver=5)
    assert op.check(done, 60, 1000) is None and op.status == ops.SUCCESS


def test_an_operator_ends_stale_when_membership_moves_without_it_and_times_out_per_step() -> None:
    info = three()
    op = ops.add_replica(info, 4, peer_id=10, origin="replica-checker")
    op.start(info, now_ms=0)
    other = rng(7, b"", b"", [(1, 1, VOTER), (2, 2, VOTER)], leader=1, conf_ver=2)
    assert op.check(other, 10, 1000) is None and op.status == ops.STALE
    slow = ops.add_replica(info, 4, peer_id=10, origin="replica-checker")
    slow.start(info, now_ms=0)
    added = rng(7, b"", b"", [*V123, (10, 4, LEARNER)], leader=1, conf_ver=2)
    assert slow.check(added, 900, 1000).kind == Kind.PROMOTE_LEARNER  # the clock restarts per step
    assert slow.check(added, 1800, 1000).kind == Kind.PROMOTE_LEARNER
    assert slow.check(added, 1900, 1000) is None and slow.status == ops.TIMEOUT
    assert slow.to_info().status == "timeout" and not slow.to_info().HasField("current")

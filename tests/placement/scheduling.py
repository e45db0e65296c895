"""A small cluster for table-driven scheduling tests: stores in given states with given loads,
a cluster model over them, a controller and the replica checker; and a leader that carries out
steps on a ``RangeInfo`` as a store would."""

from __future__ import annotations

from dataclasses import dataclass

from kvdb.pb import metapb_pb2, pdpb_pb2
from placement.cluster import ClusterModel
from placement.config import effective
from placement.schedule.checkers.replica import ReplicaChecker
from placement.schedule.controller import OperatorController
from placement.schedule.operator import Operator, Step

Op = pdpb_pb2.Operator
UP, DISCONNECTED, DOWN = pdpb_pb2.UP, pdpb_pb2.DISCONNECTED, pdpb_pb2.DOWN
OFFLINE, TOMBSTONE = pdpb_pb2.OFFLINE, pdpb_pb2.TOMBSTONE
VOTER, LEARNER = metapb_pb2.VOTER, metapb_pb2.LEARNER
KIND = {
    Op.ADD_LEARNER: "add",
    Op.PROMOTE_LEARNER: "promote",
    Op.REMOVE_PEER: "remove",
    Op.TRANSFER_LEADER: "transfer",
    Op.SPLIT: "split",
    Op.REPLACE_VOTER: "replace",
}
NOW = 1_000_000
DISCONNECT_MS = 1_000
DOWN_MS = 10_000
TIMEOUT_MS = 60_000
_SILENT_MS = {UP: 0, DISCONNECTED: 5_000, DOWN: 50_000}


@dataclass
class S:
    """A store: its state now, and how many ranges it holds and leads besides the tested one."""

    id: int
    state: int = UP
    ranges: int = 0
    leaders: int = 0


def range_info(peers: list[tuple[int, int, int]], leader: int, pending: tuple[int, ...] = (),
               range_id: int = 1) -> pdpb_pb2.RangeInfo:
    """``peers`` as (peer id, store id, role); ``leader`` a peer id. Covers keys [b"", b"m")."""
    desc = metapb_pb2.RangeDescriptor(
        id=range_id, end_key=b"m", epoch=metapb_pb2.RangeEpoch(conf_ver=1, version=1),
        peers=[metapb_pb2.Peer(id=i, store_id=s, role=r) for i, s, r in peers])
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
    raise AssertionError("new_id called without adding a peer")


class Cluster:
    def __init__(self, *stores: S, replicas: int = 3, store_limit: int = 0, ids: object = None) -> None:
        self.now = NOW
        config = effective(pdpb_pb2.ScheduleConfig(
            replica_count=replicas, store_down_ms=DOWN_MS, operator_timeout_ms=TIMEOUT_MS,
            store_limit=store_limit))
        self.model = ClusterModel(config, DISCONNECT_MS)
        for spec in stores:
            self.model.put_store(pdpb_pb2.StoreInfo(id=spec.id, address=f"s{spec.id}"))
            self.set_state(spec.id, spec.state)
            for i in range(max(spec.ranges, spec.leaders)):
                start = b"z%03d-%04d" % (spec.id, i)
                desc = metapb_pb2.RangeDescriptor(
                    id=10_000 + spec.id * 100 + i, start_key=start, end_key=start + b"\0",
                    peers=[metapb_pb2.Peer(id=50_000 + spec.id * 100 + i, store_id=spec.id)])
                self.model.put_range(pdpb_pb2.RangeInfo(
                    descriptor=desc, leader=desc.peers[0] if i < spec.leaders else None))
        self.ids = Ids() if ids is None else ids
        self.controller = OperatorController(self.model)
        self.checker = ReplicaChecker(self.model, lambda: self.ids(), self.controller)

    def set_state(self, store_id: int, state: int) -> None:
        info = self.model.stores[store_id]
        if state in (OFFLINE, TOMBSTONE):
            info.state = state
            info.last_heartbeat_ms = self.now
        else:
            info.state = UP
            info.last_heartbeat_ms = self.now - _SILENT_MS[state]
        assert self.model.state(store_id, self.now) == state

    def report(self, info: pdpb_pb2.RangeInfo) -> None:
        """The range's heartbeat reaches PD's model (a copy: the test keeps changing ``info``)."""
        copy = pdpb_pb2.RangeInfo()
        copy.CopyFrom(info)
        self.model.put_range(copy)

    def check(self, info: pdpb_pb2.RangeInfo) -> Operator | None:
        self.report(info)
        return self.checker.check(info, self.now)


def apply(rng: pdpb_pb2.RangeInfo, step: Step) -> None:
    """What the range's leader would do with ``step``; an added learner starts out pending."""
    desc = rng.descriptor
    if step.kind == Op.ADD_LEARNER:
        desc.peers.append(step.peer)
        rng.pending_peer_ids.append(step.peer.id)
    elif step.kind == Op.PROMOTE_LEARNER:
        next(p for p in desc.peers if p.id == step.peer.id).role = VOTER
    elif step.kind == Op.REPLACE_VOTER:  # into the joint configuration and out of it
        next(p for p in desc.peers if p.id == step.peer.id).role = VOTER
        next(p for p in desc.peers if p.id == step.demote_peer.id).role = LEARNER
        desc.epoch.conf_ver += 1
    elif step.kind == Op.REMOVE_PEER:
        keep = [p for p in desc.peers if p.id != step.peer.id]
        del desc.peers[:]
        desc.peers.extend(keep)
        if step.peer.id in rng.pending_peer_ids:
            rng.pending_peer_ids.remove(step.peer.id)
    elif step.kind == Op.TRANSFER_LEADER:
        rng.leader.CopyFrom(step.peer)
        return
    elif step.kind == Op.SPLIT:
        desc.epoch.version += 1
        return
    desc.epoch.conf_ver += 1


def traced(step: Step) -> tuple:
    out = (KIND[step.kind], step.peer.id, step.peer.store_id)
    return out + (step.demote_peer.id,) if step.kind == Op.REPLACE_VOTER else out


def drive(cluster: Cluster, rng: pdpb_pb2.RangeInfo, max_steps: int = 20) -> list[tuple | None]:
    """Heartbeats to a fixed point: the controller hands out steps (the leader carries each out at
    once), the checker makes a new operator when none runs; a None (nothing to do while a learner
    is pending) lets the learner catch up. Returns the trace: (kind, peer id, store id) per step,
    None per wait."""
    trace: list[tuple | None] = []
    for _ in range(max_steps):
        cluster.report(rng)
        step = cluster.controller.step_for(rng, cluster.now)
        if step is None and cluster.controller.get(rng.descriptor.id) is None:
            op = cluster.checker.check(rng, cluster.now)
            if op is not None:
                assert cluster.controller.add(op, cluster.now)
                continue
        if step is None:
            if not rng.pending_peer_ids:
                assert cluster.controller.get(rng.descriptor.id) is None, "an operator waits on nothing"
                return trace
            trace.append(None)
            del rng.pending_peer_ids[:]
            continue
        trace.append(traced(step))
        apply(rng, step)
    raise AssertionError(f"no fixed point after {max_steps} steps: {trace}")


def voters(rng: pdpb_pb2.RangeInfo) -> dict[int, int]:
    return {p.id: p.store_id for p in rng.descriptor.peers if p.role == VOTER}


def learner_step(peer_id: int, store_id: int) -> Step:
    return Step(kind=Op.ADD_LEARNER, peer=metapb_pb2.Peer(id=peer_id, store_id=store_id, role=LEARNER))

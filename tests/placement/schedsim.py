"""A cluster in, operators out: a tiny harness for the checkers' and schedulers' table tests.

``Sim`` holds a ``ClusterModel`` (stores with labels, ranges with replicas and leaders) and a
stand-in for the operator controller with the calls schedulers make (get, running, store_load,
count, add). ``complete`` carries an operator's steps out on the range the way its leader would
and reports the result to the model, so a test can run a scheduler to a fixed point.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable

from kvdb.pb import metapb_pb2, pdpb_pb2
from placement.cluster import ClusterModel
from placement.config import effective
from placement.schedule.operator import Kind, Operator

VOTER, LEARNER = metapb_pb2.VOTER, metapb_pb2.LEARNER


class FakeController:
    """The operator controller's interface as schedulers use it, without steps or timeouts."""

    def __init__(self) -> None:
        self.ops: dict[int, Operator] = {}

    def add(self, op: Operator) -> None:
        assert op.range_id not in self.ops, f"two operators for range {op.range_id}"
        self.ops[op.range_id] = op

    def get(self, range_id: int) -> Operator | None:
        return self.ops.get(range_id)

    def running(self) -> list[Operator]:
        return list(self.ops.values())

    def store_load(self, store_id: int) -> int:
        return sum(store_id in op.stores_moved() for op in self.ops.values())

    def count(self, origin: str) -> int:
        return sum(op.origin == origin for op in self.ops.values())


class Sim:
    def __init__(self, stores: dict[int, dict[str, str]], now_ms: int = 1_000, **config: object) -> None:
        """``stores``: store id -> labels; ``config``: ScheduleConfig fields (defaults otherwise)."""
        base = pdpb_pb2.ScheduleConfig(replica_count=3, store_down_ms=60_000, operator_timeout_ms=10_000)
        for key, value in config.items():
            if isinstance(value, list):
                getattr(base, key).extend(value)
            else:
                setattr(base, key, value)
        records = [pdpb_pb2.StoreInfo(id=sid, address=f"s{sid}",
                                      labels=[pdpb_pb2.StoreLabel(key=k, value=v) for k, v in labels.items()])
                   for sid, labels in stores.items()]
        self.now = now_ms
        self.model = ClusterModel(effective(base), 5_000, records)
        self.heartbeat()
        self.controller = FakeController()
        self._next_id = 1000
        self._next_range = 1

    def new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def heartbeat(self, *store_ids: int) -> None:
        """Stores report now (all of them when none is named)."""
        for sid in store_ids or self.model.stores:
            self.model.store_heartbeat(sid, pdpb_pb2.StoreStats(), self.now)

    def add_range(self, stores: Iterable[int], leader: int | None = None, size: int = 1 << 20,
                  written: int = 0, read: int = 0) -> pdpb_pb2.RangeInfo:
        """A range with a voter on each store; ``leader``: its leader's store (the first one by default)."""
        range_id = self._next_range
        self._next_range += 1
        start = b"" if range_id == 1 else b"k%06d" % range_id
        desc = metapb_pb2.RangeDescriptor(id=range_id, start_key=start, end_key=b"k%06d" % (range_id + 1),
                                          epoch=metapb_pb2.RangeEpoch(conf_ver=1, version=1))
        for sid in stores:
            desc.peers.add(id=self.new_id(), store_id=sid, role=VOTER)
        info = pdpb_pb2.RangeInfo(descriptor=desc, stats=pdpb_pb2.RangeStats(
            approximate_size=size, written_bytes_per_sec=written, read_bytes_per_sec=read))
        lead = desc.peers[0].store_id if leader is None else leader
        info.leader.CopyFrom(next(p for p in desc.peers if p.store_id == lead))
        self.model.put_range(info)
        return info

    def stores_of(self, range_id: int) -> list[int]:
        return sorted(p.store_id for p in self.model.get_range(range_id).descriptor.peers)

    def complete(self, op: Operator) -> None:
        """Carry out every step of ``op`` on its range and report the range to the model."""
        info = pdpb_pb2.RangeInfo()
        info.CopyFrom(self.model.get_range(op.range_id))
        desc = info.descriptor
        for step in op.steps:
            if step.kind == Kind.ADD_LEARNER:
                desc.peers.append(step.peer)
            elif step.kind == Kind.REPLACE_VOTER:
                next(p for p in desc.peers if p.id == step.peer.id).role = VOTER
                next(p for p in desc.peers if p.id == step.demote_peer.id).role = LEARNER
            elif step.kind == Kind.REMOVE_PEER:
                assert step.peer.id != info.leader.id, "a leader removed itself"
                keep = [p for p in desc.peers if p.id != step.peer.id]
                del desc.peers[:]
                desc.peers.extend(keep)
            elif step.kind == Kind.TRANSFER_LEADER:
                assert step.peer.role == VOTER
                info.leader.CopyFrom(next(p for p in desc.peers if p.id == step.peer.id))
            if step.kind != Kind.TRANSFER_LEADER:
                desc.epoch.conf_ver += 1
        self.model.put_range(info)

    def run(self, *sources: object, rounds: int = 500,
            before: Callable[[Operator, pdpb_pb2.RangeInfo], None] = lambda op, info: None) -> list[Operator]:
        """Run schedulers (``schedule``) or checkers (``check`` over every range) to a fixed point,
        one after the other in each round, completing the round's operators at its end; every
        operator made, in order. ``before`` sees each operator with its range as it was when the
        operator was made."""
        made: list[Operator] = []
        for _ in range(rounds):
            ops = []
            for source in sources:
                if hasattr(source, "schedule"):
                    found = source.schedule(self.now)
                else:
                    found = [op for info in list(self.model.all_ranges())
                             if self.controller.get(info.descriptor.id) is None
                             and (op := source.check(info, self.now))]
                for op in found:
                    self.controller.add(op)
                ops += found
            if not ops:
                return made
            for op in ops:
                before(op, self.model.get_range(op.range_id))
                self.complete(op)
                del self.controller.ops[op.range_id]
            made += ops
            self.now += 100
            self.heartbeat()
        raise AssertionError(f"no fixed point after {rounds} rounds")

    def counts(self, what: str = "ranges") -> Counter[int]:
        count = self.model.range_count if what == "ranges" else self.model.leader_count
        return Counter({sid: count(sid) for sid in self.model.stores})


def zones(per_zone: int, names: str = "abc") -> dict[int, dict[str, str]]:
    """Stores 1.. numbered zone by zone: ``zones(2)`` is {1: a, 2: a, 3: b, 4: b, 5: c, 6: c}."""
    out, sid = {}, 1
    for zone in names:
        for _ in range(per_zone):
            out[sid] = {"zone": zone, "host": f"h{sid}"}
            sid += 1
    return out

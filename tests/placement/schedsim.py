"""A cluster in, operators out: a tiny harness for the checkers' and schedulers' table tests.

``Sim`` holds a ``ClusterModel`` (stores with labels, ranges with replicas and leaders) and the
real ``OperatorController`` on it. ``complete`` carries an operator's steps out on the range the
way its leader would, reports the result to the model and the controller (which finishes the
operator), so a test can run schedulers and checkers to a fixed point.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable

from kvdb.pb import metapb_pb2, pdpb_pb2
from placement.cluster import ClusterModel
from placement.config import effective
from placement.schedule.controller import OperatorController
from placement.schedule.operator import SUCCESS, Kind, Operator
from tests.placement.scheduling import apply

VOTER = metapb_pb2.VOTER


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
        self.controller = OperatorController(self.model)
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

    def add(self, op: Operator) -> None:
        """Hand ``op`` to the controller, which must accept it."""
        assert self.controller.add(op, self.now), f"the controller refused: {op.description}"

    def complete(self, op: Operator) -> None:
        """Carry out every step of ``op`` on its range and report the range to the model and the
        controller (the operator ends SUCCESS)."""
        info = pdpb_pb2.RangeInfo()
        info.CopyFrom(self.model.get_range(op.range_id))
        for step in op.steps:
            assert step.kind != Kind.REMOVE_PEER or step.peer.id != info.leader.id, "a leader removed itself"
            apply(info, step)
        del info.pending_peer_ids[:]  # every learner caught up
        self.model.put_range(info)
        if self.controller.get(op.range_id) is op:
            assert self.controller.step_for(info, self.now) is None and op.status == SUCCESS, op

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
                    self.add(op)
                ops += found
            if not ops:
                return made
            for op in ops:
                before(op, self.model.get_range(op.range_id))
                self.complete(op)
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

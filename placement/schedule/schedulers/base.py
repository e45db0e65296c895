"""What every scheduler shares: its limit, its idle back-off, and the plan of one run.

A scheduler decides from the model *as it will be* once the operators in flight are done (an
added learner already counts on its new store in the model, the replica it replaces still counts
on the old one until removed; a leader transfer shows only when done). Without that projection a
scheduler running every 200 ms would keep moving ranges off a store whose earlier moves have not
landed yet and overshoot the mean.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Protocol

from kvdb.pb import pdpb_pb2
from placement.cluster import ClusterModel
from placement.schedule.operator import Kind, Operator

MAX_BACKOFF = 8
"""An idle scheduler runs at most this many times less often than ``schedule_interval_ms``."""


class Controller(Protocol):
    """What schedulers ask of the operator controller (placement/schedule/controller.py)."""

    def get(self, range_id: int) -> Operator | None: ...
    def running(self) -> list[Operator]: ...
    def store_load(self, store_id: int) -> int: ...
    def count(self, origin: str) -> int: ...


class Plan:
    """One run's view: operators in flight and those decided so far in this run, projected onto
    per-store replica and leader counts and per-store data-moving operator loads."""

    def __init__(self, model: ClusterModel, controller: Controller) -> None:
        self.model = model
        self.controller = controller
        self.replicas: Counter[int] = Counter()
        """Replicas each store gains (or loses, negative) once the operators are done."""
        self.leaders: Counter[int] = Counter()
        """Leaderships each store gains (or loses) once the operators are done."""
        self.load: Counter[int] = Counter()
        """Data-moving operators decided in this run, per store (the controller counts the rest)."""
        self.busy: set[int] = set()
        """Ranges given an operator in this run."""
        for op in controller.running():
            info = model.get_range(op.range_id)
            if info is not None and not op.finished:
                self._project(op, info, op.step)

    def _project(self, op: Operator, info: pdpb_pb2.RangeInfo, from_step: int) -> None:
        leader = info.leader.store_id
        for step in op.steps[from_step:]:
            if step.kind == Kind.ADD_LEARNER:
                self.replicas[step.peer.store_id] += 1
            elif step.kind == Kind.REMOVE_PEER:
                self.replicas[step.peer.store_id] -= 1
            elif step.kind == Kind.TRANSFER_LEADER and step.peer.store_id != leader:
                self.leaders[leader] -= 1
                self.leaders[step.peer.store_id] += 1
                leader = step.peer.store_id

    def add(self, op: Operator, info: pdpb_pb2.RangeInfo) -> Operator:
        """Count an operator decided in this run."""
        self.busy.add(op.range_id)
        for store_id in op.stores_moved():
            self.load[store_id] += 1
        self._project(op, info, 0)
        return op

    def free(self, range_id: int) -> bool:
        """No operator for the range, in flight or decided in this run."""
        return range_id not in self.busy and self.controller.get(range_id) is None

    def after(self, info: pdpb_pb2.RangeInfo) -> tuple[set[int], int]:
        """The range's stores and its leader's store once its operator in flight is done."""
        stores, leader = {p.store_id for p in info.descriptor.peers}, info.leader.store_id
        op = self.controller.get(info.descriptor.id)
        for step in [] if op is None or op.finished else op.steps[op.step:]:
            if step.kind == Kind.ADD_LEARNER:
                stores.add(step.peer.store_id)
            elif step.kind == Kind.REMOVE_PEER:
                stores.discard(step.peer.store_id)
            elif step.kind == Kind.TRANSFER_LEADER:
                leader = step.peer.store_id
        return stores, leader

    def has_room(self, store_id: int) -> bool:
        """The store may take part in one more data-moving operator (``store_limit``)."""
        return self.controller.store_load(store_id) + self.load[store_id] < self.model.config.store_limit

    def range_count(self, store_id: int) -> int:
        return self.model.range_count(store_id) + self.replicas[store_id]

    def leader_count(self, store_id: int) -> int:
        return self.model.leader_count(store_id) + self.leaders[store_id]


def beyond_tolerance(high: float, low: float, mean: float, tolerance_percent: int) -> bool:
    """Whether the most and least loaded stores are far enough from the mean to act on."""
    margin = mean * tolerance_percent / 100
    return high > mean + margin or low < mean - margin


class Scheduler:
    """Base of the schedulers: ``schedule`` makes nothing once the scheduler's operators in
    flight reach its limit setting, and an idle scheduler backs off (up to ``MAX_BACKOFF`` times
    the interval), so a balanced cluster costs PD little; the first operator resets it."""

    name: str
    limit_setting: str

    def __init__(self, model: ClusterModel, controller: Controller, new_id: Callable[[], int]) -> None:
        self.model = model
        self.controller = controller
        self.new_id = new_id
        self._idle_runs = 0

    @property
    def interval_ms(self) -> int:
        return self.model.config.schedule_interval_ms * min(2 ** self._idle_runs, MAX_BACKOFF)

    def schedule(self, now_ms: int) -> list[Operator]:
        room = getattr(self.model.config, self.limit_setting) - self.controller.count(self.name)
        if room <= 0:
            return []  # at its limit: busy, not idle
        ops = self.plan(Plan(self.model, self.controller), now_ms, room)
        self._idle_runs = 0 if ops else min(self._idle_runs + 1, MAX_BACKOFF.bit_length() - 1)
        return ops

    def plan(self, plan: Plan, now_ms: int, room: int) -> list[Operator]:
        """At most ``room`` operators (priority SCHEDULE), each counted into ``plan``."""
        raise NotImplementedError


class OneAtATime(Scheduler):
    """A scheduler that decides one operator at a time, each against the plan with the ones
    decided before it (so two moves in one run never aim at the same gap)."""

    def plan(self, plan: Plan, now_ms: int, room: int) -> list[Operator]:
        ops: list[Operator] = []
        while len(ops) < room and (op := self._one(plan, now_ms)) is not None:
            ops.append(op)
        return ops

    def _one(self, plan: Plan, now_ms: int) -> Operator | None:
        raise NotImplementedError

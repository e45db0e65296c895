"""The coordinator: runs the checkers and schedulers on an interval, apart from the RPCs.

A run (``run_once``, every ``config.schedule_interval_ms`` on the PD leader):

1. ``controller.expire``: operators whose step ran out of time end (their ranges went silent).
2. Ranges on stores whose state changed since the last run become dirty (a store went DOWN or
   OFFLINE, or came back; in a leadership's first run every store is new, so every range is
   looked at once), as do ranges reported by a heartbeat with no operator (``mark_dirty``).
3. The dirty ranges, then a patrol batch of ``PATROL_BATCH`` ranges (a cursor over key order, so
   every range is looked at within ``ranges / PATROL_BATCH`` runs even if nothing marks it), go
   through the checkers; the first checker with an operator for a range wins. A range with an
   operator running is skipped: the operator is the repair in progress, and a checker looking at
   its half-done state (a learner added by a move) would undo it.
4. Each scheduler not paused (``config.paused_schedulers``) whose interval is due.

Ids are taken synchronously from PD's id allocator's persisted window (``IdAllocator.take``);
when it is used up (``IdsExhausted``) the run stops where it is and the rest waits for the next
run, after a further window is reserved.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from kvdb.pb import pdpb_pb2
from placement.cluster import ClusterModel
from placement.schedule.checkers import Checker
from placement.schedule.checkers.placement import PlacementChecker
from placement.schedule.checkers.replica import ReplicaChecker
from placement.schedule.controller import OperatorController
from placement.schedule.operator import Operator
from placement.schedule.schedulers.balance_leader import BalanceLeaderScheduler
from placement.schedule.schedulers.balance_region import BalanceRegionScheduler
from placement.schedule.schedulers.evict_leader import EvictLeaderScheduler
from placement.schedule.schedulers.hot_region import HotRegionScheduler
from placement.windows import IdsExhausted

PATROL_BATCH = 256
"""Ranges the patrol looks at per run: 10,000 ranges in 40 runs (8 s at the default 200 ms)."""


class Scheduler(Protocol):
    name: str
    limit_setting: str
    interval_ms: int

    def schedule(self, now_ms: int) -> list[Operator]:
        """Operators that would make the cluster better (priority SCHEDULE)."""


NewId = Callable[[], int]
CHECKERS: list[Callable[[ClusterModel, OperatorController, NewId], Checker]] = [
    lambda model, controller, new_id: ReplicaChecker(model, new_id, controller),
    lambda model, controller, new_id: PlacementChecker(model, new_id),
]
"""Every checker, in the order they look at a range (the first with an operator wins): each a
factory of (model, controller, new_id), like the schedulers'."""
SCHEDULERS: list[Callable[[ClusterModel, OperatorController, NewId], Scheduler]] = [
    BalanceRegionScheduler, BalanceLeaderScheduler, HotRegionScheduler, EvictLeaderScheduler]
"""Every scheduler, in the order they run."""


class Coordinator:
    def __init__(self, model: ClusterModel, controller: OperatorController, checkers: list[Checker],
                 schedulers: list[Scheduler]) -> None:
        self.model = model
        self.controller = controller
        self.checkers = checkers
        self.schedulers = schedulers
        self._dirty: dict[int, None] = {}  # insertion-ordered set
        self._states: dict[int, int] = {}
        self._cursor = b""
        self._due_ms: dict[str, int] = {}

    def mark_dirty(self, range_id: int) -> None:
        """The range changed (heartbeat path): look at it in the next run."""
        self._dirty[range_id] = None

    def run_once(self, now_ms: int) -> list[Operator]:
        """One round of checks and schedules; returns the operators the controller accepted."""
        self.controller.expire(now_ms)
        self._dirty_by_store_state(now_ms)
        accepted: list[Operator] = []
        self._dirty.update(self._patrol())  # after the dirty ones (a dict keeps insertion order)
        try:
            self._check(self._dirty, now_ms, accepted)
            self._schedule(now_ms, accepted)
        except IdsExhausted:
            pass  # the rest waits for the next run: ranges not yet checked stay dirty
        return accepted

    def _dirty_by_store_state(self, now_ms: int) -> None:
        for store_id in self.model.stores:
            state = self.model.state(store_id, now_ms)
            if self._states.get(store_id) != state:
                self._states[store_id] = state
                for range_id in self.model.ranges_on(store_id):
                    self.mark_dirty(range_id)

    def _patrol(self) -> dict[int, None]:
        batch = self.model.ranges.scan(self._cursor, b"", PATROL_BATCH)
        if len(batch) < PATROL_BATCH or not batch[-1].descriptor.end_key:
            self._cursor = b""  # wrap around: the next run starts at the first range
        else:
            self._cursor = batch[-1].descriptor.end_key
        return {info.descriptor.id: None for info in batch}

    def _check(self, range_ids: dict[int, None], now_ms: int, accepted: list[Operator]) -> None:
        """Run the checkers over ``range_ids``, removing each from it once looked at."""
        for range_id in list(range_ids):
            info = self.model.get_range(range_id)
            if info is not None and self.controller.get(range_id) is None:
                for checker in self.checkers:
                    op = checker.check(info, now_ms)
                    if op is not None:
                        if self.controller.add(op, now_ms):
                            accepted.append(op)
                        break
            range_ids.pop(range_id, None)

    def _schedule(self, now_ms: int, accepted: list[Operator]) -> None:
        paused = set(self.model.config.paused_schedulers)
        for scheduler in self.schedulers:
            if scheduler.name in paused or now_ms < self._due_ms.get(scheduler.name, 0):
                continue
            self._due_ms[scheduler.name] = now_ms + scheduler.interval_ms
            for op in scheduler.schedule(now_ms):
                if self.controller.add(op, now_ms):
                    accepted.append(op)

    def tombstones(self, now_ms: int) -> list[int]:
        """OFFLINE stores that hold no replica any more: decommissioned, ready to be TOMBSTONE."""
        return [sid for sid in sorted(self.model.stores)
                if self.model.state(sid, now_ms) == pdpb_pb2.OFFLINE and not self.model.range_count(sid)]

    def scheduler_names(self) -> list[str]:
        return [s.name for s in self.schedulers]

    def scheduler_infos(self) -> list[pdpb_pb2.SchedulerInfo]:
        paused = set(self.model.config.paused_schedulers)
        return [pdpb_pb2.SchedulerInfo(name=s.name, paused=s.name in paused,
                                       created=self.controller.created[s.name],
                                       running=self.controller.count(s.name))
                for s in self.schedulers]


def default_coordinator(model: ClusterModel, controller: OperatorController, new_id: NewId) -> Coordinator:
    """A coordinator with every checker and scheduler (``CHECKERS``, ``SCHEDULERS``)."""
    return Coordinator(model, controller,
                       [make(model, controller, new_id) for make in CHECKERS],
                       [make(model, controller, new_id) for make in SCHEDULERS])

"""The operator controller: the operators in flight, at most one per range, within limits.

Checkers, schedulers and admins hand it operators; the range heartbeat path asks it for the step
a range's leader should carry out now (``step_for``). It keeps three promises:

- **One operator per range.** A second one is refused unless it has a higher priority, in which
  case the running one ends REPLACED (an admin's move beats a repair, a repair beats a balance).
- **Store limits.** A store gains or loses at most ``store_limit`` replicas at once through
  running operators (each one a snapshot sent or received, or a replica's data deleted), so
  scheduling never starves a store's foreground traffic. ADMIN operators are exempt: an operator
  asked for by hand must not wait behind the schedulers. A DOWN or TOMBSTONE store is never at
  its limit: it runs nothing, so moving replicas off it costs it nothing (and a dead store's
  thousands of replicas are rebuilt as fast as the stores receiving them allow).
- **A voter only once it can vote.** A step that turns a learner into a voter (promote, or a
  joint replacement) is held back while the learner is pending (has not caught up) or its store
  is not UP: promoting it then would count towards the quorum a replica that cannot answer.
  Its timeout keeps running, so a learner that never catches up ends its operator.

Each step has ``config.operator_timeout_ms`` to show done in a heartbeat, counted for the first
step from when the range's leader is first handed it (an operator made by the coordinator waits
for the range's next heartbeat to be sent at all), for later ones from when the previous one
showed done (in the heartbeat that hands the next one out). ``expire`` also ends operators of
ranges whose heartbeats stopped (their leader's store died: counted from creation then) or that
left the model.
Finished operators go to a bounded history, for ``kvdb admin operators`` and the tests.
"""

from __future__ import annotations

from collections import Counter, deque

from kvdb.pb import pdpb_pb2
from placement.cluster import ClusterModel
from placement.schedule.operator import CANCELLED, REPLACED, STALE, TIMEOUT, Kind, Operator, Priority, Step

_PROMOTING = (Kind.PROMOTE_LEARNER, Kind.REPLACE_VOTER)


class OperatorController:
    def __init__(self, model: ClusterModel, history: int = 200) -> None:
        self.model = model
        self._running: dict[int, Operator] = {}
        self._loads: Counter[int] = Counter()
        """Store id -> running operators that add or remove a replica on it."""
        self._undelivered: set[int] = set()
        """Ids of running operators whose first step no heartbeat has handed out yet."""
        self._history: deque[Operator] = deque(maxlen=history)
        self._last_id = 0
        self.created: Counter[str] = Counter()
        """Operators accepted, by origin, since this controller (this PD leadership) began."""
        self.outcomes: Counter[tuple[str, str]] = Counter()
        """Finished operators by (kind, status)."""

    @property
    def _step_timeout_ms(self) -> int:
        return self.model.config.operator_timeout_ms

    # ----------------------------------------------------------------------------- admission
    def add(self, op: Operator, now_ms: int) -> bool:
        """Start ``op`` if its range is known, no operator of at least its priority runs on the
        range, and (below ADMIN) no store it moves data on is at its limit."""
        info = self.model.get_range(op.range_id)
        if info is None:
            return False
        old = self._running.get(op.range_id)
        if old is not None and old.priority >= op.priority:
            return False
        if op.priority < Priority.ADMIN:
            for store_id in op.stores_moved():
                # The operator it replaces frees its own slots.
                held = 1 if old is not None and store_id in old.stores_moved() else 0
                if self.at_limit(store_id, now_ms, held):
                    return False
        if old is not None:
            self._finish(old, REPLACED, now_ms)
        self._last_id += 1
        op.id = self._last_id
        op.start(info, now_ms)
        self._running[op.range_id] = op
        self._loads.update(op.stores_moved())
        self._undelivered.add(op.id)
        self.created[op.origin] += 1
        return True

    def cancel(self, op_id: int, now_ms: int) -> Operator | None:
        """End the running operator with this id (CANCELLED); None if none runs with it."""
        for op in self._running.values():
            if op.id == op_id:
                self._finish(op, CANCELLED, now_ms)
                return op
        return None

    # ------------------------------------------------------------------------------ progress
    def step_for(self, info: pdpb_pb2.RangeInfo, now_ms: int) -> Step | None:
        """The step the range's leader should carry out now, given its fresh report; None if it
        has no operator, the operator just finished, or its step must wait (see the module doc)."""
        op = self._running.get(info.descriptor.id)
        if op is None:
            return None
        step = op.check(info, now_ms, self._step_timeout_ms)
        if op.finished:
            self._retire(op)
            return None
        if step.kind in _PROMOTING and not self._can_vote(info, step, now_ms):
            return None
        if op.id in self._undelivered:
            self._undelivered.discard(op.id)
            op.step_started_ms = now_ms  # its time starts now that the leader hears of it
        return step

    def _can_vote(self, info: pdpb_pb2.RangeInfo, step: Step, now_ms: int) -> bool:
        return (step.peer.id not in info.pending_peer_ids
                and self.model.state(step.peer.store_id, now_ms) == pdpb_pb2.UP)

    def expire(self, now_ms: int) -> None:
        """End operators whose step ran out of time without a heartbeat saying so (the range went
        silent) and those of ranges PD no longer has (replaced by a newer overlapping report)."""
        for op in list(self._running.values()):
            if self.model.get_range(op.range_id) is None:
                self._finish(op, STALE, now_ms)
            elif op.timed_out(now_ms, self._step_timeout_ms):
                self._finish(op, TIMEOUT, now_ms)

    def _finish(self, op: Operator, status: str, now_ms: int) -> None:
        op.finish(status, now_ms)
        self._retire(op)

    def _retire(self, op: Operator) -> None:
        if self._running.get(op.range_id) is op:
            del self._running[op.range_id]
            self._loads.subtract(op.stores_moved())
        self._undelivered.discard(op.id)
        self._history.append(op)
        self.outcomes[(op.kind, op.status)] += 1

    # ------------------------------------------------------------------------------- queries
    def get(self, range_id: int) -> Operator | None:
        return self._running.get(range_id)

    def running(self) -> list[Operator]:
        return list(self._running.values())

    def history(self) -> list[Operator]:
        """Finished operators, oldest first (the most recent ``history`` of them)."""
        return list(self._history)

    def store_load(self, store_id: int) -> int:
        """Running operators that add or remove a replica on the store."""
        return self._loads[store_id]

    def at_limit(self, store_id: int, now_ms: int, held: int = 0) -> bool:
        """Whether the store may not gain or lose another replica now (below ADMIN priority);
        ``held``: slots an operator about to be replaced frees."""
        if self.model.state(store_id, now_ms) in (pdpb_pb2.DOWN, pdpb_pb2.TOMBSTONE):
            return False
        return self._loads[store_id] - held >= self.model.config.store_limit

    def count(self, origin: str) -> int:
        """Running operators made by ``origin``."""
        return sum(op.origin == origin for op in self._running.values())

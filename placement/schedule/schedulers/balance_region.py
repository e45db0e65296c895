"""balance-region: even out the replicas per store, by count and then by size.

Source: the UP store with the most replicas (projected over the operators in flight), target:
the UP store with the fewest. It acts only while the two are beyond ``balance_tolerance_percent``
of the mean **and** at least 2 replicas apart: a move narrows the gap by 2, so it never undoes
itself (no ping-pong) and stops with every store within the tolerance or one replica of the rest.
A move never lowers the range's label isolation (so with zones it balances within a zone), and
only settled ranges move (not joint, no learner, no pending or down peer, no operator).
"""

from __future__ import annotations

from kvdb.pb import pdpb_pb2
from placement.schedule import filters
from placement.schedule.operator import Operator, move_replica
from placement.schedule.schedulers.base import OneAtATime, Plan, beyond_tolerance

SCAN_BUDGET = 2_000
"""Ranges one run looks at, at most: with zones most moves are ruled out (they would leave a
zone), and a run that finds nothing must not cost PD seconds on a cluster of many ranges."""


class BalanceRegionScheduler(OneAtATime):
    name = "balance-region"
    limit_setting = "region_schedule_limit"
    _budget = SCAN_BUDGET

    def plan(self, plan: Plan, now_ms: int, room: int) -> list[Operator]:
        self._budget = SCAN_BUDGET
        return super().plan(plan, now_ms, room)

    def _one(self, plan: Plan, now_ms: int) -> Operator | None:
        model = self.model
        stores = [s for s in model.stores if model.state(s, now_ms) == pdpb_pb2.UP]
        if len(stores) < 2:
            return None

        def load(sid: int) -> tuple[int, int]:
            return plan.range_count(sid), model.range_size(sid)

        mean = sum(plan.range_count(s) for s in stores) / len(stores)
        tolerance = model.config.balance_tolerance_percent
        targets = sorted(stores, key=lambda s: (load(s), s))
        for source in sorted(stores, key=lambda s: (load(s), -s), reverse=True):
            if not plan.has_room(source):
                continue
            for target in targets:
                high, low = plan.range_count(source), plan.range_count(target)
                if high - low < 2 or not beyond_tolerance(high, low, mean, tolerance):
                    break  # targets only get fuller from here
                if plan.has_room(target) and (op := self._move(plan, source, target, now_ms)) is not None:
                    return op
        return None

    def _move(self, plan: Plan, source: int, target: int, now_ms: int) -> Operator | None:
        """A range to move from ``source`` to ``target``: a follower's first (no leader transfer
        needed), then the lowest id."""
        model = self.model
        led = model.leaders_on(source)
        movable = model.ranges_on(source) - model.ranges_on(target)
        for range_id in sorted(movable, key=lambda r: (r in led, r)):
            self._budget -= 1
            if self._budget < 0:
                return None
            info = model.get_range(range_id)
            if (info is None or not plan.free(range_id) or not filters.range_settled(info)
                    or filters.is_hot(info, model.config.hot_bytes_per_sec)
                    or not filters.valid_target(model, info, target, now_ms)
                    or filters.isolation_gain(model, info, source, target, now_ms) < 0):
                continue
            leader_to = None
            if range_id in led:
                leader_to = filters.pick_leader_target(model, info, now_ms, exclude={source})
                if leader_to is None:
                    continue
            op = move_replica(info, source, target, self.new_id(), self.name, leader_to=leader_to)
            return plan.add(op, info)
        return None

"""balance-leader: even out the leaderships per store.

Leaders serve every read and write of their range, so a store leading far more ranges than the
others is the cluster's bottleneck. Source: the store leading the most ranges (projected over
the transfers in flight); target: the store that may lead (UP, not being emptied by
evict-leader) leading the fewest. As for balance-region it acts only beyond
``balance_tolerance_percent`` of the mean and at least 2 apart, so it converges without
ping-pong. Leadership goes only to a voter of the range on the target store.
"""

from __future__ import annotations

from kvdb.pb import pdpb_pb2
from placement.cluster import peer_on
from placement.schedule import filters
from placement.schedule.operator import Operator, transfer_leader
from placement.schedule.schedulers.base import OneAtATime, Plan, beyond_tolerance


class BalanceLeaderScheduler(OneAtATime):
    name = "balance-leader"
    limit_setting = "leader_schedule_limit"

    def _one(self, plan: Plan, now_ms: int) -> Operator | None:
        model = self.model
        sources = [s for s in model.stores if model.state(s, now_ms) == pdpb_pb2.UP]
        targets = sorted((s for s in sources if filters.may_lead(model, s, now_ms)),
                         key=lambda s: (plan.leader_count(s), s))
        if not targets:
            return None
        mean = sum(plan.leader_count(s) for s in sources) / len(targets)
        tolerance = model.config.balance_tolerance_percent
        for source in sorted(sources, key=lambda s: (plan.leader_count(s), -s), reverse=True):
            for target in targets:
                high, low = plan.leader_count(source), plan.leader_count(target)
                if high - low < 2 or not beyond_tolerance(high, low, mean, tolerance):
                    break
                if (op := self._transfer(plan, source, target)) is not None:
                    return op
        return None

    def _transfer(self, plan: Plan, source: int, target: int) -> Operator | None:
        model = self.model
        for range_id in sorted(model.leaders_on(source) & model.ranges_on(target)):
            info = model.get_range(range_id)
            if (info is None or not plan.free(range_id) or not filters.range_settled(info)
                    or filters.is_hot(info, model.config.hot_bytes_per_sec)):
                continue
            peer = peer_on(info, target)  # settled: every replica is a voter, none down
            return plan.add(transfer_leader(info, peer, self.name), info)
        return None

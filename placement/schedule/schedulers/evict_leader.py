"""evict-leader: move every leadership off the stores in ``config.evict_leader_stores``.

For maintenance of a store (a restart, a disk swap): once it leads nothing, stopping it costs
clients no more than a follower's restart. Each leadership goes to the voter on the store
leading fewest ranges among those that may lead (UP, not being evicted themselves); no other
scheduler hands leaderships to an evicted store (``filters.may_lead``). The scheduler runs
until the stores lead nothing, ``leader_schedule_limit`` transfers at a time; it does not wait
on balance: a store under maintenance is drained as fast as the limit allows.
"""

from __future__ import annotations

from placement.schedule import filters
from placement.schedule.operator import Operator, transfer_leader
from placement.schedule.schedulers.base import Plan, Scheduler


class EvictLeaderScheduler(Scheduler):
    name = "evict-leader"
    limit_setting = "leader_schedule_limit"

    def plan(self, plan: Plan, now_ms: int, room: int) -> list[Operator]:
        model = self.model
        ops: list[Operator] = []
        for store_id in model.config.evict_leader_stores:
            for range_id in sorted(model.leaders_on(store_id)):
                if len(ops) == room:
                    return ops
                info = model.get_range(range_id)
                if info is None or info.joint or not plan.free(range_id):
                    continue
                target = filters.pick_leader_target(model, info, now_ms, exclude={store_id})
                if target is not None:
                    ops.append(plan.add(transfer_leader(info, target, self.name), info))
        return ops

"""hot-region: spread the load of hot ranges over the stores.

A range is hot when its leader reports at least ``hot_bytes_per_sec`` written or read bytes per
second; its heat is written + read bytes per second. First the hot *leaders* (which serve all of
a hot range's requests) are spread by leader transfers; only when no transfer helps are hot
*replicas* moved (a range whose voters all sit on busy stores has no better leader to pick
until one of its replicas moves to a cooler store).

A store is a source while its heat is above the mean by more than ``balance_tolerance_percent``.
A range of heat ``h`` moves from a store of heat ``s`` to one of heat ``t`` only if
``t + h < s``: the hotter of the two stores gets cooler, so the sum of squared store heats falls
with every move and the scheduler cannot ping-pong a range between two stores.

That holds for heats that stand still; measured ones do not (a range's rate is its leader's count
over the last second, and a new leader reports nothing until its first full second). So a range
whose replica this scheduler moved rests for ``COOLDOWN_MS`` before it moves one of its replicas
again: on a real hotspot, noise alone moved the same few hot replicas over and over, a snapshot
each time (bench.hotspot: 22 replica moves of 6 hot ranges in 40 s). Leader transfers are cheap
and must follow the replicas (a replica moved to a cool store is where the leader should go
next), so they do not rest.
"""

from __future__ import annotations

from collections import Counter

from kvdb.pb import pdpb_pb2
from placement.cluster import peer_on
from placement.schedule import filters
from placement.schedule.operator import Operator, move_replica, transfer_leader
from placement.schedule.schedulers.base import Plan, Scheduler

COOLDOWN_MS = 30_000
"""How long a range rests after this scheduler moved one of its replicas before it moves one again."""


def heat(info: pdpb_pb2.RangeInfo) -> int:
    return info.stats.written_bytes_per_sec + info.stats.read_bytes_per_sec


class HotRegionScheduler(Scheduler):
    name = "hot-region"
    limit_setting = "hot_region_schedule_limit"

    def __init__(self, *args: object) -> None:
        super().__init__(*args)
        self._moved: dict[int, int] = {}
        """Range id -> when this scheduler last moved one of its replicas."""

    def plan(self, plan: Plan, now_ms: int, room: int) -> list[Operator]:
        self._moved = {key: at for key, at in self._moved.items() if now_ms - at < COOLDOWN_MS}
        threshold = self.model.config.hot_bytes_per_sec
        hot = [info for info in self.model.all_ranges() if filters.is_hot(info, threshold)]
        if not hot:
            return []
        ops = self._spread(plan, hot, now_ms, room, leaders=True)
        return ops or self._spread(plan, hot, now_ms, room, leaders=False)

    def _spread(self, plan: Plan, hot: list[pdpb_pb2.RangeInfo], now_ms: int, room: int,
                leaders: bool) -> list[Operator]:
        model = self.model
        if leaders:
            stores = [s for s in model.stores if filters.may_lead(model, s, now_ms)]
        else:
            stores = [s for s in model.stores if model.state(s, now_ms) == pdpb_pb2.UP]
        if len(stores) < 2:
            return []
        loads: Counter[int] = Counter()
        holders: dict[int, list[pdpb_pb2.RangeInfo]] = {}
        for info in hot:
            stores_after, leader_after = plan.after(info)  # counted where its operator in flight puts it
            held = [leader_after] if leaders else sorted(stores_after)
            for store_id in held:
                loads[store_id] += heat(info)
                holders.setdefault(store_id, []).append(info)
        mean = sum(loads[s] for s in stores) / len(stores)
        margin = mean * model.config.balance_tolerance_percent / 100
        ops: list[Operator] = []
        for source in sorted(loads, key=lambda s: (loads[s], -s), reverse=True):
            if loads[source] <= mean + margin:
                break
            for info in sorted(holders[source], key=lambda i: (-heat(i), i.descriptor.id)):
                if len(ops) == room or loads[source] <= mean + margin:
                    break
                range_id = info.descriptor.id
                if not plan.free(range_id) or not filters.range_settled(info):
                    continue
                if not leaders and now_ms - self._moved.get(range_id, -COOLDOWN_MS) < COOLDOWN_MS:
                    continue  # its last move is too recent to trust that the rates call for another
                move = self._leader_move if leaders else self._replica_move
                op, target = move(plan, info, source, stores, loads, now_ms)
                if op is not None:
                    if not leaders:
                        self._moved[range_id] = now_ms
                    ops.append(plan.add(op, info))
                    loads[source] -= heat(info)
                    loads[target] += heat(info)
        return ops

    def _cooler(self, stores: list[int], loads: Counter[int], source: int, h: int) -> list[int]:
        """Stores that would stay cooler than ``source`` with a range of heat ``h`` added, coolest first."""
        return sorted((s for s in stores if loads[s] + h < loads[source]), key=lambda s: (loads[s], s))

    def _leader_move(self, plan: Plan, info: pdpb_pb2.RangeInfo, source: int, stores: list[int],
                     loads: Counter[int], now_ms: int) -> tuple[Operator | None, int]:
        for target in self._cooler(stores, loads, source, heat(info)):
            peer = peer_on(info, target)
            if peer is not None:
                return transfer_leader(info, peer, self.name), target
        return None, 0

    def _replica_move(self, plan: Plan, info: pdpb_pb2.RangeInfo, source: int, stores: list[int],
                      loads: Counter[int], now_ms: int) -> tuple[Operator | None, int]:
        model = self.model
        if not plan.has_room(source):
            return None, 0
        for target in self._cooler(stores, loads, source, heat(info)):
            if (not plan.has_room(target) or not filters.valid_target(model, info, target, now_ms)
                    or filters.isolation_gain(model, info, source, target, now_ms) < 0):
                continue
            leader_to = None
            if info.leader.store_id == source:
                leader_to = filters.pick_leader_target(model, info, now_ms, exclude={source})
                if leader_to is None:
                    return None, 0
            return move_replica(info, source, target, self.new_id(), self.name, leader_to=leader_to), target
        return None, 0

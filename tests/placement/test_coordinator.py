"""The coordinator, table-driven: a cluster in, the operators a run makes out. Which ranges a run
looks at (dirty ones, store state changes, the patrol), how it stops when ids run out, and how it
runs schedulers (interval, pause)."""

from __future__ import annotations

import asyncio

import pytest

from kvdb.pb import pdpb_pb2
from placement.schedule import coordinator as coordinator_module
from placement.schedule import operator as ops
from placement.schedule.coordinator import Coordinator, default_coordinator
from placement.schedule.operator import Operator, Priority
from placement.windows import IdAllocator, IdsExhausted
from tests.placement.scheduling import DOWN, NOW, OFFLINE, VOTER, Cluster, S, range_info


def ranges_on_store_1(cluster: Cluster, count: int, replicas_on: tuple[int, ...] = (1,)) -> list[int]:
    """``count`` ranges in key order, each with voters on ``replicas_on`` (led by the first)."""
    for i in range(count):
        info = range_info([(1000 + 10 * i + j, store, VOTER) for j, store in enumerate(replicas_on)],
                          leader=1000 + 10 * i, range_id=i + 1)
        info.descriptor.start_key = b"" if i == 0 else b"k%03d" % i
        info.descriptor.end_key = b"" if i == count - 1 else b"k%03d" % (i + 1)
        cluster.report(info)
    return list(range(1, count + 1))


def coordinator(cluster: Cluster, schedulers: list | None = None) -> Coordinator:
    return Coordinator(cluster.model, cluster.controller, [cluster.checker], schedulers or [])


def ranges_of(made: list[Operator]) -> list[int]:
    return [op.range_id for op in made]


def test_the_patrol_goes_through_every_range_in_key_order_in_batches(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(coordinator_module, "PATROL_BATCH", 2)
    cluster = Cluster(S(1), S(2), S(3), S(4), S(5), store_limit=100)
    ranges_on_store_1(cluster, 5, replicas_on=(1, 2, 3))
    coord = coordinator(cluster)
    assert coord.run_once(NOW - 1) == []  # the first run looks at every range: all healthy
    cluster.model.config.replica_count = 5  # nothing marks them: only the patrol finds them
    # The patrol's cursor moved past 1 and 2 in the first run.
    assert ranges_of(coord.run_once(NOW)) == [3, 4]
    assert ranges_of(coord.run_once(NOW + 1)) == [5]
    assert ranges_of(coord.run_once(NOW + 2)) == [1, 2]  # wrapped around
    assert ranges_of(coord.run_once(NOW + 3)) == []  # 3 and 4 have operators


def test_dirty_ranges_and_ranges_on_a_store_whose_state_changed_come_first(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(coordinator_module, "PATROL_BATCH", 1)
    cluster = Cluster(S(1), S(2), S(3), S(4), S(5), store_limit=100)
    ranges_on_store_1(cluster, 6, replicas_on=(1, 2, 3))
    coord = coordinator(cluster)
    assert coord.run_once(NOW) == []  # every range healthy
    cluster.set_state(3, DOWN)
    made = coord.run_once(NOW + 1)  # every range has a replica on store 3
    assert ranges_of(made) == [1, 2, 3, 4, 5, 6]
    assert {op.kind for op in made} == {"replace-replica"}
    assert coord.run_once(NOW + 2) == []  # a state seen once no longer makes ranges dirty


def test_a_marked_range_is_checked_in_the_next_run_a_range_with_an_operator_is_skipped(monkeypatch):
    monkeypatch.setattr(coordinator_module, "PATROL_BATCH", 1)
    cluster = Cluster(S(1), S(2), S(3), S(4), store_limit=100)
    ranges_on_store_1(cluster, 4, replicas_on=(1, 2, 3))
    coord = coordinator(cluster)
    assert coord.run_once(NOW) == []
    info = cluster.model.get_range(3)
    transfer = ops.transfer_leader(info, info.descriptor.peers[1], "test", Priority.SCHEDULE)
    assert cluster.controller.add(transfer, NOW)
    cluster.model.config.replica_count = 5  # every range lacks two replicas now
    for range_id in (4, 3):
        coord.mark_dirty(range_id)
    # Range 4, then the patrol's one range (2, after 1 in the first run); range 3 runs an
    # operator: not looked at.
    assert ranges_of(coord.run_once(NOW + 1)) == [4, 2]
    assert cluster.controller.get(3) is transfer


def test_running_out_of_ids_stops_the_run_and_the_rest_waits_for_the_next(monkeypatch):
    monkeypatch.setattr(coordinator_module, "PATROL_BATCH", 1)
    cluster = Cluster(S(1), S(2), S(3), store_limit=100)
    ranges_on_store_1(cluster, 4)
    async def persist(upper: int) -> None:
        pass

    ids = IdAllocator(persist, step=2)
    ids.start(500)
    asyncio.run(ids.reserve(2))  # a window of two ids: 500 and 501
    cluster.ids = ids.take
    coord = coordinator(cluster)
    # The first run looks at every range (every store is new to it), the patrol's too.
    assert ranges_of(coord.run_once(NOW)) == [1, 2]
    with pytest.raises(IdsExhausted):
        ids.take()
    assert coord.run_once(NOW + 1) == []  # still dry: nothing, and nothing lost
    asyncio.run(ids.reserve(2))
    made = coord.run_once(NOW + 2)
    assert ranges_of(made) == [3, 4]
    assert [op.steps[0].peer.id for op in made] == [502, 503]


class FakeScheduler:
    def __init__(self, name: str, make: list[Operator], interval_ms: int = 100) -> None:
        self.name = name
        self.limit_setting = "region_schedule_limit"
        self.interval_ms = interval_ms
        self.make = make
        self.runs: list[int] = []

    def schedule(self, now_ms: int) -> list[Operator]:
        self.runs.append(now_ms)
        return [self.make.pop(0)] if self.make else []


def test_schedulers_run_on_their_interval_unless_paused_and_their_operators_go_through_the_controller():
    cluster = Cluster(S(1), S(2), S(3), store_limit=100)
    ranges_on_store_1(cluster, 2, replicas_on=(1, 2, 3))
    one, two = cluster.model.get_range(1), cluster.model.get_range(2)
    leader = ops.transfer_leader(one, one.descriptor.peers[1], "balance-leader")
    again = ops.transfer_leader(one, one.descriptor.peers[2], "balance-leader")  # range 1 is busy
    balance = FakeScheduler("balance-leader", [leader, again], interval_ms=100)
    hot = FakeScheduler("hot-region", [ops.transfer_leader(two, two.descriptor.peers[1], "hot-region")])
    coord = coordinator(cluster, [balance, hot])
    cluster.model.config.paused_schedulers.append("hot-region")
    assert coord.run_once(NOW) == [leader]
    assert coord.run_once(NOW + 99) == []
    assert coord.run_once(NOW + 100) == []  # its operator was refused: range 1 has one
    assert (balance.runs, hot.runs) == ([NOW, NOW + 100], [])
    assert coord.scheduler_names() == ["balance-leader", "hot-region"]
    assert coord.scheduler_infos() == [
        pdpb_pb2.SchedulerInfo(name="balance-leader", paused=False, created=1, running=1),
        pdpb_pb2.SchedulerInfo(name="hot-region", paused=True, created=0, running=0),
    ]
    cluster.model.config.ClearField("paused_schedulers")
    assert ranges_of(coord.run_once(NOW + 101)) == [2]


def test_tombstones_are_offline_stores_without_replicas():
    cluster = Cluster(S(1), S(2, OFFLINE), S(3, OFFLINE), S(4, DOWN))
    ranges_on_store_1(cluster, 1, replicas_on=(1, 3))
    coord = coordinator(cluster)
    assert coord.tombstones(NOW) == [2]


def test_default_coordinator_has_every_checker_and_scheduler():
    cluster = Cluster(S(1))
    coord = default_coordinator(cluster.model, cluster.controller, cluster.ids)
    assert [c.name for c in coord.checkers] == ["replica-checker"] + [
        c.name for c in coord.checkers[1:]]
    assert len(coord.schedulers) == len(coordinator_module.SCHEDULERS)

"""The placement checker: no two replicas of a range in one zone while there are enough zones."""

from __future__ import annotations

import itertools
import random

import pytest

from placement.schedule import filters
from placement.schedule.checkers.placement import PlacementChecker
from placement.schedule.operator import Kind, Priority
from tests.placement.schedsim import Sim, zones


@pytest.mark.parametrize("stores, replicas, leader, moved_from, moved_to", [
    # Two in zone a, zone c unused: the follower in a moves to c's emptier store.
    (zones(2), [1, 2, 3], 1, 2, 5),
    # The leader is one of the two in zone a: the follower goes, no transfer needed.
    (zones(2), [2, 1, 4], 2, 1, 5),
    # All three in zone b: one to a, then (next check) one to c.
    (zones(2), [3, 4, 99], 3, 4, 1),
])
def test_moves_a_doubled_replica_to_an_unused_zone(stores: dict, replicas: list[int], leader: int,
                                                    moved_from: int, moved_to: int) -> None:
    stores = dict(stores)
    if 99 in replicas:
        stores[99] = {"zone": "b", "host": "h99"}
    sim = Sim(stores, location_labels=["zone"])
    info = sim.add_range(replicas, leader=leader)
    op = PlacementChecker(sim.model, sim.new_id).check(info, sim.now)
    assert op is not None and op.priority == Priority.REPAIR and op.origin == "placement-checker"
    assert [s.kind for s in op.steps] == [Kind.ADD_LEARNER, Kind.REPLACE_VOTER, Kind.REMOVE_PEER]
    assert (op.steps[-1].peer.store_id, op.steps[0].peer.store_id) == (moved_from, moved_to)


def test_fixes_every_range_and_never_moves_a_well_placed_one() -> None:
    sim = Sim(zones(2), location_labels=["zone"])
    bad = [sim.add_range(s) for s in ([1, 2, 3], [3, 4, 5], [5, 6, 1], [1, 2, 4])]
    good = sim.add_range([2, 4, 6])
    made = sim.run(PlacementChecker(sim.model, sim.new_id))
    assert good.descriptor.id not in {op.range_id for op in made}
    for info in bad:
        placed = sim.stores_of(info.descriptor.id)
        assert sorted(sim.model.labels(s)["zone"] for s in placed) == ["a", "b", "c"]


@pytest.mark.parametrize("case", ["two zones", "third zone down", "no labels configured", "joint"])
def test_leaves_the_range_alone_when_nothing_better_exists(case: str) -> None:
    stores = zones(2, names="ab") if case == "two zones" else zones(2)
    sim = Sim(stores, location_labels=[] if case == "no labels configured" else ["zone"])
    info = sim.add_range([1, 2, 3])
    if case == "third zone down":
        sim.now += 120_000
        sim.heartbeat(1, 2, 3, 4)
    if case == "joint":
        info.joint = True
    assert PlacementChecker(sim.model, sim.new_id).check(info, sim.now) is None


def test_random_clusters_never_worsen_isolation_and_stop_only_when_nothing_improves() -> None:
    rnd = random.Random(12)
    for trial in range(60):
        nzones = rnd.randint(1, 4)
        stores = {sid: {"zone": "abcd"[rnd.randrange(nzones)], "host": f"h{sid}"} for sid in range(1, 8)}
        sim = Sim(stores, location_labels=rnd.choice([["zone"], ["zone", "host"]]))
        down = rnd.sample(range(1, 8), rnd.randint(0, 2))
        sim.now += 120_000
        sim.heartbeat(*[s for s in stores if s not in down])
        checker = PlacementChecker(sim.model, sim.new_id)
        for _ in range(10):
            info = sim.add_range(rnd.sample(range(1, 8), 3))
            op = checker.check(info, sim.now)
            m = sim.model
            if op is not None:
                kinds = [step.kind for step in op.steps]
                src = op.steps[-1].peer.store_id
                dst = op.steps[kinds.index(Kind.ADD_LEARNER)].peer.store_id
                assert filters.isolation_gain(m, info, src, dst, sim.now) > 0, (trial, stores, info)
                # A leader is handed over before its replica goes; a follower's move needs no transfer.
                assert (kinds[0] == Kind.TRANSFER_LEADER) == (src == info.leader.store_id)
                continue
            for peer, target in itertools.product(info.descriptor.peers, m.stores):
                if filters.valid_target(m, info, target, sim.now):
                    assert filters.isolation_gain(m, info, peer.store_id, target, sim.now) <= 0, (trial, info)

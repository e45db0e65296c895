"""Where a replica or a leader may go: the label-aware isolation score and the target rules."""

from __future__ import annotations

import pytest

from placement.schedule import filters
from tests.placement.schedsim import Sim, zones


@pytest.mark.parametrize("replicas, want", [
    # Zones a and b used: the third replica goes to zone c, though store 2 (zone a) is empty.
    ([1, 3], 5),
    # Both in zone a: any store of b or c isolates; of those, the fewest ranges (4 holds none).
    ([1, 2], 4),
])
def test_pick_target_prefers_an_unused_zone_over_load(replicas: list[int], want: int) -> None:
    sim = Sim(zones(2), location_labels=["zone"])
    for _ in range(3):
        sim.add_range([5, 6, 3])  # zone c is the busiest
    info = sim.add_range(replicas)
    assert filters.pick_target(sim.model, info, sim.now) == want


def test_pick_target_without_labels_takes_the_emptiest_store() -> None:
    sim = Sim(zones(2))
    sim.add_range([1, 2, 3])
    sim.add_range([4, 5, 1])
    info = sim.add_range([1, 2])
    assert filters.pick_target(sim.model, info, sim.now) == 6
    assert filters.pick_target(sim.model, info, sim.now, exclude={6}) == 3


def test_a_replica_on_a_down_store_does_not_steer_its_replacement_away() -> None:
    sim = Sim(zones(2), location_labels=["zone"])
    info = sim.add_range([1, 3, 5])
    sim.now += 120_000
    sim.heartbeat(1, 2, 3, 4, 6)  # store 5 (zone c) went silent for good
    # Store 6 is in zone c with the dead replica: still the only place isolated from a and b.
    assert filters.pick_target(sim.model, info, sim.now) == 6


def test_outer_label_outweighs_any_number_of_inner_differences() -> None:
    sim = Sim({1: {"zone": "a", "host": "x"}, 2: {"zone": "a", "host": "y"},
               3: {"zone": "b", "host": "x"}, 4: {"zone": "a", "host": "z"}},
              location_labels=["zone", "host"])
    m = sim.model
    assert filters.distinct_score(m, 3, [1]) > filters.distinct_score(m, 2, [1, 4])
    assert filters.distinct_score(m, 2, [1, 4]) == 2 and filters.distinct_score(m, 1, [1]) == 0
    info = sim.add_range([1, 2])
    assert filters.isolation_gain(m, info, 2, 3, sim.now) > 0   # host-apart -> zone-apart
    assert filters.isolation_gain(m, info, 2, 4, sim.now) == 0  # another host of zone a: same
    info = sim.add_range([1, 3])
    assert filters.isolation_gain(m, info, 3, 4, sim.now) < 0   # would leave zone b


def test_leader_targets_skip_evicted_and_non_voting_stores() -> None:
    sim = Sim(zones(1), evict_leader_stores=[2])
    info = sim.add_range([1, 2, 3], leader=1)
    assert [p.store_id for p in filters.leader_candidates(sim.model, info, sim.now)] == [3]
    info.down_peer_ids.append(info.descriptor.peers[2].id)
    assert filters.pick_leader_target(sim.model, info, sim.now) is None

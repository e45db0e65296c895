"""PD's checkers and schedulers on real processes: placement by zone, and balance after stores join.

Both tests watch PD's own records (ScanRanges) and wait on conditions with deadlines. Times to
converge are printed (run with ``-s`` to see them).
"""

from __future__ import annotations

import time
from collections import Counter

from kvdb.pb import metapb_pb2, pdpb_pb2
from tests.integration.client import PdHandle
from tests.integration.cluster import free_ports, wait_for
from tests.integration.conftest import MakePdCluster

ZONES = {1: "a", 2: "a", 3: "b", 4: "b", 5: "c", 6: "c"}


def ranges(pd: PdHandle) -> list[pdpb_pb2.RangeInfo]:
    return pd.run(pd.client.scan_ranges(b""))


def split_into(pd: PdHandle, n: int) -> None:
    keys = [b"key-%04d" % (i * 10_000 // n) for i in range(1, n)]
    pd.run(pd.client.split_ranges(keys, 60.0))
    wait_for(lambda: len(ranges(pd)) == n, 30.0, f"PD to record {n} ranges")


def zone_clashes(infos: list[pdpb_pb2.RangeInfo]) -> list[str]:
    """Ranges with two voters in one zone. A range mid-way through a joint change lists its
    outgoing voter too, and a learner is a replica on its way in: neither counts."""
    clashes = []
    for info in infos:
        if info.joint:
            continue
        zones = Counter(ZONES[p.store_id] for p in info.descriptor.peers if p.role == metapb_pb2.VOTER)
        if zones and max(zones.values()) > 1:
            clashes.append(f"range {info.descriptor.id}: {sorted(p.store_id for p in info.descriptor.peers)}")
    return clashes


def three_voters_each(infos: list[pdpb_pb2.RangeInfo]) -> bool:
    return all(len(i.descriptor.peers) == 3 and not i.joint
               and all(p.role == metapb_pb2.VOTER for p in i.descriptor.peers) for i in infos)


def test_no_range_ever_has_two_replicas_in_one_zone(make_pd_cluster: MakePdCluster) -> None:
    cluster, pd = make_pd_cluster(n_stores=6, start_stores=False)
    for store_id, zone in ZONES.items():
        cluster.stores[store_id].args += ["--labels", f"zone={zone},host=h{store_id}"]
    seen: list[str] = []

    def watch() -> list[pdpb_pb2.RangeInfo]:
        infos = ranges(pd)
        seen.extend(zone_clashes(infos))
        return infos

    cluster.start(1)  # founds the cluster: PD's config exists from here on
    pd.run(pd.client.set_config("location_labels", "zone"))
    # One store of each zone first: while only zones a and b have stores, a range may not yet
    # have its third replica, but it never gets a second one in a zone.
    cluster.start(3, 5)
    wait_for(lambda: three_voters_each(watch()), 30.0, "the first range on one store per zone", interval=0.1)
    cluster.start(2, 4, 6)
    split_into(pd, 20)
    t0 = time.monotonic()
    deadline = t0 + 5.0  # balancing moves replicas within each zone meanwhile
    while time.monotonic() < deadline:
        watch()
    infos = wait_for(lambda: (i := watch()) and three_voters_each(i) and i, 30.0, "every range settled")
    assert not seen, f"two voters in one zone: {seen[:5]}"
    for info in infos:
        assert sorted(ZONES[p.store_id] for p in info.descriptor.peers) == ["a", "b", "c"]
    replicas = Counter(p.store_id for info in infos for p in info.descriptor.peers)
    print(f"\n20 ranges over 3 zones x 2 stores: replicas per store {dict(sorted(replicas.items()))}")
    assert set(replicas) == set(ZONES), "balance-region moved nothing into a zone's second store"
    cluster.assert_all_running()


def spread(infos: list[pdpb_pb2.RangeInfo], store_ids: list[int]) -> tuple[Counter[int], Counter[int]]:
    replicas = Counter({sid: 0 for sid in store_ids})
    leaders = Counter({sid: 0 for sid in store_ids})
    for info in infos:
        replicas.update(p.store_id for p in info.descriptor.peers)
        leaders[info.leader.store_id] += 1
    return replicas, leaders


def within(counts: Counter[int], fraction: float) -> bool:
    mean = sum(counts.values()) / len(counts)
    return all(abs(c - mean) <= fraction * mean for c in counts.values())


def test_ranges_and_leaders_converge_after_two_stores_join(make_pd_cluster: MakePdCluster) -> None:
    cluster, pd = make_pd_cluster(n_stores=3)
    pd.wait_voters(3)
    split_into(pd, 60)
    new_ids = [4, 5]
    for sid, port in zip(new_ids, free_ports(2), strict=True):
        cluster.add_store(sid, port, cluster.pd_store_args())
    t0 = time.monotonic()
    cluster.start(*new_ids)
    stores = [1, 2, 3, *new_ids]
    times: dict[str, float] = {}

    def balanced() -> tuple[Counter[int], Counter[int]] | None:
        infos = ranges(pd)
        replicas, leaders = spread(infos, stores)
        if "replicas" not in times and within(replicas, 0.10) and three_voters_each(infos):
            times["replicas"] = time.monotonic() - t0
        if within(replicas, 0.10) and within(leaders, 0.10) and three_voters_each(infos):
            times.setdefault("leaders", time.monotonic() - t0)
            return replicas, leaders
        return None

    replicas, leaders = wait_for(balanced, 60.0, "replicas and leaders within 10 % of the mean", interval=0.2)
    print(f"\n60 ranges, 3 + 2 stores: replicas within 10 % after {times['replicas']:.1f} s, leaders "
          f"after {times['leaders']:.1f} s: replicas {dict(replicas)}, leaders {dict(leaders)}")
    assert sum(replicas.values()) == 180 and sum(leaders.values()) == 60
    cluster.assert_all_running()

"""CPU of idle ranges: many bootstrapped ranges on three in-process stores, with and without
hibernation (``kvdb.store.hibernate``).

Usage: python -m bench.idle_ranges [--ranges 10000] [--ticks 40] [--no-hibernate]

Three ``Store`` objects over ``MemEngine``s share one process and a queue for a network (the
unit tests' ``LocalCluster``); ``--ranges`` ranges with disjoint key bounds get a voter on each.
The script elects a leader for every range (store 1 campaigns them all), writes one key to each
so every range has applied an entry of its leader's term, waits until the cluster is idle
(hibernated, with hibernation on), then measures the process CPU time of ``--ticks`` ticks of
all three stores, including delivering and handling every message those ticks cause. It prints
the CPU per tick and the share of a core per store at the default 50 ms tick interval: the real
tick loop runs one tick per interval, so that is what an idle store costs.
"""

from __future__ import annotations

import argparse
import time

from kvdb.pb import kvrpc_pb2, metapb_pb2
from kvdb.server.kv_handler import KvHandler
from kvdb.store.config import StoreConfig
from tests.store.local_cluster import LocalCluster, context, put


def range_desc(range_id: int, ranges: int, stores: list[int]) -> metapb_pb2.RangeDescriptor:
    """Range ``range_id`` of ``ranges`` (ids from 1) splitting the key space by a 4-byte prefix."""
    desc = metapb_pb2.RangeDescriptor(id=range_id, epoch=metapb_pb2.RangeEpoch(conf_ver=1, version=1))
    if range_id > 1:
        desc.start_key = b"r%08d" % range_id
    if range_id < ranges:
        desc.end_key = b"r%08d" % (range_id + 1)
    for sid in stores:
        desc.peers.add(id=range_id * 10 + sid, store_id=sid, role=metapb_pb2.VOTER)
    return desc


def build(ranges: int, hibernate: bool) -> LocalCluster:
    config = StoreConfig(hibernate=hibernate)
    cluster = LocalCluster([1, 2, 3], config)  # it bootstraps range 1 (all keys); replaced below
    for store in cluster.stores.values():
        store.discard_range(1)
    for range_id in range(1, ranges + 1):
        desc = range_desc(range_id, ranges, [1, 2, 3])
        for store in cluster.stores.values():
            store.bootstrap_range(desc)
    lead = cluster.stores[1]
    for peer in lead.peers.values():
        peer.raw.campaign()
        lead._mark(peer)
    cluster.pump(max_rounds=100)
    for range_id, peer in lead.peers.items():
        if not peer.is_leader:
            raise SystemExit(f"range {range_id} elected no leader on store 1")
    answers: list[kvrpc_pb2.Response] = []
    handler = KvHandler(lead)
    for range_id in lead.peers:
        key = b"r%08d-k" % range_id if range_id > 1 else b"a"
        handler.handle(put(key, b"v", context(lead, range_id)), answers.append)
    cluster.pump(max_rounds=100)
    failed = [a for a in answers if a.put.HasField("error")]
    if len(answers) != ranges or failed:
        raise SystemExit(f"{len(answers)} of {ranges} writes answered, {len(failed)} failed")
    return cluster


def measure(ranges: int, ticks: int, hibernate: bool) -> dict[str, float]:
    started = time.monotonic()
    cluster = build(ranges, hibernate)
    setup = time.monotonic() - started
    # Settle: long enough for every leader to be idle for hibernate_idle_ticks and hibernate.
    settle = cluster.config.hibernate_idle_ticks + 2 * cluster.config.election_tick
    for _ in range(settle):
        tick_all(cluster)
    asleep = sum(len(s.hibernation.asleep) for s in cluster.stores.values())
    cpu0 = time.process_time()
    for _ in range(ticks):
        tick_all(cluster)
    cpu = (time.process_time() - cpu0) / ticks
    interval = cluster.config.tick_interval
    return {"ranges": ranges, "setup_s": setup, "replicas_asleep": asleep,
            "cpu_ms_per_tick_3_stores": cpu * 1e3,
            "core_share_per_store_pct": 100 * cpu / 3 / interval}


def tick_all(cluster: LocalCluster) -> None:
    cluster.clock.t += cluster.config.tick_interval
    for store in cluster.stores.values():
        store.tick()
    cluster.pump()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ranges", type=int, default=10_000)
    parser.add_argument("--ticks", type=int, default=40)
    parser.add_argument("--no-hibernate", action="store_true")
    args = parser.parse_args()
    result = measure(args.ranges, args.ticks, not args.no_hibernate)
    print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in result.items()))


if __name__ == "__main__":
    main()

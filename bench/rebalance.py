"""How fast PD's balance schedulers even out a cluster that grows: 5 stores, then 2 more.

    .venv/bin/python -m bench.rebalance [--stores 5] [--add 2] [--ranges 200] [--dir /tmp/rebal]

Three PD members and ``--stores`` stores on loopback (the integration tests' harness), range 1
split into ``--ranges`` ranges through PD's SplitRanges, left until PD's view is balanced, then
``--add`` empty stores join. Reports the time until every store's replica count and leader
count is within ``--tolerance`` (default ±10 %) of the mean, as PD's records show them, and the
operators PD ran meanwhile (by kind and outcome).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench.splits import split_at, split_keys
from kvdb.pb import pdpb_pb2
from kvdb.pdclient.client import PdClient
from tests.integration.cluster import Cluster, free_ports, wait_for


async def status(pd: str) -> pdpb_pb2.GetClusterStatusResponse:
    async with PdClient(pd, timeout=30) as client:
        return await client.cluster_status()


def spread(resp: pdpb_pb2.GetClusterStatusResponse, tolerance: float) -> tuple[bool, str]:
    """Whether replica and leader counts of the UP stores are within ``tolerance`` of their means."""
    up = [s for s in resp.stores if s.state == pdpb_pb2.UP]
    replicas = [s.stats.range_count for s in up]
    leaders = [s.stats.leader_count for s in up]

    def within(counts: list[int]) -> bool:
        mean = sum(counts) / len(counts)
        return all(abs(c - mean) <= tolerance * mean for c in counts)

    text = f"replicas {replicas}, leaders {leaders}"
    return within(replicas) and within(leaders), text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stores", type=int, default=5)
    parser.add_argument("--add", type=int, default=2)
    parser.add_argument("--ranges", type=int, default=200)
    parser.add_argument("--tolerance", type=float, default=0.10)
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for balance")
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    root = args.dir or Path(tempfile.mkdtemp(prefix="kvdb-rebalance-"))
    cluster = Cluster.create_with_pd(root, args.stores, 3, heartbeat_interval=1.0, tick_interval=0.05,
                                     max_clock_drift=0.1)
    cluster.start_pd()
    try:
        cluster.start()
        pd = cluster.pd_endpoints
        t0 = time.monotonic()
        asyncio.run(split_at(pd, split_keys(args.ranges, args.ranges), 600))
        print(f"split into {args.ranges} ranges in {time.monotonic() - t0:.1f} s")

        def balanced() -> str | None:
            ok, text = spread(asyncio.run(status(pd)), args.tolerance)
            return text if ok else None

        t0 = time.monotonic()
        text = wait_for(balanced, args.timeout, "the first stores to balance", interval=1.0)
        print(f"{args.stores} stores balanced after {time.monotonic() - t0:.1f} s: {text}")
        first_new = max(cluster.stores) + 1
        new_ids = range(first_new, first_new + args.add)
        for sid, port in zip(new_ids, free_ports(args.add), strict=True):
            cluster.add_store(sid, port, cluster.pd_store_args(1.0))
        t0 = time.monotonic()
        cluster.start(*new_ids)
        text = wait_for(balanced, args.timeout, "the grown cluster to balance", interval=1.0)
        took = time.monotonic() - t0
        finished = asyncio.run(_history(pd))
        print(f"{args.add} stores added; within ±{args.tolerance:.0%} of the mean after {took:.1f} s: {text}")
        shown = (f"{kind} {state}: {n}" for (kind, state), n in sorted(finished.items()))
        print("operators: " + ", ".join(shown))
    finally:
        cluster.shutdown()
        if args.dir is None:
            shutil.rmtree(root, ignore_errors=True)


async def _history(pd: str) -> Counter[tuple[str, str]]:
    async with PdClient(pd, timeout=30) as client:
        ops = await client.list_operators(include_finished=True)
    return Counter((op.kind, op.status) for op in ops)


if __name__ == "__main__":
    main()

"""A write hotspot on one range: PD's load split cuts it and the hot scheduler spreads its leaders.

    .venv/bin/python -m bench.hotspot [--stores 5] [--duration 60] [--concurrency 32] [--dir D]

Three PD members and ``--stores`` stores on loopback (the integration tests' harness) whose load
split threshold is low (``--load-split-qps``), PD's hot threshold low too; writers hammer
``--keys`` keys that all start in one range. Prints, per ``--window`` seconds, the throughput,
how many ranges hold the hot keys and which stores lead them, then throughput of the first and
last windows. On a 2-core machine several store processes compete for the same cores, so
spreading leaders buys less than on real hosts: read the numbers as "it spreads, and throughput
does not drop", not as a scaling result.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench.workloads import key_of
from kvdb.net.tls_options import forget_tls_env
from kvdb.pdclient.client import PdClient
from tests.integration.cluster import Cluster


async def run(pd: str, duration: float, concurrency: int, keys: int, window: float) -> list[float]:
    import kvdb.aio

    done = errors = 0
    stop = asyncio.Event()
    rates = []
    async with await kvdb.aio.connect(pd, timeout=10.0) as client, PdClient(pd, timeout=30) as pdc:
        async def writer(w: int) -> None:
            nonlocal done, errors
            i = w
            while not stop.is_set():
                try:
                    await client.put(key_of(i % keys), b"v" * 100)
                    done += 1
                except Exception:  # counted, not fatal: the run measures what clients saw
                    errors += 1
                i += concurrency

        tasks = [asyncio.create_task(writer(w)) for w in range(concurrency)]
        t0 = time.monotonic()
        try:
            while (elapsed := time.monotonic() - t0) < duration:
                before = done
                await asyncio.sleep(window)  # the sampling period itself, not a synchronisation
                ranges = await pdc.scan_ranges(key_of(0), key_of(keys), 0)
                leaders = Counter(r.leader.store_id for r in ranges)
                rates.append((done - before) / window)
                print(f"{elapsed + window:6.1f} s  {rates[-1]:8.0f} ops/s  {len(ranges):3d} ranges  "
                      f"{errors} errors  leaders by store {dict(sorted(leaders.items()))}", flush=True)
        finally:
            stop.set()
            await asyncio.gather(*tasks)
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stores", type=int, default=5)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--window", type=float, default=2.0)
    parser.add_argument("--load-split-qps", type=float, default=300.0)
    parser.add_argument("--hot-bytes", type=int, default=16 << 10, help="PD's hot_bytes_per_sec")
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    forget_tls_env()  # the cluster started here runs plaintext
    root = args.dir or Path(tempfile.mkdtemp(prefix="kvdb-hotspot-"))
    cluster = Cluster.create_with_pd(root, args.stores, 3, heartbeat_interval=1.0, tick_interval=0.05,
                                     max_clock_drift=0.1,
                                     extra_args=["--load-split-qps", str(args.load_split_qps),
                                                 "--load-split-seconds", "3", "--load-split-cpu", "0"])
    cluster.start_pd()
    try:
        cluster.start()
        pd = cluster.pd_endpoints
        asyncio.run(_set_hot_threshold(pd, args.hot_bytes))
        rates = asyncio.run(run(pd, args.duration, args.concurrency, args.keys, args.window))
        quarter = max(1, len(rates) // 4)
        print(f"throughput: first {quarter} windows {sum(rates[:quarter]) / quarter:.0f} ops/s, "
              f"last {quarter} windows {sum(rates[-quarter:]) / quarter:.0f} ops/s")
        print("operators: " + asyncio.run(_operators(pd)))
    finally:
        cluster.shutdown()
        if args.dir is None:
            shutil.rmtree(root, ignore_errors=True)


async def _operators(pd: str) -> str:
    async with PdClient(pd, timeout=30) as client:
        ops = await client.list_operators(include_finished=True)
    counts = Counter((op.origin, op.kind, op.status) for op in ops)
    return ", ".join(f"{origin} {kind} {status}: {n}" for (origin, kind, status), n in sorted(counts.items()))


async def _set_hot_threshold(pd: str, hot_bytes: int) -> None:
    async with PdClient(pd, timeout=30) as client:
        await client.set_config("hot_bytes_per_sec", str(hot_bytes))


if __name__ == "__main__":
    main()

"""CPU and memory of idle ranges on real processes: a 3-store cluster split into many ranges.

    .venv/bin/python -m bench.idle_cluster --ranges 10000 [--measure 20] [--dir /tmp/idle]

Three PD members and three stores on loopback (the integration tests' harness, production
defaults: 50 ms ticks, 1 s PD heartbeats), range 1 split into ``--ranges`` ranges through PD's
SplitRanges in rounds of ``--batch`` keys, each round left to settle (its new ranges elected and
hibernated) before the next, then left alone.
Reports, per store process, the share of a core it used over ``--measure`` seconds of idleness
(from /proc utime+stime), its RSS and the RSS per hosted range; and the PD members' CPU.
(``bench.idle_ranges`` measures the same in one process without gRPC, PD or real ticks.)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import tempfile
import time
from pathlib import Path

from bench.snapshot_rss import rss_mb
from bench.splits import split_at, split_keys
from kvdb.pb import adminpb_pb2
from tests.integration.client import Client, PdHandle
from tests.integration.cluster import Cluster, wait_for

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ranges", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=500, help="split keys per round")
    parser.add_argument("--measure", type=float, default=20.0, help="seconds of idleness measured")
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    root = args.dir or Path(tempfile.mkdtemp(prefix="kvdb-idle-"))
    cluster = Cluster.create_with_pd(root, 3, 3, heartbeat_interval=1.0, tick_interval=0.05,
                                     max_clock_drift=0.1)
    cluster.start_pd()
    pd = PdHandle(cluster, timeout=120)
    try:
        cluster.start()
        pd.wait_voters(3, timeout=60)
        admin = Client(cluster)

        def settled(want: int) -> dict[int, int] | None:
            """Each store's replica count, once every store holds ``want`` replicas, nearly all asleep."""
            counts = {}
            for sid in cluster.stores:
                resp = admin.admin(sid).RangeStatus(adminpb_pb2.RangeStatusRequest(), timeout=30)
                if len(resp.ranges) < want or sum(r.hibernated for r in resp.ranges) < want * 0.99:
                    return None
                counts[sid] = len(resp.ranges)
            return counts

        keys = split_keys(args.ranges, args.ranges)
        t0 = time.monotonic()
        for i in range(0, len(keys), args.batch):
            # One round at a time, each left to settle: a split wakes its new ranges, which elect
            # leaders and then hibernate; piling up thousands of awake ranges overloads a store.
            batch = keys[i:i + args.batch]
            asyncio.run(split_at(cluster.pd_endpoints, batch, 600))
            want = i + len(batch) + 1
            wait_for(lambda: settled(want), 600, "the new ranges to settle", interval=2.0)  # noqa: B023
        print(f"split into {args.ranges} ranges in rounds of {args.batch} in {time.monotonic() - t0:.0f} s")
        counts = settled(args.ranges)
        assert counts is not None, "the ranges woke up again"
        pids = {f"store {sid}": sp.proc.pid for sid, sp in cluster.stores.items()}
        pids.update({f"pd {mid}": p.proc.pid for mid, p in cluster.pd.items()})
        before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        start = time.monotonic()
        time.sleep(args.measure)  # the measurement itself: idle time, nothing to wait for
        elapsed = time.monotonic() - start
        print(f"{args.ranges} ranges, idle for {elapsed:.0f} s:")
        for name, pid in pids.items():
            share = (cpu_seconds(pid) - before[name]) / elapsed * 100
            rss = rss_mb(pid)
            hosted = counts.get(int(name.split()[1])) if name.startswith("store") else None
            per_range = f", {rss * 1024 / hosted:.1f} KiB per range ({hosted} ranges)" if hosted else ""
            print(f"  {name}: {share:.1f} % of a core, RSS {rss:.0f} MB{per_range}")
    finally:
        pd.close()
        cluster.shutdown()
        if args.dir is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

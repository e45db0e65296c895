"""Peak memory of sending and receiving one big range snapshot, and writes while it moves.

    .venv/bin/python -m bench.snapshot_rss --keys 200000 --value-size 1024 [--dir /tmp/snaprss]

Three real store processes on loopback (the integration tests' harness). Loads ``--keys`` keys
of ``--value-size`` bytes into range 1, kills a follower, compacts the leader's log past it and
restarts it: it can only catch up by snapshot. Meanwhile one client writes 1 KB values in
pipelined batches. Reports each process's RSS before the transfer and its peak until the follower caught up
(sampled from /proc every 20 ms; the restarted follower's VmHWM too), the transfer time, and the
write throughput and latency before and during the transfer.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

from kvdb.pb import adminpb_pb2, kvrpc_pb2
from tests.integration.client import Client, error_kind
from tests.integration.cluster import Cluster, wait_for

GC_ARGS = ["--raft-log-gc-count-limit", "1000", "--raft-log-gc-keep", "100"]
LOAD_BATCH = 2000
LOAD_RETRIES = 20
WRITE_BATCH = 50
SAMPLE_INTERVAL = 0.02


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


class Sampler(threading.Thread):
    """Peak VmRSS of some processes until stopped."""

    def __init__(self, pids: dict[str, int]) -> None:
        super().__init__(daemon=True)
        self.pids = pids
        self.peak = {name: 0.0 for name in pids}
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.is_set():
            for name, pid in self.pids.items():
                try:
                    self.peak[name] = max(self.peak[name], rss_mb(pid))
                except FileNotFoundError:
                    pass
            self.stop_event.wait(SAMPLE_INTERVAL)


class Writer(threading.Thread):
    """Pipelined batches of puts to the leader until stopped; latency per batch."""

    def __init__(self, client: Client, leader: int) -> None:
        super().__init__(daemon=True)
        self.client = client
        self.leader = leader
        self.samples: list[tuple[float, float, int]] = []  # (end time, batch latency, ops)
        self.stop_event = threading.Event()

    def run(self) -> None:
        value = os.urandom(1024)
        n = 0
        while not self.stop_event.is_set():
            request = self.client.request
            reqs = [kvrpc_pb2.Request(id=i, put=request("put", key=b"w%09d" % (n + i), value=value))
                    for i in range(WRITE_BATCH)]
            n += WRITE_BATCH
            t0 = time.monotonic()
            try:
                responses = self.client.batch(self.leader, reqs, timeout=30)
            except Exception:  # noqa: BLE001 (a bench: count it as nothing done)
                continue
            ok = sum(1 for r in responses if error_kind(r.put) is None)
            t1 = time.monotonic()
            self.samples.append((t1, t1 - t0, ok))

    def window(self, start: float, end: float) -> tuple[float, float, float]:
        """ops/s, p99 and max batch latency (s) of the batches that ended in [start, end)."""
        inside = [(lat, ops) for t, lat, ops in self.samples if start <= t < end]
        if not inside or end <= start:
            return 0.0, 0.0, 0.0
        lats = sorted(lat for lat, _ in inside)
        return sum(ops for _, ops in inside) / (end - start), lats[int(0.99 * (len(lats) - 1))], lats[-1]


def load(client: Client, keys: int, value_size: int) -> None:
    """Incompressible values, each its own, so the range's size on disk is its logical size.
    Puts refused (busy, leader moved) are sent again, a bounded number of times."""
    for start in range(0, keys, LOAD_BATCH):
        todo = list(range(start, min(start + LOAD_BATCH, keys)))
        for _ in range(LOAD_RETRIES):
            reqs = [kvrpc_pb2.Request(id=i, put=client.request("put", key=b"k%09d" % n,
                                                               value=os.urandom(value_size)))
                    for i, n in enumerate(todo)]
            responses = client.batch(client.wait_leader(), reqs, timeout=120)
            done = {r.id for r in responses if error_kind(r.put) is None}
            todo = [n for i, n in enumerate(todo) if i not in done]
            if not todo:
                break
        else:
            raise AssertionError(f"load failed: {len(todo)} puts refused {LOAD_RETRIES} times")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--value-size", type=int, default=1024)
    ap.add_argument("--dir", type=Path, default=None, help="the stores' data (default: a temp dir)")
    ap.add_argument("--baseline-seconds", type=float, default=5.0)
    args = ap.parse_args()
    root = args.dir or Path(tempfile.mkdtemp(prefix="snaprss-"))
    cluster = Cluster.create(root, 3, extra_args=GC_ARGS)
    cluster.start()
    client = Client(cluster)
    try:
        leader = client.wait_leader()
        follower = next(sid for sid in (1, 2, 3) if sid != leader)
        t0 = time.monotonic()
        load(client, args.keys, args.value_size)
        print(f"loaded {args.keys} keys x {args.value_size} B in {time.monotonic() - t0:.1f}s")
        client.wait_caught_up([follower], timeout=120)
        cluster.kill(follower)
        load(client, 3000, 16)  # past the log GC limit
        compact = client.admin(leader).CompactLog(adminpb_pb2.CompactLogRequest(range_id=1), timeout=30)
        assert not compact.HasField("error"), compact.error.message
        leader = client.wait_leader()
        sent_before = client.status(leader).snapshots_sent
        writer = Writer(client, leader)
        writer.start()
        wait_for(lambda: len(writer.samples) > 0, 30, "the writer's first batch")
        time.sleep(args.baseline_seconds)  # a measurement window, not a synchronisation
        pids = {f"store{sid}": cluster.stores[sid].proc.pid for sid in (1, 2, 3) if sid != follower}
        before = {name: rss_mb(pid) for name, pid in pids.items()}
        sampler = Sampler(dict(pids))
        sampler.start()
        t_start = time.monotonic()
        cluster.restart(follower)
        sampler.pids[f"store{follower}"] = cluster.stores[follower].proc.pid
        sampler.peak[f"store{follower}"] = 0.0
        wait_for(lambda: (client.status(follower) or adminpb_pb2.RangeStatus()).snapshots_applied >= 1,
                 1800, "the snapshot to be applied", interval=0.1)
        t_end = time.monotonic()
        writer.stop_event.set()
        writer.join()
        client.wait_caught_up([follower], timeout=120)
        sampler.stop_event.set()
        sampler.join()
        hwm = rss_mb(cluster.stores[follower].proc.pid, "VmHWM")
        now_leader = client.find_leader()
        if now_leader != leader:
            print(f"NOTE: the leader moved from store{leader} to store{now_leader} during the transfer")
        ssts = (cluster.stores[leader].data_dir / "db").glob("*.sst")
        data_mb = sum(f.stat().st_size for f in ssts) / 2**20
        print(f"leader store{leader} sent {client.status(leader).snapshots_sent - sent_before} snapshot(s); "
              f"leader SSTs {data_mb:.0f} MB on disk")
        print(f"transfer (restart to snapshot applied): {t_end - t_start:.1f}s")
        for name in pids:
            print(f"  {name} (leader={name == f'store{leader}'}): RSS before {before[name]:.0f} MB, "
                  f"peak during {sampler.peak[name]:.0f} MB")
        peak = sampler.peak[f"store{follower}"]
        print(f"  store{follower} (receiver): peak RSS {peak:.0f} MB, VmHWM {hwm:.0f} MB")
        for label, (a, b) in {"before": (t_start - args.baseline_seconds, t_start),
                              "during": (t_start, t_end)}.items():
            ops, p99, mx = writer.window(a, b)
            print(f"  writes {label}: {ops:.0f} ops/s, batch-of-{WRITE_BATCH} p99 {p99 * 1000:.0f} ms, "
                  f"max {mx * 1000:.0f} ms")
    finally:
        client.close()
        cluster.shutdown()
        if args.dir is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

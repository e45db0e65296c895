"""``kvdb bench profile``: where a store spends its time under a workload, from a sampling profiler.

It starts a fresh playground, finds the store that leads the most ranges (the one doing the
replication and apply work that bounds throughput), attaches ``py-spy record`` to that process
and runs the workload against the cluster. A sampling profiler outside the process changes its
speed little, so the profile shows the store at about the throughput the benchmark reports.
Output: ``store.speedscope.json`` (open it at https://www.speedscope.app) and ``top.txt``, the
functions with the most sampled time on the stack (total) and at its top (self); on Linux also
``cpu.txt``, the CPU every process of the cluster and the client used per operation
(``bench.cpu``): which process to make cheaper, and whether the cores were all busy.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.cpu import CpuSampler, children, usage_table
from bench.runner import BenchConfig, BenchError, run_bench
from bench.workloads import WORKLOADS

USAGE, FAILED = 2, 3
ATTACH_TIMEOUT = 30.0
"""Seconds py-spy may take to finish writing after the sampling window."""
CPU_MARGIN = 1.0
"""Seconds left out of the CPU window at each end of the measured period: the window must lie
inside it, and it is placed from when the benchmark returned (a moment after it ended)."""


def add_profile_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "profile", help="profile the leader store with py-spy while a workload runs",
        description="Start a kvdb playground, attach py-spy to the store leading the most ranges, run the "
                    "workload and write a speedscope profile plus a top-N text summary.")
    # Not dest "workload": that is where kvdb bench's subcommand name goes (bench/cli.py dispatches on it).
    p.add_argument("--workload", dest="profiled_workload", choices=list(WORKLOADS), default="write",
                   help="workload (default write)")
    p.add_argument("--duration", type=float, default=10.0, help="seconds measured and sampled (default 10)")
    p.add_argument("--concurrency", type=int, default=64, help="requests in flight (default 64)")
    p.add_argument("--processes", type=int, default=1, help="client processes (default 1)")
    p.add_argument("--rate", type=int, default=100, help="samples per second (default 100)")
    p.add_argument("--top", type=int, default=30, help="functions in the summary (default 30)")
    p.add_argument("--output-dir", type=Path, default=Path("bench-profile"),
                   help="profile, summary and the benchmark result (default ./bench-profile)")
    p.set_defaults(func=run_profile)


def _frame_name(frame: dict[str, Any]) -> str:
    return f"{frame['name']} ({Path(frame.get('file', '?')).name})"


def top_functions(speedscope: dict[str, Any], n: int) -> str:
    """The ``n`` functions with the most time on the stack and at its top, over all threads, as text.

    Total time finds the expensive paths (a Raft step and everything it calls); self time finds
    the code that is itself slow. Both are needed to read a profile without a viewer. Frames are
    merged by function, so the lines of one function count once.
    """
    names = [_frame_name(frame) for frame in speedscope["shared"]["frames"]]
    total: Counter[str] = Counter()
    own: Counter[str] = Counter()
    busy = 0.0
    unit = "?"
    for profile in speedscope["profiles"]:
        unit = profile.get("unit", unit)
        for stack, weight in zip(profile["samples"], profile["weights"], strict=True):
            busy += weight
            for name in {names[index] for index in stack}:
                total[name] += weight
            if stack:
                own[names[stack[-1]]] += weight
    lines = [f"{busy:.2f} {unit} of samples (threads not idle)"]
    for title, counts in (("total (on the stack)", total), ("self (top of the stack)", own)):
        lines += ["", f"{title}:", f"{'%':>6}  {unit:>8}  function"]
        for name, weight in counts.most_common(n):
            lines.append(f"{100 * weight / (busy or 1):5.1f}%  {weight:8.2f}  {name}")
    return "\n".join(lines) + "\n"


async def _leader_store(pd_endpoints: str) -> int:
    """The store leading the most ranges (ties: the lowest id)."""
    from kvdb import admin
    from kvdb.pdclient.client import PdClient

    async with PdClient(pd_endpoints, timeout=10.0) as pd:
        rows = await admin.ranges(pd)
    leaders = Counter(row["leader"]["store_id"] for row in rows if row["leader"])
    if not leaders:
        raise BenchError("no range has a leader")
    return min(leaders, key=lambda store: (-leaders[store], store))


def watched_processes(run_dir: Path, leader: int, parent: int) -> dict[str, list[int]]:
    """Label -> pids: the playground's stores and PD members (``run_dir``'s pid files; the
    ``leader`` store marked) and the benchmark's client processes (``parent``'s children that
    ``multiprocessing`` spawned as workers)."""
    out: dict[str, list[int]] = {}
    for path in sorted(run_dir.glob("*.pid")):
        kind = path.stem.rstrip("0123456789")
        n = int(path.stem[len(kind):])
        if kind == "store":
            out[f"store {n}" + (" (leader)" if n == leader else "")] = [int(path.read_text())]
        elif kind == "pd":
            out[f"PD member {n}"] = [int(path.read_text())]
    clients = []
    for pid in children(parent):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in command:  # a worker; not multiprocessing's resource tracker
            clients.append(pid)
    out["client"] = clients
    return out


def run_profile(args: argparse.Namespace) -> int:
    """The whole profile run; the exit status."""
    from bench.compare import client_processes, playground

    py_spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if py_spy is None:
        print("kvdb bench profile: py-spy is not installed (.venv/bin/pip install py-spy)", file=sys.stderr)
        return USAGE
    if args.concurrency < 1:
        print("kvdb bench profile: --concurrency must be at least 1", file=sys.stderr)
        return USAGE
    out = args.output_dir
    out.mkdir(parents=True, exist_ok=True)
    profile_path = out / "store.speedscope.json"
    warmup = 1.0
    try:
        with (tempfile.TemporaryDirectory(prefix="kvdb-profile-") as tmp,
              playground(Path(tmp)) as (pd, data_dir)):
            store = asyncio.run(_leader_store(pd))
            pid = int((data_dir / "run" / f"store{store}.pid").read_text())
            print(f"kvdb bench profile: sampling store {store} (pid {pid})", file=sys.stderr)
            spy = subprocess.Popen([py_spy, "record", "--pid", str(pid), "--rate", str(args.rate),
                                    "--duration", str(int(warmup + args.duration + 1)),
                                    "--function", "--format", "speedscope", "--output", str(profile_path)],
                                   stdout=subprocess.DEVNULL)
            config = BenchConfig(workload=args.profiled_workload, target="kvdb", addresses=pd,
                                 duration=args.duration, warmup=warmup, concurrency=args.concurrency,
                                 processes=client_processes(args.concurrency, max(1, args.processes)),
                                 output=out / "result.json")
            sampler = CpuSampler(lambda: watched_processes(data_dir / "run", store, os.getpid()))
            sampler.start()
            try:
                result = run_bench(config)
                ended = time.monotonic()
            finally:
                sampler.stop()
            if spy.wait(timeout=warmup + args.duration + ATTACH_TIMEOUT) != 0:
                raise BenchError(f"py-spy failed (exit {spy.returncode}, see above)")
    except (BenchError, subprocess.TimeoutExpired) as exc:
        print(f"kvdb bench profile: {exc}", file=sys.stderr)
        return FAILED
    summary = top_functions(json.loads(profile_path.read_text()), args.top)
    (out / "top.txt").write_text(summary)
    print(f"{args.profiled_workload}: {result['throughput']:,.0f} ops/s; "
          f"profile of store {store}: {profile_path}")
    print(summary, end="")
    try:
        rows, idle, span = sampler.usage(ended - args.duration + CPU_MARGIN, ended - CPU_MARGIN)
    except ValueError as exc:  # a run too short for a window inside it, or no /proc
        print(f"kvdb bench profile: no CPU table ({exc})", file=sys.stderr)
        return 0
    table = usage_table(rows, result["throughput"], idle, span)
    (out / "cpu.txt").write_text(table)
    print(table, end="")
    return 0

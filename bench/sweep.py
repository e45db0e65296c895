"""``kvdb bench sweep``: open-loop runs at rising rates, and where each system saturates.

A closed loop answers "how fast can it go" but hides what a user waiting at a given load sees; an
open loop at a fixed rate answers that, honestly (latency counted from each request's intended
start). Sweeping the rate and plotting p50/p99 against the throughput achieved shows the knee:
below it the achieved rate follows the target and latency is flat, past it the achieved rate
stops growing and latency climbs (the queue grows for as long as the run lasts). The clusters are
started here as ``kvdb bench compare`` starts them (etcd first, then kvdb, never both at once),
unless attached with ``--pd`` / ``--etcd-endpoints``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.compare import attached_tls, check_etcd_client, client_processes, target_cluster
from bench.report import align
from bench.runner import BenchConfig, BenchError, run_bench
from bench.workloads import WORKLOADS, default_keys, needs_preload
from kvdb.net.tls import TlsFiles
from kvdb.net.tls_options import add_tls_flags

USAGE, FAILED, INTERRUPTED = 2, 3, 130
SATURATED = 0.9
"""A run is saturated when it achieves less than this share of its target rate."""
DEFAULT_RATES = (250, 500, 1000, 2000, 4000, 8000)


def _rates(spec: str) -> list[float]:
    try:
        rates = sorted({float(item) for item in spec.split(",") if item.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"--rates takes numbers, got {spec!r}") from None
    if not rates or rates[0] <= 0:
        raise argparse.ArgumentTypeError("--rates needs positive rates (ops/s), e.g. 500,1000,2000")
    return rates


def add_sweep_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep", help="open-loop runs at rising rates: latency vs throughput, where each system saturates",
        description="Run the workload open loop at each of --rates (ops/s, all clients together) against "
                    "kvdb, etcd or both, write one result file per run and sweep.json, print achieved "
                    "throughput and p50/p99 per rate with where each saturated (the lowest rate from which "
                    "on every rate achieved < 90%% of its target), and plot p50/p99 against achieved "
                    "throughput (latency.png).")
    p.add_argument("--target", choices=("kvdb", "etcd", "both"), default="both",
                   help="what to sweep (default both: etcd first, then kvdb)")
    p.add_argument("--rates", type=_rates, default=list(DEFAULT_RATES),
                   help="comma-separated target rates in ops/s (default "
                        f"{','.join(map(str, DEFAULT_RATES))})")
    p.add_argument("--workload", choices=list(WORKLOADS), default="write", dest="swept_workload",
                   help="workload (default write)")
    p.add_argument("--concurrency", type=int, default=256,
                   help="cap on requests in flight, all processes together (default 256)")
    p.add_argument("--processes", type=int, default=1, help="client processes (default 1)")
    p.add_argument("--duration", type=float, default=5.0, help="seconds measured per rate (default 5)")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds run but not measured first (default 1)")
    p.add_argument("--keys", type=int, default=None, help="key space size (default 10000)")
    p.add_argument("--value-size", type=int, default=100, help="bytes per value (default 100)")
    p.add_argument("--pd", help="use this kvdb cluster (PD HOST:PORT,...) instead of starting a playground")
    add_tls_flags(p, from_env=True)  # for --pd: the playground started here is plaintext
    p.add_argument("--etcd-endpoints", help="use this etcd cluster (HOST:PORT,...) instead of starting one")
    p.add_argument("--output-dir", type=Path, default=Path("bench-sweep"),
                   help="result files, sweep.json and latency.png (default ./bench-sweep)")
    p.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    p.set_defaults(func=run_sweep)


def point(result: dict[str, Any]) -> dict[str, Any]:
    """One rate's figures from its result file."""
    lat = result["latency_us"]["overall"]
    return {"target": result["target"], "rate": result["rate"], "throughput": result["throughput"],
            "p50_us": lat["p50"], "p99_us": lat["p99"], "missed": result["missed"],
            "errors": result["error_count"], "saturated": result["throughput"] < SATURATED * result["rate"]}


def saturation(points: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The lowest-rate point of one target from which on every rate fell short, or None if the
    highest rate kept up. A lone short run below rates that kept up is a stall of the machine, not
    the system's limit, so it does not count."""
    knee = None
    for p in sorted(points, key=lambda p: p["rate"], reverse=True):
        if not p["saturated"]:
            break
        knee = p
    return knee


def format_sweep(points: list[dict[str, Any]]) -> str:
    """A table of the points (target, then rate) and one line per target on where it saturated."""
    rows = [("target", "rate ops/s", "achieved ops/s", "p50 ms", "p99 ms", "missed", "errors", "")]
    for p in sorted(points, key=lambda p: (p["target"], p["rate"])):
        rows.append((p["target"], f"{p['rate']:,.0f}", f"{p['throughput']:,.0f}", f"{p['p50_us'] / 1000:.2f}",
                     f"{p['p99_us'] / 1000:.2f}", f"{p['missed']:,}", str(p["errors"]),
                     "saturated" if p["saturated"] else ""))
    lines = [align(rows)]
    for target in sorted({p["target"] for p in points}):
        mine = [p for p in points if p["target"] == target]
        best = max(p["throughput"] for p in mine)
        knee = saturation(mine)
        where = (f"saturated at {knee['rate']:,.0f} ops/s (achieved {knee['throughput']:,.0f})" if knee
                 else "not saturated at any rate swept")
        lines.append(f"{target}: {where}; highest achieved {best:,.0f} ops/s")
    return "\n".join(lines)


def plot_sweep(points: list[dict[str, Any]], out_dir: Path, workload: str) -> Path:
    """latency.png: p50 and p99 (ms, log scale) against achieved throughput, a line each per target."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display, no GUI toolkit
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for n, target in enumerate(sorted({p["target"] for p in points})):
        mine = sorted((p for p in points if p["target"] == target), key=lambda p: p["rate"])
        for figure, style in (("p50_us", "--"), ("p99_us", "-")):  # one colour per system
            ax.plot([p["throughput"] for p in mine], [p[figure] / 1000 for p in mine], style, marker="o",
                    color=f"C{n}", label=f"{target} {figure.split('_')[0]}")
    ax.set_yscale("log")
    ax.set_xlabel("achieved throughput (ops/s)")
    ax.set_ylabel("latency from intended start (ms)")
    ax.set_title(f"{workload}, open loop: latency vs throughput")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = out_dir / "latency.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _config(args: argparse.Namespace, target: str, addresses: str, rate: float, preload: bool,
            tls: TlsFiles | None = None) -> BenchConfig:
    return BenchConfig(workload=args.swept_workload, target=target, addresses=addresses,
                       duration=args.duration, warmup=args.warmup, concurrency=args.concurrency,
                       processes=client_processes(args.concurrency, args.processes),
                       key_count=args.keys or default_keys(args.swept_workload), value_size=args.value_size,
                       rate=rate, preload=preload and needs_preload(args.swept_workload),
                       output=args.output_dir / f"{target}-{args.swept_workload}-r{rate:g}.json",
                       progress=not args.no_progress,
                       tls=tls)


def _sweep_target(args: argparse.Namespace, target: str, addresses: str, tls: TlsFiles | None
                  ) -> list[dict[str, Any]]:
    """One target's runs, rising rates; the first run preloads the keys a reading workload needs."""
    return [point(run_bench(_config(args, target, addresses, rate, preload=n == 0, tls=tls)))
            for n, rate in enumerate(args.rates)]


def run_sweep(args: argparse.Namespace) -> int:
    """The whole sweep; the exit status."""
    targets = ("etcd", "kvdb") if args.target == "both" else (args.target,)
    try:
        _config(args, targets[0], "-", args.rates[0], preload=False).validate()
        if "etcd" in targets:
            check_etcd_client()
        tls = attached_tls(args)
    except (BenchError, ValueError) as exc:
        print(f"kvdb bench sweep: {exc}", file=sys.stderr)
        return USAGE
    points: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="kvdb-sweep-") as tmp:
            work = Path(tmp)
            for target in targets:
                with target_cluster(args, target, work) as (addresses, _):
                    points += _sweep_target(args, target, addresses, tls if target == "kvdb" else None)
    except BenchError as exc:
        print(f"kvdb bench sweep: {exc}", file=sys.stderr)
        return FAILED
    except KeyboardInterrupt:  # the clusters were stopped on the way out
        print("kvdb bench sweep: interrupted", file=sys.stderr)
        return INTERRUPTED
    args.output_dir.mkdir(parents=True, exist_ok=True)
    summary = {"workload": args.swept_workload, "points": points}
    (args.output_dir / "sweep.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(format_sweep(points))
    try:
        print(plot_sweep(points, args.output_dir, args.swept_workload))
    except ImportError:
        print("kvdb bench sweep: no plot (matplotlib is not installed)", file=sys.stderr)
    return 0

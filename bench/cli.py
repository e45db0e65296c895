"""``kvdb bench``: run a workload against kvdb or etcd, or plot result files.

``kvdb/cli.py`` hands every ``kvdb bench ...`` argument list to :func:`main`, so the benchmark's
options live with the benchmark. ``kvdb bench compare`` comes from ``bench/compare.py`` when that
module is present: its ``add_compare_parser(sub)`` adds the subcommand and sets ``func`` (called
with the parsed arguments, returning the exit status) as the parser's default.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import sys
from pathlib import Path
from typing import NoReturn

from bench.workloads import BANK_RANGES, DESCRIPTIONS, WORKLOADS, default_keys, workload_key
from kvdb.net.tls import TlsFiles
from kvdb.net.tls_options import add_tls_flags, tls_from_args

USAGE, FAILED = 2, 3


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line, as in the rest of the kvdb CLI."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(USAGE)


def add_run_flags(p: argparse.ArgumentParser) -> None:
    """The options of one run (shared with ``compare``, which runs the same workload on both targets)."""
    p.add_argument("--duration", type=float, default=5.0,
                   help="seconds measured after the warm-up (default 5)")
    p.add_argument("--ops", type=int, default=0, help="measure this many operations instead of a duration")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds run but not measured first (default 1)")
    p.add_argument("--concurrency", type=int, default=8,
                   help="requests in flight, all client processes together (default 8); with --rate, "
                        "the cap on them")
    p.add_argument("--rate", type=float, default=0.0, metavar="OPS",
                   help="open loop: send OPS requests per second in total on a fixed schedule, latency "
                        "counted from each request's intended start (default: closed loop)")
    p.add_argument("--processes", type=int, default=1,
                   help="client processes, so the load generator is not the bottleneck (default 1)")
    p.add_argument("--keys", type=int, default=None,
                   help="key space size (default 10000; bank: accounts, default 1000)")
    p.add_argument("--value-size", type=int, default=100, help="bytes per value (default 100)")
    p.add_argument("--no-preload", action="store_true",
                   help="do not write the key space before a workload that reads (it is already there)")
    p.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    p.add_argument("--seed", type=int, default=0, help="seed of the key and operation choices (default 0)")


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="kvdb bench", description="Throughput and latency benchmarks against kvdb or etcd.")
    sub = parser.add_subparsers(dest="workload", metavar="WORKLOAD", required=True)
    for name in WORKLOADS:
        text = DESCRIPTIONS[name].replace("%", "%%")  # argparse %-formats help strings
        p = sub.add_parser(name, help=text, description=f"{text[0].upper()}{text[1:]}. Prints a summary "
                                                        "line; --output writes the JSON result.")
        p.add_argument("--target", choices=("kvdb", "etcd"), default="kvdb",
                       help="what to benchmark (default kvdb)")
        p.add_argument("--pd", help="kvdb: PD members HOST:PORT,...")
        p.add_argument("--endpoints", help="etcd: members HOST:PORT,...")
        p.add_argument("--output", type=Path, help="write the JSON result here")
        p.add_argument("--pre-split", type=int, default=BANK_RANGES if name == "bank" else 0, metavar="N",
                       help="kvdb: first split the key space into N ranges of equal key counts (through PD)"
                            + (f" (default {BANK_RANGES})" if name == "bank" else ""))
        if name == "bank":
            p.add_argument("--single-range", action="store_true",
                           help="both accounts of a transfer in one of the --pre-split ranges (kvdb: 1PC)")
        add_run_flags(p)
        add_tls_flags(p, from_env=True)
    p = sub.add_parser("split-under-load", help="write to one range, split it into many mid-run: stalls and "
                                                "recovery",
                       description="Write to one range at a steady concurrency, split it into --ranges "
                                   "ranges through PD after --before seconds, keep writing --after "
                                   "seconds; prints throughput and p99 before, during and after, the longest "
                                   "stall and the recovery time; --output writes the JSON result with its "
                                   "timeline.")
    p.add_argument("--pd", required=True, help="PD members HOST:PORT,...")
    p.add_argument("--ranges", type=int, default=64, help="ranges the hot range is split into (default 64)")
    p.add_argument("--keys", type=int, default=20_000, help="key space size (default 20000)")
    p.add_argument("--value-size", type=int, default=100, help="bytes per value (default 100)")
    p.add_argument("--concurrency", type=int, default=32, help="writes in flight (default 32)")
    p.add_argument("--before", type=float, default=5.0, help="seconds of writes before the split (default 5)")
    p.add_argument("--after", type=float, default=10.0, help="seconds of writes after it (default 10)")
    p.add_argument("--output", type=Path, help="write the JSON result here")
    add_tls_flags(p, from_env=True)
    p.set_defaults(func=_split_under_load)
    p = sub.add_parser("plot", help="PNG plots of throughput and p99 latency vs concurrency of result files",
                       description="Draw throughput.png and latency.png (p99) against concurrency, one line "
                                   "per target, from result files of runs at several concurrencies.")
    p.add_argument("results", nargs="+", type=Path, metavar="RESULT", help="result JSON files")
    p.add_argument("--output-dir", type=Path, default=Path("."), help="where the PNGs go (default .)")
    p.add_argument("--prefix", default="", help="prefix of the PNG file names")
    from bench.failover import add_failover_parser

    add_failover_parser(sub)
    if importlib.util.find_spec("bench.compare") is not None:
        from bench.compare import add_compare_parser
        from bench.sweep import add_sweep_parser

        add_compare_parser(sub)
        add_sweep_parser(sub)
    return parser


def _run(args: argparse.Namespace) -> int:
    from bench.report import summary_line
    from bench.runner import BenchConfig, BenchError, run_bench

    if args.keys is None:
        args.keys = default_keys(args.workload)
    addresses = args.pd if args.target == "kvdb" else args.endpoints
    if not addresses:
        flag = "--pd" if args.target == "kvdb" else "--endpoints"
        print(f"kvdb bench: {flag} is required with --target {args.target}", file=sys.stderr)
        return USAGE
    try:
        tls = tls_from_args(args) if args.target == "kvdb" else None
    except ValueError as exc:
        print(f"kvdb bench: {exc}", file=sys.stderr)
        return USAGE
    config = BenchConfig(workload=args.workload, target=args.target, addresses=addresses,
                         duration=args.duration, ops=args.ops, warmup=args.warmup,
                         concurrency=args.concurrency, processes=args.processes, key_count=args.keys,
                         value_size=args.value_size, preload=not args.no_preload, output=args.output,
                         progress=not args.no_progress, seed=args.seed, rate=args.rate,
                         groups=max(1, args.pre_split) if getattr(args, "single_range", False) else 1,
                         tls=tls)
    try:
        config.validate()
    except BenchError as exc:
        print(f"kvdb bench: {exc}", file=sys.stderr)
        return USAGE
    # The bank's --pre-split also draws --single-range's blocks, which etcd runs use too.
    if args.pre_split and args.target != "kvdb" and args.workload != "bank":
        print("kvdb bench: --pre-split is for --target kvdb", file=sys.stderr)
        return USAGE
    if args.pre_split < 0 or args.pre_split > args.keys:
        print(f"kvdb bench: --pre-split must be between 0 and --keys ({args.keys})", file=sys.stderr)
        return USAGE
    try:
        if args.pre_split > 1 and args.target == "kvdb":
            pre_split_workload(addresses, args.workload, args.keys, args.pre_split, tls)
        result = run_bench(config)
    except BenchError as exc:
        print(f"kvdb bench: {exc}", file=sys.stderr)
        return FAILED
    print(summary_line(result))
    return FAILED if result.get("bank", {"ok": True})["ok"] is False else 0


def pre_split_workload(pd: str, workload: str, keys: int, ranges: int, tls: TlsFiles | None = None) -> None:
    """Cut ``workload``'s key space (the bank's accounts, or the YCSB keys) into ``ranges`` ranges."""
    from bench.runner import BenchError
    from bench.splits import pre_split
    from kvdb.pdclient.client import PdError

    try:
        asyncio.run(pre_split(pd, keys, ranges, key=lambda i: workload_key(workload, i), tls=tls))
    except (PdError, OSError) as exc:
        raise BenchError(f"cannot pre-split into {ranges} ranges: {exc}") from exc


def _split_under_load(args: argparse.Namespace) -> int:
    import json

    from bench.splits import split_under_load, summary
    from kvdb.pdclient.client import PdError

    if args.ranges < 2 or args.ranges > args.keys or min(args.concurrency, args.value_size) < 1 \
            or min(args.before, args.after) <= 0:
        print("kvdb bench split-under-load: need 2 <= --ranges <= --keys, positive --concurrency, "
              "--value-size, --before and --after", file=sys.stderr)
        return USAGE
    try:
        tls = tls_from_args(args)
    except ValueError as exc:
        print(f"kvdb bench split-under-load: {exc}", file=sys.stderr)
        return USAGE
    try:
        result = asyncio.run(split_under_load(args.pd, args.ranges, args.keys, args.value_size,
                                              args.concurrency, args.before, args.after, tls=tls))
    except (PdError, OSError) as exc:
        print(f"kvdb bench split-under-load: {exc}", file=sys.stderr)
        return FAILED
    if args.output is not None:
        args.output.write_text(json.dumps(result, indent=1) + "\n")
    print(summary(result))
    return 0


def _plot(args: argparse.Namespace) -> int:
    from bench.report import ResultError, plot, read_result

    try:
        paths = plot([read_result(p) for p in args.results], args.output_dir, args.prefix)
    except ResultError as exc:
        print(f"kvdb bench plot: {exc}", file=sys.stderr)
        return USAGE
    for path in paths:
        print(path)
    return 0


def main(argv: list[str]) -> int:
    """``kvdb bench`` with ``argv`` (the arguments after ``bench``); returns the exit status."""
    args = _build_parser().parse_args(argv)
    if args.workload == "plot":
        return _plot(args)
    if args.workload in WORKLOADS:
        return _run(args)
    return args.func(args)

"""``kvdb bench compare``: the same workload sweep against etcd and kvdb in one run, and their ratios.

Numbers from different days or machines cannot be compared, so both targets run here, now, with
the same load generator. The two clusters never run at the same time: on a small machine an idle
cluster's heartbeats and the other's load would share cores, so etcd runs its whole sweep first
and is stopped, then kvdb runs. A cluster this command starts gets a fresh data dir (an etcd data
dir grown by an earlier run makes etcd slower); an attached one (``--etcd-endpoints``, ``--pd``)
is used as it is.

``failover`` among the workloads adds the availability measurement of ``kvdb bench failover``
to the run: rounds of kill -9 of etcd's leader and of the store holding kvdb's range leader, each
restarted after a delay, and the longest gap between successful writes and reads per round, side
by side. kvdb's rounds run on a cluster of their own (bench/failover.py) after the sweep.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.report import align, range_change
from bench.runner import BenchConfig, BenchError, run_bench
from bench.workloads import BANK_RANGES, WORKLOADS, default_keys, key_space, needs_preload
from kvdb.net.tls import TlsFiles
from kvdb.net.tls_options import add_tls_flags, forget_tls_env, tls_from_args
from kvdb.playground import free_ports

USAGE, FAILED, INTERRUPTED = 2, 3, 130
REPO = Path(__file__).resolve().parent.parent
ETCD_SCRIPT = REPO / "scripts" / "etcd-cluster"
ETCD_PORTS = 6
"""3 members, a client and a peer port each."""
PLAYGROUND_PORTS = 6
"""3 PD members and 3 stores."""
PLAYGROUND_READY = "kvdb playground ready: pd="
STOP_TIMEOUT = 30.0
TARGET_ORDER = ("etcd", "kvdb")
FIGURES = ("throughput", "p50_us", "p99_us")
FAILOVER = "failover"
"""The availability measurement, named among the workloads."""


def free_base_port(count: int) -> int:
    """A port P such that P..P+count-1 are free now: the clusters take consecutive ports, and a fixed
    default would collide with a playground or an etcd already running on the machine."""
    try:
        return free_ports(count, consecutive=True)[0]
    except OSError as exc:
        raise BenchError(str(exc)) from exc


def client_processes(total: int, processes: int) -> int:
    """Client processes for ``total`` requests in flight: ``processes``, but never more than one per
    request (so that 1 client means one request in flight in one process)."""
    return min(processes, total)


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "n/a"


def ratio_rows(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (workload, concurrency) run on both targets: each figure and kvdb/etcd for it, in the
    order of the sweep (workloads as given, concurrency rising)."""
    by_run: dict[tuple[str, int], dict[str, dict[str, Any]]] = {}
    for r in results:
        by_run.setdefault((r["workload"], r["concurrency"]), {})[r["target"]] = r
    rows = []
    sweep_order = {w: i for i, w in enumerate(dict.fromkeys(r["workload"] for r in results))}
    runs = sorted(by_run.items(), key=lambda run: (sweep_order[run[0][0]], run[0][1]))
    for (workload, concurrency), pair in runs:
        if set(pair) != {"kvdb", "etcd"}:
            continue
        row: dict[str, Any] = {"workload": workload, "concurrency": concurrency}
        for target in ("kvdb", "etcd"):
            r = pair[target]
            lat = r["latency_us"]["overall"]
            row[target] = {"throughput": r["throughput"], "p50_us": lat["p50"], "p99_us": lat["p99"],
                           "errors": r["error_count"]}
            if "abort_rate" in r:
                row[target]["abort_rate"] = r["abort_rate"]
            if "ranges" in r:
                row[target]["ranges"] = r["ranges"]
        k, e = row["kvdb"], row["etcd"]
        row["ratio"] = {f: round(k[f] / e[f], 3) if e[f] else None for f in FIGURES}
        rows.append(row)
    return rows


def range_notes(rows: list[dict[str, Any]]) -> list[str]:
    """A line per kvdb run whose ranges changed while it ran (a load split, a leader moved): the
    runs of one sweep share a cluster, so a later run may measure another layout than an earlier."""
    return [f"kvdb {row['workload']} {row['concurrency']}: {change}" for row in rows
            if row["workload"] != FAILOVER
            and (change := range_change(row["kvdb"].get("ranges"))) is not None]


def format_table(rows: list[dict[str, Any]]) -> str:
    """The ratio table: throughput ratios above 1 and latency ratios below 1 favour kvdb. With
    transactional workloads, a last column gives each side's aborted attempts (% of attempts)."""
    aborts = any("abort_rate" in row["kvdb"] for row in rows)
    header = ("workload", "clients", "kvdb ops/s", "etcd ops/s", "ops/s k/e", "kvdb p50 ms", "etcd p50 ms",
              "p50 k/e", "kvdb p99 ms", "etcd p99 ms", "p99 k/e", "errors k/e") + (("aborts% k/e",) if aborts
                                                                                    else ())
    lines = [header]
    for row in rows:
        k, e = row["kvdb"], row["etcd"]
        cells = [row["workload"], str(row["concurrency"]),
                 f"{k['throughput']:,.0f}", f"{e['throughput']:,.0f}",
                 _ratio(k["throughput"], e["throughput"])]
        for figure in ("p50_us", "p99_us"):
            cells += [f"{k[figure] / 1000:.2f}", f"{e[figure] / 1000:.2f}", _ratio(k[figure], e[figure])]
        cells.append(f"{k['errors']}/{e['errors']}")
        if aborts:
            cells.append("/".join(f"{100 * r.get('abort_rate', 0.0):.1f}" for r in (k, e)))
        lines.append(tuple(cells))
    return align(lines)


def _parse_list(spec: str, flag: str) -> list[str]:
    items = [item.strip() for item in spec.split(",") if item.strip()]
    if not items:
        raise argparse.ArgumentTypeError(f"{flag} needs at least one value")
    return items


def _workloads(spec: str) -> list[str]:
    items = _parse_list(spec, "--workloads")
    unknown = [w for w in items if w not in WORKLOADS and w != FAILOVER]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown workload(s) {', '.join(unknown)} "
                                         f"(workloads: {', '.join([*WORKLOADS, FAILOVER])})")
    return items


def _concurrencies(spec: str) -> list[int]:
    try:
        values = [int(item) for item in _parse_list(spec, "--concurrency")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--concurrency takes integers, got {spec!r}") from None
    if any(v < 1 for v in values):
        raise argparse.ArgumentTypeError("every concurrency must be at least 1")
    return values


def add_compare_parser(sub: argparse._SubParsersAction) -> None:
    """Registers ``compare`` (and ``profile``, which lives in bench/profile.py) under ``kvdb bench``."""
    from bench.profile import add_profile_parser

    p = sub.add_parser(
        "compare", help="the same workload sweep against etcd and kvdb, and a kvdb/etcd ratio table",
        description="Run each workload at each concurrency against a 3-member etcd cluster, then against a "
                    "kvdb playground (started here on fresh data dirs unless given), write the result "
                    "files and print kvdb/etcd ratios of throughput and p50/p99 latency.")
    p.add_argument("--workloads", type=_workloads, default=["write", "read"],
                   help="comma-separated workloads (default write,read); 'failover' adds kill -9 rounds of "
                        "each system's leader")
    p.add_argument("--concurrency", type=_concurrencies, default=[1, 16, 64],
                   help="comma-separated total requests in flight, all processes together (default 1,16,64)")
    p.add_argument("--duration", type=float, default=5.0, help="seconds measured per run (default 5)")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds run but not measured first (default 1)")
    p.add_argument("--processes", type=int, default=1,
                   help="client processes per run, at most one per request in flight (default 1)")
    p.add_argument("--rate", type=float, default=0.0, metavar="OPS",
                   help="open loop: OPS requests per second in total in every run, --concurrency capping "
                        "those in flight (default: closed loop)")
    p.add_argument("--keys", type=int, default=None,
                   help="key space size (default 10000; bank: accounts, default 1000, split into 8 ranges)")
    p.add_argument("--value-size", type=int, default=100, help="bytes per value (default 100)")
    p.add_argument("--etcd-endpoints", help="use this etcd cluster (HOST:PORT,...) instead of starting one")
    p.add_argument("--pd", help="use this kvdb cluster (PD HOST:PORT,...) instead of starting a playground")
    add_tls_flags(p, from_env=True)  # for --pd: the playground started here is plaintext
    p.add_argument("--output-dir", type=Path, default=Path("bench-compare"),
                   help="result files, comparison.json and plots (default ./bench-compare)")
    p.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    p.add_argument("--failover-rounds", type=int, default=3,
                   help="failover: kill -9 and restart this many times per system (default 3)")
    p.add_argument("--restart-after", type=float, default=8.0,
                   help="failover: seconds between a kill and the restart (default 8)")
    p.add_argument("--settle", type=float, default=3.0,
                   help="failover: seconds of load before each kill and after each restart (default 3)")
    p.add_argument("--failover-concurrency", type=int, default=8,
                   help="failover: requests in flight, writers and readers together (default 8)")
    p.set_defaults(func=run_compare)
    add_profile_parser(sub)


@contextlib.contextmanager
def etcd_cluster(work_dir: Path) -> Iterator[tuple[str, Path]]:
    """A fresh 3-member etcd cluster from scripts/etcd-cluster; yields its client endpoints and its dir."""
    base = free_base_port(ETCD_PORTS)
    cluster_dir = work_dir / "etcd"
    started = subprocess.run([str(ETCD_SCRIPT), "start", "--dir", str(cluster_dir), "--base-port", str(base)],
                             stdout=subprocess.PIPE, text=True)
    if started.returncode:
        subprocess.run([str(ETCD_SCRIPT), "stop", "--dir", str(cluster_dir)])
        raise BenchError(f"scripts/etcd-cluster start failed (exit {started.returncode}, see above)")
    try:
        yield started.stdout.strip().splitlines()[-1], cluster_dir
    finally:
        subprocess.run([str(ETCD_SCRIPT), "stop", "--dir", str(cluster_dir)])


@contextlib.contextmanager
def playground(work_dir: Path) -> Iterator[tuple[str, Path]]:
    """A fresh ``kvdb playground`` in ``work_dir``; yields the PD endpoints and its data dir."""
    forget_tls_env()  # it runs plaintext
    data_dir = work_dir / "kvdb"
    cmd = [sys.executable, "-m", "kvdb", "playground", "--data-dir", str(data_dir),
           "--base-port", str(free_base_port(PLAYGROUND_PORTS))]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # the playground says when the cluster serves, or exits
            if line.startswith(PLAYGROUND_READY):
                break
        else:
            raise BenchError(f"kvdb playground exited with {proc.wait()} before serving (see above)")
        yield line[len(PLAYGROUND_READY):].strip(), data_dir
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def target_cluster(args: argparse.Namespace, target: str, work_dir: Path
                   ) -> contextlib.AbstractContextManager[tuple[str, Path | None]]:
    """Where ``target``'s runs go: the cluster attached with --etcd-endpoints / --pd, else a fresh
    one started in ``work_dir`` (yields its addresses and, for a started etcd, its dir)."""
    if target == "etcd":
        return (contextlib.nullcontext((args.etcd_endpoints, None)) if args.etcd_endpoints
                else etcd_cluster(work_dir))
    return contextlib.nullcontext((args.pd, None)) if args.pd else playground(work_dir)


def check_etcd_client() -> None:
    """BenchError without the etcd client: better now than after a cluster started."""
    if importlib.util.find_spec("etcd3aio") is None:
        raise BenchError("the etcd client is not installed: run scripts/setup (or pip install etcd3aio)")


def attached_tls(args: argparse.Namespace) -> TlsFiles | None:
    """The checked TLS files for an attached kvdb cluster (--pd), read once before any run;
    None for a playground this command starts (plaintext). ValueError for bad files."""
    return tls_from_args(args) if args.pd else None


def _sweep(args: argparse.Namespace, target: str, addresses: str, tls: TlsFiles | None
           ) -> list[dict[str, Any]]:
    from bench.cli import pre_split_workload

    results = []
    preloaded: set[str] = set()  # key spaces written by an earlier run stay for later ones
    for workload in (w for w in args.workloads if w != FAILOVER):
        keys = args.keys or default_keys(workload)
        if workload == "bank" and target == "kvdb" and "bank" not in preloaded:
            pre_split_workload(addresses, workload, keys, BANK_RANGES, tls)
        for total in args.concurrency:
            config = BenchConfig(workload=workload, target=target, addresses=addresses,
                                 duration=args.duration, warmup=args.warmup, concurrency=total,
                                 processes=client_processes(total, args.processes), rate=args.rate,
                                 key_count=keys, value_size=args.value_size,
                                 preload=key_space(workload) not in preloaded,
                                 output=args.output_dir / f"{target}-{workload}-c{total}.json",
                                 progress=not args.no_progress, tls=tls)
            result = run_bench(config)
            if needs_preload(workload):
                preloaded.add(key_space(workload))
            results.append(result)
            if not result.get("bank", {"ok": True})["ok"]:
                raise BenchError(f"{target}: the bank lost its invariant: {result['bank']['violation']}")
    return results


def _plot(results: list[dict[str, Any]], out_dir: Path) -> list[Path]:
    """Plots per workload if matplotlib is there: the table is the result, the plots are a bonus."""
    try:
        from bench.report import plot
    except ImportError:
        return []
    paths: list[Path] = []
    for workload in sorted({r["workload"] for r in results}):
        try:
            paths += plot([r for r in results if r["workload"] == workload], out_dir, f"{workload}-")
        except ImportError:
            print("kvdb bench compare: no plots (matplotlib is not installed)", file=sys.stderr)
            return paths
    return paths


def failover_row(gaps: dict[str, list[Any]]) -> dict[str, Any]:
    """The failover rounds of both systems for comparison.json, with each one's longest gaps."""
    row: dict[str, Any] = {"workload": FAILOVER}
    for target, rounds in gaps.items():
        row[target] = {"rounds": [asdict(r) for r in rounds],
                       "max_write_gap": max(r.write_gap for r in rounds),
                       "max_read_gap": max(r.read_gap for r in rounds)}
    return row


def format_failover(row: dict[str, Any]) -> str:
    """Per round, the longest gap between successful writes and reads (s) of each system, side by side."""
    targets = [t for t in TARGET_ORDER[::-1] if t in row]
    header = ("failover round", *(f"{t} {kind} gap s" for t in targets for kind in ("write", "read")))
    lines = [header]
    rounds = max(len(row[t]["rounds"]) for t in targets)
    for n in range(rounds):
        cells = [str(n + 1)]
        for t in targets:
            mine = row[t]["rounds"]
            cells += ([f"{mine[n]['write_gap']:.3f}", f"{mine[n]['read_gap']:.3f}"] if n < len(mine)
                      else ["", ""])
        lines.append(tuple(cells))
    lines.append(("longest", *(f"{row[t][f'max_{kind}_gap']:.3f}" for t in targets
                               for kind in ("write", "read"))))
    return align(lines)


def _check_args(args: argparse.Namespace) -> None:
    """Usage errors, found before any cluster starts."""
    if args.processes < 1:
        raise BenchError("--processes must be at least 1")
    if args.rate < 0:
        raise BenchError("--rate cannot be negative")
    check_etcd_client()
    if FAILOVER in args.workloads:
        if args.etcd_endpoints:
            raise BenchError("failover kills etcd's leader: it needs the cluster this command starts "
                             "(leave out --etcd-endpoints)")
        if args.failover_rounds < 1 or args.restart_after <= 0 or args.settle <= 0 \
                or args.failover_concurrency < 2:
            raise BenchError("failover needs positive --failover-rounds, --restart-after and --settle, and "
                             "--failover-concurrency of at least 2 (a writer and a reader)")


def _etcd(args: argparse.Namespace, work: Path, gaps: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """etcd's sweep and failover rounds, on one cluster (started here unless attached)."""
    from bench.etcd_failover import EtcdMembers, etcd_failover

    results: list[dict[str, Any]] = []
    with target_cluster(args, "etcd", work) as (endpoints, cluster_dir):
        results += _sweep(args, "etcd", endpoints, None)
        if FAILOVER in args.workloads:
            members = EtcdMembers(cluster_dir, endpoints)
            try:
                gaps["etcd"] = etcd_failover(members, args.failover_rounds, args.restart_after, args.settle,
                                             args.failover_concurrency, "etcd ")
            finally:
                members.stop_restarted(STOP_TIMEOUT)
    return results


def _kvdb(args: argparse.Namespace, work: Path, gaps: dict[str, list[Any]], tls: TlsFiles | None
          ) -> list[dict[str, Any]]:
    """kvdb's sweep on a playground (unless attached), then its failover rounds on a cluster of their own."""
    from bench.failover import kvdb_failover

    results: list[dict[str, Any]] = []
    if any(w != FAILOVER for w in args.workloads):
        with target_cluster(args, "kvdb", work) as (pd, _):
            results += _sweep(args, "kvdb", pd, tls)
    if FAILOVER in args.workloads:
        gaps["kvdb"] = kvdb_failover(work / "kvdb-failover", "leader", args.failover_rounds,
                                     args.restart_after, args.settle, args.failover_concurrency, "kvdb ")
    return results


def run_compare(args: argparse.Namespace) -> int:
    """The whole comparison; the exit status."""
    from bench.failover import FailoverError

    try:
        _check_args(args)
        tls = attached_tls(args)
    except (BenchError, ValueError) as exc:
        print(f"kvdb bench compare: {exc}", file=sys.stderr)
        return USAGE
    results: list[dict[str, Any]] = []
    gaps: dict[str, list[Any]] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="kvdb-compare-") as tmp:
            for target in TARGET_ORDER:
                results += (_etcd(args, Path(tmp), gaps) if target == "etcd"
                            else _kvdb(args, Path(tmp), gaps, tls))
    except (BenchError, FailoverError) as exc:
        print(f"kvdb bench compare: {exc}", file=sys.stderr)
        return FAILED
    except KeyboardInterrupt:  # the clusters were stopped on the way out
        print("kvdb bench compare: interrupted", file=sys.stderr)
        return INTERRUPTED
    rows = ratio_rows(results)
    if gaps:
        rows.append(failover_row(gaps))
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / "comparison.json").write_text(json.dumps(rows, indent=2) + "\n")
    if results:
        print(format_table([r for r in rows if r["workload"] != FAILOVER]))
        for note in range_notes(rows):
            print(note)
    if gaps:
        print(format_failover(rows[-1]))
    for path in _plot(results, args.output_dir):
        print(path)
    return 0

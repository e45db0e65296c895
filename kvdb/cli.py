"""The ``kvdb`` command line.

Commands that arrive with later issues are listed in the help and fail with a one-line error,
so that scripts fail loudly instead of doing nothing.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from kvdb import __version__

PLANNED_COMMANDS = {
    "playground": "start a local cluster (PD + stores) in one command",
    "admin": "inspect and operate a cluster",
    "bench": "run throughput benchmarks against kvdb and etcd",
}


def _add_store_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("store", help="run a store server",
                       description="Run one store process in the foreground until SIGINT/SIGTERM.")
    p.add_argument("--store-id", type=int, required=True, help="this store's id (positive)")
    p.add_argument("--listen", required=True, help="HOST:PORT to serve gRPC on (port 0 picks one)")
    p.add_argument("--data-dir", type=Path, required=True, help="directory of the store's RocksDB")
    p.add_argument("--cluster-id", type=int, default=1, help="cluster id requests must carry (default 1)")
    p.add_argument("--pd", default="", help="placement driver members HOST:PORT,... (join a real cluster)")
    p.add_argument("--pd-heartbeat-interval", type=float, default=1.0,
                   help="seconds between heartbeats to PD (default 1)")
    p.add_argument("--static-cluster", default="",
                   help="developer bootstrap without PD: ID=HOST:PORT,... of every store; the first range "
                        "(all keys) gets a voter on each")
    p.add_argument("--test-failpoints", action="store_true",
                   help="enable the admin failpoints (message drop/delay, clock skew); tests only")
    p.add_argument("--ready-file", type=Path, help="write the bound port here once serving")
    p.add_argument("--tick-interval", type=float, help="seconds per Raft tick (default 0.05)")
    p.add_argument("--raft-log-gc-count-limit", type=int, help="truncate a log beyond this many entries")
    p.add_argument("--raft-log-gc-keep", type=int, help="entries kept when truncating the log")
    p.add_argument("--max-clock-drift", type=float, help="seconds of clock drift the lease allows for")
    p.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR (default INFO)")


def _add_pd_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pd", help="run a placement driver member",
                       description="Run one PD member in the foreground until SIGINT/SIGTERM.")
    p.add_argument("--member-id", type=int, required=True, help="this member's id (one of --initial-members)")
    p.add_argument("--listen", required=True, help="HOST:PORT to serve on (PD service and PD Raft)")
    p.add_argument("--data-dir", type=Path, required=True, help="directory of the member's RocksDB")
    p.add_argument("--initial-members", required=True,
                   help="ID=HOST:PORT,... of every PD member (an odd number; 3 recommended)")
    p.add_argument("--ready-file", type=Path, help="write the bound port here once serving")
    p.add_argument("--tick-interval", type=float, help="seconds per Raft tick (default 0.05)")
    p.add_argument("--replica-count", type=int, default=3, help="replicas per range (default 3)")
    p.add_argument("--store-down-ms", type=int, default=30_000,
                   help="a store silent this long is down and its replicas are rebuilt elsewhere")
    p.add_argument("--store-disconnect-ms", type=int, default=5_000,
                   help="a store silent this long is disconnected (not yet replaced)")
    p.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR (default INFO)")


def _setup_logging(level: str) -> None:
    log_format = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=level.upper(), format=log_format)


def _run_pd(args: argparse.Namespace) -> int:
    from kvdb.server.node import parse_static_cluster
    from kvdb.store.config import StoreConfig
    from placement.server import PdConfig, default_schedule, serve

    _setup_logging(args.log_level)
    store_cfg = StoreConfig()
    if args.tick_interval is not None:
        store_cfg.tick_interval = args.tick_interval
    schedule = default_schedule()
    try:
        if args.replica_count < 0 or args.store_down_ms < 0:
            raise ValueError("--replica-count and --store-down-ms cannot be negative")
        schedule.replica_count = args.replica_count
        schedule.store_down_ms = args.store_down_ms
        store_cfg.validate()
        members = parse_static_cluster(args.initial_members)
        config = PdConfig(member_id=args.member_id, listen=args.listen, data_dir=args.data_dir,
                          initial_members=members, store=store_cfg, schedule=schedule,
                          store_disconnect_ms=args.store_disconnect_ms)
        config.validate()
    except ValueError as exc:
        print(f"kvdb pd: {exc}", file=sys.stderr)
        return 2
    return _run(serve(config, args.ready_file), "kvdb pd")


def _run(coro: object, name: str) -> int:
    import uvloop

    try:
        uvloop.run(coro)
    except (OSError, ValueError) as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 1
    return 0


def _run_store(args: argparse.Namespace) -> int:
    from kvdb.server.node import NodeConfig, parse_static_cluster, serve
    from kvdb.store.config import StoreConfig

    _setup_logging(args.log_level)
    store_cfg = StoreConfig()
    for name in ("tick_interval", "raft_log_gc_count_limit", "raft_log_gc_keep", "max_clock_drift"):
        value = getattr(args, name)
        if value is not None:
            setattr(store_cfg, name, value)
    try:
        store_cfg.validate()
        static = parse_static_cluster(args.static_cluster) if args.static_cluster else {}
        if args.store_id <= 0:
            raise ValueError("--store-id must be positive")
        if static and args.store_id not in static:
            raise ValueError(f"store {args.store_id} is not in --static-cluster")
        if static and args.pd:
            raise ValueError("use either --pd or --static-cluster, not both")
    except ValueError as exc:
        print(f"kvdb store: {exc}", file=sys.stderr)
        return 2
    config = NodeConfig(store_id=args.store_id, listen=args.listen, data_dir=args.data_dir,
                        cluster_id=args.cluster_id, static_cluster=static, pd_endpoints=args.pd,
                        pd_heartbeat_interval=args.pd_heartbeat_interval,
                        test_failpoints=args.test_failpoints, store=store_cfg)
    return _run(serve(config, args.ready_file), "kvdb store")


def _build_parser() -> argparse.ArgumentParser:
    planned = "\n".join(f"  {name:<12} {text}" for name, text in PLANNED_COMMANDS.items())
    parser = argparse.ArgumentParser(
        prog="kvdb",
        description="kvdb: a sharded, multi-Raft, transactional key-value database.",
        epilog=f"commands arriving in later issues:\n{planned}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"kvdb {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_store_parser(sub)
    _add_pd_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the process exit status (2 for a command that does not exist yet)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and not argv[0].startswith("-") and argv[0] not in ("store", "pd"):
        if argv[0] in PLANNED_COMMANDS:
            print(f"kvdb: '{argv[0]}' is not implemented yet (arrives in a later issue)", file=sys.stderr)
        else:
            known = ", ".join(["store", "pd", *PLANNED_COMMANDS])
            print(f"kvdb: unknown command '{argv[0]}' (commands: {known}; see kvdb --help)", file=sys.stderr)
        return 2
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return _run_pd(args) if args.command == "pd" else _run_store(args)

"""The ``kvdb`` command line.

Commands that arrive with later issues are listed in the help and fail with a one-line error,
so that scripts fail loudly instead of doing nothing.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

# gRPC's C core logs every refused TLS handshake at INFO on stderr, before our one-line error;
# read once, when grpc is first imported (below). GRPC_VERBOSITY=INFO brings the lines back.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
from pathlib import Path
from typing import NoReturn

from kvdb import __version__
from kvdb.config_file import apply_config_file, byte_size, require
from kvdb.net.tls_options import add_tls_flags, log_tls_mode, tls_from_args

PLANNED_COMMANDS: dict[str, str] = {}
DEFAULT_PD_ENDPOINTS = "127.0.0.1:2379"
DEFAULT_TIMEOUT = 10.0
NOT_FOUND, USAGE, FAILED = 1, 2, 3
"""Exit statuses of the client commands: a missing key, bad arguments or input, a failed request."""
DENIED = 1
"""Exit status of a request the certificate's role may not make (docs/security.md "Roles")."""


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line (argparse prints the whole usage first), so scripts see one error."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(USAGE)


def _add_store_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("store", help="run a store server",
                       description="Run one store process in the foreground until SIGINT/SIGTERM.")
    p.add_argument("--config", type=Path, help="TOML file whose keys are these flags (flags win)")
    p.add_argument("--store-id", type=int,
                   help="this store's id (default: the data dir's, or PD allocates one at first start)")
    p.add_argument("--listen", help="HOST:PORT to serve gRPC on (port 0 picks one; required)")
    p.add_argument("--advertise-address", default="",
                   help="HOST:PORT other nodes and clients dial (default: --listen; port 0 or none: the "
                        "bound port); required when --listen is a wildcard such as 0.0.0.0")
    _add_raft_port_flag(p)
    p.add_argument("--kv-port", type=int, default=0,
                   help="TCP port of the clients' KV stream on the --listen host (default 0: any free one, "
                        "which clients learn through the gRPC port; fix it for a firewall)")
    p.add_argument("--labels", default="", help="where the store stands for placement, KEY=VALUE,... "
                                                "(e.g. zone=a,rack=r1; needs --pd)")
    p.add_argument("--data-dir", type=Path, help="directory of the store's RocksDB (required)")
    p.add_argument("--cluster-id", type=int, default=1, help="cluster id requests must carry (default 1)")
    p.add_argument("--pd", default="", help="placement driver members HOST:PORT,... (join a real cluster)")
    p.add_argument("--pd-heartbeat-interval", type=float, default=1.0,
                   help="seconds between heartbeats to PD (default 1)")
    p.add_argument("--static-cluster", default="",
                   help="developer bootstrap without PD: ID=HOST:PORT,... of every store; the first range "
                        "(all keys) gets a voter on each")
    p.add_argument("--test-failpoints", action="store_true",
                   help="enable the admin failpoints (message drop/delay, clock skew); tests only")
    _add_metrics_flag(p)
    p.add_argument("--ready-file", type=Path, help="write the bound port here once serving")
    p.add_argument("--tick-interval", type=float, help="seconds per Raft tick (default 0.05)")
    p.add_argument("--wal-recycle-size", type=byte_size, dest="wal_recycle_bytes",
                   help="size of the WAL files filled at start and reused for synced writes, e.g. 32MiB "
                        "(default 32MiB; 0: append to new files)")
    p.add_argument("--raft-log-gc-count-limit", type=int, help="truncate a log beyond this many entries")
    p.add_argument("--raft-log-gc-keep", type=int, help="entries kept when truncating the log")
    p.add_argument("--max-clock-drift", type=float, help="seconds of clock drift the lease allows for")
    p.add_argument("--session-ttl", type=float,
                   help="seconds of log time an idle client session is kept for deduplication (default 600)")
    p.add_argument("--max-range-size", type=byte_size,
                   help="split a range beyond this many bytes, e.g. 256KiB (default: the cluster's, 96MiB)")
    p.add_argument("--load-split-qps", type=float,
                   help="split a range whose requests per second stay this high (default 3000; 0: never)")
    p.add_argument("--load-split-seconds", type=float,
                   help="... for this many seconds (default 10)")
    p.add_argument("--load-split-cpu", type=float,
                   help="... while the store uses this fraction of a core (default 0.8; 0: by QPS alone)")
    p.add_argument("--split-check-interval", type=float, help="seconds between split checks (default 1)")
    p.add_argument("--hibernate", action=argparse.BooleanOptionalAction, default=None,
                   help="idle ranges stop ticking and heartbeating (default on)")
    p.add_argument("--hibernate-idle-ticks", type=int,
                   help="ticks a range leader must be idle before the range hibernates (default 20)")
    add_tls_flags(p, from_env=False)
    p.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR (default INFO)")


def _add_raft_port_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--raft-port", type=int, default=0,
                   help="TCP port of Raft messages from peers on the --listen host (default 0: any free one, "
                        "which peers learn through the gRPC port; fix it for a firewall)")


def _add_metrics_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--metrics-listen", default="",
                   help="HOST:PORT to serve Prometheus metrics on, at /metrics (port 0: any; default: off)")


def _add_pd_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pd", help="run a placement driver member",
                       description="Run one PD member in the foreground until SIGINT/SIGTERM.")
    p.add_argument("--config", type=Path, help="TOML file whose keys are these flags (flags win)")
    p.add_argument("--member-id", type=int,
                   help="this member's id (one of --initial-members, or the id AddMember gave; required)")
    p.add_argument("--listen", help="HOST:PORT to serve on (PD service and PD Raft; required)")
    p.add_argument("--advertise-address", default="",
                   help="HOST:PORT the other members, stores and clients dial (default: --listen); must be "
                        "this member's entry in --initial-members; required when --listen is a wildcard")
    _add_raft_port_flag(p)
    p.add_argument("--data-dir", type=Path, help="directory of the member's RocksDB (required)")
    p.add_argument("--initial-members",
                   help="ID=HOST:PORT,... of every founding PD member (an odd number; 3 recommended)")
    p.add_argument("--join", help="HOST:PORT,... of members of a running PD to join (instead of "
                                  "--initial-members; add the member first: kvdb admin members add)")
    _add_metrics_flag(p)
    p.add_argument("--ready-file", type=Path, help="write the bound port here once serving")
    p.add_argument("--tick-interval", type=float,
                   help="seconds per Raft tick (default 0.03: a shorter PD election than a range's)")
    p.add_argument("--wal-recycle-size", type=byte_size, dest="wal_recycle_bytes",
                   help="size of the WAL files filled at start and reused for synced writes, e.g. 32MiB "
                        "(default 32MiB; 0: append to new files)")
    p.add_argument("--replica-count", type=int, default=3, help="replicas per range (default 3)")
    p.add_argument("--store-down-ms", type=int, default=30_000,
                   help="a store silent this long is down and its replicas are rebuilt elsewhere")
    p.add_argument("--store-disconnect-ms", type=int, default=5_000,
                   help="a store silent this long is disconnected (not yet replaced)")
    add_tls_flags(p, from_env=False)
    p.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR (default INFO)")


def _setup_logging(level: str) -> None:
    log_format = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=level.upper(), format=log_format)


def _run_pd(args: argparse.Namespace) -> int:
    from kvdb.server.addresses import check_listener_ports, check_member_address, check_metrics_listen
    from kvdb.server.node import parse_static_cluster
    from placement.server import PdConfig, default_schedule, pd_store_config, serve

    _setup_logging(args.log_level)
    store_cfg = pd_store_config()
    for name in ("tick_interval", "wal_recycle_bytes"):
        value = getattr(args, name)
        if value is not None:
            setattr(store_cfg, name, value)
    schedule = default_schedule()
    try:
        if args.replica_count < 0 or args.store_down_ms < 0:
            raise ValueError("--replica-count and --store-down-ms cannot be negative")
        schedule.replica_count = args.replica_count
        schedule.store_down_ms = args.store_down_ms
        store_cfg.validate()
        if (args.initial_members is None) == (args.join is None):
            raise ValueError("give either --initial-members (a new PD) or --join (a running one)")
        members = parse_static_cluster(args.initial_members) if args.join is None else {}
        join = [] if args.join is None else _check_endpoints(args.join, "--join").split(",")
        config = PdConfig(member_id=args.member_id, listen=args.listen, data_dir=args.data_dir,
                          initial_members=members, join=join, store=store_cfg, schedule=schedule,
                          store_disconnect_ms=args.store_disconnect_ms, metrics_listen=args.metrics_listen,
                          raft_port=args.raft_port, tls=tls_from_args(args))
        config.validate()
        check_member_address(args.member_id, members, args.listen, args.advertise_address)
        check_listener_ports(args.listen, {"--raft-port": args.raft_port})
        check_metrics_listen(args.metrics_listen)
    except ValueError as exc:
        print(f"kvdb pd: {exc}", file=sys.stderr)
        return 2
    log_tls_mode(logging.getLogger("kvdb.pd"), config.tls, args.listen)
    return _run(serve(config, args.ready_file), "kvdb pd")


def _run(coro: object, name: str) -> int:
    import uvloop

    from kvdb.pdclient.client import PdError

    try:
        uvloop.run(coro)
    except (OSError, ValueError, PdError) as exc:  # e.g. PD unreachable, or refusing our certificate
        print(f"{name}: {exc}", file=sys.stderr)
        return 1
    return 0


def _run_store(args: argparse.Namespace) -> int:
    from kvdb.labels import parse_labels
    from kvdb.server.addresses import check_addresses, check_listener_ports, check_metrics_listen
    from kvdb.server.node import NodeConfig, parse_static_cluster, serve
    from kvdb.store.config import StoreConfig

    _setup_logging(args.log_level)
    store_cfg = StoreConfig()
    for name in ("tick_interval", "raft_log_gc_count_limit", "raft_log_gc_keep", "max_clock_drift",
                 "session_ttl", "hibernate", "hibernate_idle_ticks", "max_range_size", "load_split_qps",
                 "load_split_seconds", "load_split_cpu", "split_check_interval", "wal_recycle_bytes"):
        value = getattr(args, name)
        if value is not None:
            setattr(store_cfg, name, value)
    try:
        store_cfg.validate()
        static = parse_static_cluster(args.static_cluster) if args.static_cluster else {}
        if args.store_id is not None and args.store_id <= 0:
            raise ValueError("--store-id must be positive")
        if not args.pd and args.store_id is None:
            raise ValueError("--store-id is required without --pd (only PD allocates store ids)")
        if static and args.store_id not in static:
            raise ValueError(f"store {args.store_id} is not in --static-cluster")
        if static and args.pd:
            raise ValueError("use either --pd or --static-cluster, not both")
        check_addresses(args.listen, args.advertise_address)
        check_listener_ports(args.listen, {"--raft-port": args.raft_port, "--kv-port": args.kv_port})
        check_metrics_listen(args.metrics_listen)
        labels = parse_labels(args.labels)
        if labels and not args.pd:
            raise ValueError("--labels needs --pd (labels are for PD's placement)")
        tls = tls_from_args(args)
    except ValueError as exc:
        print(f"kvdb store: {exc}", file=sys.stderr)
        return 2
    config = NodeConfig(store_id=args.store_id or 0, listen=args.listen, data_dir=args.data_dir,
                        advertise=args.advertise_address, labels=labels,
                        cluster_id=args.cluster_id, static_cluster=static, pd_endpoints=args.pd,
                        pd_heartbeat_interval=args.pd_heartbeat_interval,
                        test_failpoints=args.test_failpoints, metrics_listen=args.metrics_listen,
                        raft_port=args.raft_port, kv_port=args.kv_port, store=store_cfg, tls=tls)
    log_tls_mode(logging.getLogger("kvdb.store"), tls, args.listen)
    return _run(serve(config, args.ready_file), "kvdb store")


def _add_playground_parser(sub: argparse._SubParsersAction) -> None:
    from kvdb import playground as pg

    p = sub.add_parser(
        "playground", help="run a local cluster (PD members + stores) in the foreground",
        description="Start PD members and stores on 127.0.0.1, print 'kvdb playground ready: pd=...' once "
                    "the cluster serves, run until Ctrl-C/SIGTERM. PD members listen on BASE-PORT.., stores "
                    "on the ports after them. Running it again on the same data dir resumes with the data "
                    "(and the ports) of the last run.")
    p.add_argument("--data-dir", type=Path, default=pg.DEFAULT_DATA_DIR,
                   help=f"data, logs and pid files (default ./{pg.DEFAULT_DATA_DIR})")
    p.add_argument("--pd", type=int, help=f"PD members, an odd number (default {pg.DEFAULT_PD})")
    p.add_argument("--stores", type=int, help=f"stores (default {pg.DEFAULT_STORES})")
    p.add_argument("--base-port", type=int, help=f"first port (default {pg.DEFAULT_BASE_PORT})")
    p.add_argument("--labels", action="append", metavar="KEY=VALUE,...",
                   help="store labels dealt round robin: --labels zone=a,b,c puts store 1 in zone a, store 2 "
                        "in b, store 3 in c, store 4 in a...; repeat for more keys (kept for later runs; "
                        "--labels '' drops them)")
    p.add_argument("--ready-timeout", type=float, default=pg.DEFAULT_READY_TIMEOUT,
                   help=f"seconds the cluster may take to serve (default {pg.DEFAULT_READY_TIMEOUT:.0f})")
    p.add_argument("--tls", action=argparse.BooleanOptionalAction, default=None,
                   help="mutual TLS everywhere: certificates in DATA_DIR/certs (made unless there: a CA, "
                        "a node certificate, a client 'root' with role admin); the ready line is followed "
                        "by the KVDB_CA/KVDB_CERT/KVDB_KEY exports that connect (kept for later runs; "
                        "--no-tls: plaintext again)")


def _add_client_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pd", default=os.environ.get("KVDB_PD") or DEFAULT_PD_ENDPOINTS,
                   help=f"PD members HOST:PORT,... (default $KVDB_PD or {DEFAULT_PD_ENDPOINTS})")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                   help=f"seconds before giving up (default {DEFAULT_TIMEOUT:.0f})")
    add_tls_flags(p, from_env=True)


def _add_kv_parsers(sub: argparse._SubParsersAction) -> None:
    hex_help = "KEY/VALUE arguments and the output are hex (for bytes that are not text)"
    for name, helptext, args in (("put", "write KEY = VALUE", ["key", "value"]),
                                 ("get", "print the value of KEY (exit 1 if there is none)", ["key"]),
                                 ("delete", "delete KEY (no error if it does not exist)", ["key"])):
        p = sub.add_parser(name, help=helptext, description=helptext[0].upper() + helptext[1:] + ".")
        for arg in args:
            p.add_argument(arg, metavar=arg.upper())
        p.add_argument("--hex", action="store_true", help=hex_help)
        _add_client_flags(p)
    p = sub.add_parser("scan", help="print the pairs in [START, END), one 'KEY<TAB>VALUE' per line",
                       description="Print the pairs with START <= key < END in key order, one "
                                   "'KEY<TAB>VALUE' per line. As text, bytes that are not UTF-8 are shown "
                                   "as \\xNN and backslash, tab, newline and CR are escaped.")
    p.add_argument("start", metavar="START", nargs="?", default="", help="first key (default: the smallest)")
    p.add_argument("end", metavar="END", nargs="?", default="", help="end key, excluded (default: no end)")
    p.add_argument("--limit", type=int, default=100, help="at most this many pairs (default 100)")
    p.add_argument("--reverse", action="store_true", help="from END down to START")
    p.add_argument("--hex", action="store_true", help=hex_help)
    _add_client_flags(p)
    p = sub.add_parser("txn", help="run put/delete/get operations as one atomic transaction",
                       description="Run the operations in order as one transaction: the gets read the "
                                   "snapshot at its start (and its own earlier puts), the puts and deletes "
                                   "commit atomically, across ranges. Prints 'KEY<TAB>VALUE' per get (exit "
                                   "1 if a key is missing); a write conflict fails with exit 3 and writes "
                                   "nothing.",
                       epilog="e.g. kvdb txn put k1 v1 put k2 v2 delete k3;  kvdb txn get k1 k2")
    p.add_argument("ops", metavar="OP", nargs="+",
                   help="put KEY VALUE | delete KEY... | get KEY...")
    p.add_argument("--json", action="store_true",
                   help="print {start_ts, commit_ts, reads: {KEY: VALUE or null}} instead")
    p.add_argument("--hex", action="store_true", help=hex_help)
    _add_client_flags(p)


def _check_endpoints(spec: str, flag: str = "--pd") -> str:
    """The ``--pd`` (``flag``) value if every item is HOST:PORT; a typo should fail at once, not at the
    timeout."""
    items = [item.strip() for item in spec.split(",") if item.strip()]
    for item in items:
        host, sep, port = item.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{flag}: '{item}' is not HOST:PORT")
    if not items:
        raise ValueError(f"{flag} names no PD member")
    return ",".join(items)


def _decode_arg(args: argparse.Namespace, name: str) -> bytes:
    return _decode_key(getattr(args, name), args.hex, name.upper())


def _decode_key(text: str, as_hex: bool, name: str = "KEY") -> bytes:
    if not as_hex:
        return text.encode("utf-8", "surrogateescape")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"{name} is not hex: {text!r}") from None


def _kv(args: argparse.Namespace, endpoints: str) -> int:
    import kvdb
    from kvdb.admin import show_key

    # Bad input fails before connecting, so it is reported as such even when the cluster is down.
    keys = {name: _decode_arg(args, name) for name in ("key", "value", "start", "end") if hasattr(args, name)}
    if args.command == "scan" and args.limit < 1:
        raise ValueError(f"--limit must be positive, got {args.limit}")
    show = bytes.hex if args.hex else show_key
    with kvdb.connect(endpoints, timeout=args.timeout, tls=tls_from_args(args)) as client:
        if args.command == "put":
            client.put(keys["key"], keys["value"])
        elif args.command == "delete":
            client.delete(keys["key"])
        elif args.command == "get":
            value = client.get(keys["key"])
            if value is None:
                print(f"kvdb get: not found: {args.key}", file=sys.stderr)
                return NOT_FOUND
            if not args.hex:
                try:
                    value.decode("utf-8")
                except UnicodeDecodeError:
                    print("kvdb get: the value is not UTF-8 text; use --hex", file=sys.stderr)
                    return USAGE
            sys.stdout.buffer.write(value.hex().encode() if args.hex else value)
            sys.stdout.buffer.write(b"\n")
        else:
            pairs = client.scan(start=keys["start"], end=keys["end"], limit=args.limit, reverse=args.reverse)
            for key, value in pairs:
                print(f"{show(key)}\t{show(value)}")
    return 0


TXN_OPS = {"put": 2, "delete": 1, "get": 1}
"""Operations of ``kvdb txn`` and their arguments; delete and get take any number of keys."""


def parse_txn_ops(tokens: list[str], as_hex: bool) -> list[tuple[str, bytes, bytes]]:
    """``put K V delete K... get K...`` as (op, key, value) in order; ValueError names the mistake."""
    ops: list[tuple[str, bytes, bytes]] = []
    current = ""
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token in TXN_OPS:
            current = token
            i += 1
            if i == len(tokens) or tokens[i] in TXN_OPS:
                raise ValueError(f"'{token}' needs {'KEY VALUE' if token == 'put' else 'KEY'}")
            continue
        if not current:
            raise ValueError(f"'{token}' is not an operation (put, delete, get)")
        if current == "put":
            if i + 1 == len(tokens):
                raise ValueError(f"put {token}: missing VALUE")
            ops.append(("put", _decode_key(token, as_hex), _decode_key(tokens[i + 1], as_hex, "VALUE")))
            current, i = "", i + 2
        else:
            ops.append((current, _decode_key(token, as_hex), b""))
            i += 1
    if any(not key for _, key, _ in ops):
        raise ValueError("a KEY is empty")
    return ops


def _txn(args: argparse.Namespace, endpoints: str) -> int:
    import json

    import kvdb
    from kvdb.admin import show_key

    ops = parse_txn_ops(args.ops, args.hex)
    show = bytes.hex if args.hex else show_key
    reads: dict[bytes, bytes | None] = {}
    with kvdb.connect(endpoints, timeout=args.timeout, tls=tls_from_args(args)) as client, \
            client.transaction() as txn:
        for op, key, value in ops:
            if op == "put":
                txn.put(key, value)
            elif op == "delete":
                txn.delete(key)
            else:
                reads[key] = txn.get(key)
    missing = [show(k) for k, v in reads.items() if v is None]
    if args.json:
        shown = {show(k): None if v is None else show(v) for k, v in reads.items()}
        print(json.dumps({"start_ts": txn.start_ts, "commit_ts": txn.commit_ts, "reads": shown}))
    else:
        for key, value in reads.items():
            if value is not None:
                print(f"{show(key)}\t{show(value)}")
    if missing:
        print(f"kvdb txn: not found: {' '.join(missing)}", file=sys.stderr)
        return NOT_FOUND
    return 0


def _admin(args: argparse.Namespace, endpoints: str) -> int:
    from kvdb.admin_cli import run_admin

    return run_admin(args, endpoints, _decode_key)


def _run_client_command(args: argparse.Namespace) -> int:
    """Runs put/get/delete/scan/txn/admin: every failure is one line on stderr and a non-zero status."""
    from kvdb.errors import KvdbError, PermissionDeniedError
    from kvdb.pdclient.client import PdError

    name = f"kvdb {args.command}" + (f" {args.what}" if args.command == "admin" else "")
    try:
        endpoints = _check_endpoints(args.pd)
        if args.timeout <= 0:
            raise ValueError(f"--timeout must be positive, got {args.timeout}")
        if args.command == "txn":
            return _txn(args, endpoints)
        return _admin(args, endpoints) if args.command == "admin" else _kv(args, endpoints)
    except ValueError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return USAGE
    except PermissionDeniedError as exc:  # the certificate's role: docs/security.md "Roles"
        print(f"{name}: permission denied: {_one_line(exc)}", file=sys.stderr)
        return DENIED
    except (KvdbError, PdError) as exc:
        print(f"{name}: {type(exc).__name__}: {_one_line(exc)}", file=sys.stderr)
        return FAILED
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (kvdb scan | head): nothing left to report to
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # the contract is one line, even for a bug; the type names it
        print(f"{name}: unexpected {type(exc).__name__}: {_one_line(exc)}", file=sys.stderr)
        return FAILED


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or "(no message)"


COMMANDS = ("store", "pd", "playground", "put", "get", "delete", "scan", "txn", "admin", "certs", "bench")


def _build_parser() -> argparse.ArgumentParser:
    planned = "\n".join(f"  {name:<12} {text}" for name, text in PLANNED_COMMANDS.items())
    from kvdb.admin_cli import add_admin_parser
    from kvdb.certs_cli import add_certs_parser

    parser = _Parser(
        prog="kvdb",
        description="kvdb: a sharded, multi-Raft, transactional key-value database.",
        epilog=f"commands arriving in later issues:\n{planned}" if planned else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"kvdb {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_playground_parser(sub)
    _add_kv_parsers(sub)
    add_admin_parser(sub, _add_client_flags)
    add_certs_parser(sub)
    _add_store_parser(sub)
    _add_pd_parser(sub)
    sub.add_parser("bench", help="throughput/latency benchmarks against kvdb and etcd (kvdb bench --help)",
                   add_help=False)
    return parser


def _subparser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[command]


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the process exit status (2 for bad usage or a command that does not exist yet)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "bench":  # its options live with the benchmark (bench/cli.py)
        from bench.cli import main as bench_main

        return bench_main(argv[1:])
    if argv and not argv[0].startswith("-") and argv[0] not in COMMANDS:
        if argv[0] in PLANNED_COMMANDS:
            print(f"kvdb: '{argv[0]}' is not implemented yet (arrives in a later issue)", file=sys.stderr)
        else:
            known = ", ".join([*COMMANDS, *PLANNED_COMMANDS])
            print(f"kvdb: unknown command '{argv[0]}' (commands: {known}; see kvdb --help)", file=sys.stderr)
        return USAGE
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if args.command in ("pd", "store"):
        required = ("member_id", "listen", "data_dir") if args.command == "pd" else ("listen", "data_dir")
        try:
            apply_config_file(_subparser(parser, args.command), args, argv)
            require(args, *required)
        except ValueError as exc:
            print(f"kvdb {args.command}: {exc}", file=sys.stderr)
            return USAGE
        return _run_pd(args) if args.command == "pd" else _run_store(args)
    if args.command == "certs":
        from kvdb.certs_cli import run_certs

        return run_certs(args)
    if args.command == "playground":
        from kvdb.playground import run_playground

        return run_playground(args.data_dir, args.pd, args.stores, args.base_port, args.ready_timeout,
                              args.labels, args.tls)
    return _run_client_command(args)

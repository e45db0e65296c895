"""``kvdb admin``'s command line: the parsers of its commands, and running one.

Every command takes ``--pd``, ``--json`` and ``--timeout``. Arguments are checked before PD is
contacted (a ValueError here is a usage error, exit 2, even when the cluster is down); what PD
refuses comes back as a PdError (exit 3). Mutations print what they did. The data and the text
tables live in ``kvdb.admin``; here only the wiring.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Coroutine
from functools import partial
from typing import Any

from kvdb import admin
from kvdb.client.gc import parse_duration_ms
from kvdb.labels import format_labels, parse_labels

AddFlags = Callable[[argparse.ArgumentParser], None]
Fetch = Callable[[Any], Coroutine[Any, Any, Any]]
Render = Callable[[Any], str]
WAITS = ("move-replica", "transfer-leader")
FAILED = 3


def _positive(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if number <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {number}")
    return number


def add_admin_parser(sub: argparse._SubParsersAction, add_client_flags: AddFlags) -> None:
    p = sub.add_parser("admin", help="see and steer the cluster through PD (kvdb admin --help)",
                       description="See and steer the cluster through PD: lists as a table, or JSON with "
                                   "--json; changes print what they did. docs/operations.md has the runbook.")
    what = p.add_subparsers(dest="what", metavar="WHAT", required=True)

    def command(name: str, helptext: str, description: str = "") -> argparse.ArgumentParser:
        description = description or helptext[0].upper() + helptext[1:] + "."
        q = what.add_parser(name, help=helptext, description=description)
        q.add_argument("--json", action="store_true", help="JSON instead of text")
        add_client_flags(q)
        return q

    command("stores", "stores: id, address, state, range and leader counts, labels")
    command("ranges", "ranges: id, start, end, epoch, replicas, leader (JSON keys are hex)")
    q = command("members", "PD members; 'members add ADDRESS' / 'members remove ID' change them",
                "List the PD members (id, address, leader), or add one (as a learner, promoted once it "
                "has caught up) or remove one. See docs/operations.md, 'Replacing a PD member'.")
    q.add_argument("action", nargs="?", choices=["add", "remove"], help="add or remove a member")
    q.add_argument("target", nargs="?", metavar="ADDRESS|ID",
                   help="the new member's HOST:PORT, or the id to remove")
    q = command("split", "split ranges so that each KEY starts one; prints the ranges starting at the keys",
                "Split the ranges holding the KEYs so that each KEY starts a range, through PD (the ranges' "
                "leaders split them), and print the ranges that start at the keys once the splits are "
                "applied. A KEY already starting a range is left as it is. --timeout bounds the wait.")
    q.add_argument("keys", metavar="KEY", nargs="+", help="a split key")
    q.add_argument("--hex", action="store_true", help="the KEYs are hex (for bytes that are not text)")
    wait_help = "wait until the operator ends and print how (--timeout bounds the wait)"
    q = command("move-replica", "move a range's replica from one store to another",
                "Move RANGE's replica on store FROM to store TO (a new learner catches up, then replaces the "
                "old replica in one joint membership change; a leader hands over first).")
    q.add_argument("range_id", metavar="RANGE", type=_positive, help="range id")
    q.add_argument("--from", dest="from_store", metavar="STORE", type=_positive, required=True)
    q.add_argument("--to", dest="to_store", metavar="STORE", type=_positive, required=True)
    q.add_argument("--wait", action="store_true", help=wait_help)
    q = command("transfer-leader", "move a range's leadership to its replica on STORE")
    q.add_argument("range_id", metavar="RANGE", type=_positive, help="range id")
    q.add_argument("store_id", metavar="STORE", type=_positive, help="the store whose replica is to lead")
    q.add_argument("--wait", action="store_true", help=wait_help)
    q = command("decommission", "move every replica off STORE, then retire it (--cancel: keep it)",
                "Decommission STORE: it goes OFFLINE, PD moves its replicas to other stores, and once it "
                "holds none it is a TOMBSTONE (it may then be shut down for good). --cancel, while it is "
                "still OFFLINE, makes it UP again; replicas already moved stay where they are.")
    q.add_argument("store_id", metavar="STORE", type=_positive, help="store id")
    q.add_argument("--cancel", action="store_true", help="cancel the decommission")
    q = command("operators", "operators in flight (--all: and recently finished; --cancel ID)")
    q.add_argument("--all", action="store_true", help="also the recently finished ones")
    q.add_argument("--cancel", metavar="ID", type=_positive, help="cancel this operator")
    q = command("schedulers", "schedulers; 'pause NAME', 'resume NAME', 'evict-leader STORE [--cancel]'",
                "List the schedulers (paused or not, operators created and running), pause or resume one "
                "by name, or make evict-leader move every leader off STORE (--cancel: stop).")
    q.add_argument("action", nargs="?", choices=["pause", "resume", "evict-leader"])
    q.add_argument("target", nargs="?", metavar="NAME|STORE")
    q.add_argument("--cancel", action="store_true", help="with evict-leader: stop evicting from STORE")
    q = command("config", "the schedule settings; 'config set KEY VALUE' changes one",
                "Show the schedule settings in effect, or set one (replicated: every PD member and every new "
                "leader uses it). Lists are comma-separated; +ITEM / -ITEM adds or drops one item.")
    q.add_argument("action", nargs="?", choices=["show", "set"], default="show")
    q.add_argument("setting", nargs="*", metavar="KEY VALUE")
    q = command("store-labels", "replace STORE's labels, e.g. zone=a (placement spreads replicas by them)")
    q.add_argument("store_id", metavar="STORE", type=_positive, help="store id")
    q.add_argument("labels", metavar="KEY=VALUE", nargs="+", help="a label")
    command("status", "one screen: members, stores by state, ranges, operators in flight, imbalance")
    q = command("gc", "MVCC garbage collection: resolve old locks, raise the GC safe point",
                "Raise the MVCC GC safe point to now - KEEP (default 10m) or to TS: first resolve every "
                "lock of a transaction that started at or below it, then tell PD; stores then drop the "
                "versions no snapshot at or above it can see. Snapshots below the safe point are no "
                "longer readable. See docs/operations.md, 'Garbage collection'.")
    when = q.add_mutually_exclusive_group()
    when.add_argument("--keep", metavar="DURATION",
                      help="keep snapshots this far back readable (10m, 1h, 90s)")
    when.add_argument("--safe-point", metavar="TS", type=_positive, help="this timestamp, as the safe point")


def _fetch(args: argparse.Namespace, decode_key: Callable[[str, bool], bytes]) -> tuple[Fetch, Render]:
    """What to ask PD and how to show the answer as text; ValueError for bad arguments."""
    what = args.what
    if what in ("stores", "ranges"):
        return getattr(admin, what), partial(admin.table, what)
    if what == "members":
        if args.action is None:
            if args.target is not None:
                raise ValueError(f"unexpected argument {args.target!r} (members add ADDRESS | remove ID)")
            return admin.members, partial(admin.table, "members")
        if args.target is None:
            raise ValueError(f"members {args.action} needs {'ADDRESS' if args.action == 'add' else 'ID'}")
        if args.action == "add":
            _check_address(args.target)
            return partial(admin.add_member, address=args.target), _added_member_text
        member_id = _positive_arg("ID", args.target)
        return (partial(admin.remove_member, member_id=member_id),
                lambda rows: f"removed PD member {member_id}\n" + admin.table("members", rows))
    if what == "split":
        keys = [decode_key(text, args.hex) for text in args.keys]
        if b"" in keys:
            raise ValueError("an empty KEY cannot be a split key (the first range starts there)")
        return partial(admin.split, keys=keys, timeout=args.timeout), partial(admin.table, "ranges")
    if what == "move-replica":
        if args.from_store == args.to_store:
            raise ValueError("--from and --to name the same store")
        return (partial(admin.move_replica, range_id=args.range_id, from_store=args.from_store,
                                  to_store=args.to_store), _operator_text)
    if what == "transfer-leader":
        return (partial(admin.transfer_leader, range_id=args.range_id, to_store=args.store_id),
                _operator_text)
    if what == "decommission":
        return partial(admin.decommission, store_id=args.store_id, cancel=args.cancel), _decommission_text
    if what == "operators":
        if args.cancel is not None:
            if args.all:
                raise ValueError("--cancel and --all do not go together")
            return partial(admin.cancel_operator, operator_id=args.cancel), _cancel_text
        return partial(admin.operators, include_finished=args.all), partial(admin.table, "operators")
    if what == "schedulers":
        return _schedulers(args)
    if what == "config":
        if args.action == "show":
            if args.setting:
                raise ValueError("config show takes no arguments (config set KEY VALUE)")
            return admin.config, lambda row: admin.table("config", [row])
        if len(args.setting) != 2:
            raise ValueError("config set needs KEY VALUE")
        key, value = args.setting
        return (partial(admin.set_config, key=key, value=value),
                lambda row: f"{key} = {_setting_text(row[key])}")
    if what == "store-labels":
        labels = parse_labels(",".join(args.labels), "KEY=VALUE")
        return (partial(admin.store_labels, store_id=args.store_id, labels=labels),
                lambda r: f"store {r['id']} labels: {format_labels(r['labels'])}")
    if what == "gc":
        keep_ms = parse_duration_ms(args.keep) if args.keep is not None else None
        return (partial(admin.gc, keep_ms=keep_ms, safe_point=args.safe_point, timeout=args.timeout),
                admin.gc_text)
    return admin.status, admin.status_text


def _schedulers(args: argparse.Namespace) -> tuple[Fetch, Render]:
    if args.cancel and args.action != "evict-leader":
        raise ValueError("--cancel goes with evict-leader")
    if args.action is None:
        if args.target is not None:
            raise ValueError(f"unexpected argument {args.target!r} (schedulers pause|resume NAME)")
        return admin.schedulers, partial(admin.table, "schedulers")
    if args.target is None:
        needed = "STORE" if args.action == "evict-leader" else "NAME"
        raise ValueError(f"schedulers {args.action} needs {needed}")
    if args.action == "evict-leader":
        store_id = _positive_arg("STORE", args.target)
        doing = "stopped evicting leaders from" if args.cancel else "evicting leaders from"
        return (partial(admin.evict_leader, store_id=store_id, cancel=args.cancel),
                lambda row: f"{doing} store {store_id}; now evicting from: "
                            f"{_setting_text(row['evict_leader_stores']) or 'none'}")
    resume = args.action == "resume"
    return (partial(admin.pause_scheduler, name=args.target, resume=resume),
            lambda row: f"scheduler {row['name']} {'paused' if row['paused'] else 'running'}")


def _positive_arg(name: str, text: str) -> int:
    try:
        return _positive(text)
    except argparse.ArgumentTypeError as exc:
        raise ValueError(f"{name}: {exc}") from None


def _check_address(text: str) -> None:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"ADDRESS {text!r} is not HOST:PORT")


def _setting_text(value: object) -> str:
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


def _operator_text(row: admin.Row) -> str:
    if row["status"] == "running":
        return f"operator {row['id']} started: {row['description']} ({row['steps']} steps)"
    took = (row["finished_ms"] - row["created_ms"]) / 1000
    return f"operator {row['id']} ended {row['status']} after {took:.1f}s: {row['description']}"


def _added_member_text(row: admin.Row) -> str:
    new = row["member"]
    others = ",".join(m["address"] for m in row["members"] if m["id"] != new["id"])
    return (f"added PD member {new['id']} at {new['address']} as a learner; start it on its host with\n"
            f"  kvdb pd --member-id {new['id']} --listen {new['address']} --data-dir DIR --join {others}\n"
            + admin.table("members", row["members"]))


def _cancel_text(row: admin.Row) -> str:
    if row["status"] == "cancelled":
        return f"operator {row['id']} cancelled: {row['description']} (steps done so far stay done)"
    return f"operator {row['id']} had already ended ({row['status']}): {row['description']}"


def _decommission_text(row: admin.Row) -> str:
    if row["state"] == "OFFLINE":
        return (f"store {row['id']} is OFFLINE: PD is moving its {row['ranges']} replicas off; it becomes "
                "TOMBSTONE once empty")
    return f"store {row['id']} is {row['state']}: not being decommissioned"


def run_admin(args: argparse.Namespace, endpoints: str, decode_key: Callable[[str, bool], bytes]) -> int:
    """Runs one ``kvdb admin`` command; errors propagate to the caller's one-line reporting."""
    from kvdb.net.tls_options import tls_from_args
    from kvdb.pdclient.client import PdClient, PdError

    fetch, text = _fetch(args, decode_key)
    tls = tls_from_args(args)
    waits = args.what in WAITS and args.wait

    async def run() -> Any:
        async with PdClient(endpoints, timeout=args.timeout, tls=tls) as pd:
            result = await fetch(pd)
            if waits:
                if not args.json:
                    print(_operator_text(result), flush=True)
                try:
                    result = await admin.wait_operator(pd, result["id"], args.timeout)
                except (TimeoutError, LookupError) as exc:
                    raise PdError(str(exc)) from None
            return result

    result = asyncio.run(run())
    print(json.dumps(result, indent=2) if args.json else text(result))
    if waits and result["status"] != "success":
        print(f"kvdb admin {args.what}: operator {result['id']} ended {result['status']}", file=sys.stderr)
        return FAILED
    return 0

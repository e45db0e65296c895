"""``kvdb admin``: what PD knows about the cluster, as rows for a table or for JSON.

Rows are plain dicts so that one fetch serves both outputs: scripts get every field in JSON
(keys as hex, since they are bytes), people get a table with keys shown as escaped text.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

from kvdb.labels import format_labels
from kvdb.pb import metapb_pb2, pdpb_pb2
from kvdb.pdclient.client import PdClient, split_ts

Row = dict[str, Any]


async def members(pd: PdClient) -> list[Row]:
    """The PD members as the leader reports them (``connect`` asks with GetMembers)."""
    await pd.connect()
    return [_member_row(m, pd.leader_address) for m in sorted(pd.members, key=lambda m: m.id)]


async def stores(pd: PdClient) -> list[Row]:
    return [store_row(s) for s in sorted(await pd.get_all_stores(), key=lambda s: s.id)]


def store_row(s: pdpb_pb2.StoreInfo) -> Row:
    return {"id": s.id, "address": s.address, "state": pdpb_pb2.StoreState.Name(s.state),
            "ranges": s.stats.range_count, "leaders": s.stats.leader_count,
            "last_heartbeat_ms": s.last_heartbeat_ms, "labels": {lb.key: lb.value for lb in s.labels}}


async def ranges(pd: PdClient) -> list[Row]:
    return [_range_row(info) for info in await pd.scan_ranges(b"", b"", 0)]


async def split(pd: PdClient, keys: list[bytes], timeout: float) -> list[Row]:
    """Split so that every key starts a range; the ranges starting at the keys, once applied."""
    return [_range_row(info) for info in await pd.split_ranges(keys, timeout)]


def _range_row(info: pdpb_pb2.RangeInfo) -> Row:
    desc = info.descriptor
    leader = ({"peer_id": info.leader.id, "store_id": info.leader.store_id} if info.leader.id else None)
    down, pending = set(info.down_peer_ids), set(info.pending_peer_ids)
    return {
        "id": desc.id,
        "start": desc.start_key.hex(),
        "end": desc.end_key.hex(),
        "epoch": {"conf_ver": desc.epoch.conf_ver, "version": desc.epoch.version},
        # down: its leader has not heard from its store lately; pending: a learner catching up
        "replicas": [{"peer_id": p.id, "store_id": p.store_id, "role": metapb_pb2.PeerRole.Name(p.role),
                      "down": p.id in down, "pending": p.id in pending}
                     for p in desc.peers],
        "leader": leader,
        "joint": info.joint,  # mid-way through a joint membership change
    }


_NAMED_ESCAPES = {b"\\": b"\\\\", b"\t": b"\\t", b"\n": b"\\n", b"\r": b"\\r"}


def show_key(data: bytes) -> str:
    """Bytes as one unambiguous token of text: UTF-8 where valid, ``\\xNN`` for other bytes and
    control characters, backslash, tab, newline and CR escaped, so a key never breaks a line or a column."""
    escaped = re.sub(rb"[\x00-\x1f\x7f\\]",
                     lambda m: _NAMED_ESCAPES.get(m[0], b"\\x%02x" % m[0][0]), data)
    return escaped.decode("utf-8", "backslashreplace")


def _replica(peer: Row, leader: Row | None) -> str:
    mark = "*" if leader and leader["peer_id"] == peer["peer_id"] else ""
    notes = [] if peer["role"] == "VOTER" else [peer["role"].lower()]
    notes += [flag for flag in ("down", "pending") if peer.get(flag)]
    return f"{mark}{peer['peer_id']}@s{peer['store_id']}" + (f"({','.join(notes)})" if notes else "")


def table(kind: str, rows: list[Row]) -> str:
    """``rows`` of ``kind`` (members, stores, operators, schedulers, config, or ranges) as an aligned
    text table."""
    if kind == "members":
        header = ["ID", "ADDRESS", "LEADER", "ROLE"]
        cells = [[str(r["id"]), r["address"], "yes" if r["leader"] else "",
                  "learner" if r.get("learner") else "voter"] for r in rows]
    elif kind == "stores":
        header = ["ID", "ADDRESS", "STATE", "RANGES", "LEADERS", "LABELS"]
        cells = [[str(r["id"]), r["address"], r["state"], str(r["ranges"]), str(r["leaders"]),
                  format_labels(r.get("labels", {}))] for r in rows]
    elif kind == "operators":
        header = ["ID", "RANGE", "KIND", "ORIGIN", "STEP", "STATUS", "DESCRIPTION"]
        cells = [[str(r["id"]), str(r["range_id"]), r["kind"], r["origin"], _step_cell(r), r["status"],
                  r["description"]] for r in rows]
    elif kind == "schedulers":
        header = ["NAME", "PAUSED", "CREATED", "RUNNING"]
        cells = [[r["name"], "yes" if r["paused"] else "", str(r["created"]), str(r["running"])]
                 for r in rows]
    elif kind == "config":
        header = ["SETTING", "VALUE"]
        cells = [[key, ",".join(map(str, value)) if isinstance(value, list) else str(value)]
                 for row in rows for key, value in row.items()]
    else:
        header = ["ID", "START", "END", "EPOCH", "REPLICAS (*leader, peer@store)", "LEADER"]
        cells = [[str(r["id"]), repr_key(r["start"], "(start)"), repr_key(r["end"], "(end)"),
                  f"{r['epoch']['conf_ver']}/{r['epoch']['version']}" + ("(joint)" if r.get("joint") else ""),
                  ",".join(_replica(p, r["leader"]) for p in r["replicas"]),
                  f"store {r['leader']['store_id']}" if r["leader"] else "none"]
                 for r in rows]
    widths = [max(len(line[i]) for line in [header, *cells]) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
                     for line in [header, *cells])


def repr_key(hex_key: str, empty: str) -> str:
    """A range boundary for the table: quoted escaped text, or ``empty`` for an unbounded end."""
    return f'"{show_key(bytes.fromhex(hex_key))}"' if hex_key else empty


def _step_cell(row: Row) -> str:
    if row["status"] != "running":
        return f"{row['steps']}/{row['steps']}" if row["status"] == "success" else f"-/{row['steps']}"
    return f"{row['step'] + 1}/{row['steps']}"


# ------------------------------------------------------------------------------ operators
def operator_row(op: pdpb_pb2.OperatorInfo) -> Row:
    return {"id": op.id, "range_id": op.range_id, "kind": op.kind, "origin": op.origin,
            "description": op.description, "step": op.step, "steps": op.steps, "status": op.status,
            "created_ms": op.created_ms, "finished_ms": op.finished_ms,
            "current": describe_step(op.current) if op.HasField("current") else None}


def describe_step(step: pdpb_pb2.Operator) -> str:
    """One step for people, e.g. ``ADD_LEARNER 12@s4``."""
    kind = pdpb_pb2.Operator.Kind.Name(step.kind)
    if step.kind == pdpb_pb2.Operator.SPLIT:
        return f"{kind} at {len(step.split_keys)} keys"
    text = f"{kind} {step.peer.id}@s{step.peer.store_id}"
    if step.kind == pdpb_pb2.Operator.REPLACE_VOTER:
        text += f" for {step.demote_peer.id}@s{step.demote_peer.store_id}"
    return text


async def move_replica(pd: PdClient, range_id: int, from_store: int, to_store: int) -> Row:
    return operator_row(await pd.add_operator(range_id, move_replica=(from_store, to_store)))


async def transfer_leader(pd: PdClient, range_id: int, to_store: int) -> Row:
    return operator_row(await pd.add_operator(range_id, transfer_leader=to_store))


async def wait_operator(pd: PdClient, operator_id: int, timeout: float, poll: float = 0.2) -> Row:
    """The operator once it has finished (any status); TimeoutError after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        found = [op for op in await pd.list_operators(include_finished=True) if op.id == operator_id]
        if found and found[0].status != "running":
            return operator_row(found[0])
        if not found:  # history is bounded: a very busy PD may have dropped it already
            raise LookupError(f"operator {operator_id} is no longer known to PD (ended long ago, or a new "
                              "PD leader started without it)")
        if loop.time() + poll > deadline:
            step = f"step {found[0].step + 1}/{found[0].steps}"
            raise TimeoutError(f"operator {operator_id} still running after {timeout:g}s ({step})")
        await asyncio.sleep(poll)


async def operators(pd: PdClient, include_finished: bool = False) -> list[Row]:
    return [operator_row(op) for op in await pd.list_operators(include_finished)]


async def cancel_operator(pd: PdClient, operator_id: int) -> Row:
    return operator_row(await pd.cancel_operator(operator_id))


# ------------------------------------------------------------------------------- stores
async def decommission(pd: PdClient, store_id: int, cancel: bool = False) -> Row:
    """Start (state OFFLINE) or cancel (state UP) a store's decommission; the store after."""
    return store_row(await pd.set_store_state(store_id, pdpb_pb2.UP if cancel else pdpb_pb2.OFFLINE))


async def store_labels(pd: PdClient, store_id: int, labels: dict[str, str]) -> Row:
    return store_row(await pd.set_store_labels(store_id, labels))


# ---------------------------------------------------------------------------- settings
def config_row(config: pdpb_pb2.ScheduleConfig) -> Row:
    return {f.name: list(getattr(config, f.name)) if f.is_repeated else getattr(config, f.name)
            for f in config.DESCRIPTOR.fields}


async def config(pd: PdClient) -> Row:
    return config_row(await pd.get_config())


async def set_config(pd: PdClient, key: str, value: str) -> Row:
    return config_row(await pd.set_config(key, value))


def scheduler_row(info: pdpb_pb2.SchedulerInfo) -> Row:
    return {"name": info.name, "paused": info.paused, "created": info.created, "running": info.running}


async def schedulers(pd: PdClient) -> list[Row]:
    return [scheduler_row(info) for info in await pd.list_schedulers()]


async def pause_scheduler(pd: PdClient, name: str, resume: bool = False) -> Row:
    return scheduler_row(await pd.pause_scheduler(name, resume))


async def evict_leader(pd: PdClient, store_id: int, cancel: bool = False) -> Row:
    """Add the store to (or drop it from) the stores the evict-leader scheduler empties of leaders;
    PD edits the list as it stands when the change applies, so concurrent edits are not lost."""
    return config_row(await pd.set_config("evict_leader_stores", f"{'-' if cancel else '+'}{store_id}"))


# ----------------------------------------------------------------------------- members
async def add_member(pd: PdClient, address: str) -> Row:
    response = await pd.add_member(address)
    return {"member": _member_row(response.member, ""),
            "members": [_member_row(m, "") for m in response.members]}


async def remove_member(pd: PdClient, member_id: int) -> list[Row]:
    return [_member_row(m, "") for m in await pd.remove_member(member_id)]


def _member_row(m: pdpb_pb2.Member, leader_address: str) -> Row:
    return {"id": m.id, "address": m.address, "leader": bool(leader_address) and m.address == leader_address,
            "learner": m.learner}


# ------------------------------------------------------------------------------ status
async def status(pd: PdClient) -> Row:
    """Everything ``kvdb admin status`` shows, from one answer of the PD leader."""
    response = await pd.cluster_status()
    store_rows = [store_row(s) for s in response.stores]
    return {
        "members": [_member_row(m, response.leader.address) for m in response.members],
        "leader": {"id": response.leader.id, "address": response.leader.address},
        "stores": store_rows,
        "range_count": response.range_count,
        "operators": [operator_row(op) for op in response.operators],
        "schedulers": [scheduler_row(info) for info in response.schedulers],
        "config": config_row(response.config),
        "imbalance": imbalance(store_rows),
    }


BALANCED_STATES = ("UP", "DISCONNECTED")
"""Stores that should carry their share of ranges and leaders (not decommissioned, not gone)."""


def imbalance(store_rows: list[Row]) -> Row:
    """Spread of range and leader counts over the stores that should hold them: max, min, mean,
    and how far max and min are from the mean in percent (what the balance schedulers narrow)."""
    live = [r for r in store_rows if r["state"] in BALANCED_STATES]
    out: Row = {"stores": len(live)}
    for what in ("ranges", "leaders"):
        counts = [r[what] for r in live]
        mean = sum(counts) / len(counts) if counts else 0.0
        high, low = (max(counts), min(counts)) if counts else (0, 0)
        out[what] = {"max": high, "min": low, "mean": round(mean, 2),
                     "max_over_mean_percent": round((high - mean) / mean * 100, 1) if mean else 0.0,
                     "min_under_mean_percent": round((mean - low) / mean * 100, 1) if mean else 0.0}
    return out


def status_text(row: Row) -> str:
    """The status as one screen of text."""
    leader = row["leader"]
    by_state: dict[str, int] = {}
    for store in row["stores"]:
        by_state[store["state"]] = by_state.get(store["state"], 0) + 1
    states = ", ".join(f"{n} {state}" for state, n in sorted(by_state.items())) or "none"
    ops = row["operators"]
    origins: dict[str, int] = {}
    for op in ops:
        origins[op["origin"]] = origins.get(op["origin"], 0) + 1
    paused = [s["name"] for s in row["schedulers"] if s["paused"]]
    evicting = row["config"]["evict_leader_stores"]
    lines = [f"PD members: {len(row['members'])}, leader {leader['id']} at {leader['address']}",
             _indent(table("members", row["members"])),
             f"Stores: {len(row['stores'])} ({states})",
             _indent(table("stores", row["stores"])),
             f"Ranges: {row['range_count']}",
             f"Operators in flight: {len(ops)}"
             + (" (" + ", ".join(f"{n} by {o}" for o, n in sorted(origins.items())) + ")" if ops else ""),
             f"Schedulers paused: {', '.join(paused) or 'none'}; evicting leaders from stores: "
             f"{', '.join(map(str, evicting)) or 'none'}",
             f"Imbalance over {row['imbalance']['stores']} UP/DISCONNECTED stores:"]
    for what in ("ranges", "leaders"):
        spread = row["imbalance"][what]
        lines.append(f"  {what:<8} max {spread['max']} (+{spread['max_over_mean_percent']}%), "
                     f"min {spread['min']} (-{spread['min_under_mean_percent']}%), mean {spread['mean']}")
    return "\n".join(lines)


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


async def gc(pd: PdClient, keep_ms: int | None, safe_point: int | None, timeout: float) -> Row:
    """One MVCC GC run (``kvdb.client.gc``): resolve the locks below the new safe point, raise it."""
    from kvdb.client.aio import AsyncClient
    from kvdb.client.gc import collect_garbage

    async with AsyncClient(pd.endpoints, timeout, pd.tls) as client:
        await client.connect()
        run = await collect_garbage(client, keep_ms=keep_ms, safe_point=safe_point)
    physical, _ = split_ts(run.safe_point)
    return {"safe_point": run.safe_point, "safe_point_ms": physical, "asked": run.asked,
            "locks_resolved": run.locks_resolved, "transactions": run.transactions,
            "ranges_scanned": run.ranges_scanned}


def gc_text(row: Row) -> str:
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(row["safe_point_ms"] / 1000))
    ms = row["safe_point_ms"] % 1000
    lines = [f"GC safe point is {row['safe_point']} ({when}.{ms:03d} UTC): snapshots older than that are "
             "no longer readable; stores drop their versions in the background",
             f"resolved {row['locks_resolved']} locks of {row['transactions']} transactions in "
             f"{row['ranges_scanned']} ranges"]
    if row["asked"] < row["safe_point"]:
        lines.append(f"(asked for {row['asked']}: the safe point was already higher and stays)")
    return "\n".join(lines)

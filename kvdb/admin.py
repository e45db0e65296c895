"""``kvdb admin``: what PD knows about the cluster, as rows for a table or for JSON.

Rows are plain dicts so that one fetch serves both outputs: scripts get every field in JSON
(keys as hex, since they are bytes), people get a table with keys shown as escaped text.
"""

from __future__ import annotations

import re
from typing import Any

from kvdb.labels import format_labels
from kvdb.pb import metapb_pb2, pdpb_pb2
from kvdb.pdclient.client import PdClient

Row = dict[str, Any]


async def members(pd: PdClient) -> list[Row]:
    """The PD members as the leader reports them (``connect`` asks with GetMembers)."""
    await pd.connect()
    return [{"id": m.id, "address": m.address, "leader": m.address == pd.leader_address}
            for m in sorted(pd.members, key=lambda m: m.id)]


async def stores(pd: PdClient) -> list[Row]:
    return [{"id": s.id, "address": s.address, "state": pdpb_pb2.StoreState.Name(s.state),
             "ranges": s.stats.range_count, "leaders": s.stats.leader_count,
             "last_heartbeat_ms": s.last_heartbeat_ms, "labels": {lb.key: lb.value for lb in s.labels}}
            for s in sorted(await pd.get_all_stores(), key=lambda s: s.id)]


async def ranges(pd: PdClient) -> list[Row]:
    return [_range_row(info) for info in await pd.scan_ranges(b"", b"", 0)]


async def split(pd: PdClient, keys: list[bytes], timeout: float) -> list[Row]:
    """Split so that every key starts a range; the ranges starting at the keys, once applied."""
    return [_range_row(info) for info in await pd.split_ranges(keys, timeout)]


def _range_row(info: pdpb_pb2.RangeInfo) -> Row:
    desc = info.descriptor
    leader = ({"peer_id": info.leader.id, "store_id": info.leader.store_id} if info.leader.id else None)
    return {
        "id": desc.id,
        "start": desc.start_key.hex(),
        "end": desc.end_key.hex(),
        "epoch": {"conf_ver": desc.epoch.conf_ver, "version": desc.epoch.version},
        "replicas": [{"peer_id": p.id, "store_id": p.store_id, "role": metapb_pb2.PeerRole.Name(p.role)}
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
    role = "" if peer["role"] == "VOTER" else f"({peer['role'].lower()})"
    return f"{mark}{peer['peer_id']}@s{peer['store_id']}{role}"


def table(kind: str, rows: list[Row]) -> str:
    """``rows`` of ``kind`` (members, stores, ranges or split: ranges too) as an aligned text table."""
    if kind == "members":
        header = ["ID", "ADDRESS", "LEADER"]
        cells = [[str(r["id"]), r["address"], "yes" if r["leader"] else ""] for r in rows]
    elif kind == "stores":
        header = ["ID", "ADDRESS", "STATE", "RANGES", "LEADERS", "LABELS"]
        cells = [[str(r["id"]), r["address"], r["state"], str(r["ranges"]), str(r["leaders"]),
                  format_labels(r.get("labels", {}))] for r in rows]
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

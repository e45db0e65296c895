"""One MVCC garbage collection run, driven from a client (``kvdb admin gc``).

The GC safe point SP is a promise: no transaction reads below it any more. Before PD may make
that promise, every lock of a transaction with start_ts <= SP must be resolved: once the safe
point moves, stores drop the versions below it, and with them the commit record a primary key
may hold at commit_ts <= SP; a secondary lock of that transaction found later would then look
like one of a transaction that never committed, and be rolled back. So a run:

1. picks SP: a timestamp from PD's TSO minus ``keep`` (or one given outright);
2. scans every range for locks with start_ts <= SP (``ScanLock``, paged), and resolves each the
   way a reader does, with the client's ``LockResolver`` (commit or roll back the locks of a
   finished or expired transaction); a transaction still alive is waited for (until the deadline);
3. raises PD's safe point to SP (``UpdateGcSafePoint``; PD keeps the higher of the two).

Stores learn the new safe point with their next heartbeat and collect their ranges in the
background (``kvdb.server.gc_worker``). A transaction that started at or below SP and prewrites
only after the scan passed its keys leaves a lock below SP; stores refuse such prewrites once
they know SP, and a reader meeting a lock resolves it as always.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kvdb.errors import InvalidArgumentError, KvdbError
from kvdb.pb import kvrpc_pb2
from kvdb.pdclient.client import compose_ts, split_ts

if TYPE_CHECKING:
    from kvdb.client.aio import AsyncClient, _Op

DEFAULT_KEEP_MS = 10 * 60 * 1000
"""How far back snapshots stay readable by default: ten minutes."""
SCAN_LOCK_PAGE = 1024
"""Locks asked of a store per ScanLock request."""
_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def parse_duration_ms(text: str) -> int:
    """``"10m"``, ``"90s"``, ``"1h"``, ``"500ms"``, ``"2d"`` as milliseconds (ValueError if not)."""
    match = re.fullmatch(r"\s*(\d+)\s*(ms|s|m|h|d)\s*", text)
    if match is None:
        raise ValueError(f"not a duration: {text!r} (a whole number and a unit: ms, s, m, h or d, e.g. 10m)")
    return int(match[1]) * _UNITS_MS[match[2]]


@dataclass
class GcRun:
    safe_point: int
    """The safe point in force after the run (PD keeps the higher of its own and the asked)."""
    asked: int
    """The safe point this run resolved locks below and asked for."""
    locks_resolved: int
    transactions: int
    """Transactions whose locks were resolved (committed or rolled back)."""
    ranges_scanned: int


def _check_key_error(kind: str, answer: object) -> None:
    if answer.HasField("key_error"):
        raise KvdbError(f"{kind}: {answer.key_error}".strip())


async def resolve_locks_below(client: AsyncClient, safe_point: int, op: _Op) -> tuple[int, int, int]:
    """Resolve every lock with start_ts <= ``safe_point`` in every range; (locks, transactions,
    ranges scanned)."""
    resolver = client._lock_resolver
    locks = ranges = 0
    txns: set[int] = set()
    cursor = b""
    while True:
        loc = await client._locate(op, cursor)
        request = kvrpc_pb2.ScanLockRequest(max_version=safe_point, start_key=cursor, end_key=loc.end,
                                            limit=SCAN_LOCK_PAGE)
        body = await client._attempt(op, loc, "scan_lock", request)
        if body is None:
            continue  # routing error: the cache is updated, try again
        _check_key_error("scan_lock", body)
        alive = list(body.locks)
        while alive := await resolver.resolve(op, alive, caller_start_ts=0):
            await op.backoff(f"{len(alive)} locks of running transactions, e.g. {alive[0].start_ts} on "
                             f"{alive[0].key!r}")
        txns.update(lock.start_ts for lock in body.locks)
        locks += len(body.locks)
        if len(body.locks) == SCAN_LOCK_PAGE:
            cursor = body.locks[-1].key + b"\x00"  # this range holds more: its next page
            continue
        ranges += 1
        if not loc.end:
            return locks, len(txns), ranges
        cursor = loc.end


async def collect_garbage(client: AsyncClient, *, keep_ms: int | None = None, safe_point: int | None = None,
                          timeout: float | None = None) -> GcRun:
    """One GC run (see the module docstring): safe point = now - ``keep_ms`` (default ten
    minutes), or ``safe_point`` itself; returns what it did. Raises KvdbError for a safe point
    that is not a past timestamp (before anything is resolved)."""
    if keep_ms is not None and safe_point is not None:
        raise InvalidArgumentError("give keep_ms or safe_point, not both")
    if keep_ms is not None and keep_ms < 0:
        raise InvalidArgumentError(f"keep must not be negative, got {keep_ms} ms")

    async def run(op: _Op) -> GcRun:
        now = await client._pd.get_ts()
        asked = safe_point
        if asked is None:
            physical, logical = split_ts(now)
            asked = compose_ts(physical - (DEFAULT_KEEP_MS if keep_ms is None else keep_ms), logical)
        if not 0 < asked <= now:  # checked against PD's clock: a refusal (like PD's), not a usage error
            raise KvdbError(f"the safe point must be a timestamp in 1..{now} (now), got {asked}")
        locks, txns, ranges = await resolve_locks_below(client, asked, op)
        in_force = await client._pd.update_gc_safe_point(asked)
        return GcRun(safe_point=in_force, asked=asked, locks_resolved=locks, transactions=txns,
                     ranges_scanned=ranges)

    return await client._run("gc", timeout, run)

"""Helpers over the stored records (``mvccpb.Lock``, ``mvccpb.Write``) shared by reads and commands."""

from __future__ import annotations

from kvdb.pb import kvrpc_pb2, mvccpb_pb2

LOGICAL_BITS = 18
"""A TSO stamp is ``physical_ms << LOGICAL_BITS | logical`` (as ``kvdb.pdclient.client``, which
this pure code must not import: it pulls in grpc)."""

_OP_LOCK = kvrpc_pb2.LOCK


def physical_ms(ts: int) -> int:
    """The wall-clock part of a TSO stamp, in PD milliseconds."""
    return ts >> LOGICAL_BITS


def lock_info(key: bytes, lock: mvccpb_pb2.Lock) -> kvrpc_pb2.LockInfo:
    """The lock as a reader or writer that met it is told about it."""
    return kvrpc_pb2.LockInfo(
        key=key,
        primary=lock.primary,
        start_ts=lock.start_ts,
        ttl_ms=lock.ttl_ms,
        op=lock.op,
        txn_size=lock.txn_size,
        use_async_commit=lock.use_async_commit,
        secondaries=lock.secondaries,
        min_commit_ts=lock.min_commit_ts,
    )


def below_safe_point(ts: int, safe_point: int) -> kvrpc_pb2.KeyError:
    """The answer to a read or prewrite at ``ts`` <= ``safe_point``: versions it needs may be gone."""
    return kvrpc_pb2.KeyError(message=f"timestamp {ts} is at or below the GC safe point {safe_point}",
                              below_safe_point=kvrpc_pb2.TsBelowSafePoint(ts=ts, safe_point=safe_point))


def lock_blocks(lock: mvccpb_pb2.Lock, ts: int) -> bool:
    """Whether ``lock`` keeps a snapshot read at ``ts`` from answering.

    A lock of a transaction that started after ``ts`` cannot commit at or below it; a LOCK op
    never writes a value; an async-commit lock whose ``min_commit_ts`` is above ``ts`` commits
    above ``ts`` too (the commit timestamp is at least every lock's ``min_commit_ts``).
    """
    return (
        lock.start_ts <= ts
        and lock.op != _OP_LOCK
        and not (lock.use_async_commit and lock.min_commit_ts > ts)
    )


def lock_expired(lock: mvccpb_pb2.Lock | kvrpc_pb2.LockInfo, current_ts: int) -> bool:
    """Whether the lock's TTL, counted from its start_ts's physical part, has run out at ``current_ts``."""
    return physical_ms(current_ts) >= physical_ms(lock.start_ts) + lock.ttl_ms

"""Snapshot reads at a timestamp, answered by a range leader without Raft (docs/mvcc.md, "Reads").

The handler checks the safe point and raises the store's max ts before calling these; here only
the data decides: a blocking lock (``records.lock_blocks``) is reported for the client to
resolve, otherwise the newest PUT/DELETE at or below the read timestamp answers.
"""

from __future__ import annotations

from collections.abc import Sequence

from kvdb.mvcc.reader import MvccReader
from kvdb.mvcc.records import lock_blocks, lock_info
from kvdb.pb import kvrpc_pb2


def txn_get(reader: MvccReader, key: bytes, ts: int) -> kvrpc_pb2.TxnGetResponse:
    lock = reader.load_lock(key)
    if lock is not None and lock_blocks(lock, ts):
        return kvrpc_pb2.TxnGetResponse(key_error=kvrpc_pb2.KeyError(locked=lock_info(key, lock)))
    value = reader.get_value(key, ts)
    if value is None:
        return kvrpc_pb2.TxnGetResponse(not_found=True)
    return kvrpc_pb2.TxnGetResponse(value=value)


def txn_batch_get(reader: MvccReader, keys: Sequence[bytes], ts: int) -> kvrpc_pb2.TxnBatchGetResponse:
    """The existing keys' values in request order; or, when any key is locked, every blocking
    lock and no values (the client resolves them and reads again)."""
    locks = []
    for key in keys:
        lock = reader.load_lock(key)
        if lock is not None and lock_blocks(lock, ts):
            locks.append(lock_info(key, lock))
    if locks:
        return kvrpc_pb2.TxnBatchGetResponse(locks=locks)
    resp = kvrpc_pb2.TxnBatchGetResponse()
    pairs = resp.pairs
    for key in keys:
        value = reader.get_value(key, ts)
        if value is not None:
            pairs.add(key=key, value=value)
    return resp


def txn_scan(
    reader: MvccReader, start: bytes, end: bytes, ts: int, limit: int, key_only: bool
) -> kvrpc_pb2.TxnScanResponse:
    """Up to ``limit`` pairs with values at ``ts`` in [start, end) (``end`` clipped to the range,
    non-empty); or the blocking locks among the keys the answer covers, and no pairs.

    A full answer covers up to its last key only: a lock after it could not change it."""
    found = reader.scan_values(start, end, ts, limit)
    lock_end = found[-1][0] + b"\x00" if limit > 0 and len(found) == limit else end
    locks = reader.scan_locks(start, lock_end, 0, lambda lock: lock_blocks(lock, ts))
    if locks:
        return kvrpc_pb2.TxnScanResponse(locks=[lock_info(key, lock) for key, lock in locks])
    resp = kvrpc_pb2.TxnScanResponse()
    pairs = resp.pairs
    for key, value in found:
        pairs.add(key=key, value=b"" if key_only else value)
    return resp


def scan_lock(
    reader: MvccReader, start: bytes, end: bytes, max_version: int, limit: int
) -> kvrpc_pb2.ScanLockResponse:
    """Locks with start_ts <= ``max_version`` in [start, end), at most ``limit`` (GC resolves
    them before raising the safe point)."""
    locks = reader.scan_locks(start, end, limit, lambda lock: lock.start_ts <= max_version)
    return kvrpc_pb2.ScanLockResponse(locks=[lock_info(key, lock) for key, lock in locks])

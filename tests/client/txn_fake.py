"""Fake transactional stores for the client's unit tests, behind the routing fakes of test_retries,
with a PD clock the test moves forward to expire locks instead of sleeping.

``FakeTxnCluster``: Percolator over dicts, written from the shared design's record semantics (an
independent model of what the client expects). ``MvccCluster``: the real MVCC commands and reads
(``kvdb.txn.actions.apply_txn``, ``kvdb.txn.reads``) over a ``MemEngine``, applied as a store
applies them, so the client is checked against the code the stores run. Processes, Raft,
latches and the concurrency manager's waits are tested in tests/integration/test_txn_client.py.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from kvdb.mvcc.reader import MvccReader
from kvdb.mvcc.records import lock_info
from kvdb.mvcc.writer import MvccWriter
from kvdb.pb import kvrpc_pb2, raft_serverpb_pb2
from kvdb.pdclient.client import compose_ts, split_ts
from kvdb.storage.memory import MemEngine
from kvdb.store import keyspace
from kvdb.txn import reads
from kvdb.txn.actions import apply_txn
from tests.client.test_retries import FakeCluster

LOCK_OPS = {kvrpc_pb2.PUT: "put", kvrpc_pb2.DELETE: "delete", kvrpc_pb2.LOCK: "lock"}


@dataclass
class Record:
    kind: str  # put, delete, lock, rollback
    start_ts: int
    value: bytes = b""
    overlapped_rollback: bool = False


class TxnStoreBase(FakeCluster):
    """The TSO with a movable clock, range checks of txn requests, and the store's max read ts."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.max_ts = 0
        self.clock_ms = 0
        """The fake TSO's clock stands still (so its stamps are consecutive, like a real TSO's
        within one millisecond) unless a test moves it forward, to expire locks."""
        self._base_ms = int(time.time() * 1000)
        self._last_ts = 0

    # -- PD's TSO
    async def get_ts(self) -> int:
        physical = self._base_ms + self.clock_ms
        ts = max(compose_ts(physical, 0), self._last_ts + 1)
        self._last_ts = ts
        return ts

    # -- the store
    def _check(self, store_id: int, inner: object) -> kvrpc_pb2.Error | None:
        error = super()._check(store_id, inner)
        if error is not None:
            return error
        d = self.ranges[inner.context.range_id]
        keys = [m.key for m in getattr(inner, "mutations", [])]
        if isinstance(inner, kvrpc_pb2.CheckTxnStatusRequest):
            keys.append(inner.primary_key)
        if isinstance(inner, kvrpc_pb2.TxnHeartBeatRequest):
            keys.append(inner.primary_lock)
        for key in keys:
            if key < d.start_key or (d.end_key and key >= d.end_key):
                return kvrpc_pb2.Error(key_not_in_range=kvrpc_pb2.KeyNotInRange(key=key, range_id=d.id))
        return None


class FakeTxnCluster(TxnStoreBase):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.locks: dict[bytes, kvrpc_pb2.LockInfo] = {}
        self.values: dict[bytes, bytes] = {}
        """Values of PUT locks, by key."""
        self.writes: dict[bytes, dict[int, Record]] = {}

    def _apply(self, kind: str, inner: object, body: object, d: object) -> None:
        handler = getattr(self, f"_txn_{kind}", None)
        if handler is None:
            super()._apply(kind, inner, body, d)
        else:
            handler(inner, body, d)

    def add_secondary(self, primary: bytes, key: bytes) -> None:
        self.locks[primary].secondaries.append(key)

    def roll_back(self, key: bytes, start_ts: int) -> None:
        self._rollback(key, start_ts)

    def status(self, key: bytes, start_ts: int) -> tuple[int, bool]:
        """(commit_ts or 0, rolled back) of ``start_ts`` on ``key``."""
        for ts, rec in sorted(self.writes.get(key, {}).items(), reverse=True):
            if ts < start_ts:
                break
            if rec.start_ts == start_ts and rec.kind != "rollback":
                return ts, False
            if ts == start_ts and (rec.kind == "rollback" or rec.overlapped_rollback):
                return 0, True
        return 0, False

    def _write(self, key: bytes, ts: int, rec: Record) -> None:
        versions = self.writes.setdefault(key, {})
        old = versions.get(ts)
        if old is not None:
            if rec.kind == "rollback":
                old.overlapped_rollback = True
                return
            rec.overlapped_rollback = old.kind == "rollback" or old.overlapped_rollback
        versions[ts] = rec

    def _commit_lock(self, key: bytes, commit_ts: int) -> None:
        lock = self.locks.pop(key)
        self._write(key, commit_ts, Record(LOCK_OPS[lock.op], lock.start_ts, self.values.pop(key, b"")))

    def _rollback(self, key: bytes, start_ts: int) -> None:
        lock = self.locks.get(key)
        if lock is not None and lock.start_ts == start_ts:
            del self.locks[key]
            self.values.pop(key, None)
        if start_ts not in self.writes.get(key, {}) or self.writes[key][start_ts].kind != "rollback":
            self._write(key, start_ts, Record("rollback", start_ts))

    def _blocking(self, key: bytes, ts: int) -> kvrpc_pb2.LockInfo | None:
        lock = self.locks.get(key)
        if lock is None or lock.start_ts > ts or lock.op == kvrpc_pb2.LOCK:
            return None
        if lock.use_async_commit and lock.min_commit_ts > ts:
            return None
        return lock

    def visible(self, key: bytes, ts: int) -> bytes | None:
        for commit_ts, rec in sorted(self.writes.get(key, {}).items(), reverse=True):
            if commit_ts <= ts and rec.kind in ("put", "delete"):
                return rec.value if rec.kind == "put" else None
        return None

    def _txn_txn_get(self, req: kvrpc_pb2.TxnGetRequest, body: kvrpc_pb2.TxnGetResponse, d: object) -> None:
        self.max_ts = max(self.max_ts, req.version)
        lock = self._blocking(req.key, req.version)
        if lock is not None:
            body.key_error.locked.CopyFrom(lock)
            return
        value = self.visible(req.key, req.version)
        body.not_found = value is None
        body.value = value or b""

    def _txn_txn_batch_get(self, req: kvrpc_pb2.TxnBatchGetRequest, body: kvrpc_pb2.TxnBatchGetResponse,
                           d: object) -> None:
        self.max_ts = max(self.max_ts, req.version)
        locks = [lk for k in req.keys if (lk := self._blocking(k, req.version)) is not None]
        if locks:
            body.locks.extend(locks)
            return
        body.pairs.extend(kvrpc_pb2.KvPair(key=k, value=v) for k in req.keys
                          if (v := self.visible(k, req.version)) is not None)

    def _txn_txn_scan(self, req: kvrpc_pb2.TxnScanRequest, body: kvrpc_pb2.TxnScanResponse,
                      d: object) -> None:
        self.max_ts = max(self.max_ts, req.version)
        lo = max(req.start_key, d.start_key)
        hi = min(req.end_key or b"\xff" * 64, d.end_key or b"\xff" * 64)
        keys = sorted(k for k in set(self.writes) | set(self.locks) if lo <= k < hi)
        locks = [lk for k in keys if (lk := self._blocking(k, req.version)) is not None]
        if locks:
            body.locks.extend(locks)
            return
        for k in keys:
            value = self.visible(k, req.version)
            if value is not None and len(body.pairs) < req.limit:
                body.pairs.append(kvrpc_pb2.KvPair(key=k, value=value))

    def _txn_prewrite(self, req: kvrpc_pb2.PrewriteRequest, body: kvrpc_pb2.PrewriteResponse,
                      d: object) -> None:
        start, todo = req.start_ts, []
        for m in req.mutations:
            lock = self.locks.get(m.key)
            if lock is not None and lock.start_ts == start:
                continue
            if lock is not None:
                body.errors.add().locked.CopyFrom(lock)
                continue
            committed, rolled_back = self.status(m.key, start)
            if rolled_back:
                body.errors.add().aborted.CopyFrom(kvrpc_pb2.TxnAborted(start_ts=start, key=m.key))
                continue
            if committed:
                continue
            # As TiKV: a commit at exactly start_ts is in this transaction's snapshot, no conflict
            # (an async-commit/1PC commit_ts is max_ts + 1, which a later TSO stamp can equal).
            newer = [(ts, r) for ts, r in self.writes.get(m.key, {}).items()
                     if ts > start and r.kind != "rollback"]
            if newer:
                ts, rec = max(newer, key=lambda tr: tr[0])
                body.errors.add().conflict.CopyFrom(kvrpc_pb2.WriteConflict(
                    start_ts=start, conflict_start_ts=rec.start_ts, conflict_commit_ts=ts, key=m.key,
                    primary=req.primary_lock))
                continue
            todo.append(m)
        if body.errors:
            return
        min_ts = max(self.max_ts, start) + 1
        if req.try_one_pc:
            for m in todo:
                self._write(m.key, min_ts, Record(LOCK_OPS[m.op], start, m.value))
            body.one_pc_commit_ts = min_ts
            return
        for m in todo:
            self.locks[m.key] = kvrpc_pb2.LockInfo(
                key=m.key, primary=req.primary_lock, start_ts=start, ttl_ms=req.lock_ttl_ms, op=m.op,
                txn_size=req.txn_size, use_async_commit=req.use_async_commit,
                secondaries=req.secondaries if m.key == req.primary_lock else [],
                min_commit_ts=min_ts if req.use_async_commit else 0)
            if m.op == kvrpc_pb2.PUT:
                self.values[m.key] = m.value
        body.min_commit_ts = min_ts if req.use_async_commit else 0

    def _txn_commit(self, req: kvrpc_pb2.CommitRequest, body: kvrpc_pb2.CommitResponse, d: object) -> None:
        for key in req.keys:
            lock = self.locks.get(key)
            if lock is not None and lock.start_ts == req.start_ts:
                if lock.min_commit_ts > req.commit_ts:
                    body.key_error.message = f"commit_ts {req.commit_ts} is below {lock.min_commit_ts}"
                    return
                continue
            committed, rolled_back = self.status(key, req.start_ts)
            if rolled_back:
                body.key_error.aborted.CopyFrom(kvrpc_pb2.TxnAborted(start_ts=req.start_ts, key=key))
                return
            if not committed:
                missing = kvrpc_pb2.TxnLockNotFound(start_ts=req.start_ts, key=key)
                body.key_error.lock_not_found.CopyFrom(missing)
                return
        for key in req.keys:
            lock = self.locks.get(key)
            if lock is not None and lock.start_ts == req.start_ts:
                self._commit_lock(key, req.commit_ts)

    def _txn_rollback(self, req: kvrpc_pb2.BatchRollbackRequest, body: kvrpc_pb2.BatchRollbackResponse,
                      d: object) -> None:
        for key in req.keys:
            committed, _ = self.status(key, req.start_ts)
            if committed:
                body.key_error.message = f"already committed at {committed}"
                return
        for key in req.keys:
            self._rollback(key, req.start_ts)

    def _txn_check_txn_status(self, req: kvrpc_pb2.CheckTxnStatusRequest,
                              body: kvrpc_pb2.CheckTxnStatusResponse, d: object) -> None:
        self.max_ts = max(self.max_ts, req.caller_start_ts)
        lock = self.locks.get(req.primary_key)
        if lock is not None and lock.start_ts == req.lock_ts:
            expired = split_ts(req.current_ts)[0] >= split_ts(lock.start_ts)[0] + lock.ttl_ms
            if expired and not lock.use_async_commit:  # an async-commit lock: see actions.py
                self._rollback(req.primary_key, req.lock_ts)
                body.action = kvrpc_pb2.TTL_EXPIRE_ROLLBACK
            else:
                body.lock_ttl_ms = lock.ttl_ms
                body.lock.CopyFrom(lock)
            return
        committed, rolled_back = self.status(req.primary_key, req.lock_ts)
        if committed:
            body.commit_ts = committed
        elif not rolled_back:
            if req.rollback_if_not_exist:
                self._rollback(req.primary_key, req.lock_ts)
                body.action = kvrpc_pb2.LOCK_NOT_EXIST_ROLLBACK
            else:
                body.key_error.lock_not_found.CopyFrom(
                    kvrpc_pb2.TxnLockNotFound(start_ts=req.lock_ts, key=req.primary_key))

    def _txn_check_secondary_locks(self, req: kvrpc_pb2.CheckSecondaryLocksRequest,
                                   body: kvrpc_pb2.CheckSecondaryLocksResponse, d: object) -> None:
        for key in req.keys:
            lock = self.locks.get(key)
            if lock is not None and lock.start_ts == req.start_ts:
                body.locks.append(lock)
                continue
            committed, rolled_back = self.status(key, req.start_ts)
            if committed:
                body.commit_ts = committed
                return
            if not rolled_back:
                self._rollback(key, req.start_ts)
            body.rolled_back = True
            return

    def _txn_resolve_lock(self, req: kvrpc_pb2.ResolveLockRequest, body: kvrpc_pb2.ResolveLockResponse,
                          d: object) -> None:
        for key in req.keys:
            lock = self.locks.get(key)
            if lock is None or lock.start_ts != req.start_ts:
                continue
            if req.commit_ts:
                self._commit_lock(key, req.commit_ts)
            else:
                self._rollback(key, req.start_ts)

    def _txn_txn_heart_beat(self, req: kvrpc_pb2.TxnHeartBeatRequest, body: kvrpc_pb2.TxnHeartBeatResponse,
                            d: object) -> None:
        lock = self.locks.get(req.primary_lock)
        if lock is None or lock.start_ts != req.start_ts:
            body.key_error.lock_not_found.CopyFrom(
                kvrpc_pb2.TxnLockNotFound(start_ts=req.start_ts, key=req.primary_lock))
            return
        lock.ttl_ms = max(lock.ttl_ms, req.advise_lock_ttl_ms)
        body.lock_ttl_ms = lock.ttl_ms


READS = {"txn_get", "txn_batch_get", "txn_scan"}


class MvccCluster(TxnStoreBase):
    """The stores' own MVCC code on one MemEngine (ranges never share a key)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.engine = MemEngine()
        self.reader = MvccReader(self.engine)

    def _apply(self, kind: str, inner: object, body: object, d: object) -> None:
        if kind in READS:
            self.max_ts = max(self.max_ts, inner.version)
            if kind == "txn_get":
                answer = reads.txn_get(self.reader, inner.key, inner.version)
            elif kind == "txn_batch_get":
                answer = reads.txn_batch_get(self.reader, inner.keys, inner.version)
            else:
                start, end = keyspace.clip(d, inner.start_key, inner.end_key)
                answer = reads.txn_scan(self.reader, start, end, inner.version, inner.limit, inner.key_only)
        elif kind in raft_serverpb_pb2.TxnCommand.DESCRIPTOR.fields_by_name:
            if kind == "check_txn_status":
                self.max_ts = max(self.max_ts, inner.caller_start_ts)
            answer = self._command(d, **{kind: inner})
        else:
            super()._apply(kind, inner, body, d)
            return
        body.CopyFrom(answer)

    def _command(self, d: object, **command: object) -> object:
        batch = self.engine.batch()
        cmd = raft_serverpb_pb2.TxnCommand(max_read_ts=self.max_ts, **command)
        answer = apply_txn(cmd, self.reader, MvccWriter(batch), d)
        self.engine.write(batch, sync=False)
        return answer

    # -- what the tests look at, as FakeTxnCluster has it
    @property
    def locks(self) -> dict[bytes, kvrpc_pb2.LockInfo]:
        return {k: lock_info(k, lock) for k, lock in self.reader.scan_locks(b"", keyspace.KEY_SPACE_END, 0)}

    def status(self, key: bytes, start_ts: int) -> tuple[int, bool]:
        found = self.reader.txn_status(key, start_ts)
        return found.committed_ts, found.rolled_back

    def visible(self, key: bytes, ts: int) -> bytes | None:
        return self.reader.get_value(key, ts)

    def add_secondary(self, primary: bytes, key: bytes) -> None:
        lock = self.reader.load_lock(primary)
        lock.secondaries.append(key)
        batch = self.engine.batch()
        MvccWriter(batch).put_lock(primary, lock)
        self.engine.write(batch, sync=False)

    def roll_back(self, key: bytes, start_ts: int) -> None:
        d = next(d for d in self.ranges.values() if d.start_key <= key and (not d.end_key or key < d.end_key))
        self._command(d, rollback=kvrpc_pb2.BatchRollbackRequest(start_ts=start_ts, keys=[key]))

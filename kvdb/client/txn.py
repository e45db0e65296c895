"""The transactional client: snapshot reads at start_ts, buffered writes, Percolator commit.

A transaction reads the snapshot at its ``start_ts`` (a TSO stamp taken when it begins), overlaid
with its own buffered writes; nothing reaches a store before ``commit``. Commit picks the
cheapest protocol that is safe for the keys (docs/transactions.md):

- **1PC**: every key in one range → one prewrite that commits in the same Raft write.
- **async commit** (≤ ``ASYNC_COMMIT_MAX_KEYS`` keys): prewrite every range's keys concurrently,
  the primary's lock listing the secondaries; once all prewrites succeeded the transaction *is*
  committed at the max of their ``min_commit_ts`` and the keys are committed in the background.
- **2PC**: prewrite all, take commit_ts from the TSO, commit the primary (the commit point), then
  the secondaries in the background.

A lock met on the way (prewrite or read) goes to the ``LockResolver``; while its owner is alive a
read backs off and retries, and so does a prewrite that met a *younger* transaction's lock; a
prewrite that met an *older* live transaction gives way (WriteConflictError), so two
transactions never wait on each other. The background tasks belong to the client, which waits a
little for them when closed; a crash leaves locks that readers resolve.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Coroutine, Iterable
from typing import TYPE_CHECKING, Any

from kvdb.client.aio import _bounds, _key, _Op, _value, check_timeout
from kvdb.client.lock_resolver import LockResolver
from kvdb.client.txn_rpc import on_key, on_keys
from kvdb.errors import (
    DeadlineExceededError,
    InvalidArgumentError,
    KvdbError,
    TransactionAbortedError,
    UnavailableError,
    UncertainResultError,
    WriteConflictError,
)
from kvdb.pb import kvrpc_pb2

if TYPE_CHECKING:
    from kvdb.client.aio import AsyncClient

log = logging.getLogger(__name__)

TTL_MS = 3000
"""Lock TTL beyond the transaction's age when it prewrites: a dead client's locks block others
this long; a live one's are kept alive by the heart beat."""
HEARTBEAT_INTERVAL = 1.0
"""Seconds between heart beats to the primary lock while a commit runs."""
ASYNC_COMMIT_MAX_KEYS = 256
"""More keys would make the primary's lock (it lists them all) and its resolution too big."""
SCAN_PAGE = 256

PUT, DELETE, LOCK = kvrpc_pb2.PUT, kvrpc_pb2.DELETE, kvrpc_pb2.LOCK
RETRIED = (WriteConflictError, TransactionAbortedError)
"""What ``run_transaction`` runs again: nothing of the transaction was written. Never
UncertainResultError (the transaction may have committed)."""
RETRY_BACKOFF = (0.01, 1.0)


def retry_delay(attempt: int) -> float:
    """Seconds before ``run_transaction``'s retry number ``attempt`` (0-based): exponential with
    jitter, so conflicting transactions do not collide again in lockstep."""
    low, high = RETRY_BACKOFF
    return min(low * 2 ** attempt, high) * random.uniform(0.5, 1.0)


def check_retries(max_retries: object) -> int:
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise InvalidArgumentError(f"max_retries must be a non-negative int, got {max_retries!r}")
    return max_retries


class Transaction:
    """Use ``async with client.transaction() as txn:`` (commit on exit, rollback on an exception)."""

    def __init__(self, client: AsyncClient, *, async_commit: bool = True, one_pc: bool = True,
                 timeout: float | None = None) -> None:
        self._client = client
        self._resolver: LockResolver = client._lock_resolver
        self.async_commit = async_commit
        self.one_pc = one_pc
        self.timeout = client.timeout if timeout is None else check_timeout(timeout)
        self.start_ts = 0
        self.commit_ts = 0
        """Set once committed (by any of the three protocols)."""
        self._mutations: dict[bytes, tuple[int, bytes]] = {}
        self._state = "new"
        self._began = 0.0

    # ----------------------------------------------------------------------------- lifecycle

    async def begin(self) -> Transaction:
        """Takes start_ts from the TSO (``async with`` does it on entry)."""
        if self._state != "new":
            raise KvdbError(f"the transaction is already {self._state}")
        self.start_ts = await self._client._run("begin", self.timeout, lambda op: self._client._pd.get_ts())
        self._began = time.monotonic()
        self._state = "active"
        return self

    async def __aenter__(self) -> Transaction:
        return await self.begin()

    async def __aexit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if self._state != "active":
            return
        if exc_type is None:
            await self.commit()
        else:
            await self.rollback()

    async def rollback(self) -> None:
        """Drops the buffered writes; nothing was written to any store before commit."""
        if self._state in ("active", "new"):
            self._state = "rolled back"
        self._mutations.clear()

    # ---------------------------------------------------------------------------------- reads

    async def get(self, key: bytes) -> bytes | None:
        """The value at start_ts, or this transaction's own write."""
        key = self._active_key(key)
        own = self._mutations.get(key)
        if own is not None and own[0] != LOCK:
            return own[1] if own[0] == PUT else None
        return await self._get(key)

    async def get_for_update(self, key: bytes) -> bytes | None:
        """Like ``get``, but the key conflicts like a written one: the commit fails if another
        transaction wrote it since start_ts (this avoids write skew, docs/transactions.md)."""
        value = await self.get(key)
        self._mutations.setdefault(bytes(key), (LOCK, b""))
        return value

    async def batch_get(self, keys: Iterable[bytes]) -> dict[bytes, bytes]:
        """The keys that exist at start_ts (or were written by this transaction)."""
        wanted = list(dict.fromkeys(self._active_key(k) for k in keys))
        out: dict[bytes, bytes] = {}
        remote = []
        for key in wanted:
            own = self._mutations.get(key)
            if own is None or own[0] == LOCK:
                remote.append(key)
            elif own[0] == PUT:
                out[key] = own[1]
        if remote:
            out.update(await self._batch_get(remote))
        return {k: out[k] for k in wanted if k in out}

    async def scan(self, start: bytes = b"", end: bytes = b"", limit: int = 100) -> list[tuple[bytes, bytes]]:
        """Pairs in [start, end) at start_ts with this transaction's writes applied, in key order;
        at most ``limit`` (0: all)."""
        self._check_active()
        start, end = _bounds(start, end)
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
            raise InvalidArgumentError(f"limit must be a non-negative int, got {limit!r}")
        mine = {k: m for k, m in self._mutations.items()
                if k >= start and (not end or k < end) and m[0] != LOCK}
        hidden = sum(1 for op, _ in mine.values() if op == DELETE)
        want = limit + hidden if limit else 0
        pairs, complete = await self._scan(start, end, want)
        merged = dict(pairs)
        for k, (op, value) in mine.items():
            if complete or (pairs and k <= pairs[-1][0]):
                if op == PUT:
                    merged[k] = value
                else:
                    merged.pop(k, None)
        out = sorted(merged.items())
        return out[:limit] if limit else out

    # --------------------------------------------------------------------------------- writes

    async def put(self, key: bytes, value: bytes) -> None:
        self._mutations[self._active_key(key)] = (PUT, _value(value))

    async def delete(self, key: bytes) -> None:
        self._mutations[self._active_key(key)] = (DELETE, b"")

    # --------------------------------------------------------------------------------- commit

    async def commit(self) -> None:
        """Commits atomically, or raises: ``WriteConflictError`` / ``TransactionAbortedError``
        (nothing written: run it again), ``UncertainResultError`` (it may have committed)."""
        self._check_active()
        self._state = "committing"
        if not self._mutations:
            self.commit_ts = self.start_ts
            self._state = "committed"
            return
        keys = list(self._mutations)
        deadline = time.monotonic() + self.timeout
        heart = asyncio.create_task(self._heart_beat(keys[0]))
        try:
            self.commit_ts = await self._commit(keys, deadline)
            self._state = "committed"
        except BaseException:
            self._state = "failed"
            raise
        finally:
            heart.cancel()

    async def _commit(self, keys: list[bytes], deadline: float) -> int:
        client, primary = self._client, keys[0]
        use_async = self.async_commit and len(keys) <= ASYNC_COMMIT_MAX_KEYS
        try:
            one_pc_ts, min_commit_ts = await client._run("prewrite", _left(deadline),
                                                         lambda op: self._prewrite(op, keys, use_async))
        except (WriteConflictError, TransactionAbortedError):
            await self._roll_back_locks(keys)
            raise
        except (DeadlineExceededError, UnavailableError) as exc:
            if use_async or self.one_pc:  # every prewrite may have succeeded: that is the commit point
                raise UncertainResultError(f"commit of txn {self.start_ts}: {exc}") from None
            await self._roll_back_locks(keys)
            raise
        if one_pc_ts:
            return one_pc_ts
        if use_async:
            self._finish(keys, min_commit_ts)
            return min_commit_ts
        try:
            commit_ts = await client._run("commit", _left(deadline), lambda op: client._pd.get_ts())
        except KvdbError:
            await self._roll_back_locks(keys)  # no commit was sent: nothing can have committed
            raise
        try:
            await client._run("commit", _left(deadline),
                              lambda op: self._commit_primary(op, primary, commit_ts))
        except (DeadlineExceededError, UnavailableError) as exc:
            raise UncertainResultError(f"commit of txn {self.start_ts}: the primary's commit at {commit_ts} "
                                       f"was sent and not answered ({exc})") from None
        except RETRIED:  # the primary was rolled back: so may the rest be
            await self._roll_back_locks(keys[1:])
            raise
        self._finish(keys[1:], commit_ts)
        return commit_ts

    async def _prewrite(self, op: _Op, keys: list[bytes], use_async: bool) -> tuple[int, int]:
        """Locks every key (1PC: commits them); (one_pc_commit_ts, max min_commit_ts)."""
        primary, total = keys[0], len(keys)
        ttl = TTL_MS + int((time.monotonic() - self._began) * 1000) + total

        def make(ks: list[bytes]) -> kvrpc_pb2.PrewriteRequest:
            whole = len(ks) == total
            return kvrpc_pb2.PrewriteRequest(
                mutations=[kvrpc_pb2.TxnMutation(op=self._mutations[k][0], key=k, value=self._mutations[k][1])
                           for k in ks],
                primary_lock=primary, start_ts=self.start_ts, lock_ttl_ms=ttl, txn_size=total,
                use_async_commit=use_async, try_one_pc=self.one_pc and whole,
                secondaries=keys[1:] if use_async and primary in ks else [])

        pending, min_commit_ts = keys, 0
        while pending:
            retry: list[bytes] = []
            locks: list[kvrpc_pb2.LockInfo] = []
            for ks, body in await on_keys(self._client, op, pending, "prewrite", make):
                if body.one_pc_commit_ts:
                    return body.one_pc_commit_ts, 0
                if not body.errors:
                    min_commit_ts = max(min_commit_ts, body.min_commit_ts)
                    continue
                retry.extend(ks)
                for error in body.errors:
                    if error.WhichOneof("kind") != "locked":
                        self._raise_key_error(error)
                    locks.append(error.locked)
            if locks:
                await self._wait_for_locks(op, locks, give_way=True)
            pending = retry
        return 0, min_commit_ts

    async def _commit_primary(self, op: _Op, primary: bytes, commit_ts: int) -> None:
        request = kvrpc_pb2.CommitRequest(start_ts=self.start_ts, keys=[primary], commit_ts=commit_ts)
        body = await on_key(self._client, op, primary, "commit", request)
        if body.key_error.WhichOneof("kind") or body.key_error.message:
            self._raise_key_error(body.key_error)

    def _finish(self, keys: list[bytes], commit_ts: int) -> None:
        """Commits ``keys`` in a background task of the client (the transaction is committed
        already; a lock left behind is rolled forward by the next reader)."""
        if keys:
            task = asyncio.ensure_future(self._commit_keys(keys, commit_ts))
            self._resolver.committing(self.start_ts, commit_ts, task)
            self._client._track(_follow(task))  # cancelling the tracked one (close) cancels the task

    async def _commit_keys(self, keys: list[bytes], commit_ts: int) -> None:
        def make(ks: list[bytes]) -> kvrpc_pb2.CommitRequest:
            return kvrpc_pb2.CommitRequest(start_ts=self.start_ts, keys=ks, commit_ts=commit_ts)

        try:
            parts = await self._client._run("commit secondaries", self.timeout,
                                            lambda op: on_keys(self._client, op, keys, "commit", make))
        except KvdbError as exc:
            log.info("txn %d: background commit at %d failed (readers will resolve): %s",
                     self.start_ts, commit_ts, exc)
            return
        for _, body in parts:
            if body.key_error.WhichOneof("kind") or body.key_error.message:
                log.warning("txn %d: background commit at %d: %s", self.start_ts, commit_ts, body.key_error)

    async def _roll_back_locks(self, keys: list[bytes]) -> None:
        """Best effort (locks left behind expire and are resolved): roll back what prewrite locked."""
        def make(ks: list[bytes]) -> kvrpc_pb2.BatchRollbackRequest:
            return kvrpc_pb2.BatchRollbackRequest(start_ts=self.start_ts, keys=ks)

        try:
            await self._client._run("rollback", min(self.timeout, 2.0),
                                    lambda op: on_keys(self._client, op, keys, "rollback", make))
        except KvdbError as exc:
            log.info("txn %d: rollback failed (its locks will expire): %s", self.start_ts, exc)

    async def _heart_beat(self, primary: bytes) -> None:
        """Keeps the primary lock alive while the commit runs longer than HEARTBEAT_INTERVAL."""
        while True:
            await asyncio.sleep(HEARTBEAT_INTERVAL)
            ttl = TTL_MS + int((time.monotonic() - self._began) * 1000)
            request = kvrpc_pb2.TxnHeartBeatRequest(primary_lock=primary, start_ts=self.start_ts,
                                                    advise_lock_ttl_ms=ttl)

            def beat(op: _Op, r: kvrpc_pb2.TxnHeartBeatRequest = request) -> Coroutine[Any, Any, object]:
                return on_key(self._client, op, primary, "txn_heart_beat", r)

            try:
                await self._client._run("txn_heart_beat", HEARTBEAT_INTERVAL, beat)
            except KvdbError as exc:
                log.debug("txn %d: heart beat failed: %s", self.start_ts, exc)

    # ------------------------------------------------------------------------ reading helpers

    async def _get(self, key: bytes) -> bytes | None:
        async def run(op: _Op) -> bytes | None:
            while True:
                request = kvrpc_pb2.TxnGetRequest(key=key, version=self.start_ts)
                body = await on_key(self._client, op, key, "txn_get", request)
                kind = body.key_error.WhichOneof("kind")
                if kind == "locked":
                    await self._wait_for_locks(op, [body.key_error.locked])
                    continue
                if kind or body.key_error.message:
                    self._raise_key_error(body.key_error)
                return None if body.not_found else body.value

        return await self._client._run("txn get", self.timeout, run)

    async def _batch_get(self, keys: list[bytes]) -> dict[bytes, bytes]:
        async def run(op: _Op) -> dict[bytes, bytes]:
            out: dict[bytes, bytes] = {}
            pending = keys
            while pending:
                retry: list[bytes] = []
                locks: list[kvrpc_pb2.LockInfo] = []
                parts = await on_keys(self._client, op, pending, "txn_batch_get",
                                      lambda ks: kvrpc_pb2.TxnBatchGetRequest(keys=ks, version=self.start_ts))
                for ks, body in parts:
                    if body.key_error.WhichOneof("kind") or body.key_error.message:
                        self._raise_key_error(body.key_error)
                    if body.locks:
                        retry.extend(ks)
                        locks.extend(body.locks)
                    else:
                        out.update((p.key, p.value) for p in body.pairs)
                if locks:
                    await self._wait_for_locks(op, locks)
                pending = retry
            return out

        return await self._client._run("txn batch_get", self.timeout, run)

    async def _scan(self, start: bytes, end: bytes, limit: int) -> tuple[list[tuple[bytes, bytes]], bool]:
        """The store's pairs in [start, end) at start_ts, range by range; (pairs, whether every
        pair of [start, end) is there, i.e. the limit was not reached)."""
        async def run(op: _Op) -> tuple[list[tuple[bytes, bytes]], bool]:
            out: list[tuple[bytes, bytes]] = []
            cursor = start
            while True:
                page = min(SCAN_PAGE, limit - len(out)) if limit else SCAN_PAGE
                loc = await self._client._locate(op, cursor)
                request = kvrpc_pb2.TxnScanRequest(start_key=cursor, end_key=end, limit=page,
                                                   version=self.start_ts)
                body = await self._client._attempt(op, loc, "txn_scan", request)
                if body is None:
                    continue
                if body.key_error.WhichOneof("kind") or body.key_error.message:
                    self._raise_key_error(body.key_error)
                if body.locks:
                    await self._wait_for_locks(op, list(body.locks))
                    continue
                out.extend((p.key, p.value) for p in body.pairs)
                if limit and len(out) >= limit:
                    return out, False
                if len(body.pairs) == page:
                    cursor = body.pairs[-1].key + b"\x00"
                elif loc.end and (not end or loc.end < end):
                    cursor = loc.end
                else:
                    return out, True

        return await self._client._run("txn scan", self.timeout, run)

    async def _wait_for_locks(self, op: _Op, locks: list[kvrpc_pb2.LockInfo], give_way: bool = False) -> None:
        """Resolves what it can; backs off while an owner is alive. ``give_way`` (prewrite): an
        older live owner wins, this transaction conflicts instead of waiting (no wait cycles)."""
        alive = await self._resolver.resolve(op, locks, self.start_ts)
        if not alive:
            return
        older = [lock for lock in alive if lock.start_ts < self.start_ts]
        if give_way and older:
            raise WriteConflictError(f"txn {self.start_ts}: key {older[0].key!r} is locked by the older "
                                     f"transaction {older[0].start_ts}, still running")
        await op.backoff(f"key {alive[0].key!r} locked by transaction {alive[0].start_ts}")

    # ------------------------------------------------------------------------------- checking

    def _check_active(self) -> None:
        if self._state == "new":
            raise KvdbError("the transaction has not begun (use 'async with client.transaction()')")
        if self._state != "active":
            raise KvdbError(f"the transaction is {self._state}")

    def _active_key(self, key: object) -> bytes:
        self._check_active()
        return _key(key)

    def _raise_key_error(self, error: kvrpc_pb2.KeyError) -> None:
        kind = error.WhichOneof("kind")
        if kind == "conflict":
            c = error.conflict
            raise WriteConflictError(f"txn {self.start_ts}: key {c.key!r} was written by transaction "
                                     f"{c.conflict_start_ts} (committed at {c.conflict_commit_ts})")
        if kind in ("aborted", "lock_not_found"):
            raise TransactionAbortedError(f"txn {self.start_ts} was rolled back ({kind} at key "
                                          f"{getattr(error, kind).key!r}) {error.message}".rstrip())
        if kind == "below_safe_point":
            raise KvdbError(f"txn {self.start_ts}: its snapshot is below the GC safe point "
                            f"{error.below_safe_point.safe_point}; start a new transaction")
        raise KvdbError(f"txn {self.start_ts}: {kind or 'error'} {error.message}".rstrip())


async def _follow(task: asyncio.Future[None]) -> None:
    await task


def _left(deadline: float) -> float:
    """Seconds left until ``deadline``, at least a sliver so a late step fails by its deadline."""
    return max(deadline - time.monotonic(), 0.001)


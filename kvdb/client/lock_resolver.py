"""Lock resolution: what a transaction (or GC) does about another transaction's lock it met.

A lock belongs to a transaction whose fate is decided at its primary key (docs/transactions.md,
"Lock resolution"):

- classic 2PC: ``check_txn_status`` on the primary. Committed → roll the met lock forward at that
  commit_ts; rolled back (or rolled back now because its TTL expired) → roll the lock back; alive
  → the lock stays and the caller backs off.
- async commit: the transaction committed iff every key got its lock, so a *locked* primary
  says nothing until its TTL expired; a primary already committed or rolled back does, and is
  asked first without side effects (``check_txn_status`` with ``rollback_if_not_exist=false``:
  the next transaction of a client usually meets the previous one's lock while its background
  commit is landing). After the TTL, ``check_secondary_locks`` on the primary (not
  ``check_txn_status``, which rolls an expired lock back: wrong for an async-commit transaction
  whose prewrites all succeeded) gives the primary's lock with the list of secondaries; once it
  expired, every secondary is checked the same way: all locked → committed at the max of their
  ``min_commit_ts``; any committed → at that commit_ts; any rolled back (a key without lock or
  record gets a rollback record now, so its prewrite can never succeed) → rolled back. Then every
  key of the transaction is resolved, not only the one met.

A lock of a transaction of this very client whose background commit is running is waited
for (it is committed; the commit is on its way), not resolved. A lock whose own TTL has not
expired is never rolled back (its owner is probably working); a
2PC primary that is neither locked nor recorded is rolled back only once the met
lock expired (its prewrite may still be on the way).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import TYPE_CHECKING

from kvdb.client.aio import _Op
from kvdb.client.txn_rpc import on_key, on_keys
from kvdb.errors import KvdbError
from kvdb.mvcc.records import lock_expired as expired
from kvdb.pb import kvrpc_pb2

if TYPE_CHECKING:
    from kvdb.client.aio import AsyncClient

RESOLVED_CACHE = 1024
"""Transactions whose outcome the resolver remembers (start_ts -> commit_ts), newest kept."""


class LockResolver:
    """One per client; remembers the outcome of the transactions it resolved."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client
        self._outcomes: dict[int, int] = {}
        """start_ts -> commit_ts (0: rolled back) of transactions known to be finished."""
        self.resolved = 0
        """Locks resolved (committed or rolled back) by this client: tests, debugging."""
        self._committing: dict[int, asyncio.Future[None]] = {}
        """start_ts -> done, of this client's transactions committed whose background commit runs."""

    def committing(self, start_ts: int, commit_ts: int, done: asyncio.Future[None]) -> None:
        """This client's transaction ``start_ts`` is committed at ``commit_ts`` and its locks are
        being committed in the background until ``done``: a reader of this client meeting one
        waits for that rather than asking the stores (and writing the same commit again)."""
        self._remember(start_ts, commit_ts)
        self._committing[start_ts] = done
        done.add_done_callback(lambda _: self._committing.pop(start_ts, None))

    async def resolve(self, op: _Op, locks: Iterable[kvrpc_pb2.LockInfo], caller_start_ts: int
                      ) -> list[kvrpc_pb2.LockInfo]:
        """Resolves the ``locks`` whose transaction is finished or expired; returns the ones whose
        transaction is still alive (the caller backs off, or gives way)."""
        by_txn: dict[int, list[kvrpc_pb2.LockInfo]] = {}
        for lock in locks:
            by_txn.setdefault(lock.start_ts, []).append(lock)
        alive: list[kvrpc_pb2.LockInfo] = []
        for start_ts, txn_locks in by_txn.items():
            landing = self._committing.get(start_ts)
            if landing is not None:  # the caller reads again once it landed (bounded by op's deadline)
                await asyncio.wait([landing])  # never cancels it, unlike awaiting it
                continue  # gone now; if that commit failed, the next meeting resolves from _outcomes
            outcome = self._outcomes.get(start_ts)
            keys = [lock.key for lock in txn_locks]
            if outcome is None:
                first = txn_locks[0]
                current_ts = await self._client._pd.get_ts()
                if first.use_async_commit:
                    found = await self._async_commit_status(op, first, caller_start_ts, current_ts)
                    if found is not None:
                        outcome, all_keys = found
                        keys = list(dict.fromkeys([*all_keys, *keys]))
                else:
                    outcome = await self._txn_status(op, first, caller_start_ts, current_ts)
            if outcome is None:
                alive.extend(txn_locks)
                continue
            self._remember(start_ts, outcome)
            await self.resolve_keys(op, start_ts, outcome, keys)
        return alive

    async def resolve_keys(self, op: _Op, start_ts: int, commit_ts: int, keys: list[bytes]) -> None:
        """Commits (commit_ts > 0) or rolls back the locks of ``start_ts`` on ``keys``."""
        parts = await on_keys(self._client, op, keys, "resolve_lock",
                              lambda ks: kvrpc_pb2.ResolveLockRequest(start_ts=start_ts, commit_ts=commit_ts,
                                                                      keys=ks))
        for _, body in parts:
            _raise_key_error(op, body.key_error)
        self.resolved += len(keys)

    async def _txn_status(self, op: _Op, lock: kvrpc_pb2.LockInfo, caller_start_ts: int, current_ts: int
                          ) -> int | None:
        """A 2PC transaction's commit_ts (0: rolled back), or None while it is alive."""
        request = kvrpc_pb2.CheckTxnStatusRequest(primary_key=lock.primary, lock_ts=lock.start_ts,
                                                  caller_start_ts=caller_start_ts, current_ts=current_ts,
                                                  rollback_if_not_exist=expired(lock, current_ts))
        body = await on_key(self._client, op, lock.primary, "check_txn_status", request)
        if body.key_error.WhichOneof("kind") == "lock_not_found":
            return None  # the primary's prewrite may still arrive; the met lock has not expired
        _raise_key_error(op, body.key_error)
        if body.commit_ts:
            return body.commit_ts
        return None if body.lock_ttl_ms else 0

    async def _async_commit_status(self, op: _Op, lock: kvrpc_pb2.LockInfo, caller_start_ts: int,
                                   current_ts: int) -> tuple[int, list[bytes]] | None:
        """An async-commit transaction's (commit_ts or 0, every key), or None while it may be running."""
        if not expired(lock, current_ts):
            return await self._finished_primary(op, lock, caller_start_ts, current_ts)
        primary = await self._check_secondaries(op, [lock.primary], lock.start_ts)
        if isinstance(primary, int):
            return primary, [lock.primary]
        primary_lock = primary[0]
        if not expired(primary_lock, current_ts):  # heart beaten: the owner still runs
            return None
        keys = [lock.primary, *primary_lock.secondaries]
        found = await self._check_secondaries(op, list(primary_lock.secondaries), lock.start_ts)
        if isinstance(found, int):
            return found, keys
        return max(lk.min_commit_ts for lk in [primary_lock, *found]), keys

    async def _finished_primary(self, op: _Op, lock: kvrpc_pb2.LockInfo, caller_start_ts: int,
                                current_ts: int) -> tuple[int, list[bytes]] | None:
        """A live async-commit lock's transaction, when its primary already shows the outcome:
        (commit_ts, []) once the primary is committed (usually its owner's background commit
        landed there first), (0, []) once it is rolled back (its prewrite can never succeed, so
        the commit point was never reached); None while the primary is locked or unknown.

        ``check_txn_status`` without ``rollback_if_not_exist`` writes nothing here: it never
        rolls an async-commit lock back, and a primary without lock or record is answered
        lock_not_found (its prewrite may still arrive). The keys of a transaction decided at
        its primary are only the ones met; the primary needs no resolving."""
        request = kvrpc_pb2.CheckTxnStatusRequest(primary_key=lock.primary, lock_ts=lock.start_ts,
                                                  caller_start_ts=caller_start_ts, current_ts=current_ts,
                                                  rollback_if_not_exist=False)
        body = await on_key(self._client, op, lock.primary, "check_txn_status", request)
        if body.key_error.WhichOneof("kind") == "lock_not_found":
            return None
        _raise_key_error(op, body.key_error)
        if body.commit_ts:
            return body.commit_ts, []
        if body.lock_ttl_ms or body.HasField("lock"):
            return None  # the primary is locked: its owner may still be prewriting the others
        return 0, []

    async def _check_secondaries(self, op: _Op, keys: list[bytes], start_ts: int
                                 ) -> list[kvrpc_pb2.LockInfo] | int:
        """Every key's lock of ``start_ts``, or the outcome (commit_ts, 0: rolled back) once one
        key shows it."""
        if not keys:
            return []
        parts = await on_keys(self._client, op, keys, "check_secondary_locks",
                              lambda ks: kvrpc_pb2.CheckSecondaryLocksRequest(keys=ks, start_ts=start_ts))
        locks: list[kvrpc_pb2.LockInfo] = []
        rolled_back = False
        for _, body in parts:
            _raise_key_error(op, body.key_error)
            if body.commit_ts:
                return body.commit_ts
            rolled_back |= body.rolled_back
            locks.extend(body.locks)
        return 0 if rolled_back else locks

    def _remember(self, start_ts: int, commit_ts: int) -> None:
        self._outcomes[start_ts] = commit_ts
        if len(self._outcomes) > RESOLVED_CACHE:
            del self._outcomes[next(iter(self._outcomes))]


def _raise_key_error(op: _Op, error: kvrpc_pb2.KeyError) -> None:
    if error.WhichOneof("kind") or error.message:
        raise KvdbError(f"{op.name}: lock resolution: {error.WhichOneof('kind') or 'error'} {error.message}")

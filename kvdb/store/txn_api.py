"""The transactional API on a store: validate, then read at a timestamp or propose a Percolator
command (``kvdb.txn``), with the latches and the max read timestamp that keep the two safe.

Same shape as the raw API's handlers (``kvdb.server.kv_handler``, which dispatches here): each
method takes the request body and ``finish``, which gets the response body to send (a kvrpc
``*Response``) or a ``StoreError``, once.

- Reads are served by the leader (lease or ReadIndex) like raw reads. Before looking at the
  data a read raises the store's max timestamp to its version (``ConcurrencyManager``); if one
  of its keys is latched by a stamped prewrite it waits for that prewrite to be answered.
- Commands take latches on their keys, then (async commit, 1PC) stamp the store's max
  timestamp into the command, then go through Raft; apply evaluates them
  (``kvdb.txn.actions``) and the answer releases the latches.
- A new leader stamps nothing until it learned a TSO timestamp (``Store.sync_max_ts``):
  until then async-commit and 1PC prewrites get ``MaxTimestampNotSynced``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Sequence

from google.protobuf.descriptor import Descriptor
from google.protobuf.message import Message

from kvdb.mvcc.reader import MvccReader
from kvdb.mvcc.records import below_safe_point
from kvdb.pb import kvrpc_pb2, raft_serverpb_pb2
from kvdb.store.clock import wall_ms
from kvdb.store.errors import InvalidArgumentError, MaxTimestampNotSyncedError, StoreError
from kvdb.store.peer import Peer
from kvdb.store.request_checks import RequestChecks
from kvdb.store.store import Store
from kvdb.txn import reads
from kvdb.txn.latches import Latch

Finish = Callable[[object], None]
ReadFn = Callable[[MvccReader], Message]


class TxnApi:
    def __init__(self, store: Store, checks: RequestChecks) -> None:
        self.store = store
        self.checks = checks
        methods: dict[str, Callable[[Message, Finish], None]] = {
            "txn_get": self.txn_get,
            "txn_batch_get": self.txn_batch_get,
            "txn_scan": self.txn_scan,
            "scan_lock": self.scan_lock,
            "prewrite": self.prewrite,
            "commit": self.commit,
            "rollback": self.rollback,
            "check_txn_status": self.check_txn_status,
            "check_secondary_locks": self.check_secondary_locks,
            "resolve_lock": self.resolve_lock,
            "txn_heart_beat": self.txn_heart_beat,
        }
        self.handlers = {kind: self._bounded(method) for kind, method in methods.items()}
        """Request kind (a ``kvrpc.Request`` field) -> its method, behind the timestamp check."""

    def _bounded(self, method: Callable[[Message, Finish], None]) -> Callable[[Message, Finish], None]:
        def bounded(req: Message, finish: Finish) -> None:
            _check_timestamps(req, self.store.ts_limit.limit(self.store.clock.now()))
            method(req, finish)

        return bounded

    # ----------------------------------------------------------------------------------- reads
    def txn_get(self, req: kvrpc_pb2.TxnGetRequest, finish: Finish) -> None:
        self.checks.range(req.context, [req.key])
        key, ts = req.key, req.version
        self._read(req.context, ts, kvrpc_pb2.TxnGetResponse, [key], None,
                   lambda reader: reads.txn_get(reader, key, ts), finish)

    def txn_batch_get(self, req: kvrpc_pb2.TxnBatchGetRequest, finish: Finish) -> None:
        self.checks.count(len(req.keys))
        keys, ts = list(req.keys), req.version
        self.checks.range(req.context, keys)
        self._read(req.context, ts, kvrpc_pb2.TxnBatchGetResponse, set(keys), None,
                   lambda reader: reads.txn_batch_get(reader, keys, ts), finish)

    def txn_scan(self, req: kvrpc_pb2.TxnScanRequest, finish: Finish) -> None:
        start, end = self.checks.bounds(req.context, req.start_key, req.end_key)
        limit, ts, key_only = self.checks.scan_limit(req.limit), req.version, req.key_only
        self._read(req.context, ts, kvrpc_pb2.TxnScanResponse, (), (start, end),
                   lambda reader: reads.txn_scan(reader, start, end, ts, limit, key_only), finish)

    def scan_lock(self, req: kvrpc_pb2.ScanLockRequest, finish: Finish) -> None:
        """Locks only: no version is read, so neither the safe point nor the max ts applies."""
        start, end = self.checks.bounds(req.context, req.start_key, req.end_key)
        limit, max_version = self.checks.scan_limit(req.limit), req.max_version
        engine = self.store.engine
        self.store.read(req.context.range_id, req.context.epoch,
                        lambda: reads.scan_lock(MvccReader(engine), start, end, max_version, limit), finish)

    def _read(self, ctx: kvrpc_pb2.Context, ts: int, response: type[Message], keys: Collection[bytes],
              bounds: tuple[bytes, bytes] | None, fn: ReadFn, finish: Finish) -> None:
        _positive(ts, "version")
        if ts <= self.store.gc_safe_point:
            finish(response(key_error=self._below_safe_point(ts)))
            return
        self.store.cm.update(ts)  # before looking for latches and locks: see kvdb.txn.concurrency

        def checked(reader: MvccReader) -> Message:
            # Checked again when the read runs: it may have waited (a latch, a ReadIndex round)
            # while a GC above ts applied here (applying one raises the store's safe point).
            if ts <= self.store.gc_safe_point:
                return response(key_error=self._below_safe_point(ts))
            return fn(reader)

        self._read_unlatched(ctx, keys, bounds, checked, finish)

    def _read_unlatched(self, ctx: kvrpc_pb2.Context, keys: Collection[bytes],
                        bounds: tuple[bytes, bytes] | None, fn: ReadFn, finish: Finish) -> None:
        """Read once no stamped prewrite holds a latch on what the read covers: such a prewrite
        may commit at or below the read's ts, so its locks must be seen."""
        latches = self.store.latches
        blocking = latches.blocking_read(keys, bounds)
        if blocking is not None:
            def again() -> None:
                try:
                    self._read_unlatched(ctx, keys, bounds, fn, finish)
                except StoreError as exc:
                    finish(exc)

            latches.park(blocking, again)
            return
        engine = self.store.engine
        self.store.read(ctx.range_id, ctx.epoch, lambda: fn(MvccReader(engine)), finish)

    # -------------------------------------------------------------------------------- commands
    def prewrite(self, req: kvrpc_pb2.PrewriteRequest, finish: Finish) -> None:
        self.checks.count(len(req.mutations))
        keys = [m.key for m in req.mutations]
        if len(set(keys)) != len(keys):
            raise InvalidArgumentError("a key appears twice in the mutations")
        peer = self.checks.range(req.context, keys)
        for m in req.mutations:
            self.checks.value(m.value)
        _positive(req.start_ts, "start_ts")
        self.checks.key(req.primary_lock)
        for key in req.secondaries:
            self.checks.key(key)
        if req.secondaries and not req.use_async_commit:
            raise InvalidArgumentError("secondaries are only for an async-commit prewrite")
        if req.start_ts <= self.store.gc_safe_point:
            finish(kvrpc_pb2.PrewriteResponse(errors=[self._below_safe_point(req.start_ts)]))
            return
        stamped = req.use_async_commit or req.try_one_pc
        if stamped:
            self._check_synced(peer)
        self._propose(peer, req.context, keys, "prewrite", req, finish, stamped)

    def commit(self, req: kvrpc_pb2.CommitRequest, finish: Finish) -> None:
        peer = self._check_keys(req.context, req.keys)
        _positive(req.start_ts, "start_ts")
        if req.commit_ts <= req.start_ts:
            raise InvalidArgumentError(f"commit_ts {req.commit_ts} is not above start_ts {req.start_ts}")
        self._propose(peer, req.context, req.keys, "commit", req, finish)

    def rollback(self, req: kvrpc_pb2.BatchRollbackRequest, finish: Finish) -> None:
        peer = self._check_keys(req.context, req.keys)
        _positive(req.start_ts, "start_ts")
        self._propose(peer, req.context, req.keys, "rollback", req, finish)

    def check_txn_status(self, req: kvrpc_pb2.CheckTxnStatusRequest, finish: Finish) -> None:
        peer = self.checks.range(req.context, [req.primary_key])
        _positive(req.lock_ts, "lock_ts")
        # The caller is a reader at caller_start_ts that met the lock: the transaction must
        # not commit at or below it (an async-commit primary is pushed above max ts at apply).
        self.store.cm.update(req.caller_start_ts)
        self._propose(peer, req.context, [req.primary_key], "check_txn_status", req, finish)

    def check_secondary_locks(self, req: kvrpc_pb2.CheckSecondaryLocksRequest, finish: Finish) -> None:
        peer = self._check_keys(req.context, req.keys)
        _positive(req.start_ts, "start_ts")
        self._propose(peer, req.context, req.keys, "check_secondary_locks", req, finish)

    def resolve_lock(self, req: kvrpc_pb2.ResolveLockRequest, finish: Finish) -> None:
        """By keys (of the txn ``start_ts``) or, without keys, every lock in the range of each
        txn in ``txn_infos`` (or of ``start_ts``): the latter takes no latches, as it names none."""
        infos = [(req.start_ts, req.commit_ts)] if not req.txn_infos else [
            (i.start_ts, i.commit_ts) for i in req.txn_infos]
        if req.keys and req.txn_infos:
            raise InvalidArgumentError("resolve_lock takes keys or txn_infos, not both")
        for start_ts, commit_ts in infos:
            _positive(start_ts, "start_ts")
            if commit_ts and commit_ts <= start_ts:
                raise InvalidArgumentError(f"commit_ts {commit_ts} is not above start_ts {start_ts}")
        if req.keys:
            peer = self._check_keys(req.context, req.keys)
        else:
            peer = self.checks.range(req.context, [])
        self._propose(peer, req.context, req.keys, "resolve_lock", req, finish)

    def txn_heart_beat(self, req: kvrpc_pb2.TxnHeartBeatRequest, finish: Finish) -> None:
        peer = self.checks.range(req.context, [req.primary_lock])
        _positive(req.start_ts, "start_ts")
        self._propose(peer, req.context, [req.primary_lock], "txn_heart_beat", req, finish)

    # --------------------------------------------------------------------------------- helpers
    def _check_keys(self, ctx: kvrpc_pb2.Context, keys: Sequence[bytes]) -> Peer:
        self.checks.count(len(keys))
        return self.checks.range(ctx, keys)

    def _check_synced(self, peer: Peer) -> None:
        """Refuse a stamped prewrite a leader cannot stamp yet. A follower answers not_leader
        first: its ``max_ts_synced`` is always false, and a client told "not synced" by a
        follower backs off and asks the same store again, never learning the leader (a bank
        transfer right after the balance scheduler moved a leader hung until its deadline)."""
        if not peer.is_leader:
            raise peer.not_leader()
        if not peer.max_ts_synced:
            self.store.sync_max_ts()
            raise MaxTimestampNotSyncedError(peer.range_id, self.store.config.busy_backoff_ms)

    def _below_safe_point(self, ts: int) -> kvrpc_pb2.KeyError:
        return below_safe_point(ts, self.store.gc_safe_point)

    def _propose(self, peer: Peer, ctx: kvrpc_pb2.Context, keys: Sequence[bytes], kind: str, req: Message,
                 finish: Finish, stamped: bool = False) -> None:
        """Latch ``keys``, stamp the max read ts if ``stamped``, propose ``req`` as the ``kind``
        command of ``peer``'s range (as the checks found it); the answer unlatches. The request
        is copied once, into the Raft command."""
        cmd = raft_serverpb_pb2.RaftCommand()
        body = getattr(cmd.txn, kind)
        body.CopyFrom(req)
        body.ClearField("context")  # routing only: the log needs none of it
        cmd.log_time_ms = wall_ms(self.store.clock)
        self.checks.request_size(cmd.ByteSize())
        store = self.store
        if not peer.is_leader:
            raise peer.not_leader()  # now, rather than after waiting for the latches

        def held(latch: Latch) -> None:
            def done(result: object) -> None:
                store.latches.release(latch)
                finish(result)

            try:
                if stamped:  # leadership may have changed while it waited
                    now = store.peer(ctx.range_id)
                    if not now.is_leader:
                        raise now.not_leader()
                    self._check_synced(now)
                    cmd.txn.max_read_ts = store.cm.max_ts
                    store.latches.stamp(latch)
                store.propose(ctx.range_id, ctx.epoch, cmd, done)
            except StoreError as exc:
                done(exc)

        store.latches.acquire(keys, held)


_TS_FIELDS = frozenset({"version", "max_version", "start_ts", "commit_ts", "lock_ts", "caller_start_ts",
                        "current_ts", "min_commit_ts"})


@functools.cache
def _ts_plan(descriptor: Descriptor) -> tuple[tuple[str, Descriptor | None, bool], ...]:
    """The fields of a request type to look at for timestamps: (name, message type to descend
    into or None for a timestamp, repeated). Message fields without timestamps anywhere below
    (a prewrite's mutations, the context) are left out, so checking costs nothing per key."""
    plan = []
    for field in descriptor.fields:
        nested = field.message_type
        if nested is not None and nested.file.package == descriptor.file.package and _ts_plan(nested):
            # Only kvrpc's own types: a RangeEpoch's ``version`` (kvdb.meta) is no timestamp.
            plan.append((field.name, nested, field.is_repeated))
        elif nested is None and field.name in _TS_FIELDS:
            plan.append((field.name, None, False))
    return tuple(plan)


def _check_timestamps(req: Message, limit: int) -> None:
    """Every timestamp in ``req`` (nested messages too) at most ``limit`` (``TsLimit``)."""
    for name, nested, repeated in _ts_plan(req.DESCRIPTOR):
        value = getattr(req, name)
        if nested is not None:
            for item in value if repeated else (value,):
                _check_timestamps(item, limit)
        elif value > limit:
            raise InvalidArgumentError(f"{name} {value} is ahead of every timestamp PD can have issued "
                                       f"yet (at most {limit}): it did not come from this cluster's TSO")


def _positive(ts: int, name: str) -> None:
    if ts <= 0:
        raise InvalidArgumentError(f"{name} must be positive")

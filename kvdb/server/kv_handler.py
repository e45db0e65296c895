"""The KV API on top of a store: validate, route to the range, and answer once. Raw requests
are handled here; transactional ones by ``kvdb.store.txn_api`` (one table of handlers).

Transport-free so the unary RPCs, the batched stream and the simulator share it: ``handle``
takes one ``kvrpc.Request`` and calls ``respond`` exactly once with its ``kvrpc.Response``,
possibly later (after the write applied or the read became safe), possibly never if the
caller's deadline answers first (see ``ResponseOnce``).

Writes carry the client's session header into the Raft command, stamped with this leader's wall
clock: apply uses both to apply each write at most once (``kvdb.store.sessions``).
"""

from __future__ import annotations

from collections.abc import Callable
from time import perf_counter

from google.protobuf.message import Message

from kvdb.metrics.kv import KvRequestStats
from kvdb.pb import kvrpc_pb2, raft_serverpb_pb2
from kvdb.storage.engine import CF_DEFAULT
from kvdb.store.clock import wall_ms
from kvdb.store.config import StoreConfig
from kvdb.store.errors import InvalidArgumentError, StoreError
from kvdb.store.request_checks import RequestChecks
from kvdb.store.store import Store
from kvdb.store.txn_api import TxnApi

Respond = Callable[[kvrpc_pb2.Response], None]
_READS = frozenset({"get", "batch_get", "scan"})
Mutation = raft_serverpb_pb2.Mutation


class KvHandler:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.config: StoreConfig = store.config
        self.checks = RequestChecks(store)
        self.txn = TxnApi(store, self.checks)
        # kind -> (start the request, fill the response body with its result)
        self._handlers: dict[str, tuple[Callable, Callable]] = {
            "get": (self._get, _fill_get),
            "batch_get": (self._batch_get, _fill_pairs),
            "put": (self._put, _fill_nothing),
            "batch_put": (self._batch_put, _fill_nothing),
            "delete": (self._delete, _fill_nothing),
            "delete_range": (self._delete_range, _fill_nothing),
            "scan": (self._scan, _fill_pairs),
            "cas": (self._cas, _fill_cas),
        }
        self._handlers.update((kind, (start, _fill_message)) for kind, start in self.txn.handlers.items())
        self.on_served: Callable[[str, object, object], None] | None = None
        """Set by the split checker: called with a request's kind, body and result once it
        succeeded."""
        self.drop_write_responses = 0
        """Failpoint (tests only): swallow this many more write responses, after they applied."""
        self.stats = KvRequestStats()

    def handle(self, req: kvrpc_pb2.Request, respond: Respond) -> None:
        kind = req.WhichOneof("cmd")
        resp = kvrpc_pb2.Response(id=req.id)
        if kind is None:
            resp.put.error.CopyFrom(InvalidArgumentError("request carries no command").to_pb())
            respond(resp)
            return
        arrived, record = perf_counter(), self.stats.record
        body = getattr(resp, kind)
        body.SetInParent()  # an empty body (a put's success) must still say which command it answers
        handler = self._handlers.get(kind)
        if handler is None:  # a kind added to the protocol but not served by this store
            body.error.CopyFrom(InvalidArgumentError(f"{kind} requests are not served here").to_pb())
            record(kind, body, arrived)
            respond(resp)
            return
        start, fill = handler
        inner = getattr(req, kind)

        def finish(result: object) -> None:
            if isinstance(result, StoreError):
                body.error.CopyFrom(result.to_pb())
            else:
                fill(body, result)
                if self.on_served is not None:
                    self.on_served(kind, inner, result)
                if self.drop_write_responses and kind not in _READS:
                    self.drop_write_responses -= 1
                    return
            record(kind, body, arrived)
            respond(resp)

        try:
            self.store.check_cluster(inner.context.cluster_id)
            start(inner, finish)
        except StoreError as exc:
            body.error.CopyFrom(exc.to_pb())
            record(kind, body, arrived)
            respond(resp)

    def _write(self, ctx: kvrpc_pb2.Context, cmd: raft_serverpb_pb2.RaftCommand, finish: Callable) -> None:
        if ctx.session.session_id:
            session = ctx.session
            if session.seq == 0 or session.first_incomplete_seq > session.seq:
                raise InvalidArgumentError(
                    f"session {session.session_id:016x}: seq {session.seq} with first incomplete seq "
                    f"{session.first_incomplete_seq} (seq must be positive and not below it)")
            cmd.session.CopyFrom(session)
        cmd.log_time_ms = wall_ms(self.store.clock)
        self.checks.request_size(cmd.ByteSize())
        self.store.propose(ctx.range_id, ctx.epoch, cmd, finish)

    # -------------------------------------------------------------------------------- commands
    # Each starts its request; ``finish`` receives the result or a StoreError, maybe later.
    def _get(self, req: kvrpc_pb2.RawGetRequest, finish: Callable) -> None:
        self.checks.range(req.context, [req.key])
        engine, key = self.store.engine, req.key
        self.store.read(req.context.range_id, req.context.epoch, lambda: engine.get(CF_DEFAULT, key), finish)

    def _batch_get(self, req: kvrpc_pb2.RawBatchGetRequest, finish: Callable) -> None:
        self.checks.count(len(req.keys))
        keys = list(req.keys)
        self.checks.range(req.context, keys)
        engine = self.store.engine

        def read() -> list[tuple[bytes, bytes]]:
            get = engine.get
            return [(k, v) for k in keys if (v := get(CF_DEFAULT, k)) is not None]

        self.store.read(req.context.range_id, req.context.epoch, read, finish)

    def _put(self, req: kvrpc_pb2.RawPutRequest, finish: Callable) -> None:
        self.checks.range(req.context, [req.key])
        self.checks.value(req.value)
        cmd = raft_serverpb_pb2.RaftCommand()
        cmd.mutations.add(kind=Mutation.PUT, key=req.key, value=req.value)
        self._write(req.context, cmd, finish)

    def _batch_put(self, req: kvrpc_pb2.RawBatchPutRequest, finish: Callable) -> None:
        self.checks.count(len(req.pairs))
        self.checks.range(req.context, [p.key for p in req.pairs])
        cmd = raft_serverpb_pb2.RaftCommand()
        for p in req.pairs:
            self.checks.value(p.value)
            cmd.mutations.add(kind=Mutation.PUT, key=p.key, value=p.value)
        self._write(req.context, cmd, finish)

    def _delete(self, req: kvrpc_pb2.RawDeleteRequest, finish: Callable) -> None:
        self.checks.range(req.context, [req.key])
        cmd = raft_serverpb_pb2.RaftCommand()
        cmd.mutations.add(kind=Mutation.DELETE, key=req.key)
        self._write(req.context, cmd, finish)

    def _delete_range(self, req: kvrpc_pb2.RawDeleteRangeRequest, finish: Callable) -> None:
        start, end = self.checks.bounds(req.context, req.start_key, req.end_key)
        cmd = raft_serverpb_pb2.RaftCommand()
        cmd.mutations.add(kind=Mutation.DELETE_RANGE, key=start, value=end)
        self._write(req.context, cmd, finish)

    def _scan(self, req: kvrpc_pb2.RawScanRequest, finish: Callable) -> None:
        start, end = self.checks.bounds(req.context, req.start_key, req.end_key)
        limit = self.checks.scan_limit(req.limit)
        engine, reverse, key_only = self.store.engine, req.reverse, req.key_only

        def read() -> list[tuple[bytes, bytes]]:
            pairs = engine.scan(CF_DEFAULT, start, end, limit, reverse)
            return [(k, b"") for k, _ in pairs] if key_only else pairs

        self.store.read(req.context.range_id, req.context.epoch, read, finish)

    def _cas(self, req: kvrpc_pb2.RawCompareAndSwapRequest, finish: Callable) -> None:
        self.checks.range(req.context, [req.key])
        self.checks.value(req.value)
        cmd = raft_serverpb_pb2.RaftCommand()
        cas = cmd.cas
        cas.key, cas.value = req.key, req.value
        cas.previous_value, cas.previous_not_exist = req.previous_value, req.previous_not_exist
        self._write(req.context, cmd, finish)


def _fill_message(body: Message, result: Message) -> None:
    """A transactional command's result is its response body already."""
    body.MergeFrom(result)


def _fill_nothing(body: object, result: object) -> None:
    pass


def _fill_get(body: kvrpc_pb2.RawGetResponse, result: bytes | None) -> None:
    if result is None:
        body.not_found = True
    else:
        body.value = result


def _fill_pairs(body: kvrpc_pb2.RawScanResponse, result: list[tuple[bytes, bytes]]) -> None:
    pairs = body.pairs
    for k, v in result:
        pairs.add(key=k, value=v)


def _fill_cas(body: kvrpc_pb2.RawCompareAndSwapResponse, result: tuple[bool, bytes | None]) -> None:
    succeed, previous = result
    body.succeed = succeed
    if previous is None:
        body.previous_not_exist = True
    else:
        body.previous_value = previous


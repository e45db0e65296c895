"""One client's stream of KV requests on a store, whatever carries it: the gRPC ``Kv.Batch``
stream (``kvdb.server.services``) or a raw TCP connection (``kvdb.server.kv_listener``).

Every request gets exactly one answer: its result, ``invalid_argument`` if its id is already in
flight on this stream, ``permission_denied`` if the caller's certificate role may not send its
kind (``kvdb.net.auth``; checked per request, as one stream carries every kind), or ``timeout``
once it has waited ``request_timeout``. The timeouts are answered by one sweep timer per session,
cheaper than a timer per request. The carrier takes the answers (``take``) when told they are
ready (``on_ready``) and sends them as one batch, in completion order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from kvdb.net.auth import Identity, allowed_kinds, kv_request_role, refusal
from kvdb.pb import kvrpc_pb2
from kvdb.store.errors import DeadlineError, InvalidArgumentError, PermissionDeniedError, StoreError

if TYPE_CHECKING:
    from kvdb.server.node import StoreNode

SWEEPS_PER_TIMEOUT = 4
"""A request is answered ``timeout`` between 1 and 1.25 times ``request_timeout`` after it came."""
MAX_SWEEP_SECONDS = 1.0


def permission_check(identity: Identity | None) -> Callable[[kvrpc_pb2.Request], StoreError | None]:
    """What a stream asks of each request: the caller's identity is read once, when the stream
    opens, and each request then costs a set lookup."""
    if identity is None:  # plaintext: nobody is checked
        return lambda req: None
    allowed = allowed_kinds(identity.role)

    def check(req: kvrpc_pb2.Request) -> StoreError | None:
        kind = req.WhichOneof("cmd")
        if kind in allowed:
            return None
        needed = kv_request_role(req)
        why = refusal(identity, f"send {kind} requests", needed)
        held = identity.role.label if identity.role is not None else ""
        return PermissionDeniedError(why, identity.name, held, needed.label)

    return check


def error_response(req: kvrpc_pb2.Request, err: StoreError) -> kvrpc_pb2.Response:
    resp = kvrpc_pb2.Response(id=req.id)
    getattr(resp, req.WhichOneof("cmd") or "put").error.CopyFrom(err.to_pb())
    return resp


def timeout_response(req: kvrpc_pb2.Request) -> kvrpc_pb2.Response:
    return error_response(req, DeadlineError(f"{req.WhichOneof('cmd')} request {req.id}"))


class KvSession:
    """The requests of one stream in flight on this store and the answers not yet sent."""

    def __init__(self, node: StoreNode, identity: Identity | None, on_ready: Callable[[], None]) -> None:
        self.node = node
        self._on_ready = on_ready
        """Called when answers are waiting and none were before (so once per ``take``)."""
        self._denied = permission_check(identity)
        self._timeout = node.config.request_timeout
        self._out: list[kvrpc_pb2.Response] = []
        self._pending: dict[int, tuple[float, kvrpc_pb2.Request]] = {}
        """id -> (deadline, request); insertion order is deadline order, so the sweep stops early."""
        self._sweeper: asyncio.TimerHandle | None = None
        self._closed = False

    @property
    def idle(self) -> bool:
        """Nothing in flight and nothing left to send."""
        return not self._pending and not self._out

    def submit(self, requests: Iterable[kvrpc_pb2.Request]) -> None:
        """Start every request of one batch, then wake the store loop once."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        pending, handle = self._pending, self.node.kv_handler.handle
        for req in requests:
            if req.id in pending:
                err = InvalidArgumentError(f"request id {req.id} is already in flight")
                self._answer(error_response(req, err))
                continue
            if (err := self._denied(req)) is not None:
                self._answer(error_response(req, err))
                continue
            pending[req.id] = (deadline, req)
            handle(req, self._responder(req.id))
        self.node.wake()
        if pending and self._sweeper is None and not self._closed:
            self._sweeper = loop.call_later(self._sweep_interval(), self._sweep)

    def take(self) -> list[kvrpc_pb2.Response]:
        """The answers ready since the last ``take``, in completion order."""
        out, self._out = self._out, []
        return out

    def close(self) -> None:
        """The stream is gone: answers still to come go nowhere."""
        self._closed = True
        self._pending.clear()
        self._out.clear()
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None

    def _responder(self, req_id: int) -> Callable[[kvrpc_pb2.Response], None]:
        def respond(resp: kvrpc_pb2.Response) -> None:
            if self._pending.pop(req_id, None) is not None:  # else: already answered by the sweep
                self._answer(resp)

        return respond

    def _answer(self, resp: kvrpc_pb2.Response) -> None:
        if self._closed:
            return
        self._out.append(resp)
        if len(self._out) == 1:
            self._on_ready()

    def _sweep_interval(self) -> float:
        return min(MAX_SWEEP_SECONDS, self._timeout / SWEEPS_PER_TIMEOUT)

    def _sweep(self) -> None:
        """Answer ``timeout`` to every request whose deadline passed; runs while any is in flight."""
        loop = asyncio.get_running_loop()
        now, pending = loop.time(), self._pending
        expired = []
        for deadline, req in pending.values():
            if deadline > now:
                break
            expired.append(req)
        for req in expired:
            del pending[req.id]
            self._answer(timeout_response(req))
        self._sweeper = loop.call_later(self._sweep_interval(), self._sweep) if pending else None

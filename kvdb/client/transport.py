"""One long-lived KV stream per store, shared by every request to that store.

The stream is a framed TCP connection (``kvdb.net.wire``) to the store's KV listener
(``kvdb.server.kv_listener``), whose port the store's gRPC ``Kv.KvPort`` names once per connect:
a gRPC stream round trip cost ~240 µs, a framed one ~20 µs, and a reading client with many
requests in flight spent most of its time in gRPC's handoffs (issue 14). Whatever callers queue
in one loop iteration leaves together, as up to ``FRAME_PARTS`` ``BatchRequest`` frames, and
answers come back in batches, matched to their callers by request id. When the connection
breaks, every request on it fails with ``StoreUnreachable`` (saying whether it had been sent,
which decides whether a compare-and-swap is uncertain) and the next request opens a new one.

A request that gets no answer within the connection's ``attempt_timeout`` fails with
``TimeoutError`` (the store may hang: the caller tries elsewhere). The connection's deadlines
share one timer (``kvdb.client.deadlines``): a timer per request (``asyncio.timeout``) cost
~4 µs each, ~7 % of a reading client's time.

A store that sends nothing at all for ``silence_timeout`` while a request older than that waits
is taken for hung (stopped, or stuck on its disk, which blocks its event loop): the connection
breaks as if lost, so callers try elsewhere after ~1-2 s instead of the attempt timeout. A store
that is slow but alive keeps answering something (other requests, its own timeouts), and one
waiting on a request it cannot finish (no quorum) is asked again, which sessions make safe.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable

import grpc
from google.protobuf.message import DecodeError

from kvdb.client.deadlines import DeadlineQueue
from kvdb.errors import ClientClosedError
from kvdb.net import grpc_factory, wire
from kvdb.net.tls import TlsFiles
from kvdb.pb import kvrpc_pb2, kvrpc_pb2_grpc

log = logging.getLogger(__name__)

FRAME_PARTS = 4
"""A burst of queued requests leaves as up to this many frames (of ``MIN_FRAME_REQUESTS`` or
more), so client and store overlap: the store answers each frame as soon as it has served it
(``kvdb.server.kv_listener``), and the client handles those answers while the store serves the
next frame. As one frame per burst, the two processes took turns: at 64 reads in flight 44 % of
the two cores sat idle and a fresh playground served 18-19k reads/s; in four frames, 29-31k."""
MIN_FRAME_REQUESTS = 4
SILENT_STORE_SECONDS = 1.0
"""Default ``silence_timeout``: about one election timeout, by when the range's other replicas
have noticed a hung leader and begun to elect another."""


class StoreUnreachable(Exception):
    """The stream to a store failed; ``sent`` says whether the request may have reached it."""

    def __init__(self, address: str, reason: str, sent: bool) -> None:
        super().__init__(f"{address}: {reason}")
        self.address = address
        self.sent = sent


class _Stream:
    """One framed connection to the store's KV listener, and the task that opens it and writes."""

    def __init__(self, conn: StoreConnection) -> None:
        self.conn = conn
        self.sent: set[int] = set()
        self.wire: wire.FramedConnection | None = None
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        conn = self.conn
        try:
            # Nothing counts as sent before the store took the connection: a refused connection
            # must not leave a compare-and-swap uncertain.
            reply = await conn._stub.KvPort(kvrpc_pb2.KvPortRequest(cluster_id=conn.cluster_id),
                                            timeout=conn.attempt_timeout)
            if reply.HasField("error"):
                conn._answer_queued(reply.error)
                conn._break(self, reply.error.message)
                return
            self.wire = link = await asyncio.wait_for(
                wire.connect(conn.host, reply.port, conn.tls, self._on_frame), conn.attempt_timeout)
            link.closed.add_done_callback(lambda _: conn._break(self, "connection closed"))
            while True:
                await conn._wakeup.wait()
                conn._wakeup.clear()
                self._send_queued(link)
                await link.drain()  # a store that reads slower holds the next batch back
        except (grpc.aio.AioRpcError, OSError) as exc:  # refused, reset, timed out, TLS refused
            conn._break(self, _reason(exc))

    def _send_queued(self, link: wire.FramedConnection) -> None:
        conn = self.conn
        batch, conn._queue = [r for r in conn._queue if r.id in conn._pending], []
        if not batch:
            return
        self.sent.update(r.id for r in batch)
        for r in batch:
            if (on_sent := conn._on_sent.pop(r.id, None)) is not None:
                on_sent()
        size = max(MIN_FRAME_REQUESTS, -(-len(batch) // FRAME_PARTS))
        for i in range(0, len(batch), size):
            link.send(kvrpc_pb2.BatchRequest(requests=batch[i:i + size]).SerializeToString())

    def _on_frame(self, link: wire.FramedConnection, payload: bytes) -> None:
        try:
            batch = kvrpc_pb2.BatchResponse.FromString(payload)
        except DecodeError:
            link.refuse("a frame that is not a BatchResponse")
            return
        conn = self.conn
        conn._heard += 1
        pending = conn._pending
        for resp in batch.responses:
            waiter = pending.get(resp.id)
            if waiter is not None and not waiter.done():
                waiter.set_result(resp)

    def stop(self) -> list[asyncio.Future[None]]:
        """End the connection; what to wait for until it is gone."""
        if self.task is not asyncio.current_task():
            self.task.cancel()
        if self.wire is not None:
            self.wire.close()
        return [f for f in (self.task, self.wire and self.wire.closed) if f is not None]


def _time_out(waiter: asyncio.Future[kvrpc_pb2.Response]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


def _reason(exc: BaseException) -> str:
    if isinstance(exc, grpc.aio.AioRpcError):
        return f"{exc.code().name} {exc.details()}"
    return repr(exc)


class StoreConnection:
    def __init__(self, address: str, cluster_id: int, tls: TlsFiles | None = None,
                 attempt_timeout: float = 5.0, silence_timeout: float = SILENT_STORE_SECONDS) -> None:
        self.address = address
        self.host = address.rpartition(":")[0]
        self.tls = tls
        self.attempt_timeout = attempt_timeout
        self.silence_timeout = silence_timeout
        self.cluster_id = cluster_id
        """Sent with KvPort: a store of another cluster answers ``wrong_cluster``, not a port."""
        self._channel = grpc_factory.channel(address, tls)
        self._stub = kvrpc_pb2_grpc.KvStub(self._channel)
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[kvrpc_pb2.Response]] = {}
        self._on_sent: dict[int, Callable[[], None]] = {}
        self._queue: list[kvrpc_pb2.Request] = []
        self._deadlines = DeadlineQueue()
        self._wakeup = asyncio.Event()
        self._stream: _Stream | None = None
        self._orphans: set[asyncio.Future[None]] = set()
        self._closed = False
        self._heard = 0
        """Answer frames received, on any stream: the watchdog looks for it to move."""
        self._watchdog: asyncio.TimerHandle | None = None
        self._watched = (0, 0)
        """(``_heard``, the newest waiting request's id) when the watchdog was armed."""

    async def request(self, req: kvrpc_pb2.Request, on_sent: Callable[[], None] | None = None
                      ) -> kvrpc_pb2.Response:
        """Sends ``req`` (its id is assigned here) and waits for its answer, or TimeoutError after
        the attempt timeout; ``on_sent`` is called when it goes out (until then, giving up on it
        cannot leave it half-done)."""
        if self._closed:
            raise ClientClosedError("the client is closed")
        if self._stream is None:
            self._stream = _Stream(self)
        req.id = next(self._ids)
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        self._pending[req.id] = waiter
        if self._watchdog is None:
            self._arm_watchdog(loop)
        deadline = self._deadlines.add(self.attempt_timeout, lambda: _time_out(waiter))
        if on_sent is not None:
            self._on_sent[req.id] = on_sent
        self._queue.append(req)
        self._wakeup.set()
        try:
            return await waiter
        finally:
            deadline.finish()
            self._pending.pop(req.id, None)
            self._on_sent.pop(req.id, None)

    def _arm_watchdog(self, loop: asyncio.AbstractEventLoop) -> None:
        self._watched = (self._heard, next(reversed(self._pending)))  # ids grow, in insertion order
        self._watchdog = loop.call_later(self.silence_timeout, self._watch)

    def _watch(self) -> None:
        """Once per ``silence_timeout`` while requests wait: break the stream of a store that sent
        nothing since the last look while a request sent before it still waits."""
        self._watchdog = None
        if self._closed or not self._pending:
            return
        heard, newest = self._watched
        if self._stream is not None and self._heard == heard and next(iter(self._pending)) <= newest:
            self._break(self._stream, f"no answer for {self.silence_timeout:g} s")
        if self._pending:
            self._arm_watchdog(asyncio.get_running_loop())

    def _break(self, stream: _Stream, reason: str) -> None:
        """Fails everything waiting on ``stream``; the next request opens a new one."""
        if self._stream is not stream:
            return
        self._stream = None
        log.debug("stream to %s broke: %s", self.address, reason)
        for fut in stream.stop():  # kept until done, so close() can wait for them
            self._orphans.add(fut)
            fut.add_done_callback(self._orphans.discard)
        self._queue = []
        for req_id, waiter in list(self._pending.items()):
            if not waiter.done():
                waiter.set_exception(StoreUnreachable(self.address, reason, req_id in stream.sent))

    def _answer_queued(self, error: kvrpc_pb2.Error) -> None:
        """The store refused the connection with ``error``: every queued request's answer (none
        was sent, so each fails as the store would have failed it)."""
        for req in self._queue:
            waiter = self._pending.get(req.id)
            if waiter is not None and not waiter.done():
                resp = kvrpc_pb2.Response(id=req.id)
                getattr(resp, req.WhichOneof("cmd")).error.CopyFrom(error)
                waiter.set_result(resp)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._deadlines.close()
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        tasks = list(self._orphans)
        if self._stream is not None:
            tasks += self._stream.stop()
            self._stream = None
        for waiter in self._pending.values():
            if not waiter.done():
                waiter.set_exception(ClientClosedError("the client was closed during the call"))
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._channel.close()

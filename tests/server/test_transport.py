"""The store-to-store Raft transport against a real peer on loopback: its ``RaftListener`` (raw TCP)
and its ``RaftService`` (gRPC, for ``RaftPort``), over a store that records what it receives.

A peer that was down while the transport kept trying to connect must, once back, receive every
batch sent on the new connection, in order: nothing of a failed attempt may take the next
connection's batches (issue 10, item 8: leftovers of each failed gRPC stream used to swallow the
first batch each). The reconnect backoff starts again from its minimum after a connection has
been up, and close() leaves no task behind.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import grpc
import pytest

from kvdb.net import wire
from kvdb.pb import raft_serverpb_pb2, raft_serverpb_pb2_grpc
from kvdb.server.raft_listener import RaftListener
from kvdb.server.services import RaftService
from kvdb.server.transport import RECONNECT_BACKOFF, StoreTransport
from tests.client.conftest import until_only_this_task_runs
from tests.integration.cluster import free_ports

CLUSTER_ID = 7
FAILED_ATTEMPTS = 5
"""Connect attempts that fail before the peer comes up (backoff 0.05 s doubling: about 1.5 s)."""
DEADLINE = 10.0


class RecordingStore:
    """What the listener hands batches to: records the range id of every message."""

    cluster_id = CLUSTER_ID

    def __init__(self) -> None:
        self.received: list[int] = []

    def on_raft_messages(self, messages: list[raft_serverpb_pb2.RaftMessage]) -> None:
        self.received.extend(m.range_id for m in messages)


class CountingRaftService(RaftService):
    """The real servicer, counting RaftPort calls: one per connect attempt of the transport."""

    def __init__(self, node: Peer) -> None:
        super().__init__(node)  # type: ignore[arg-type]
        self.asks = 0

    async def RaftPort(self, request: raft_serverpb_pb2.RaftPortRequest,
                       context: grpc.aio.ServicerContext) -> raft_serverpb_pb2.RaftPortResponse:
        self.asks += 1
        return await super().RaftPort(request, context)


class Peer:
    """Store 2 as the transport sees it: a gRPC server at a fixed port answering RaftPort, and a
    RaftListener at a fresh ephemeral port each time it starts."""

    def __init__(self) -> None:
        self.store = RecordingStore()
        self.host = self  # RaftService reads node.host.listener.port
        self.listener = RaftListener(self.store, lambda: None, None)  # type: ignore[arg-type]
        self.service = CountingRaftService(self)
        self._server: grpc.aio.Server | None = None

    @property
    def received(self) -> list[int]:
        return self.store.received

    async def start(self, port: int) -> None:
        await self.listener.start("127.0.0.1:0")
        self._server = grpc.aio.server()
        raft_serverpb_pb2_grpc.add_RaftTransportServicer_to_server(self.service, self._server)
        assert self._server.add_insecure_port(f"127.0.0.1:{port}") == port
        await self._server.start()

    async def stop(self) -> None:
        await self._server.stop(None)
        await self.listener.stop()


async def holds_within(condition: Callable[[], object], timeout: float) -> bool:
    """Whether ``condition`` became true within ``timeout`` seconds (polled)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.005)
    return True


async def until(condition: Callable[[], object], what: str, timeout: float = DEADLINE) -> None:
    assert await holds_within(condition, timeout), f"timed out after {timeout:.0f}s waiting for {what}"


def message(n: int) -> list[raft_serverpb_pb2.RaftMessage]:
    return [raft_serverpb_pb2.RaftMessage(range_id=n)]


class Dialler:
    """The transport's address lookup: one call per connect attempt, so it also counts them."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.times: list[float] = []

    def __call__(self, store_id: int) -> str:
        assert store_id == 2
        self.times.append(time.monotonic())
        return self.address


def run(test: Callable[[StoreTransport, Dialler, int], Awaitable[None]]) -> None:
    """Runs ``test`` with a transport from store 1 towards store 2, whose port is free (down)."""

    async def main() -> None:
        port = free_ports(1)[0]
        dialler = Dialler(f"127.0.0.1:{port}")
        transport = StoreTransport(CLUSTER_ID, 1, dialler)
        try:
            await test(transport, dialler, port)
        finally:
            await transport.close()
        await until_only_this_task_runs()

    asyncio.run(main())


def test_every_batch_sent_after_a_reconnect_arrives_in_order() -> None:
    async def test(transport: StoreTransport, dialler: Dialler, port: int) -> None:
        transport.send(2, message(0))  # opens the connection; lost with the peer down
        await until(lambda: len(dialler.times) >= FAILED_ATTEMPTS, f"{FAILED_ATTEMPTS} failed connects")
        peer = Peer()
        await peer.start(port)
        try:
            await until(lambda: peer.service.asks, "the transport to reconnect")
            sent = list(range(1, 21))
            for n in sent:  # one batch each: the next one waits until this one arrived (or was lost)
                transport.send(2, message(n))
                await holds_within(lambda n=n: n in peer.received, 0.5)
            await holds_within(lambda: len(peer.received) >= len(sent) or peer.service.asks > 1, DEADLINE)
            assert peer.received == sent, f"lost {sorted(set(sent) - set(peer.received))}"
            assert peer.service.asks == 1
        finally:
            await peer.stop()

    run(test)


def test_a_batch_to_a_connected_peer_that_keeps_up_leaves_before_the_loop_runs_anything_else() -> None:
    """A follower's ack waited for the sender task, behind the rest of the follower's loop
    iteration; now ``send`` writes it at once when nothing is queued before it. Order holds:
    batches sent together with some queued still arrive in order."""
    async def test(transport: StoreTransport, dialler: Dialler, port: int) -> None:
        peer = Peer()
        await peer.start(port)
        try:
            transport.send(2, message(0))
            await until(lambda: peer.received == [0], "the first batch")
            live = transport._connections[2].live
            written: list[bytes] = []
            send = live.send
            live.send = lambda payload: (written.append(payload), send(payload))[1]
            transport.send(2, message(1))
            assert len(written) == 1, "the batch waited for the sender task"
            for n in range(2, 50):
                transport.send(2, message(n))
            await until(lambda: len(peer.received) == 50, "every batch")
            assert peer.received == list(range(50))
        finally:
            await peer.stop()

    run(test)


def test_backoff_starts_again_after_a_connection_was_up() -> None:
    async def test(transport: StoreTransport, dialler: Dialler, port: int) -> None:
        transport.send(2, message(0))
        # Long enough down for the backoff to reach its maximum.
        await until(lambda: len(dialler.times) >= 7 and dialler.times[-1] - dialler.times[-2]
                    >= RECONNECT_BACKOFF[1], "the backoff to reach its maximum")
        peer = Peer()
        await peer.start(port)
        try:
            await until(lambda: peer.service.asks, "the transport to reconnect")
            for n in range(1, 100):  # until one arrives: this test is about the backoff alone
                transport.send(2, message(n))
                if await holds_within(lambda: peer.received, 0.2):
                    break
            assert peer.received, "nothing arrived on the new connection"
        finally:
            await peer.stop()  # closes the connection it accepted: the transport notices at once
        stopped_at, attempts = time.monotonic(), len(dialler.times)
        await until(lambda: len(dialler.times) > attempts, "a connect attempt after the connection ended")
        assert dialler.times[attempts] - stopped_at < RECONNECT_BACKOFF[1] / 2, (
            "the connection had been up, yet the transport waited out the old backoff")

    run(test)


def test_a_transport_of_another_cluster_delivers_nothing() -> None:
    """RaftPort refuses it (FAILED_PRECONDITION), so it never reaches the listener."""

    async def main() -> None:
        port = free_ports(1)[0]
        peer = Peer()
        await peer.start(port)
        transport = StoreTransport(CLUSTER_ID + 1, 1, Dialler(f"127.0.0.1:{port}"))
        try:
            for n in range(1, 4):
                transport.send(2, message(n))
            await until(lambda: peer.service.asks >= 2, "two refused connect attempts")
            assert peer.received == []
        finally:
            await transport.close()
            await peer.stop()
        await until_only_this_task_runs()

    asyncio.run(main())


def test_a_batch_of_another_cluster_closes_the_connection(caplog: pytest.LogCaptureFixture) -> None:
    """The listener's own check (a sender that skipped RaftPort): nothing of the batch nor of any
    later one on that connection is delivered, the connection is closed with a WARNING, and the
    listener keeps serving others."""

    async def main() -> None:
        peer = Peer()
        await peer.start(free_ports(1)[0])
        try:
            stray = await wire.connect("127.0.0.1", peer.listener.port, None)
            for cluster_id, range_id in ((CLUSTER_ID + 1, 1), (CLUSTER_ID, 2)):
                stray.send(raft_serverpb_pb2.RaftMessageBatch(
                    cluster_id=cluster_id, messages=message(range_id)).SerializeToString())
            await asyncio.wait_for(stray.closed, DEADLINE)
            good = await wire.connect("127.0.0.1", peer.listener.port, None)
            good.send(raft_serverpb_pb2.RaftMessageBatch(cluster_id=CLUSTER_ID, messages=message(3))
                      .SerializeToString())
            await until(lambda: peer.received, "the good connection's batch")
            assert peer.received == [3]
            good.close()
        finally:
            await peer.stop()
        await until_only_this_task_runs()

    with caplog.at_level(logging.WARNING, logger="kvdb.net.wire"):
        asyncio.run(main())
    assert any(f"cluster {CLUSTER_ID + 1}" in r.getMessage() and "closing the connection from 127.0.0.1:"
               in r.getMessage() for r in caplog.records), caplog.text


def test_a_peer_that_does_not_read_holds_messages_in_the_bounded_queue() -> None:
    """Flow control: once the socket and the write buffer are full, the sender waits and further
    messages coalesce in its queue (bounded, oldest dropped) instead of piling up unboundedly in
    the connection's write buffer; when the peer reads again, they all arrive."""
    big = b"k" * (64 << 10)
    sent = 500  # 32 MiB: more than loopback's socket buffers take

    async def test(transport: StoreTransport, dialler: Dialler, port: int) -> None:
        peer = Peer()
        await peer.start(port)
        try:
            transport.send(2, message(0))
            await until(lambda: peer.received, "the connection")
            accepted = list(peer.listener._server._connections)
            for conn in accepted:
                conn.transport.pause_reading()
            for n in range(1, sent + 1):
                transport.send(2, [raft_serverpb_pb2.RaftMessage(range_id=n, start_key=big)])
                await asyncio.sleep(0)  # the sender writes what it may
            queue = transport._connections[2].queue
            await until(lambda: len(queue) > sent // 2, "the sender to stop writing")
            for conn in accepted:
                conn.transport.resume_reading()
            await until(lambda: len(peer.received) == sent + 1, "every message")
            assert peer.received == list(range(sent + 1))
        finally:
            await peer.stop()

    run(test)

"""The store-to-store Raft transport against a real in-process gRPC server on loopback.

A peer that was down while the transport kept trying to connect must, once back, receive every
batch sent on the new stream, in order: each failed attempt's request generator is retired with
its call (issue 10, item 8: leftovers parked on a shared wake-up used to swallow the first batch
each). The reconnect backoff starts again from its minimum after a stream has been up, and
close() leaves no task behind.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc

from kvdb.pb import raft_serverpb_pb2, raft_serverpb_pb2_grpc
from kvdb.server.transport import RECONNECT_BACKOFF, GrpcTransport
from tests.client.conftest import until_only_this_task_runs
from tests.integration.cluster import free_ports

CLUSTER_ID = 7
FAILED_ATTEMPTS = 5
"""Connect attempts that fail before the peer comes up (backoff 0.05 s doubling: about 1.5 s)."""
DEADLINE = 10.0


class RecordingPeer(raft_serverpb_pb2_grpc.RaftTransportServicer):
    """A peer store's Raft service that records the range id of every message it receives."""

    def __init__(self) -> None:
        self.streams = 0
        self.received: list[int] = []

    async def Raft(self, request_iterator: AsyncIterator[raft_serverpb_pb2.RaftMessageBatch],
                   context: grpc.aio.ServicerContext) -> raft_serverpb_pb2.Done:
        self.streams += 1
        async for batch in request_iterator:
            assert batch.cluster_id == CLUSTER_ID and batch.from_store == 1
            self.received.extend(m.range_id for m in batch.messages)
        return raft_serverpb_pb2.Done()


async def start_peer(peer: RecordingPeer, port: int) -> grpc.aio.Server:
    server = grpc.aio.server()
    raft_serverpb_pb2_grpc.add_RaftTransportServicer_to_server(peer, server)
    assert server.add_insecure_port(f"127.0.0.1:{port}") == port
    await server.start()
    return server


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


def run(test: Callable[[GrpcTransport, Dialler, int], Awaitable[None]]) -> None:
    """Runs ``test`` with a transport from store 1 towards store 2, whose port is free (down)."""

    async def main() -> None:
        port = free_ports(1)[0]
        dialler = Dialler(f"127.0.0.1:{port}")
        transport = GrpcTransport(CLUSTER_ID, 1, dialler)
        try:
            await test(transport, dialler, port)
        finally:
            await transport.close()
        await until_only_this_task_runs()

    asyncio.run(main())


def test_every_batch_sent_after_a_reconnect_arrives_in_order() -> None:
    async def test(transport: GrpcTransport, dialler: Dialler, port: int) -> None:
        transport.send(2, message(0))  # opens the connection; lost with the peer down
        await until(lambda: len(dialler.times) >= FAILED_ATTEMPTS, f"{FAILED_ATTEMPTS} failed connects")
        peer = RecordingPeer()
        server = await start_peer(peer, port)
        try:
            await until(lambda: peer.streams, "the transport to reconnect")
            sent = list(range(1, 21))
            for n in sent:  # one batch each: the next one waits until this one arrived (or was lost)
                transport.send(2, message(n))
                await holds_within(lambda n=n: n in peer.received, 0.5)
            await holds_within(lambda: len(peer.received) >= len(sent) or peer.streams > 1, DEADLINE)
            assert peer.received == sent, f"lost {sorted(set(sent) - set(peer.received))}"
            assert peer.streams == 1
        finally:
            await server.stop(None)

    run(test)


def test_backoff_starts_again_after_a_stream_was_up() -> None:
    async def test(transport: GrpcTransport, dialler: Dialler, port: int) -> None:
        transport.send(2, message(0))
        # Long enough down for the backoff to reach its maximum.
        await until(lambda: len(dialler.times) >= 7 and dialler.times[-1] - dialler.times[-2]
                    >= RECONNECT_BACKOFF[1], "the backoff to reach its maximum")
        peer = RecordingPeer()
        server = await start_peer(peer, port)
        try:
            await until(lambda: peer.streams, "the transport to reconnect")
            for n in range(1, 100):  # until one arrives: this test is about the backoff alone
                transport.send(2, message(n))
                if await holds_within(lambda: peer.received, 0.2):
                    break
            assert peer.received, "nothing arrived on the new stream"
        finally:
            await server.stop(None)
        stopped_at, attempts = time.monotonic(), len(dialler.times)
        await until(lambda: len(dialler.times) > attempts, "a connect attempt after the stream ended")
        assert dialler.times[attempts] - stopped_at < RECONNECT_BACKOFF[1] / 2, (
            "the stream had been up, yet the transport waited out the old backoff")

    run(test)

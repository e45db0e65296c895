"""The per-store stream against an in-process store stand-in (the gRPC ``Kv.KvPort`` and a framed
server, as a store serves them): requests queued together leave as one batch, answers find their
callers by id in any order, a broken connection fails its requests (saying whether they were
sent) and the next request opens a new one, close() ends waiting calls."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
import pytest

from kvdb.client.transport import StoreConnection, StoreUnreachable
from kvdb.errors import ClientClosedError
from kvdb.net import wire
from kvdb.net.roles import Role
from kvdb.pb import kvrpc_pb2, kvrpc_pb2_grpc
from kvdb.store.errors import WrongClusterError
from tests.client.conftest import until_only_this_task_runs
from tests.integration.cluster import free_ports

CLUSTER = 7


class EchoKv(kvrpc_pb2_grpc.KvServicer):
    """Answers each get with its key as the value, a batch's answers in reverse order."""

    def __init__(self) -> None:
        self.batch_sizes: list[int] = []
        self.streams = 0
        self.fail = False
        self.hold = False
        self.hold_keys: set[bytes] = set()  # gets of these keys are never answered
        self.frames = wire.FramedServer(self._on_frame, None, Role.READONLY, "open a KV stream",
                                        self._opened)

    def _opened(self, conn: wire.FramedConnection) -> None:
        self.streams += 1

    def _on_frame(self, conn: wire.FramedConnection, payload: bytes) -> None:
        batch = kvrpc_pb2.BatchRequest.FromString(payload)
        self.batch_sizes.append(len(batch.requests))
        if self.fail:
            conn.close()
            return
        if self.hold:
            return
        conn.send(kvrpc_pb2.BatchResponse(responses=[
            kvrpc_pb2.Response(id=r.id, get=kvrpc_pb2.RawGetResponse(value=r.get.key))
            for r in reversed(batch.requests) if r.get.key not in self.hold_keys]).SerializeToString())

    async def KvPort(self, request: kvrpc_pb2.KvPortRequest,
                     context: grpc.aio.ServicerContext) -> kvrpc_pb2.KvPortResponse:
        if request.cluster_id != CLUSTER:
            return kvrpc_pb2.KvPortResponse(error=WrongClusterError(request.cluster_id, CLUSTER).to_pb())
        return kvrpc_pb2.KvPortResponse(port=self.frames.port)


def get(key: bytes) -> kvrpc_pb2.Request:
    return kvrpc_pb2.Request(get=kvrpc_pb2.RawGetRequest(key=key))


class Served:
    """The gRPC server and the framed server of one ``EchoKv``."""

    def __init__(self, servicer: EchoKv) -> None:
        self.servicer = servicer
        self.grpc = grpc.aio.server()
        kvrpc_pb2_grpc.add_KvServicer_to_server(servicer, self.grpc)
        self.port = self.grpc.add_insecure_port("127.0.0.1:0")

    async def stop(self, grace: float | None) -> None:
        await self.grpc.stop(grace)
        await self.servicer.frames.close()


async def serve(servicer: EchoKv) -> tuple[Served, str]:
    server = Served(servicer)
    await servicer.frames.start("127.0.0.1")
    await server.grpc.start()
    return server, f"127.0.0.1:{server.port}"


@asynccontextmanager
async def echo_store(cluster_id: int = CLUSTER, attempt_timeout: float = 5.0, silence_timeout: float = 1.0
                     ) -> AsyncIterator[tuple[EchoKv, StoreConnection]]:
    """An echo store and a client connection to it, both closed on the way out."""
    servicer = EchoKv()
    server, address = await serve(servicer)
    conn = StoreConnection(address, cluster_id, attempt_timeout=attempt_timeout,
                           silence_timeout=silence_timeout)
    try:
        yield servicer, conn
    finally:
        await conn.close()
        await server.stop(None)


def test_concurrent_requests_share_batches_and_get_their_own_answers() -> None:
    async def main() -> None:
        async with echo_store() as (servicer, conn):
            keys = [b"k%03d" % i for i in range(200)]
            sent: list[None] = []
            responses = await asyncio.gather(*(conn.request(get(k), lambda: sent.append(None)) for k in keys))
            assert [r.get.value for r in responses] == keys
            assert len(sent) == 200
            assert sum(servicer.batch_sizes) == 200 and len(servicer.batch_sizes) < 20, servicer.batch_sizes
            assert servicer.streams == 1

    asyncio.run(main())


def test_a_broken_connection_fails_its_requests_and_the_next_request_reopens_it() -> None:
    async def main() -> None:
        async with echo_store() as (servicer, conn):
            assert (await conn.request(get(b"a"))).get.value == b"a"
            servicer.fail = True
            with pytest.raises(StoreUnreachable) as info:
                await conn.request(get(b"b"))
            assert info.value.sent
            servicer.fail = False
            assert (await conn.request(get(b"c"))).get.value == b"c"
            assert servicer.streams == 2

    asyncio.run(main())


def test_a_refused_connection_sent_nothing() -> None:
    async def main() -> None:
        conn = StoreConnection(f"127.0.0.1:{free_ports(1)[0]}", CLUSTER)
        try:
            sent: list[None] = []
            with pytest.raises(StoreUnreachable) as info:
                await conn.request(get(b"a"), lambda: sent.append(None))
            assert not info.value.sent and not sent
        finally:
            await conn.close()

    asyncio.run(main())


def test_close_ends_waiting_calls_and_leaves_no_task() -> None:
    async def main() -> None:
        servicer = EchoKv()
        servicer.hold = True
        server, address = await serve(servicer)
        conn = StoreConnection(address, CLUSTER)
        waiting = asyncio.ensure_future(conn.request(get(b"a")))
        for _ in range(500):  # until the request reached the server
            if servicer.batch_sizes:
                break
            await asyncio.sleep(0.01)
        await conn.close()
        await conn.close()
        with pytest.raises(ClientClosedError):
            await waiting
        with pytest.raises(ClientClosedError):
            await conn.request(get(b"b"))
        await server.stop(None)
        await until_only_this_task_runs()

    asyncio.run(main())


def test_a_request_without_an_answer_times_out_and_the_stream_serves_the_next() -> None:
    """The per-connection sweep fails a request the store holds, not before its attempt timeout;
    the stream stays up for the next request."""
    async def main() -> None:
        loop = asyncio.get_running_loop()
        async with echo_store(attempt_timeout=0.3) as (servicer, conn):
            servicer.hold = True
            start = loop.time()
            request = asyncio.ensure_future(conn.request(get(b"held")))
            done, _ = await asyncio.wait([request], timeout=5)  # a bound for the test, not a sleep
            assert done, "the held request never timed out"
            with pytest.raises(TimeoutError):
                request.result()
            waited = loop.time() - start
            assert 0.3 <= waited < 1.5, waited
            servicer.hold = False
            assert (await conn.request(get(b"next"))).get.value == b"next"
            assert servicer.streams == 1
        await until_only_this_task_runs()

    asyncio.run(main())


def test_a_store_that_answers_nothing_is_taken_for_hung_long_before_the_attempt_timeout() -> None:
    """A stopped store (or one stuck on its disk) keeps its connection open and answers nothing:
    after a silence of ``silence_timeout`` its stream breaks (the request was sent, so a write is
    ambiguous) and the next request opens a new one."""
    async def main() -> None:
        async with echo_store(attempt_timeout=30.0, silence_timeout=0.2) as (servicer, conn):
            assert (await conn.request(get(b"a"))).get.value == b"a"
            servicer.hold = True
            request = asyncio.ensure_future(conn.request(get(b"b")))
            done, _ = await asyncio.wait([request], timeout=10)  # a bound for the test, not a sleep
            assert done, "a silent store held the request past two silence periods and more"
            with pytest.raises(StoreUnreachable) as info:
                request.result()
            assert info.value.sent
            servicer.hold = False
            assert (await conn.request(get(b"c"))).get.value == b"c"
            assert servicer.streams == 2
        await until_only_this_task_runs()

    asyncio.run(main())


def test_a_store_that_keeps_answering_is_not_cut_while_one_request_waits() -> None:
    """A request the store holds while it answers others is not a hung store: it waits for its
    attempt timeout, and the stream stays up."""
    async def main() -> None:
        async with echo_store(attempt_timeout=1.0, silence_timeout=0.2) as (servicer, conn):
            servicer.hold_keys.add(b"held")
            held = asyncio.ensure_future(conn.request(get(b"held")))
            while not held.done():  # others answered meanwhile, across five silence periods
                assert (await conn.request(get(b"x"))).get.value == b"x"
                await asyncio.sleep(0.05)  # pacing the answers, not a synchronisation
            with pytest.raises(TimeoutError):
                held.result()
            assert servicer.streams == 1
        await until_only_this_task_runs()

    asyncio.run(main())


def test_a_store_of_another_cluster_answers_each_request_with_wrong_cluster() -> None:
    """KvPort refuses another cluster's client: its requests get the store's error (the client
    raises ClusterMismatchError on it) instead of a connection, and nothing was sent."""
    async def main() -> None:
        async with echo_store(cluster_id=CLUSTER + 1) as (servicer, conn):
            resp = await conn.request(get(b"a"))
            assert resp.get.error.WhichOneof("kind") == "wrong_cluster"
            assert resp.get.error.wrong_cluster.cluster_id == CLUSTER
            assert servicer.streams == 0 and not servicer.batch_sizes
        await until_only_this_task_runs()

    asyncio.run(main())

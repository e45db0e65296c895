"""The client's KV stream to a store, both ends in this process over loopback TCP: 64 gets in
flight through ``StoreConnection`` against a framed server that answers each batch at once (what
``KvListener`` does, without the store). It counts what the transport costs on both sides, which
the gRPC ``Kv.Batch`` stream it replaced made the largest part of a reading client (issue 14).

Run: ``.venv/bin/pytest bench/micro/test_kv_stream_bench.py --benchmark-only``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import grpc
import pytest

from kvdb.client.transport import StoreConnection
from kvdb.net import wire
from kvdb.net.roles import Role
from kvdb.pb import kvrpc_pb2, kvrpc_pb2_grpc

BATCH = 64
CLUSTER = 1


def _answer(conn: wire.FramedConnection, payload: bytes) -> None:
    batch = kvrpc_pb2.BatchRequest.FromString(payload)
    conn.send(kvrpc_pb2.BatchResponse(responses=[
        kvrpc_pb2.Response(id=r.id, get=kvrpc_pb2.RawGetResponse(value=r.get.key))
        for r in batch.requests]).SerializeToString())


class _Port(kvrpc_pb2_grpc.KvServicer):
    def __init__(self, frames: wire.FramedServer) -> None:
        self.frames = frames

    async def KvPort(self, request: kvrpc_pb2.KvPortRequest,
                     context: grpc.aio.ServicerContext) -> kvrpc_pb2.KvPortResponse:
        return kvrpc_pb2.KvPortResponse(port=self.frames.port)


@pytest.fixture
def stream() -> Iterator[tuple[asyncio.AbstractEventLoop, StoreConnection]]:
    loop = asyncio.new_event_loop()

    async def start() -> tuple[grpc.aio.Server, wire.FramedServer, StoreConnection]:
        frames = wire.FramedServer(_answer, None, Role.READONLY, "open a KV stream")
        await frames.start("127.0.0.1")
        server = grpc.aio.server()
        kvrpc_pb2_grpc.add_KvServicer_to_server(_Port(frames), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        return server, frames, StoreConnection(f"127.0.0.1:{port}", CLUSTER)

    server, frames, conn = loop.run_until_complete(start())
    yield loop, conn

    async def stop() -> None:
        await conn.close()
        await server.stop(None)
        await frames.close()

    loop.run_until_complete(stop())
    loop.close()


def test_kv_stream_64_gets_in_flight(benchmark, stream: tuple[asyncio.AbstractEventLoop, StoreConnection]
                                     ) -> None:
    loop, conn = stream
    keys = [b"key%04d" % i for i in range(BATCH)]

    async def gets() -> list[bytes]:
        answers = await asyncio.gather(*(conn.request(kvrpc_pb2.Request(get=kvrpc_pb2.RawGetRequest(key=k)))
                                         for k in keys))
        return [a.get.value for a in answers]

    assert benchmark(lambda: loop.run_until_complete(gets())) == keys

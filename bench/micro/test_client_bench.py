"""The client's per-request CPU work, without the network: what bounds one client process.

A call looks up its range in the cache, builds a Raw*Request with its context, wraps it in a
Request, and leaves with whatever else is queued as one BatchRequest; the answers come back as
one BatchResponse. Also the load generator's own cost per operation (choose the next op, record
its latency), which must stay well below the client's for ``kvdb bench`` to measure the client.

Run: ``.venv/bin/pytest bench/micro --benchmark-only``.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from bench.histogram import Histogram
from bench.workloads import Generator, key_of
from kvdb.client import transport
from kvdb.client.aio import AsyncClient
from kvdb.client.cache import RangeCache
from kvdb.client.transport import StoreConnection
from kvdb.pb import kvrpc_pb2, metapb_pb2

RANGES = 1000
BATCH = 64
VALUE = b"v" * 100


@pytest.fixture(scope="module")
def cache() -> RangeCache:
    cache = RangeCache()
    bounds = [b""] + [key_of(i * 100) for i in range(1, RANGES)] + [b""]
    for i in range(RANGES):
        peers = [metapb_pb2.Peer(id=i * 3 + s, store_id=s) for s in (1, 2, 3)]
        cache.insert(metapb_pb2.RangeDescriptor(id=i + 1, start_key=bounds[i], end_key=bounds[i + 1],
                                                epoch=metapb_pb2.RangeEpoch(conf_ver=3, version=i + 1),
                                                peers=peers), leader_store=1)
    return cache


def test_range_cache_find(benchmark, cache: RangeCache) -> None:
    keys = [key_of(random.Random(1).randrange(RANGES * 100)) for _ in range(BATCH)]

    def find_all() -> None:
        for key in keys:
            cache.find(key)

    benchmark(find_all)


def _put_request(cache: RangeCache, request_id: int, key: bytes) -> kvrpc_pb2.Request:
    """As AsyncClient.put and _attempt build it."""
    loc = cache.find(key)
    body = kvrpc_pb2.RawPutRequest(key=key, value=VALUE)
    body.context.CopyFrom(loc.context(7))
    request = kvrpc_pb2.Request(put=body)
    request.id = request_id
    return request


def test_build_and_encode_put_batch(benchmark, cache: RangeCache) -> None:
    keys = [key_of(i * 37) for i in range(BATCH)]

    def build() -> bytes:
        batch = [_put_request(cache, i, key) for i, key in enumerate(keys)]
        return kvrpc_pb2.BatchRequest(requests=batch).SerializeToString()

    assert benchmark(build)


def test_decode_get_responses(benchmark) -> None:
    data = kvrpc_pb2.BatchResponse(responses=[
        kvrpc_pb2.Response(id=i, get=kvrpc_pb2.RawGetResponse(value=VALUE)) for i in range(BATCH)
    ]).SerializeToString()

    def decode() -> int:
        batch = kvrpc_pb2.BatchResponse.FromString(data)
        return sum(len(r.get.value) for r in batch.responses if not r.get.HasField("error"))

    assert benchmark(decode) == BATCH * len(VALUE)


@pytest.mark.parametrize("workload", ["write", "ycsb-a", "ycsb-e"])
def test_load_generator_overhead(benchmark, workload: str) -> None:
    gen = Generator(workload, 100_000, seed=1)
    hist = Histogram()

    def ops() -> None:
        for i in range(BATCH):
            op = gen.next()
            key_of(op.key)
            hist.record(500 + i * 37)

    benchmark(ops)


LoopAndClient = tuple[asyncio.AbstractEventLoop, AsyncClient]


class _AnsweringStream:
    """Stands in for a store's stream: answers every queued get or put at once, on the client's
    loop, so the benchmarks below count only the client's own work per call."""

    def __init__(self, conn: StoreConnection) -> None:
        self.conn = conn
        self.sent: set[int] = set()
        self.tasks = [asyncio.get_running_loop().create_task(self._answer())]

    async def _answer(self) -> None:
        conn = self.conn
        while True:
            await conn._wakeup.wait()
            conn._wakeup.clear()
            batch, conn._queue = conn._queue, []
            for req in batch:
                answer = kvrpc_pb2.Response(id=req.id)
                if req.WhichOneof("cmd") == "get":
                    answer.get.value = VALUE
                else:
                    answer.put.SetInParent()  # a put's success: an empty body
                conn._pending[req.id].set_result(answer)

    def stop(self) -> list[asyncio.Task[None]]:
        for task in self.tasks:
            task.cancel()
        return self.tasks


@pytest.fixture
def client_loop(cache: RangeCache, monkeypatch: pytest.MonkeyPatch) -> Iterator[LoopAndClient]:
    """An AsyncClient with a warm range cache and a connection whose store answers instantly."""
    monkeypatch.setattr(transport, "_Stream", _AnsweringStream)
    loop = asyncio.new_event_loop()
    client = AsyncClient("pd:1")
    client._pd = SimpleNamespace(cluster_id=7, close=lambda: asyncio.sleep(0))
    client._cache = cache
    client._addresses[1] = "store1"
    yield loop, client
    loop.run_until_complete(client.close())
    loop.close()


def test_client_get_64_in_flight(benchmark, client_loop: LoopAndClient) -> None:
    """The whole client path of 64 concurrent gets (call frame, attempt, stream queue, answer)."""
    loop, client = client_loop
    keys = [key_of(i * 37) for i in range(BATCH)]

    async def gets() -> list[bytes | None]:
        return await asyncio.gather(*(client.get(key) for key in keys))

    assert benchmark(lambda: loop.run_until_complete(gets())) == [VALUE] * BATCH


def test_client_put_64_in_flight(benchmark, client_loop: LoopAndClient) -> None:
    """The same for puts, which also carry the client's session header (a sequence number per
    write, the first incomplete one) and track the write until it is answered."""
    loop, client = client_loop
    keys = [key_of(i * 37) for i in range(BATCH)]

    async def puts() -> list[None]:
        return await asyncio.gather(*(client.put(key, VALUE) for key in keys))

    assert benchmark(lambda: loop.run_until_complete(puts())) == [None] * BATCH

"""The client's per-request CPU work, without the network: what bounds one client process.

A call looks up its range in the cache, builds a Raw*Request with its context, wraps it in a
Request, and leaves with whatever else is queued as one BatchRequest; the answers come back as
one BatchResponse. Also the load generator's own cost per operation (choose the next op, record
its latency), which must stay well below the client's for ``kvdb bench`` to measure the client.

Run: ``.venv/bin/pytest bench/micro --benchmark-only``.
"""

from __future__ import annotations

import random

import pytest

from bench.histogram import Histogram
from bench.workloads import Generator, key_of
from kvdb.client.cache import RangeCache
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
    body.context.CopyFrom(kvrpc_pb2.Context(cluster_id=7, range_id=loc.id, epoch=loc.descriptor.epoch))
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

"""The metrics plumbing in one process: bucket edges, the gRPC interceptor's outcomes, and a
scrape over HTTP that gathers on the event loop."""

from __future__ import annotations

import asyncio
import urllib.request

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from kvdb.metrics.endpoint import MetricsEndpoint
from kvdb.metrics.families import counter
from kvdb.metrics.histogram import LatencyHistogram
from kvdb.metrics.rpc import RpcMetricsInterceptor, RpcStats
from kvdb.net import grpc_factory
from kvdb.server.readiness import Health


def test_an_observation_on_a_bound_falls_in_that_bucket() -> None:
    hist = LatencyHistogram((0.1, 1.0))
    for seconds in (0.1, 0.5, 1.0, 3.0):
        hist.observe(seconds)
    buckets, total = hist.cumulative()
    assert buckets == [("0.1", 1), ("1.0", 3), ("+Inf", 4)]  # le: "less than or equal"
    assert total == pytest.approx(4.6)


def scrape(url: str) -> dict[tuple[str, frozenset], float]:
    with urllib.request.urlopen(url, timeout=10) as resp:
        text = resp.read().decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


class CountingInterceptor(RpcMetricsInterceptor):
    """Notes each method whose handler it wraps."""

    def __init__(self, stats: RpcStats) -> None:
        super().__init__(stats)
        self.built: list[str] = []

    def _time(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        self.built.append(method)
        return super()._time(handler, method)


def test_calls_are_counted_by_method_and_status_code() -> None:
    asyncio.run(calls_are_counted())


async def calls_are_counted() -> None:
    endpoint = MetricsEndpoint()
    interceptor = CountingInterceptor(endpoint.rpc)
    server = grpc_factory.server(None, [interceptor])
    health = await Health.add(server, ["kvdb.kv.Kv"])
    port = grpc_factory.listen(server, "127.0.0.1:0", None)
    await server.start()
    loop = asyncio.get_running_loop()
    gathered_on: list[object] = []

    def gather() -> list:
        gathered_on.append(asyncio.get_running_loop())  # raises off the loop's thread
        return [counter("kvdb_test_gathered", "scrapes gathered", len(gathered_on))]

    metrics_port = endpoint.start("127.0.0.1:0", loop, gather)
    try:
        await health.serving()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            for _ in range(3):
                assert (await stub.Check(health_pb2.HealthCheckRequest(service=""))).status == \
                    health_pb2.HealthCheckResponse.SERVING
            with pytest.raises(grpc.aio.AioRpcError):
                await stub.Check(health_pb2.HealthCheckRequest(service="no.such.Service"))
        samples = await loop.run_in_executor(None, scrape, f"http://127.0.0.1:{metrics_port}/metrics")
    finally:
        endpoint.stop()
        await server.stop(None)

    check = "/grpc.health.v1.Health/Check"
    assert interceptor.built == [check]  # four calls, one wrapper (gRPC hands over the same handler)
    assert samples[("kvdb_grpc_requests_total", frozenset({("method", check), ("code", "OK")}))] == 3
    assert samples[("kvdb_grpc_requests_total", frozenset({("method", check), ("code", "NOT_FOUND")}))] == 1
    assert samples[("kvdb_grpc_request_duration_seconds_count", frozenset({("method", check)}))] == 4
    assert samples[("kvdb_test_gathered_total", frozenset())] == 1 and gathered_on == [loop]

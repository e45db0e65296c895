"""Per-method gRPC request counts and latencies, taken by a server interceptor.

Every RPC a node serves (KV, admin, Raft transport, PD, health) is counted by full method name
and outcome (the gRPC status code name); its latency goes into the method's histogram. A stream
counts once, when it ends, with its whole duration: the requests inside the KV ``Batch`` stream
are counted by ``kvdb.metrics.kv.KvRequestStats`` instead, like those on the raw KV listener
(``kvdb.server.kv_listener``, which no gRPC interceptor sees).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc

from kvdb.metrics.histogram import LatencyHistogram
from kvdb.net.handlers import WrappedHandlers, wrap_behavior

_CODE_NAMES = {code.value[0]: code.name for code in grpc.StatusCode}


class RpcStats:
    def __init__(self) -> None:
        self.calls: Counter[tuple[str, str]] = Counter()
        """(method, status code name) -> finished calls."""
        self.latency: dict[str, LatencyHistogram] = {}

    def record(self, method: str, code: str, seconds: float) -> None:
        self.calls[(method, code)] += 1
        hist = self.latency.get(method)
        if hist is None:
            hist = self.latency[method] = LatencyHistogram()
        hist.observe(seconds)


def _code_name(context: grpc.aio.ServicerContext, exc: BaseException | None) -> str:
    if isinstance(exc, asyncio.CancelledError | GeneratorExit):  # the client went away
        return "CANCELLED"
    code = context.code()
    if code is None:
        return "OK" if exc is None else "UNKNOWN"
    if isinstance(code, grpc.StatusCode):
        return code.name
    return _CODE_NAMES.get(code, "UNKNOWN")


class RpcMetricsInterceptor(grpc.aio.ServerInterceptor):
    """Install it first so calls another interceptor refuses (authorization) are counted too."""

    def __init__(self, stats: RpcStats) -> None:
        self.stats = stats
        self._timed = WrappedHandlers(self._time)

    async def intercept_service(self, continuation: Callable[..., Awaitable[grpc.RpcMethodHandler]],
                                details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        handler = await continuation(details)
        if handler is None:
            return None
        return self._timed.get(handler, details.method)

    def _time(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        record = self.stats.record
        return wrap_behavior(handler, lambda behavior, is_generator: (_timed_stream if is_generator else
                                                                       _timed_call)(behavior, method, record))


Record = Callable[[str, str, float], None]


def _timed_call(behavior: Callable, method: str, record: Record) -> Callable:
    """A coroutine behaviour (unary answers, or streams written with ``context.write``)."""
    async def call(request: object, context: grpc.aio.ServicerContext) -> object:
        start, exc = time.perf_counter(), None
        try:
            return await behavior(request, context)
        except BaseException as e:
            exc = e
            raise
        finally:
            record(method, _code_name(context, exc), time.perf_counter() - start)

    return call


def _timed_stream(behavior: Callable, method: str, record: Record) -> Callable:
    """An async generator behaviour: the call lasts until the generator ends."""
    async def call(request: object, context: grpc.aio.ServicerContext) -> AsyncIterator[object]:
        start, exc = time.perf_counter(), None
        try:
            async for response in behavior(request, context):
                yield response
        except BaseException as e:
            exc = e
            raise
        finally:
            record(method, _code_name(context, exc), time.perf_counter() - start)

    return call

"""A node's metrics registry and its HTTP endpoint (``--metrics-listen``, ``/metrics``).

Collectors gather what they export on the node's event loop, where every counter they read
changes: the HTTP server's thread hands the gathering to the loop and waits for it, so a scrape
never sees a dict mid-update and the hot paths take no locks.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Callable, Iterator
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from kvdb.metrics.families import histograms, labelled
from kvdb.metrics.rpc import RpcStats
from kvdb.server.addresses import split_host_port

log = logging.getLogger(__name__)

SCRAPE_TIMEOUT = 5.0
"""Seconds a scrape waits for the event loop; a loop this late is itself what to look at."""

Gather = Callable[[], list[Metric]]


class LoopCollector(Collector):
    """Exports what ``on_loop`` gathers on ``loop`` and what ``off_loop`` gathers in the scraping
    thread (file sizes: nothing the loop changes)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, on_loop: Gather,
                 off_loop: Gather | None = None) -> None:
        self.loop = loop
        self.on_loop = on_loop
        self.off_loop = off_loop

    def collect(self) -> Iterator[Metric]:
        future: concurrent.futures.Future[list[Metric]] = concurrent.futures.Future()

        def gather() -> None:
            try:
                future.set_result(self.on_loop())
            except BaseException as exc:  # noqa: BLE001 - handed to the scraping thread
                future.set_exception(exc)

        self.loop.call_soon_threadsafe(gather)
        yield from future.result(SCRAPE_TIMEOUT)
        if self.off_loop is not None:
            yield from self.off_loop()


def rpc_families(stats: RpcStats) -> list[Metric]:
    return [
        labelled(CounterMetricFamily, "kvdb_grpc_requests", "gRPC calls served, by full method name and "
                 "status code (a stream counts once, when it ends)", ["method", "code"],
                 sorted(stats.calls.items())),
        histograms("kvdb_grpc_request_duration_seconds", "Time from a gRPC call's start to its end",
                   "method", stats.latency),
    ]


class MetricsEndpoint:
    """One registry per node process (never the global one: tests run several nodes per process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.rpc = RpcStats()
        self._server: WSGIServer | None = None
        ProcessCollector(registry=self.registry)

    def add(self, collector: Collector) -> None:
        self.registry.register(collector)

    def start(self, address: str, loop: asyncio.AbstractEventLoop, gather: Gather,
              off_loop: Gather | None = None) -> int:
        """Serve ``/metrics`` on ``address`` (HOST:PORT, port 0 picks one); returns the port."""
        self.add(LoopCollector(loop, lambda: [*rpc_families(self.rpc), *gather()], off_loop))
        host, port = split_host_port(address, "--metrics-listen")
        self._server, _ = start_http_server(port, host, self.registry)
        bound = self._server.server_port
        log.info("metrics on http://%s:%d/metrics", host, bound)
        return bound

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

"""KV requests by kind and outcome, with a latency histogram per kind.

Counted where every KV request passes, unary or inside a KV stream (gRPC ``Batch`` or the raw
``KvListener``): ``KvHandler.handle`` (``kvdb.server.kv_handler``), from arrival to answer. The
outcome is ``ok`` or the name of the error the answer carries (``not_leader``,
``epoch_not_match``, ``timeout``...).
"""

from __future__ import annotations

import time
from collections import Counter

from google.protobuf.message import Message
from prometheus_client.core import CounterMetricFamily, Metric

from kvdb.metrics.families import histograms, labelled
from kvdb.metrics.histogram import LatencyHistogram


class KvRequestStats:
    def __init__(self) -> None:
        self.requests: Counter[tuple[str, str]] = Counter()
        """(kind, outcome) -> answered requests."""
        self.latency: dict[str, LatencyHistogram] = {}

    def record(self, kind: str, body: Message, arrived: float) -> None:
        """Count an answer about to go out: ``body`` is its response's ``kind`` field, ``arrived``
        the request's ``time.perf_counter()`` on arrival (``KvHandler.handle`` has both at hand)."""
        hist = self.latency.get(kind)
        if hist is None:
            hist = self.latency[kind] = LatencyHistogram()
        hist.observe(time.perf_counter() - arrived)
        outcome = (body.error.WhichOneof("kind") or "error") if body.HasField("error") else "ok"
        self.requests[(kind, outcome)] += 1


def kv_families(stats: KvRequestStats) -> list[Metric]:
    return [
        labelled(CounterMetricFamily, "kvdb_kv_requests", "KV requests answered (unary or in a KV "
                 "stream), by kind and outcome (ok, or the error's name)", ["kind", "outcome"],
                 sorted(stats.requests.items())),
        histograms("kvdb_kv_request_duration_seconds", "Time from a KV request's arrival to its answer",
                   "kind", stats.latency),
    ]

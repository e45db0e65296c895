"""KV requests by kind and outcome, with a latency histogram per kind.

Counted where every KV request passes, unary or inside the ``Batch`` stream: ``KvHandler.handle``
(``kvdb.server.kv_handler``), from arrival to answer. The outcome is ``ok`` or the name of the
error the answer carries (``not_leader``, ``epoch_not_match``, ``timeout``...).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

from prometheus_client.core import CounterMetricFamily, Metric

from kvdb.metrics.families import histograms, labelled
from kvdb.metrics.histogram import LatencyHistogram
from kvdb.pb import kvrpc_pb2

Respond = Callable[[kvrpc_pb2.Response], None]


class KvRequestStats:
    def __init__(self) -> None:
        self.requests: Counter[tuple[str, str]] = Counter()
        """(kind, outcome) -> answered requests."""
        self.latency: dict[str, LatencyHistogram] = {}

    def timed(self, kind: str, respond: Respond) -> Respond:
        """``respond``, counting the answer and its latency from now."""
        start = time.perf_counter()
        hist = self.latency.get(kind)
        if hist is None:
            hist = self.latency[kind] = LatencyHistogram()

        def answer(resp: kvrpc_pb2.Response) -> None:
            hist.observe(time.perf_counter() - start)
            body = getattr(resp, kind)
            outcome = (body.error.WhichOneof("kind") or "error") if body.HasField("error") else "ok"
            self.requests[(kind, outcome)] += 1
            respond(resp)

        return answer


def kv_families(stats: KvRequestStats) -> list[Metric]:
    return [
        labelled(CounterMetricFamily, "kvdb_kv_requests", "KV requests answered (unary or in the Batch "
                 "stream), by kind and outcome (ok, or the error's name)", ["kind", "outcome"],
                 sorted(stats.requests.items())),
        histograms("kvdb_kv_request_duration_seconds", "Time from a KV request's arrival to its answer",
                   "kind", stats.latency),
    ]

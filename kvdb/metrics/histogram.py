"""A latency histogram for a single-threaded hot path: no lock, one bisect per observation.

``prometheus_client.Histogram`` takes a lock and walks every bucket in Python per observation;
this keeps per-bucket counts in a list and is exported at scrape time
(``HistogramMetricFamily`` wants cumulative counts, which ``cumulative`` computes then).
"""

from __future__ import annotations

from bisect import bisect_left

LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                   1.0, 2.5, 5.0, 10.0)
"""Upper bounds in seconds, 100 µs to 10 s: a Raft fsync to a request that waits out its deadline."""


class LatencyHistogram:
    """Observations in seconds. One writer at a time (the event loop, or the writer thread for
    fsyncs): a scrape from elsewhere may see a count one observation ahead of the sum, which
    Prometheus tolerates."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.sum += seconds

    def cumulative(self) -> tuple[list[tuple[str, int]], float]:
        """(buckets as ``HistogramMetricFamily.add_metric`` takes them, sum)."""
        out, total = [], 0
        for bound, count in zip((*map(str, self.bounds), "+Inf"), self.counts, strict=True):
            total += count
            out.append((bound, total))
        return out, self.sum

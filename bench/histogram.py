"""Latency histogram: log-linear buckets in the manner of HdrHistogram, with two significant digits.

Sorting every sample would be exact but would keep millions of floats per process and would have
to ship them all to the parent; a fixed bucket array is small, merges by adding counts, and its
error is bounded. Values are whole microseconds. Below ``SUB_BUCKETS * 2`` (256 µs) each value
has its own bucket (exact); above, each power of two is cut into ``SUB_BUCKETS`` (128) equal
buckets, so a bucket is at most 1/128 of its values wide. A percentile is reported as its bucket's
midpoint, hence ``MAX_RELATIVE_ERROR``. Values beyond ``MAX_VALUE_US`` (an hour) are clamped.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

SUB_BITS = 7
SUB_BUCKETS = 1 << SUB_BITS
EXACT_LIMIT = SUB_BUCKETS * 2
MAX_VALUE_US = 3_600_000_000
MAX_RELATIVE_ERROR = 1 / (2 * SUB_BUCKETS)
"""Bound on |reported - true| / true for any percentile (half a bucket's relative width)."""
PERCENTILES = (50.0, 95.0, 99.0, 99.9)


def bucket_index(value_us: int) -> int:
    """Which bucket holds ``value_us`` (clamped to [0, MAX_VALUE_US])."""
    value_us = min(max(value_us, 0), MAX_VALUE_US)
    if value_us < EXACT_LIMIT:
        return value_us
    shift = value_us.bit_length() - SUB_BITS - 1
    return EXACT_LIMIT + (shift - 1) * SUB_BUCKETS + (value_us >> shift) - SUB_BUCKETS


def bucket_bounds(index: int) -> tuple[int, int]:
    """[low, high) of the values that fall into bucket ``index``."""
    if index < EXACT_LIMIT:
        return index, index + 1
    shift, sub = divmod(index - EXACT_LIMIT, SUB_BUCKETS)
    shift += 1
    low = (sub + SUB_BUCKETS) << shift
    return low, low + (1 << shift)


BUCKETS = bucket_index(MAX_VALUE_US) + 1


class Histogram:
    """Counts of latencies in µs; ``merge`` adds another's counts (what the runner's parent does)."""

    __slots__ = ("counts", "count", "total", "min", "max")

    def __init__(self) -> None:
        self.counts = [0] * BUCKETS
        self.count = 0
        self.total = 0
        self.min = MAX_VALUE_US
        self.max = 0

    def record(self, value_us: int) -> None:
        # Inlined bucket_index and plain comparisons: this runs once per operation in the load generator.
        v = int(value_us)
        if v < EXACT_LIMIT:
            v = max(v, 0)
            index = v
        else:
            v = min(v, MAX_VALUE_US)
            shift = v.bit_length() - SUB_BITS - 1
            index = EXACT_LIMIT + (shift - 1) * SUB_BUCKETS + (v >> shift) - SUB_BUCKETS
        self.counts[index] += 1
        self.count += 1
        self.total += v
        if v < self.min:
            self.min = v
        if v > self.max:
            self.max = v

    def merge(self, other: Histogram) -> None:
        for i, c in enumerate(other.counts):
            if c:
                self.counts[i] += c
        self.count += other.count
        self.total += other.total
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)

    def percentile(self, p: float) -> float:
        """The nearest-rank ``p``-th percentile (the value at rank ceil(p/100 * count)), within
        MAX_RELATIVE_ERROR; 0 when empty. Clipped to the exact min and max, which are known."""
        if not self.count:
            return 0.0
        rank = max(1, math.ceil(p / 100 * self.count))
        seen = 0
        for i, c in enumerate(self.counts):
            seen += c
            if seen >= rank:
                low, high = bucket_bounds(i)
                mid = low if high - low == 1 else (low + high) / 2
                return float(min(max(mid, self.min), self.max))
        return float(self.max)

    def summary(self) -> dict[str, float]:
        """What a result file reports: count, min, mean, max and the PERCENTILES, in µs."""
        out: dict[str, float] = {"count": self.count, "min": self.min if self.count else 0, "max": self.max,
                                 "mean": round(self.total / self.count, 1) if self.count else 0.0}
        for p in PERCENTILES:
            out[f"p{p:g}"] = round(self.percentile(p), 1)
        return out

    def to_sparse(self) -> dict[int, int]:
        """The non-empty buckets: what a process sends to the parent (a few hundred entries)."""
        return {i: c for i, c in enumerate(self.counts) if c}

    @classmethod
    def from_sparse(cls, buckets: dict[int, int], total: int, minimum: int, maximum: int) -> Histogram:
        h = cls()
        for i, c in buckets.items():
            h.counts[i] = c
            h.count += c
        h.total, h.min, h.max = total, minimum, maximum
        return h

    def state(self) -> tuple[dict[int, int], int, int, int]:
        """Picklable and compact: ``Histogram.from_sparse(*h.state())`` rebuilds ``h``."""
        return self.to_sparse(), self.total, self.min, self.max


def merged(histograms: Iterable[Histogram]) -> Histogram:
    out = Histogram()
    for h in histograms:
        out.merge(h)
    return out

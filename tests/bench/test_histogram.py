"""The histogram's percentiles stay within the stated error of exact ones, and merging is exact."""

from __future__ import annotations

import math
import random

import pytest

from bench.histogram import (
    BUCKETS,
    EXACT_LIMIT,
    MAX_RELATIVE_ERROR,
    MAX_VALUE_US,
    Histogram,
    bucket_bounds,
    bucket_index,
)


def exact_percentile(values: list[int], p: float) -> int:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]


def test_every_value_falls_inside_its_bucket() -> None:
    rng = random.Random(1)
    values = list(range(0, 2000)) + [rng.randrange(MAX_VALUE_US) for _ in range(5000)] + [MAX_VALUE_US]
    for v in values:
        low, high = bucket_bounds(bucket_index(v))
        assert low <= v < high
        assert high - low <= max(1, low / 128)
    assert bucket_index(MAX_VALUE_US) == BUCKETS - 1
    assert bucket_index(MAX_VALUE_US * 10) == BUCKETS - 1  # clamped


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_percentiles_within_stated_error(seed: int) -> None:
    rng = random.Random(seed)
    # Latency-like: lognormal around a few ms, with a tail, plus some sub-256 µs exact values.
    values = [int(rng.lognormvariate(8, 1.2)) for _ in range(20_000)] + [rng.randrange(EXACT_LIMIT)
                                                                           for _ in range(500)]
    h = Histogram()
    for v in values:
        h.record(v)
    for p in (1, 10, 50, 90, 95, 99, 99.9, 100):
        exact = exact_percentile(values, p)
        assert abs(h.percentile(p) - exact) <= exact * MAX_RELATIVE_ERROR + 0.5, p
    assert h.count == len(values) and h.min == min(values) and h.max == max(values)
    assert h.summary()["mean"] == pytest.approx(sum(values) / len(values), abs=0.1)


def test_small_values_are_exact_and_empty_is_zero() -> None:
    h = Histogram()
    assert h.percentile(99) == 0.0 and h.summary()["count"] == 0
    for v in (3, 7, 7, 200):
        h.record(v)
    assert [h.percentile(p) for p in (25, 50, 75, 100)] == [3, 7, 7, 200]


def test_merge_equals_recording_everything_in_one() -> None:
    rng = random.Random(5)
    parts = [[int(rng.expovariate(1 / 3000)) for _ in range(3000)] for _ in range(3)]
    combined, merged = Histogram(), Histogram()
    for part in parts:
        h = Histogram()
        for v in part:
            h.record(v)
            combined.record(v)
        merged.merge(Histogram.from_sparse(*h.state()))  # as the processes send them
    assert merged.counts == combined.counts
    assert merged.summary() == combined.summary()

"""The split benchmarks: pre-split keys and the split-under-load analysis (both run on a playground
in test_on_a_playground.py)."""

from __future__ import annotations

import pytest

from bench.splits import Op, analyse, split_keys
from bench.workloads import key_of


def test_split_keys_cut_the_key_space_into_equal_counts() -> None:
    keys = split_keys(1000, 4)
    assert keys == [key_of(250), key_of(500), key_of(750)]
    assert split_keys(1000, 1) == [] and len(split_keys(20_000, 64)) == 63
    assert keys == sorted(keys) and len(set(split_keys(64, 64))) == 63
    with pytest.raises(ValueError, match="cannot cut"):
        split_keys(10, 11)


def _steady(lo: float, hi: float, per_second: int, latency: float) -> list[Op]:
    n = round((hi - lo) * per_second)
    return [Op(lo + i / per_second, lo + i / per_second + latency, True) for i in range(n)]


def test_analysis_measures_the_stall_and_the_recovery() -> None:
    # 1000 ops/s at 2 ms, a 0.8 s stall when the split starts at 5 s (one write waits it out), 2 s at
    # half speed, then 1000 ops/s again until 12 s but for one slow half second (noise, not the split).
    ops = _steady(0, 5, 1000, 0.002) + [Op(5.0, 5.8, True)] + _steady(5.8, 7.8, 500, 0.004) \
        + _steady(7.8, 10, 1000, 0.002) + _steady(10, 10.5, 600, 0.002) + _steady(10.5, 12, 1000, 0.002) \
        + [Op(5.5, 5.9, False)]
    result = analyse(ops, split_start=5.0, split_end=6.0, end=12.0)
    assert result["before"]["throughput"] == pytest.approx(1000, rel=0.01)
    assert result["before"]["p99_ms"] == pytest.approx(2, rel=0.02)
    assert result["during"]["errors"] == 1 and result["during"]["max_ms"] == pytest.approx(800, rel=0.01)
    assert 800 < result["after"]["throughput"] < 900  # 0.9k + 4.0k in 6 s
    assert result["max_latency_ms"] == pytest.approx(800, rel=0.01)
    assert result["max_gap_ms"] == pytest.approx(800, abs=5)
    assert result["recovery_seconds"] == pytest.approx(3.0)  # the window 7.5-8.0 was the last one short
    assert result["recovered"]
    assert result["settled_throughput"] == pytest.approx(1000)
    assert result["settle_seconds"] == pytest.approx(3.0)
    assert len(result["timeline"]) == 24


def test_analysis_of_a_run_that_never_recovers_says_so() -> None:
    ops = _steady(0, 5, 1000, 0.002) + _steady(5, 10, 100, 0.002)
    result = analyse(ops, split_start=5.0, split_end=5.5, end=10.0)
    assert not result["recovered"] and result["recovery_seconds"] == pytest.approx(5.0)
    # ... but it settled at once at its new level: the split did not disturb it beyond that.
    assert result["settled_throughput"] == pytest.approx(100) and result["settle_seconds"] == 0.0

"""Result files: what the runner builds passes the schema check, survives a round trip, and plots."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.histogram import Histogram
from bench.report import ResultError, check_result, plot, read_result, summary_line, write_result
from bench.runner import BenchConfig, _Tally, build_result

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def fake_result(target: str = "kvdb", concurrency: int = 8, errors: dict[str, int] | None = None) -> dict:
    reads, writes = Histogram(), Histogram()
    for v in range(100, 5000, 7):
        reads.record(v)
        writes.record(v * 2)
    config = BenchConfig(workload="mixed", target=target, addresses="127.0.0.1:1", concurrency=concurrency,
                         output=Path("r.json"))
    tallies = [_Tally({"read": reads}, errors or {}), _Tally({"update": writes}, {})]
    return build_result(config, tallies, 2.0, "2026-01-01T00:00:00+00:00")


def test_result_has_the_schema_and_round_trips(tmp_path: Path) -> None:
    result = fake_result(errors={"DeadlineExceededError": 2})
    path = tmp_path / "out" / "r.json"
    write_result(result, path)
    assert read_result(path) == json.loads(json.dumps(result)) == result
    assert result["ops"] == result["latency_us"]["read"]["count"] * 2
    assert result["throughput"] == result["ops"] / 2.0
    assert result["errors"] == {"DeadlineExceededError": 2} and result["error_count"] == 2
    assert set(result["latency_us"]) == {"overall", "read", "update"}
    assert {"p50", "p95", "p99", "p99.9"} <= set(result["latency_us"]["overall"])
    assert result["config"]["output"] == "r.json"
    assert "ops/s" in summary_line(result) and "DeadlineExceededError 2" in summary_line(result)


def test_the_summary_says_when_the_ranges_changed_during_the_run() -> None:
    result = fake_result()
    one = {"count": 1, "leaders_by_store": {"1": 1}}
    result["ranges"] = {"before": one, "after": one}
    assert "ranges changed" not in summary_line(result)
    result["ranges"]["after"] = {"count": 2, "leaders_by_store": {"1": 1, "2": 1}}
    assert ("ranges changed during the run: 1 -> 2 (leaders by store {'1': 1} -> {'1': 1, '2': 1})"
            in summary_line(result))


def test_wrong_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ResultError, match="throughput"):
        check_result({k: v for k, v in fake_result().items() if k != "throughput"})
    with pytest.raises(ResultError, match="schema"):
        check_result({**fake_result(), "schema": 99})
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ResultError, match="bad.json"):
        read_result(bad)


def test_plot_writes_pngs(tmp_path: Path) -> None:
    results = [fake_result(target, c) for target in ("kvdb", "etcd") for c in (1, 16, 64)]
    paths = plot(results, tmp_path / "plots", prefix="write-")
    assert [p.name for p in paths] == ["write-throughput.png", "write-latency.png"]
    for path in paths:
        assert path.read_bytes().startswith(PNG_MAGIC)

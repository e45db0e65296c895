"""``kvdb bench failover``: the gap arithmetic and one short round per victim kind (its usage errors
are in test_bench_cli.py with the other commands')."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from bench.failover import longest_gap
from tests.bench.test_bench_cli import bench


def test_the_gap_runs_from_the_last_success_before_the_kill_to_the_end() -> None:
    successes = [0.5, 0.9, 1.2, 3.0, 3.1, 3.2]
    assert longest_gap(successes, start=1.0, end=4.0) == pytest.approx(1.8)  # 1.2 -> 3.0
    assert longest_gap(successes, start=1.0, end=6.0) == pytest.approx(2.8)  # 3.2 -> the end
    assert longest_gap([], start=1.0, end=4.0) == pytest.approx(3.0)  # nothing ever succeeded
    assert longest_gap([2.0], start=1.0, end=4.0) == pytest.approx(2.0)  # none before the kill


@pytest.mark.parametrize("victim, killed", [("leader", "store"), ("follower", "store"),
                                            ("pd-leader", "PD member")])
def test_one_round_reports_a_finite_gap(tmp_path: Path, victim: str, killed: str) -> None:
    out = tmp_path / "gaps.json"
    result = bench("failover", "--victim", victim, "--rounds", "1", "--restart-after", "1",
                   "--settle", "0.5", "--concurrency", "2", "--json", str(out), "--dir", str(tmp_path / "c"))
    assert result.returncode == 0, result
    assert "round 1: kill -9" in result.stdout
    data = json.loads(out.read_text())
    assert data["victim"] == victim and len(data["rounds"]) == 1
    (r,) = data["rounds"]
    assert r["killed"].startswith(killed)
    for gap in (r["write_gap"], r["read_gap"], r["tso_gap"]):
        assert math.isfinite(gap) and gap > 0

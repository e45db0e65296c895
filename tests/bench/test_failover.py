"""``kvdb bench failover``: the gap arithmetic and one short round per victim kind (its usage errors
are in test_bench_cli.py with the other commands')."""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from bench.failover import Load, Ops, longest_gap
from tests.bench.test_bench_cli import bench


def test_the_gap_runs_from_the_last_success_before_the_kill_to_the_end() -> None:
    successes = [0.5, 0.9, 1.2, 3.0, 3.1, 3.2]
    assert longest_gap(successes, start=1.0, end=4.0) == pytest.approx(1.8)  # 1.2 -> 3.0
    assert longest_gap(successes, start=1.0, end=6.0) == pytest.approx(2.8)  # 3.2 -> the end
    assert longest_gap([], start=1.0, end=4.0) == pytest.approx(3.0)  # nothing ever succeeded
    assert longest_gap([2.0], start=1.0, end=4.0) == pytest.approx(2.0)  # none before the kill


def test_the_load_stops_at_once_with_an_operation_stuck_in_flight() -> None:
    """A write sent to a killed etcd leader waits out etcd's 7 s request timeout; the rounds are
    measured by the time the load stops, so the load cancels it rather than waiting."""
    stuck = asyncio.Event()

    @asynccontextmanager
    async def connect() -> AsyncIterator[Ops]:
        async def put(_key: bytes) -> None:
            stuck.set()
            await asyncio.Event().wait()  # never answered

        async def get(_key: bytes) -> None:
            await asyncio.sleep(0.001)

        yield Ops(put, get, None)

    async def run() -> float:
        load = Load(connect, concurrency=2)
        task = asyncio.create_task(load.run())
        await asyncio.wait_for(stuck.wait(), 5)
        started = time.monotonic()
        load.stop.set()
        await asyncio.wait_for(task, 5)
        assert not load.writes
        return time.monotonic() - started

    assert asyncio.run(run()) < 1.0


@pytest.mark.parametrize("victim, killed", [("leader", "store"), ("follower", "store"),
                                            ("pd-leader", "PD member")])
def test_one_round_reports_a_finite_gap(tmp_path: Path, victim: str, killed: str) -> None:
    out = tmp_path / "gaps.json"
    result = bench("failover", "--victim", victim, "--rounds", "1", "--restart-after", "0.5",
                   "--settle", "0.25", "--concurrency", "2", "--json", str(out), "--dir", str(tmp_path / "c"))
    assert result.returncode == 0, result
    assert "round 1: kill -9" in result.stdout
    data = json.loads(out.read_text())
    assert data["victim"] == victim and len(data["rounds"]) == 1
    (r,) = data["rounds"]
    assert r["killed"].startswith(killed)
    for gap in (r["write_gap"], r["read_gap"], r["tso_gap"]):
        assert math.isfinite(gap) and gap > 0

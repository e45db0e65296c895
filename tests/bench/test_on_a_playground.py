"""``kvdb bench`` runs against a real playground: write, bank, pre-split and split under load, and
a sweep.

One playground (3 PD members, 3 stores) serves the whole module: a start costs ~6 s, and no run
here depends on what another left behind. Each checks its own output file and figures, the bank
its own 64 accounts (a key space the other workloads never write), and the split checks compare
range starts with their own split keys, which holds whatever ranges already exist.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.compare import free_base_port
from bench.report import check_result
from bench.splits import split_keys
from kvdb.pdclient.client import PdClient
from tests.bench.test_bench_cli import bench
from tests.bench.test_sweep import check_sweep
from tests.playground.test_playground import PROCESSES, Playground


@pytest.fixture(scope="module")
def playground(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Playground]:
    pg = Playground(tmp_path_factory.mktemp("bench-playground") / "data", free_base_port(PROCESSES))
    try:
        pg.start()
        yield pg
    finally:
        pg.kill_and_reap()


def test_write_against_a_playground(playground: Playground, tmp_path: Path) -> None:
    out = tmp_path / "f.json"
    result = bench("write", "--target", "kvdb", "--pd", playground.endpoints, "--duration", "1",
                   "--warmup", "0.3", "--processes", "2", "--concurrency", "4", "--output", str(out))
    assert result.returncode == 0, result
    assert "write on kvdb" in result.stdout and "ops/s" in result.stdout
    assert "write kvdb [" in result.stderr  # the progress line
    data = check_result(json.loads(out.read_text()))
    assert data["throughput"] > 0 and data["ops"] > 0
    assert data["errors"] == {} and data["error_count"] == 0
    assert data["concurrency"] == data["concurrency_total"] == 4 and data["processes"] == 2
    assert set(data["latency_us"]) == {"overall", "update"}
    assert 0 < data["latency_us"]["overall"]["p50"] <= data["latency_us"]["overall"]["p99"]
    for layout in (data["ranges"]["before"], data["ranges"]["after"]):  # from PD, around the run
        assert layout["count"] >= 1 and sum(layout["leaders_by_store"].values()) == layout["count"]


def test_bank_against_a_playground(playground: Playground, tmp_path: Path) -> None:
    """Pre-split into 8 ranges, transfers through the transactional client, the audit at the end."""
    out = tmp_path / "bank.json"
    result = bench("bank", "--pd", playground.endpoints, "--keys", "64", "--duration", "1", "--warmup", "0.3",
                   "--concurrency", "4", "--no-progress", "--output", str(out))
    assert result.returncode == 0, result
    assert "bank on kvdb" in result.stdout
    assert "bank total 64,000 over 64 accounts conserved" in result.stdout
    data = check_result(json.loads(out.read_text()))
    assert data["ops"] > 0 and set(data["latency_us"]) == {"overall", "transfer"}
    assert data["bank"]["ok"] and data["bank"]["seen_total"] == 64_000
    assert 0 <= data["abort_rate"] < 1 and data["aborts"] >= 0
    ranges = subprocess.run([sys.executable, "-m", "kvdb", "admin", "ranges", "--json",
                             "--pd", playground.endpoints], capture_output=True, text=True, timeout=30)
    assert ranges.returncode == 0, ranges
    assert len(json.loads(ranges.stdout)) >= 8  # the pre-split (the 1 range before it, cut 7 times)


def test_pre_split_and_split_under_load_on_a_playground(playground: Playground, tmp_path: Path) -> None:
    result = bench("write", "--pd", playground.endpoints, "--keys", "800", "--pre-split", "8",
                   "--duration", "1", "--warmup", "0.2", "--concurrency", "4", "--no-progress")
    assert result.returncode == 0, result
    starts = asyncio.run(_range_starts(playground.endpoints))
    assert set(split_keys(800, 8)) <= set(starts), starts

    out = tmp_path / "split.json"
    result = bench("split-under-load", "--pd", playground.endpoints, "--keys", "2000", "--ranges", "4",
                   "--before", "1", "--after", "1.5", "--concurrency", "8", "--output", str(out))
    assert result.returncode == 0, result
    assert "split into 4" in result.stdout and "settled at" in result.stdout
    data = json.loads(out.read_text())
    assert data["new_ranges"] == 3
    assert data["before"]["throughput"] > 0 and data["after"]["throughput"] > 0
    assert set(split_keys(2000, 4)) <= set(asyncio.run(_range_starts(playground.endpoints)))


async def _range_starts(endpoints: str) -> list[bytes]:
    async with PdClient(endpoints) as pd:
        return [info.descriptor.start_key for info in await pd.scan_ranges(b"")]


def test_sweep_of_a_playground(playground: Playground, tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    result = bench("sweep", "--target", "kvdb", "--pd", playground.endpoints, "--rates", "40,80",
                   "--duration", "0.5", "--warmup", "0.2", "--concurrency", "8", "--no-progress",
                   "--output-dir", str(out))
    assert result.returncode == 0, result
    assert "kvdb: " in result.stdout
    check_sweep(out, "kvdb", [40, 80])

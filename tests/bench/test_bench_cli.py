"""``kvdb bench`` through the installed CLI: usage errors, and one short run against a real playground."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.compare import free_base_port
from bench.report import check_result
from tests.playground.test_playground import PROCESSES, STOP_TIMEOUT, Playground

BENCH_TIMEOUT = 120.0


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kvdb", "bench", *args], capture_output=True, text=True,
                          timeout=BENCH_TIMEOUT)


@pytest.mark.parametrize("args, words", [
    (["write"], ["--pd"]),
    (["read", "--target", "etcd"], ["--endpoints"]),
    (["write", "--pd", "127.0.0.1:1", "--concurrency", "0"], ["concurrency"]),
    (["write", "--pd", "127.0.0.1:1", "--concurrency", "2", "--processes", "4"], ["total in flight"]),
    (["write", "--pd", "127.0.0.1:1", "--rate", "-1"], ["rate"]),
    (["ycsb-z"], ["ycsb-z"]),
    (["plot", "/nonexistent.json"], ["nonexistent"]),
    (["write", "--pd", "127.0.0.1:1", "--pre-split", "-1"], ["--pre-split"]),
    (["write", "--pd", "127.0.0.1:1", "--keys", "10", "--pre-split", "11"], ["--pre-split"]),
    (["read", "--target", "etcd", "--endpoints", "127.0.0.1:1", "--pre-split", "4"], ["--target kvdb"]),
    (["bank", "--pd", "127.0.0.1:1", "--keys", "10", "--single-range"], ["2 accounts per range"]),
    (["txn", "--target", "etcd", "--endpoints", "127.0.0.1:1", "--pre-split", "4"], ["--target kvdb"]),
    (["split-under-load"], ["--pd"]),
    (["split-under-load", "--pd", "127.0.0.1:1", "--ranges", "1"], ["--ranges"]),
    (["failover", "--victim", "store"], ["--victim"]),
    (["failover", "--rounds", "0"], ["--rounds"]),
    (["failover", "--restart-after", "-1"], ["--restart-after"]),
    (["failover", "--concurrency", "0"], ["--concurrency"]),
    (["failover", "--rounds", "x"], ["--rounds"]),
])
def test_usage_errors_are_one_line(args: list[str], words: list[str]) -> None:
    result = bench(*args)
    assert result.returncode == 2, result
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr, result.stderr
    for word in words:
        assert word in result.stderr


def test_write_against_a_playground(tmp_path: Path) -> None:
    pg = Playground(tmp_path / "data", free_base_port(PROCESSES))
    pg.start()
    try:
        out = tmp_path / "f.json"
        result = bench("write", "--target", "kvdb", "--pd", pg.endpoints, "--duration", "1",
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
    finally:
        pg.proc.terminate()
        pg.proc.wait(timeout=STOP_TIMEOUT)


def test_bank_against_a_playground(tmp_path: Path) -> None:
    """Pre-split into 8 ranges, transfers through the transactional client, the audit at the end."""
    pg = Playground(tmp_path / "data", free_base_port(PROCESSES))
    pg.start()
    try:
        out = tmp_path / "bank.json"
        result = bench("bank", "--pd", pg.endpoints, "--keys", "64", "--duration", "1", "--warmup", "0.3",
                       "--concurrency", "4", "--no-progress", "--output", str(out))
        assert result.returncode == 0, result
        assert "bank on kvdb" in result.stdout
        assert "bank total 64,000 over 64 accounts conserved" in result.stdout
        data = check_result(json.loads(out.read_text()))
        assert data["ops"] > 0 and set(data["latency_us"]) == {"overall", "transfer"}
        assert data["bank"]["ok"] and data["bank"]["seen_total"] == 64_000
        assert 0 <= data["abort_rate"] < 1 and data["aborts"] >= 0
        ranges = subprocess.run([sys.executable, "-m", "kvdb", "admin", "ranges", "--json",
                                 "--pd", pg.endpoints], capture_output=True, text=True, timeout=30)
        assert ranges.returncode == 0, ranges
        assert len(json.loads(ranges.stdout)) >= 8  # the pre-split (the 1 range before it, cut 7 times)
    finally:
        pg.proc.terminate()
        pg.proc.wait(timeout=STOP_TIMEOUT)

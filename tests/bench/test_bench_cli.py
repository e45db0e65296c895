"""``kvdb bench`` through the installed CLI: usage errors (the runs against a real playground are in
test_on_a_playground.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest

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

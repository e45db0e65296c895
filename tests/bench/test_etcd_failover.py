"""The failover rounds against etcd (kill -9 of its leader, restart from the same command line), and
``kvdb bench compare --workloads failover`` end to end with one short round per system.

These need the ``etcd`` binary and the ``etcd3aio`` client, and skip without them (as
tests/bench/test_etcd_driver.py does)."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import math
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from bench.compare import ETCD_PORTS, ETCD_SCRIPT, STOP_TIMEOUT, free_base_port
from bench.etcd_driver import EtcdDriver
from bench.etcd_failover import EtcdMembers, etcd_failover
from tests.bench.test_bench_cli import bench

pytestmark = [
    pytest.mark.skipif(shutil.which("etcd") is None, reason="etcd is not installed (scripts/etcd-cluster "
                                                            "installs it: apt-get install etcd-server)"),
    pytest.mark.skipif(importlib.util.find_spec("etcd3aio") is None, reason="etcd3aio is not installed"),
]


def test_one_round_kills_the_leader_and_brings_it_back(tmp_path: Path) -> None:
    started = subprocess.run([str(ETCD_SCRIPT), "start", "--dir", str(tmp_path), "--base-port",
                              str(free_base_port(ETCD_PORTS))], stdout=subprocess.PIPE, text=True,
                             check=True, timeout=120)
    endpoints = started.stdout.strip()
    members = EtcdMembers(tmp_path, endpoints)
    try:
        leader = asyncio.run(members.leader())
        old_pid = int(members.pid_file(leader).read_text())
        (r,) = etcd_failover(members, rounds=1, restart_after=0.5, settle=0.25, concurrency=2)
        assert r.victim == "etcd-leader" and r.killed == f"etcd member {leader} (pid {old_pid})"
        assert r.tso_gap is None and all(math.isfinite(g) and g > 0 for g in (r.write_gap, r.read_gap))
        new_pid = int(members.pid_file(leader).read_text())
        assert new_pid != old_pid and new_pid == members.restarted[0].pid
        os.kill(new_pid, 0)  # the restarted member runs

        async def put_get() -> bytes | None:
            driver = await EtcdDriver.open(endpoints)
            try:
                await driver.put(b"after-failover", b"yes")
                return await driver.get(b"after-failover")
            finally:
                await driver.close()

        assert asyncio.run(put_get()) == b"yes"
    finally:
        members.stop_restarted(STOP_TIMEOUT)
        stopped = subprocess.run([str(ETCD_SCRIPT), "stop", "--dir", str(tmp_path)], capture_output=True,
                                 text=True, timeout=120)
    assert "did not stop" not in stopped.stderr, stopped.stderr  # nothing left for the script to wait on


def test_compare_failover_side_by_side(tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    result = bench("compare", "--workloads", "failover", "--failover-rounds", "1", "--restart-after", "0.5",
                   "--settle", "0.25", "--failover-concurrency", "2", "--no-progress",
                   "--output-dir", str(out))
    assert result.returncode == 0, result
    assert "etcd round 1: kill -9 etcd member" in result.stdout
    assert "kvdb round 1: kill -9 store" in result.stdout
    assert "failover round" in result.stdout and "longest" in result.stdout
    (row,) = json.loads((out / "comparison.json").read_text())
    assert row["workload"] == "failover" and set(row) == {"workload", "kvdb", "etcd"}
    for target in ("kvdb", "etcd"):
        (r,) = row[target]["rounds"]
        assert row[target]["max_write_gap"] == r["write_gap"] > 0
    assert row["kvdb"]["rounds"][0]["tso_gap"] > 0 and row["etcd"]["rounds"][0]["tso_gap"] is None

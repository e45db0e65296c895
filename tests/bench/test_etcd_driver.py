"""EtcdDriver against a real 3-member etcd cluster started by scripts/etcd-cluster.

These need the ``etcd`` binary (Debian's etcd-server; scripts/etcd-cluster installs it) and the
``etcd3aio`` client (a dev extra): on a machine without etcd they skip, saying so.
"""

from __future__ import annotations

import asyncio
import importlib.util
import queue
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.compare import ETCD_PORTS, ETCD_SCRIPT, free_base_port
from bench.etcd_driver import EtcdDriver, EtcdUnavailable

pytestmark = [
    pytest.mark.skipif(shutil.which("etcd") is None, reason="etcd is not installed (scripts/etcd-cluster "
                                                            "installs it: apt-get install etcd-server)"),
    pytest.mark.skipif(importlib.util.find_spec("etcd3aio") is None, reason="etcd3aio is not installed"),
]


@pytest.fixture(scope="module")
def endpoints(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    cluster_dir = tmp_path_factory.mktemp("etcd")
    started = subprocess.run([str(ETCD_SCRIPT), "start", "--dir", str(cluster_dir),
                              "--base-port", str(free_base_port(ETCD_PORTS))],
                             stdout=subprocess.PIPE, text=True, check=True, timeout=120)
    try:
        yield started.stdout.strip()
    finally:
        subprocess.run([str(ETCD_SCRIPT), "stop", "--dir", str(cluster_dir)], check=True, timeout=60)


def test_put_get_scan(endpoints: str) -> None:
    async def run() -> None:
        driver = await EtcdDriver.open(endpoints)
        try:
            await driver.put(b"k1", b"v1")
            await driver.put(b"k2", b"v2")
            await driver.put(b"k3", b"v3")
            assert await driver.get(b"k2") == b"v2"
            assert await driver.get(b"missing") is None
            assert await driver.scan(b"k", 10) == 3
            assert await driver.scan(b"k2", 10) == 2
            assert await driver.scan(b"k", 2) == 2
        finally:
            await driver.close()

    asyncio.run(run())


def test_fresh_data_dir_each_start(tmp_path: Path) -> None:
    """Every start wipes the data: a comparison must not inherit an earlier run's keys (or its slowness)."""
    script = [str(ETCD_SCRIPT)]
    base = str(free_base_port(ETCD_PORTS))

    async def put_then_get(endpoints: str, put: bool) -> bytes | None:
        driver = await EtcdDriver.open(endpoints)
        try:
            if put:
                await driver.put(b"left-over", b"x")
            return await driver.get(b"left-over")
        finally:
            await driver.close()

    seen = []
    for put in (True, False):
        started = subprocess.run([*script, "start", "--dir", str(tmp_path), "--base-port", base],
                                 stdout=subprocess.PIPE, text=True, check=True, timeout=120)
        try:
            seen.append(asyncio.run(put_then_get(started.stdout.strip(), put)))
        finally:
            subprocess.run([*script, "stop", "--dir", str(tmp_path)], check=True, timeout=60)
    assert seen == [b"x", None]


def test_open_fails_clearly_when_nothing_listens() -> None:
    port = free_base_port(1)
    with pytest.raises(EtcdUnavailable, match="does not answer"):
        asyncio.run(EtcdDriver.open(f"127.0.0.1:{port}"))


def test_bank_transfers_keep_the_total_and_conflicts_abort(endpoints: str) -> None:
    """The Txn idiom against real etcd: many workers on 16 accounts conflict, retry, and no money is lost."""
    from bench.bank import audit
    from bench.runner import BenchConfig, _measure, _preload

    config = BenchConfig(workload="bank", target="etcd", addresses=endpoints, ops=300, warmup=0,
                         concurrency=8, key_count=16)

    async def run() -> tuple:
        driver = await EtcdDriver.open(endpoints)
        try:
            await _preload(driver, config, 0, b"")
            tally, _ = await _measure(driver, config, 0, b"", queue.Queue())
            return tally, await audit(driver, 16)
        finally:
            await driver.close()

    tally, checked = asyncio.run(run())
    assert tally.done + tally.failed == 300 and tally.done > 250, tally.errors
    assert tally.aborts > 0
    assert checked["ok"], checked["violation"]


def test_read_modify_write_creates_missing_keys(endpoints: str) -> None:
    async def run() -> list[bytes | None]:
        driver = await EtcdDriver.open(endpoints)
        try:
            assert await driver.read_modify_write([b"rmw-a", b"rmw-b"], b"x") == 0  # mod_revision 0: absent
            assert await driver.read_modify_write([b"rmw-a"], b"y") == 0
            return [await driver.get(b"rmw-a"), await driver.get(b"rmw-b")]
        finally:
            await driver.close()

    assert asyncio.run(run()) == [b"y", b"x"]

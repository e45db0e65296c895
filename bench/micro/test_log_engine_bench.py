"""What one fsync buys: Raft log appends through RaftLogStorage on RocksEngine, synced.

``test_group_commit`` stages 256 entries of 100 B for each of 1 or 8 ranges (plus each range's
hard state) into ONE batch and writes it with sync=True, as the store does once per loop
iteration. ``test_single_entry_synced_writes`` pays one synced write per entry, the cost group
commit avoids. Both report ``entries_per_second`` in extra_info (entries made durable per second,
encoding and key building included). Each runs on an engine appending to new WAL files
(``new-wal``) and on one overwriting its pooled WAL files (``recycled-wal``, the store's default:
``kvdb.storage.rocks``).

Run: ``.venv/bin/pytest bench/micro/test_log_engine_bench.py --benchmark-only``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kvdb.raft.types import ConfState, Entry, HardState, Snapshot
from kvdb.storage import RaftLogStorage, RocksEngine
from kvdb.store.config import StoreConfig

PAYLOAD = b"x" * 100
ENTRIES_PER_RANGE = 256
SINGLE_WRITES = 64


@pytest.fixture(params=[0, StoreConfig.wal_recycle_bytes], ids=["new-wal", "recycled-wal"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RocksEngine]:
    eng = RocksEngine(tmp_path / "db", wal_recycle_bytes=request.param)
    yield eng
    eng.close()


def _logs(engine: RocksEngine, ranges: int) -> list[RaftLogStorage]:
    return [RaftLogStorage(engine, rid, ConfState(voters=[1]), Snapshot) for rid in range(1, ranges + 1)]


@pytest.mark.benchmark(group="synced raft log writes, RocksEngine")
@pytest.mark.parametrize("ranges", [1, 8])
def test_group_commit(benchmark, engine: RocksEngine, ranges: int) -> None:
    logs = _logs(engine, ranges)

    def run() -> None:
        batch = engine.batch()
        for log in logs:
            first = log.last_index() + 1
            log.append(batch, [Entry(1, first + i, PAYLOAD) for i in range(ENTRIES_PER_RANGE)])
            log.set_hard_state(batch, HardState(1, 1, first - 1))
        engine.write(batch, sync=True)

    benchmark.pedantic(run, rounds=30, iterations=1, warmup_rounds=2)
    assert all(log.last_index() == 32 * ENTRIES_PER_RANGE for log in logs)
    per_second = ranges * ENTRIES_PER_RANGE / benchmark.stats.stats.median
    benchmark.extra_info["entries_per_second"] = round(per_second)


@pytest.mark.benchmark(group="synced raft log writes, RocksEngine")
def test_single_entry_synced_writes(benchmark, engine: RocksEngine) -> None:
    (log,) = _logs(engine, 1)

    def run() -> None:
        for _ in range(SINGLE_WRITES):
            batch = engine.batch()
            index = log.last_index() + 1
            log.append(batch, [Entry(1, index, PAYLOAD)])
            log.set_hard_state(batch, HardState(1, 1, index - 1))
            engine.write(batch, sync=True)

    benchmark.pedantic(run, rounds=10, iterations=1, warmup_rounds=1)
    assert log.last_index() == 11 * SINGLE_WRITES
    benchmark.extra_info["entries_per_second"] = round(SINGLE_WRITES / benchmark.stats.stats.median)

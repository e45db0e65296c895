"""``RocksEngine(wal_recycle_bytes=...)``: synced writes overwrite pooled WAL files in place, and a
crash recovers exactly the acknowledged writes, never a record from a file's earlier life.

Real RocksDB, real processes: a child writes synced batches, printing each key once its write
returned, and is killed with SIGKILL mid-stream; the parent reopens the database.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from kvdb.storage import CF_DEFAULT, CF_META, RocksEngine
from kvdb.storage.keys import WAL_FILL_KEY

POOL = 1 << 20
SMALL_POOL = 256 << 10
"""The crash test's files: a switch every ~1,500 writes keeps the test short."""


def _logs(path: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in path.iterdir() if p.suffix == ".log"}


def test_opening_fills_the_pool_and_synced_writes_do_not_grow_it(tmp_path: Path) -> None:
    engine = RocksEngine(tmp_path / "db", wal_recycle_bytes=POOL)
    filled = _logs(tmp_path / "db")
    assert len(filled) == 2 and all(size > POOL // 2 for size in filled.values()), filled
    assert engine.get(CF_META, WAL_FILL_KEY) is None
    value = b"v" * 100
    for i in range(0, 3 * POOL // 128, 16):  # ~3 pool files' worth: every file is reused
        batch = engine.batch()
        for j in range(i, i + 16):
            batch.put(CF_DEFAULT, b"k%06d" % j, value)
        engine.write(batch, sync=True)
    logs = _logs(tmp_path / "db")
    assert len(logs) <= 3, logs  # the live file, the pool, at most one being retired
    assert max(logs.values()) < 2 * POOL, logs
    assert set(logs) != set(filled), "no WAL switch happened: the test wrote too little to see reuse"
    assert engine.get(CF_DEFAULT, b"k000000") == value
    engine.close()


def test_without_recycling_the_wal_is_a_new_file_that_grows(tmp_path: Path) -> None:
    engine = RocksEngine(tmp_path / "db")
    assert max(_logs(tmp_path / "db").values()) < 4096  # nothing filled
    engine.close()


WRITER = r"""
import sys
from kvdb.storage import CF_DEFAULT, RocksEngine

engine = RocksEngine(sys.argv[1], wal_recycle_bytes=int(sys.argv[2]))
first = int(sys.argv[3])
print("open", flush=True)
for i in range(first, first + 1_000_000):
    batch = engine.batch()
    batch.put(CF_DEFAULT, b"k%07d" % i, b"%d" % i * 20)
    engine.write(batch, sync=True)
    print(i, flush=True)
"""


def _write_until_killed(db: Path, first: int, acked_before_kill: int) -> int:
    """Run the writer from key ``first``; SIGKILL it once it acknowledged that many keys more.
    Returns the last acknowledged key."""
    child = subprocess.Popen([sys.executable, "-c", WRITER, str(db), str(SMALL_POOL), str(first)],
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "open"
    last = first - 1
    for line in child.stdout:
        last = int(line)
        if last - first + 1 >= acked_before_kill:
            break
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert last >= first, "the writer acknowledged nothing before it was killed"
    return last


def test_a_killed_writer_keeps_every_acknowledged_write_through_reused_wal_files(tmp_path: Path) -> None:
    db = tmp_path / "db"
    next_key = 0
    # Several lives, each long enough to switch WAL files a few times (~170 B per record), so
    # recovery reads files whose tails hold records of their earlier lives.
    for acked in (5000, 9000, 1500):
        last = _write_until_killed(db, next_key, acked)
        engine = RocksEngine(db, wal_recycle_bytes=SMALL_POOL)
        try:
            for i in (0, next_key, last):  # the first of all, of this life, and the last acknowledged
                assert engine.get(CF_DEFAULT, b"k%07d" % i) == b"%d" % i * 20, i
            recovered = engine.scan(CF_DEFAULT, b"k", None, 0)
            keys = [int(key[1:]) for key, _ in recovered]
            assert keys == list(range(len(keys))), "a hole, or a key no writer wrote"
            assert len(keys) - 1 >= last  # the last one or more may have been written, not acknowledged
            assert all(value == b"%d" % i * 20 for i, (_, value) in enumerate(recovered))
            assert engine.get(CF_META, WAL_FILL_KEY) is None
        finally:
            engine.close()
        next_key = len(keys)

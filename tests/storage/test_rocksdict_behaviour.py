"""Pins the rocksdict facts kvdb.storage relies on (see ../shared/design/DEPENDENCY-NOTES.md).

These test the dependency, not our code: when one fails after an upgrade, rocksdict changed and
the notes, and the code built on them, need another look. That a synced write really fsyncs is
checked where it can fail: tests/storage/test_rocks_fsync.py (a reopen cannot tell, as an unsynced
write survives a close).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from rocksdict import Options, Rdict, WriteBatch


def _open(path: Path) -> Rdict:
    opts = Options(raw_mode=True)
    opts.create_if_missing(True)
    return Rdict(str(path), opts)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Rdict]:
    d = _open(tmp_path / "db")
    yield d
    d.close()


def test_snapshot_point_read_sees_the_snapshot(db: Rdict) -> None:
    db[b"k"] = b"old"
    snap = db.snapshot()
    db[b"k"] = b"new"
    assert snap[b"k"] == b"old"
    assert db[b"k"] == b"new"
    del snap


def test_snapshot_iteration_does_not_isolate(db: Rdict) -> None:
    """Snapshot iteration SEES writes made after the snapshot was taken.

    If this fails, rocksdict changed: re-read DEPENDENCY-NOTES.md and decide whether range
    snapshots may now rely on snapshot iteration (today they must not).
    """
    db[b"a"] = b"old"
    snap = db.snapshot()
    db[b"a"] = b"new"
    db[b"b"] = b"added after the snapshot"
    assert dict(snap.items()) == {b"a": b"new", b"b": b"added after the snapshot"}
    it = snap.iter()
    it.seek_to_first()
    seen = []
    while it.valid():
        seen.append((it.key(), it.value()))
        it.next()
    assert seen == [(b"a", b"new"), (b"b", b"added after the snapshot")]
    del it, snap


def test_inverted_delete_range_fails_the_write_and_every_later_one(tmp_path: Path) -> None:
    """Why our WriteBatch never stages ``delete_range(start, end)`` with ``start > end``."""
    db = _open(tmp_path / "db")
    batch = WriteBatch(raw_mode=True)
    batch.delete_range(b"b", b"a")
    with pytest.raises(Exception, match="end key comes before start key"):
        db.write(batch)
    with pytest.raises(Exception, match="end key comes before start key"):
        db[b"k"] = b"a valid write"
    with contextlib.suppress(Exception):  # close() reports the same error
        db.close()

"""GC: what a safe point lets go, and that reads at or above it cannot tell."""

from __future__ import annotations

import random

import pytest

from kvdb.pb import kvrpc_pb2, metapb_pb2
from kvdb.txn import reads
from tests.txn.harness import DELETE, LOCK, PUT, Db, W, record_kinds


def _history(db: Db, key: bytes) -> None:
    """PUT@5, LOCK@7, PUT@9, ROLLBACK@10, DELETE@12, PUT@15 (commit timestamps)."""
    db.put_committed(key, b"v5", 4, 5)
    db.prewrite(6, [(LOCK, key)])
    db.commit(6, [key], 7)
    db.put_committed(key, b"v9", 8, 9)
    db.rollback(10, [key])
    db.prewrite(11, [(DELETE, key)])
    db.commit(11, [key], 12)
    db.put_committed(key, b"v15", 14, 15)


@pytest.mark.parametrize(
    ("safe_point", "left"),
    [
        (4, [15, 12, 10, 9, 7, 5]),
        (5, [15, 12, 10, 9, 7, 5]),
        (8, [15, 12, 10, 9, 5]),  # LOCK@7 goes; PUT@5 is the value at 8
        (9, [15, 12, 10, 9]),
        (11, [15, 12, 9]),  # the rollback goes, PUT@9 is still the value at 11
        (12, [15]),  # DELETE@12 is the value at 12: it and all below go
        (100, [15]),
    ],
)
def test_gc_keeps_the_newest_visible_version_at_the_safe_point(safe_point, left):
    db = Db()
    _history(db, b"k")
    assert isinstance(db.gc(safe_point), kvrpc_pb2.ResolveLockResponse)
    assert [ts for ts, _ in db.records(b"k")] == left
    for read_ts in range(safe_point, 20):
        before = Db()
        _history(before, b"k")
        assert db.value(b"k", read_ts) == before.value(b"k", read_ts), read_ts


def test_gc_only_touches_its_bounds_within_the_range():
    db = Db()
    for key in [b"a", b"b", b"c", b"d", b"e"]:
        _history(db, key)
    db.desc = metapb_pb2.RangeDescriptor(id=1, start_key=b"b", end_key=b"e")
    db.gc(100, b"a", b"d")  # clipped to [b, d)
    assert [len(db.records(k)) for k in [b"a", b"b", b"c", b"d", b"e"]] == [6, 1, 1, 6, 6]
    db.gc(100, b"c", b"")  # an empty end: the range's end
    assert [len(db.records(k)) for k in [b"a", b"b", b"c", b"d", b"e"]] == [6, 1, 1, 1, 6]
    assert record_kinds(db, b"d") == [(15, W.PUT, 14)]


def test_gc_leaves_locks_alone():
    db = Db()
    db.prewrite(3, [(PUT, b"k", b"v")])
    db.gc(100)
    assert db.lock(b"k").start_ts == 3


def _random_history(rng: random.Random, keys_: list[bytes]) -> tuple[Db, int]:
    db = Db()
    now = 1
    for _ in range(rng.randrange(10, 60)):
        start, now = now, now + rng.randrange(1, 3)
        muts = [
            (rng.choice([PUT, PUT, DELETE, LOCK]), key, b"%d" % start)
            for key in rng.sample(keys_, rng.randrange(1, 3))
        ]
        resp = db.prewrite(start, muts, one_pc=rng.random() < 0.3)
        if resp.errors or resp.one_pc_commit_ts:
            continue
        if rng.random() < 0.2:
            db.rollback(start, [m[1] for m in muts])
        else:
            db.commit(start, [m[1] for m in muts], now)
        now += 1
    return db, now


@pytest.mark.parametrize("seed", range(40))
def test_reads_at_or_above_the_safe_point_are_the_same_after_gc(seed):
    rng = random.Random(seed)
    keys_ = [b"k%d" % i for i in range(5)]
    db, now = _random_history(rng, keys_)
    safe_point = rng.randrange(1, now + 2)
    read_points = sorted({safe_point, now + 1, *(rng.randrange(safe_point, now + 2) for _ in range(5))})

    def snapshot():
        return [
            [(p.key, p.value) for p in reads.txn_scan(db.reader, b"", b"z", ts, 0, False).pairs]
            for ts in read_points
        ] + [[db.value(k, ts) for k in keys_] for ts in read_points]

    before = snapshot()
    db.gc(safe_point)
    assert snapshot() == before
    for key in keys_:
        old = [(ts, w.kind) for ts, w in db.records(key) if ts <= safe_point]
        assert len(old) <= 1 and all(kind == W.PUT for _, kind in old), (key, old)
    db.gc(safe_point)  # idempotent
    assert snapshot() == before

"""Snapshot reads: which locks block, which version answers, scans over many versions."""

from __future__ import annotations

import pytest

from kvdb.mvcc.reader import MvccReader
from kvdb.txn import reads
from tests.txn.harness import DELETE, LOCK, PUT, Db, keys


def _db_with_lock(op=PUT, start_ts=10, async_commit=False, max_read_ts=0):
    db = Db()
    db.put_committed(b"k", b"old", 2, 3)
    db.max_read_ts = max_read_ts
    assert not db.prewrite(start_ts, [(op, b"k", b"new")], async_commit=async_commit).errors
    return db


@pytest.mark.parametrize(
    ("op", "async_commit", "max_read_ts", "read_ts", "blocked"),
    [
        (PUT, False, 0, 10, True),  # lock.start_ts <= read ts
        (PUT, False, 0, 50, True),
        (PUT, False, 0, 9, False),  # started after the read: commits after it
        (DELETE, False, 0, 50, True),
        (LOCK, False, 0, 50, False),  # writes no value
        (PUT, True, 30, 30, False),  # async commit: min_commit_ts 31 > 30, commits above
        (PUT, True, 30, 31, True),
        (PUT, True, 30, 99, True),
    ],
)
def test_which_locks_block_a_read(op, async_commit, max_read_ts, read_ts, blocked):
    db = _db_with_lock(op, async_commit=async_commit, max_read_ts=max_read_ts)
    resp = db.get(b"k", read_ts)
    if blocked:
        assert resp.key_error.locked.start_ts == 10 and resp.key_error.locked.key == b"k"
        assert resp.value == b"" and not resp.not_found
    else:
        assert not resp.HasField("key_error") and resp.value == b"old"


def test_a_read_sees_the_newest_put_or_delete_at_or_below_its_ts():
    db = Db()
    db.put_committed(b"k", b"v1", 1, 2)
    db.prewrite(3, [(DELETE, b"k")])
    db.commit(3, [b"k"], 4)
    db.prewrite(5, [(LOCK, b"k")])
    db.commit(5, [b"k"], 6)
    db.rollback(7, [b"k"])
    db.put_committed(b"k", b"v2", 8, 9)
    db.prewrite(10, [(LOCK, b"k")])
    db.commit(10, [b"k"], 11)
    expected = {1: None, 2: b"v1", 3: b"v1", 4: None, 6: None, 7: None, 8: None, 9: b"v2", 12: b"v2"}
    for read_ts, value in expected.items():
        assert db.value(b"k", read_ts) == value, read_ts
    assert db.get(b"k", 4).not_found and not db.get(b"k", 9).not_found


def test_get_of_a_missing_key():
    assert Db().get(b"k", 100).not_found


def test_batch_get_returns_existing_keys_in_request_order():
    db = Db()
    db.put_committed(b"a", b"1", 1, 2)
    db.put_committed(b"c", b"3", 1, 2)
    resp = reads.txn_batch_get(db.reader, [b"c", b"b", b"a"], 10)
    assert [(p.key, p.value) for p in resp.pairs] == [(b"c", b"3"), (b"a", b"1")]
    assert not resp.locks


def test_batch_get_reports_every_blocking_lock_and_no_pairs():
    db = Db()
    db.put_committed(b"a", b"1", 1, 2)
    db.prewrite(5, [(PUT, b"b", b"2"), (PUT, b"d", b"2")])
    db.prewrite(6, [(LOCK, b"a")])
    resp = reads.txn_batch_get(db.reader, [b"a", b"b", b"c", b"d"], 10)
    assert [lock.key for lock in resp.locks] == [b"b", b"d"] and not resp.pairs


def _many_versions(keys_, versions):
    """Each key written ``versions`` times (value = key:n, n-th commit at 10n+1); every third
    key deleted at the end; LOCK and rollback records in between."""
    db = Db()
    for n in range(1, versions + 1):
        for key in keys_:
            db.put_committed(key, key + b":%d" % n, 10 * n, 10 * n + 1)
        db.prewrite(10 * n + 2, [(LOCK, k) for k in keys_])
        db.commit(10 * n + 2, keys_, 10 * n + 3)
        db.rollback(10 * n + 4, keys_)
    last = 10 * versions + 10
    db.prewrite(last, [(DELETE, k) for k in keys_[::3]])
    db.commit(last, keys_[::3], last + 1)
    return db, last


def test_scan_across_many_versions_with_limit_and_key_only():
    keys_ = [b"k%02d" % i for i in range(20)]
    db, last = _many_versions(keys_, 12)  # more versions per key than one scan chunk holds
    resp = reads.txn_scan(db.reader, b"k", b"l", 10 * 5 + 3, 7, False)
    assert [(p.key, p.value) for p in resp.pairs] == [(k, k + b":5") for k in keys_[:7]]
    alive = [k for i, k in enumerate(keys_) if i % 3]
    resp = reads.txn_scan(db.reader, b"k", b"l", last + 1, 0, False)
    assert [(p.key, p.value) for p in resp.pairs] == [(k, k + b":12") for k in alive]
    resp = reads.txn_scan(db.reader, b"k03", b"k10", last + 1, 3, True)
    assert [(p.key, p.value) for p in resp.pairs] == [(k, b"") for k in alive if b"k03" <= k][:3]
    assert reads.txn_scan(db.reader, b"k", b"l", 5, 0, False).pairs == []


def test_scan_reports_blocking_locks_only_up_to_its_last_key():
    db = Db()
    for key in [b"a", b"b", b"c", b"d"]:
        db.put_committed(key, b"v", 1, 2)
    db.prewrite(5, [(PUT, b"cc", b"x")])
    resp = reads.txn_scan(db.reader, b"a", b"z", 10, 2, False)  # a, b: the lock at cc cannot matter
    assert [p.key for p in resp.pairs] == [b"a", b"b"] and not resp.locks
    resp = reads.txn_scan(db.reader, b"a", b"z", 10, 3, False)  # a, b, c: cc would come after c
    assert [p.key for p in resp.pairs] == [b"a", b"b", b"c"] and not resp.locks
    resp = reads.txn_scan(db.reader, b"a", b"z", 10, 4, False)
    assert [lock.key for lock in resp.locks] == [b"cc"] and not resp.pairs
    db.prewrite(6, [(DELETE, b"b")])
    resp = reads.txn_scan(db.reader, b"a", b"z", 10, 2, False)  # a lock on the last key counts
    assert [lock.key for lock in resp.locks] == [b"b"] and not resp.pairs
    resp = reads.txn_scan(db.reader, b"a", b"z", 4, 4, False)  # the locks started after the read
    assert [p.key for p in resp.pairs] == [b"a", b"b", b"c", b"d"]


def test_a_lock_on_a_key_without_a_value_still_blocks_the_scan():
    db = Db()
    db.put_committed(b"b", b"v", 1, 2)
    db.prewrite(5, [(PUT, b"a", b"x")])
    resp = reads.txn_scan(db.reader, b"a", b"z", 10, 1, False)
    assert [lock.key for lock in resp.locks] == [b"a"]


def test_scan_lock_filters_by_version_and_limit():
    db = Db()
    for i, key in enumerate([b"a", b"b", b"c", b"d", b"e"]):
        db.prewrite(10 + i, [(PUT, key, b"v")], primary=b"a")
    resp = reads.scan_lock(db.reader, b"b", b"z", 13, 0)
    assert [(lock.key, lock.start_ts) for lock in resp.locks] == [(b"b", 11), (b"c", 12), (b"d", 13)]
    resp = reads.scan_lock(db.reader, b"", b"z", 100, 2)
    assert [lock.key for lock in resp.locks] == [b"a", b"b"]
    assert resp.locks[1].primary == b"a" and resp.locks[1].ttl_ms == 3000


def test_keys_with_zero_bytes_and_prefixes_keep_their_versions_apart():
    db = Db()
    for i, key in enumerate([b"a", b"a\x00", b"a\x00\x00", b"a\x01", b"ab"]):
        db.put_committed(key, b"v%d" % i, 10 * i + 1, 10 * i + 2)
        db.put_committed(key, b"w%d" % i, 10 * i + 3, 10 * i + 4)
    resp = reads.txn_scan(db.reader, b"a", b"b", 100, 0, False)
    assert [(p.key, p.value) for p in resp.pairs] == [
        (b"a", b"w0"),
        (b"a\x00", b"w1"),
        (b"a\x00\x00", b"w2"),
        (b"a\x01", b"w3"),
        (b"ab", b"w4"),
    ]
    assert db.value(b"a\x00", 12) == b"v1" and db.value(b"a", 12) == b"w0"


def test_the_worked_example_of_docs_mvcc():
    db = Db()
    db.put_committed(b"k", b"v5", 4, 5)
    db.prewrite(6, [(LOCK, b"k")])
    db.commit(6, [b"k"], 7)
    db.prewrite(10, [(PUT, b"k", b"x")])
    db.rollback(10, [b"k"])
    db.prewrite(11, [(DELETE, b"k")])
    db.commit(11, [b"k"], 12)
    db.put_committed(b"k", b"v15", 14, 15)
    db.max_read_ts = 18
    assert db.prewrite(18, [(PUT, b"k", b"v20")], async_commit=True).min_commit_ts == 19
    assert [(key.hex(" "), ts) for key, ts in [(k, keys.version_ts(k)) for k, _ in db.raw_write_cf()]] == [
        ("6b 00 01 ff ff ff ff ff ff ff f0", 15),
        ("6b 00 01 ff ff ff ff ff ff ff f3", 12),
        ("6b 00 01 ff ff ff ff ff ff ff f5", 10),
        ("6b 00 01 ff ff ff ff ff ff ff f8", 7),
        ("6b 00 01 ff ff ff ff ff ff ff fa", 5),
    ]
    expected = [None] + [b"v5"] * 7 + [None] * 3 + [b"v15"] * 4
    assert [db.value(b"k", ts) for ts in range(4, 19)] == expected
    assert db.get(b"k", 19).key_error.locked.start_ts == 18
    db.gc(11)
    assert [ts for ts, _ in db.records(b"k")] == [15, 12, 5]
    db.gc(13)
    assert [ts for ts, _ in db.records(b"k")] == [15] and db.lock(b"k").start_ts == 18


class _CountingEngine:
    """Counts the pairs the reader pulls out of the engine."""

    def __init__(self, engine):
        self.engine, self.pairs_read = engine, 0

    def get(self, cf, key):
        return self.engine.get(cf, key)

    def scan(self, cf, start, end, limit, reverse=False):
        pairs = self.engine.scan(cf, start, end, limit, reverse)
        self.pairs_read += len(pairs)
        return pairs


@pytest.mark.parametrize(("read_ts", "hot_value"), [(10_000, b"h299"), (1_505, b"h150")])
def test_a_scan_seeks_past_a_hot_keys_versions(read_ts, hot_value):
    db = Db()
    db.put_committed(b"a", b"a", 1, 2)
    for n in range(300):
        db.put_committed(b"h", b"h%d" % n, 10 * n + 3, 10 * n + 5)
    db.put_committed(b"z", b"z", 5000, 5001)
    counting = _CountingEngine(db.engine)
    found = MvccReader(counting).scan_values(b"a", b"zz", read_ts, 0)
    expected = [(b"a", b"a"), (b"h", hot_value)] + ([(b"z", b"z")] if read_ts > 5001 else [])
    assert found == expected
    assert counting.pairs_read < 100, "walked the hot key's versions one by one"

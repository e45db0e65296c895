"""Prewrite, commit and rollback, one rule per test, over a MemEngine through ``apply_txn``."""

from __future__ import annotations

import pytest

from tests.txn.harness import DELETE, LOCK, PUT, Db, W, record_kinds


def test_prewrite_writes_locks_and_the_primary_alone_carries_secondaries():
    db = Db()
    resp = db.prewrite(
        10, [(PUT, b"a", b"1"), (DELETE, b"b"), (LOCK, b"c")], async_commit=True, secondaries=[b"b", b"c"]
    )
    assert not resp.errors and resp.min_commit_ts == 11 and resp.one_pc_commit_ts == 0
    a, b, c = db.lock(b"a"), db.lock(b"b"), db.lock(b"c")
    assert (a.op, a.value, a.primary, a.start_ts, a.ttl_ms, a.txn_size) == (PUT, b"1", b"a", 10, 3000, 3)
    assert list(a.secondaries) == [b"b", b"c"] and not b.secondaries and not c.secondaries
    assert (b.op, b.value, c.op) == (DELETE, b"", LOCK)
    assert all(lock.use_async_commit and lock.min_commit_ts == 11 for lock in (a, b, c))
    assert db.raw_write_cf() == []


def test_classic_prewrite_has_no_min_commit_ts():
    db = Db()
    db.max_read_ts = 50
    resp = db.prewrite(10, [(PUT, b"a", b"1")])
    assert resp.min_commit_ts == 0 and db.lock(b"a").min_commit_ts == 0
    assert not db.lock(b"a").use_async_commit


def test_prewrite_is_idempotent_on_retry():
    db = Db()
    db.max_read_ts = 20
    first = db.prewrite(10, [(PUT, b"a", b"1"), (PUT, b"b", b"2")], async_commit=True)
    locks = db.raw_lock_cf()
    db.max_read_ts = 40  # reads happened since: the retry must not move the locks' min_commit_ts
    again = db.prewrite(10, [(PUT, b"a", b"1"), (PUT, b"b", b"2")], async_commit=True)
    assert not again.errors and db.raw_lock_cf() == locks
    assert again.min_commit_ts == first.min_commit_ts == 21


def test_prewrite_retry_after_the_commit_skips_the_committed_key():
    db = Db()
    db.put_committed(b"a", b"1", 10, 15)
    resp = db.prewrite(10, [(PUT, b"a", b"1")])
    assert not resp.errors and db.lock(b"a") is None
    assert record_kinds(db, b"a") == [(15, W.PUT, 10)]


def test_one_pc_retry_reports_the_first_commit_ts():
    db = Db()
    db.max_read_ts = 30
    first = db.prewrite(10, [(PUT, b"a", b"1"), (PUT, b"b", b"2")], one_pc=True)
    assert first.one_pc_commit_ts == 31
    db.max_read_ts = 60
    again = db.prewrite(10, [(PUT, b"a", b"1"), (PUT, b"b", b"2")], one_pc=True)
    assert again.one_pc_commit_ts == 31 and not again.errors
    assert record_kinds(db, b"a") == [(31, W.PUT, 10)]


@pytest.mark.parametrize("kind", ["put", "delete", "lock_record"])
def test_prewrite_conflicts_with_a_newer_commit_of_any_data_kind(kind):
    db = Db()
    op = {"put": PUT, "delete": DELETE, "lock_record": LOCK}[kind]
    assert not db.prewrite(12, [(op, b"a", b"v")]).errors
    db.commit(12, [b"a"], 15)
    resp = db.prewrite(10, [(PUT, b"a", b"mine"), (PUT, b"b", b"free")])
    assert len(resp.errors) == 1
    conflict = resp.errors[0].conflict
    assert (conflict.start_ts, conflict.conflict_start_ts, conflict.conflict_commit_ts) == (10, 12, 15)
    assert conflict.key == b"a" and conflict.primary == b"a"
    assert db.lock(b"b") is None, "a failed prewrite writes nothing"


def test_a_commit_at_exactly_start_ts_is_in_the_snapshot_and_does_not_conflict():
    db = Db()
    db.put_committed(b"a", b"1", 5, 10)
    assert not db.prewrite(10, [(PUT, b"a", b"2")]).errors


def test_a_commit_just_after_start_ts_conflicts():
    db = Db()
    db.put_committed(b"a", b"1", 5, 11)
    assert db.prewrite(10, [(PUT, b"a", b"2")]).errors[0].conflict.conflict_commit_ts == 11


def test_an_older_commit_does_not_conflict():
    db = Db()
    db.put_committed(b"a", b"1", 5, 9)
    assert not db.prewrite(10, [(PUT, b"a", b"2")]).errors


def test_another_txns_rollback_record_does_not_conflict():
    db = Db()
    db.rollback(15, [b"a"])
    assert not db.prewrite(10, [(PUT, b"a", b"2")]).errors


def test_prewrite_meets_another_txns_lock():
    db = Db()
    db.prewrite(5, [(PUT, b"a", b"1")], primary=b"p", ttl=100)
    resp = db.prewrite(10, [(PUT, b"a", b"2"), (PUT, b"b", b"2"), (LOCK, b"c")])
    assert len(resp.errors) == 1
    locked = resp.errors[0].locked
    assert (locked.key, locked.primary, locked.start_ts, locked.ttl_ms) == (b"a", b"p", 5, 100)
    assert db.lock(b"b") is None and db.lock(b"c") is None


def test_every_failing_key_is_reported():
    db = Db()
    db.prewrite(5, [(PUT, b"a", b"1")])
    db.put_committed(b"b", b"1", 11, 12)
    resp = db.prewrite(10, [(PUT, b"a", b"2"), (PUT, b"b", b"2")])
    assert [e.WhichOneof("kind") for e in resp.errors] == ["locked", "conflict"]


def test_a_rollback_record_blocks_a_late_prewrite():
    db = Db()
    db.rollback(10, [b"a"])
    assert record_kinds(db, b"a") == [(10, W.ROLLBACK, 10)]
    resp = db.prewrite(10, [(PUT, b"a", b"1")])
    assert resp.errors[0].aborted.start_ts == 10 and db.lock(b"a") is None


def test_one_pc_writes_records_above_max_read_ts():
    db = Db()
    db.max_read_ts = 40
    resp = db.prewrite(10, [(PUT, b"a", b"1"), (DELETE, b"b"), (LOCK, b"c")], one_pc=True)
    assert resp.one_pc_commit_ts == 41 and resp.min_commit_ts == 0
    assert db.raw_lock_cf() == []
    assert record_kinds(db, b"a") == [(41, W.PUT, 10)]
    assert record_kinds(db, b"b") == [(41, W.DELETE, 10)]
    assert record_kinds(db, b"c") == [(41, W.LOCK, 10)]
    assert db.value(b"a", 40) is None and db.value(b"a", 41) == b"1"


def test_one_pc_commit_ts_is_above_start_ts_when_no_read_was_higher():
    db = Db()
    db.max_read_ts = 3
    assert db.prewrite(10, [(PUT, b"a", b"1")], one_pc=True).one_pc_commit_ts == 11


def test_async_commit_min_commit_ts_is_above_max_read_ts_and_start_ts():
    db = Db()
    db.max_read_ts = 99
    assert db.prewrite(10, [(PUT, b"a", b"1")], async_commit=True).min_commit_ts == 100
    db.max_read_ts = 0
    assert db.prewrite(20, [(PUT, b"b", b"1")], async_commit=True).min_commit_ts == 21


# --------------------------------------------------------------------------------- commit


@pytest.mark.parametrize(("op", "kind"), [(PUT, W.PUT), (DELETE, W.DELETE), (LOCK, W.LOCK)])
def test_commit_turns_the_lock_into_a_record(op, kind):
    db = Db()
    db.prewrite(10, [(op, b"a", b"v")])
    assert not db.commit(10, [b"a"], 15).HasField("key_error")
    assert db.lock(b"a") is None
    [(ts, write)] = db.records(b"a")
    assert (ts, write.kind, write.start_ts, write.value) == (15, kind, 10, b"v" if op == PUT else b"")


def test_commit_is_idempotent():
    db = Db()
    db.put_committed(b"a", b"1", 10, 15)
    before = db.raw_write_cf()
    assert not db.commit(10, [b"a"], 15).HasField("key_error")
    assert db.raw_write_cf() == before


def test_commit_after_rollback_is_aborted():
    db = Db()
    db.prewrite(10, [(PUT, b"a", b"1"), (PUT, b"b", b"1")])
    db.rollback(10, [b"a"])
    resp = db.commit(10, [b"b", b"a"], 15)
    assert resp.key_error.aborted.start_ts == 10 and resp.key_error.aborted.key == b"a"
    assert db.lock(b"b") is not None, "nothing is written when a key fails"


def test_commit_without_lock_or_record_is_lock_not_found():
    db = Db()
    resp = db.commit(10, [b"a"], 15)
    assert resp.key_error.lock_not_found.key == b"a" and db.raw_write_cf() == []


def test_commit_below_min_commit_ts_is_refused():
    db = Db()
    db.max_read_ts = 30
    db.prewrite(10, [(PUT, b"a", b"1")], async_commit=True)
    resp = db.commit(10, [b"a"], 20)
    assert resp.key_error.message == "commit_ts 20 is below the lock's min_commit_ts 31"
    assert resp.key_error.WhichOneof("kind") is None and db.lock(b"a") is not None
    assert not db.commit(10, [b"a"], 31).HasField("key_error")


def test_commit_of_another_txns_lock_is_not_found():
    db = Db()
    db.prewrite(5, [(PUT, b"a", b"1")])
    assert db.commit(10, [b"a"], 15).key_error.HasField("lock_not_found")
    assert db.lock(b"a").start_ts == 5


# ------------------------------------------------------------------------------- rollback


def test_rollback_removes_the_lock_and_leaves_a_record():
    db = Db()
    db.prewrite(10, [(PUT, b"a", b"1")])
    assert not db.rollback(10, [b"a"]).HasField("key_error")
    assert db.lock(b"a") is None
    assert record_kinds(db, b"a") == [(10, W.ROLLBACK, 10)]
    assert db.value(b"a", 100) is None


def test_rollback_is_idempotent():
    db = Db()
    db.rollback(10, [b"a"])
    before = db.raw_write_cf()
    db.rollback(10, [b"a"])
    assert db.raw_write_cf() == before


def test_rollback_of_a_committed_txn_is_refused():
    db = Db()
    db.put_committed(b"a", b"1", 10, 15)
    db.prewrite(10, [(PUT, b"b", b"1")])
    resp = db.rollback(10, [b"b", b"a"])
    assert resp.key_error.message == "already committed at 15"
    assert db.lock(b"b") is not None, "nothing is written"


def test_rollback_leaves_another_txns_lock():
    db = Db()
    db.prewrite(5, [(PUT, b"a", b"1")])
    db.rollback(10, [b"a"])
    assert db.lock(b"a").start_ts == 5
    assert record_kinds(db, b"a") == [(10, W.ROLLBACK, 10)]


# --------------------------------------------------------------------- overlapped rollback


def test_overlapped_rollback_commit_lands_on_a_rollback_record():
    """T (start 20) is rolled back on k; U's async commit lands at commit_ts 20 on k."""
    db = Db()
    db.rollback(20, [b"k"])
    db.max_read_ts = 19
    db.prewrite(5, [(PUT, b"k", b"u")], async_commit=True)
    assert db.commit(5, [b"k"], 20).HasField("key_error") is False
    [(ts, write)] = db.records(b"k")
    assert (ts, write.kind, write.start_ts, write.value) == (20, W.PUT, 5, b"u")
    assert write.has_overlapped_rollback
    assert db.reader.txn_status(b"k", 20).rolled_back
    assert db.reader.txn_status(b"k", 5).committed_ts == 20
    assert db.prewrite(20, [(PUT, b"k", b"t")]).errors[0].HasField("aborted")
    assert db.value(b"k", 20) == b"u"


def test_overlapped_rollback_rollback_lands_on_a_commit_record():
    """U committed k at 20; then T (start 20) is rolled back on k: U's record gets the flag."""
    db = Db()
    db.max_read_ts = 19
    db.prewrite(5, [(PUT, b"k", b"u")], one_pc=True)
    assert db.records(b"k")[0][0] == 20
    db.rollback(20, [b"k"])
    [(ts, write)] = db.records(b"k")
    assert (ts, write.kind, write.start_ts, write.value) == (20, W.PUT, 5, b"u")
    assert write.has_overlapped_rollback
    assert db.reader.txn_status(b"k", 20).rolled_back
    assert db.reader.txn_status(b"k", 5).committed_ts == 20
    assert db.commit(20, [b"k"], 25).key_error.HasField("aborted")
    before = db.raw_write_cf()
    db.rollback(20, [b"k"])
    assert db.raw_write_cf() == before, "a second rollback finds the flag and writes nothing"

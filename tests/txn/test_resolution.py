"""The commands a lock resolver sends: check_txn_status, check_secondary_locks, resolve_lock,
txn_heart_beat."""

from __future__ import annotations

import pytest

from kvdb.pb import kvrpc_pb2, metapb_pb2
from tests.txn.harness import PUT, Db, W, record_kinds, ts

START = ts(1000, 7)


@pytest.mark.parametrize(
    ("current", "expired"),
    [
        (ts(1000, 9), False),
        (ts(1099, (1 << 18) - 1), False),  # the logical part never counts as time
        (ts(1100), True),  # physical(current) == physical(start) + ttl
        (ts(5000), True),
    ],
)
def test_check_txn_status_expiry_counts_physical_ms_from_start_ts(current, expired):
    db = Db()
    db.prewrite(START, [(PUT, b"p", b"1")], ttl=100)
    resp = db.check_txn_status(b"p", START, current)
    if expired:
        assert resp.action == kvrpc_pb2.TTL_EXPIRE_ROLLBACK
        assert (resp.lock_ttl_ms, resp.commit_ts) == (0, 0) and not resp.HasField("lock")
        assert db.lock(b"p") is None
        assert record_kinds(db, b"p") == [(START, W.ROLLBACK, START)]
    else:
        assert resp.action == kvrpc_pb2.NO_ACTION and resp.lock_ttl_ms == 100
        assert resp.lock.key == b"p" and resp.lock.start_ts == START
        assert db.lock(b"p") is not None and db.raw_write_cf() == []


def test_heart_beat_extends_the_ttl_check_txn_status_uses():
    db = Db()
    db.prewrite(START, [(PUT, b"p", b"1")], ttl=100)
    assert db.heart_beat(b"p", START, 500).lock_ttl_ms == 500
    assert db.heart_beat(b"p", START, 50).lock_ttl_ms == 500, "the ttl never shrinks"
    assert db.check_txn_status(b"p", START, ts(1499)).lock_ttl_ms == 500
    assert db.check_txn_status(b"p", START, ts(1500)).action == kvrpc_pb2.TTL_EXPIRE_ROLLBACK


def test_heart_beat_without_the_lock_is_lock_not_found():
    db = Db()
    db.prewrite(5, [(PUT, b"p", b"1")])
    assert db.heart_beat(b"p", START, 500).key_error.lock_not_found.key == b"p"
    assert db.lock(b"p").ttl_ms == 3000


def test_an_expired_async_commit_primary_is_returned_not_rolled_back():
    """Its txn may be committed already (every prewrite succeeded): only the secondaries tell."""
    db = Db()
    db.prewrite(START, [(PUT, b"p", b"1")], ttl=100, async_commit=True, secondaries=[b"s"])
    resp = db.check_txn_status(b"p", START, ts(9999))
    assert resp.action == kvrpc_pb2.NO_ACTION and resp.lock_ttl_ms == 100
    assert list(resp.lock.secondaries) == [b"s"] and resp.lock.use_async_commit
    assert db.lock(b"p") is not None and db.raw_write_cf() == []


def test_check_txn_status_of_a_committed_txn():
    db = Db()
    db.put_committed(b"p", b"1", START, START + 5)
    resp = db.check_txn_status(b"p", START, ts(9999), rollback_if_not_exist=True)
    assert resp.commit_ts == START + 5 and resp.action == kvrpc_pb2.NO_ACTION


def test_check_txn_status_of_a_rolled_back_txn():
    db = Db()
    db.rollback(START, [b"p"])
    resp = db.check_txn_status(b"p", START, ts(9999))
    assert (resp.commit_ts, resp.lock_ttl_ms, resp.action) == (0, 0, kvrpc_pb2.NO_ACTION)
    assert not resp.HasField("key_error")


def test_check_txn_status_with_no_trace_and_rollback_if_not_exist():
    db = Db()
    resp = db.check_txn_status(b"p", START, ts(1001), rollback_if_not_exist=True)
    assert resp.action == kvrpc_pb2.LOCK_NOT_EXIST_ROLLBACK
    assert record_kinds(db, b"p") == [(START, W.ROLLBACK, START)]
    assert db.prewrite(START, [(PUT, b"p", b"1")]).errors[0].HasField("aborted")


def test_check_txn_status_with_no_trace_is_lock_not_found():
    db = Db()
    db.prewrite(5, [(PUT, b"p", b"1")])  # another txn's lock is not START's
    resp = db.check_txn_status(b"p", START, ts(1001))
    assert resp.key_error.lock_not_found.start_ts == START
    assert db.raw_write_cf() == []


# ----------------------------------------------------------------------- check_secondary_locks


def test_check_secondary_locks_all_locked():
    db = Db()
    db.max_read_ts = 30
    db.prewrite(10, [(PUT, b"a", b"1"), (PUT, b"b", b"2")], primary=b"p", async_commit=True)
    resp = db.check_secondary_locks([b"a", b"b"], 10)
    assert [lock.key for lock in resp.locks] == [b"a", b"b"]
    assert all(lock.min_commit_ts == 31 for lock in resp.locks)
    assert (resp.commit_ts, resp.rolled_back) == (0, False)


def test_check_secondary_locks_writes_a_rollback_for_a_missing_key():
    db = Db()
    db.prewrite(10, [(PUT, b"a", b"1")], primary=b"p", async_commit=True)
    resp = db.check_secondary_locks([b"a", b"b"], 10)
    assert resp.rolled_back and resp.commit_ts == 0
    assert record_kinds(db, b"b") == [(10, W.ROLLBACK, 10)]
    assert (
        db.prewrite(10, [(PUT, b"b", b"2")], primary=b"p", async_commit=True).errors[0].HasField("aborted")
    ), "the late prewrite can never succeed now"


def test_check_secondary_locks_finds_a_commit():
    db = Db()
    db.prewrite(10, [(PUT, b"a", b"1"), (PUT, b"b", b"2")], async_commit=True)
    db.commit(10, [b"b"], 12)
    resp = db.check_secondary_locks([b"a", b"b"], 10)
    assert resp.commit_ts == 12 and not resp.rolled_back


def test_check_secondary_locks_finds_a_rollback():
    db = Db()
    db.prewrite(10, [(PUT, b"a", b"1"), (PUT, b"b", b"2")], async_commit=True)
    db.rollback(10, [b"a"])
    before = db.raw_write_cf()
    resp = db.check_secondary_locks([b"a", b"b"], 10)
    assert resp.rolled_back and db.raw_write_cf() == before


# ---------------------------------------------------------------------------------- resolve


def test_resolve_lock_by_keys_commits_or_rolls_back_only_that_txns_locks():
    db = Db()
    db.prewrite(10, [(PUT, b"a", b"1"), (PUT, b"b", b"2")])
    db.prewrite(11, [(PUT, b"c", b"3")])
    assert not db.resolve_lock(10, 15, [b"a", b"c", b"zz"]).HasField("key_error")
    assert record_kinds(db, b"a") == [(15, W.PUT, 10)] and db.lock(b"a") is None
    assert db.lock(b"b").start_ts == 10, "not named"
    assert db.lock(b"c").start_ts == 11 and db.records(b"c") == [], "another txn's lock is skipped"
    assert db.records(b"zz") == []
    db.resolve_lock(10, 0, [b"b"])
    assert db.lock(b"b") is None and record_kinds(db, b"b") == [(10, W.ROLLBACK, 10)]


def test_resolve_lock_by_txn_infos_covers_the_range():
    db = Db()
    db.prewrite(10, [(PUT, b"a", b"1"), (PUT, b"b", b"2")])
    db.prewrite(11, [(PUT, b"c", b"3")])
    db.prewrite(12, [(PUT, b"d", b"4")])
    db.resolve_lock(txn_infos=[(10, 20), (11, 0)])
    assert record_kinds(db, b"a") == [(20, W.PUT, 10)]
    assert record_kinds(db, b"b") == [(20, W.PUT, 10)]
    assert record_kinds(db, b"c") == [(11, W.ROLLBACK, 11)]
    assert db.lock(b"d").start_ts == 12
    assert [k for k, _ in db.raw_lock_cf()] == [b"d"]


def test_resolve_lock_without_keys_or_infos_resolves_start_ts():
    db = Db()
    db.prewrite(10, [(PUT, b"a", b"1")])
    db.prewrite(11, [(PUT, b"b", b"2")])
    db.resolve_lock(10, 13)
    assert record_kinds(db, b"a") == [(13, W.PUT, 10)] and db.lock(b"b") is not None


def test_resolve_lock_by_txn_stays_in_the_range():
    db = Db()
    db.prewrite(10, [(PUT, b"a", b"1"), (PUT, b"b", b"1"), (PUT, b"c", b"1"), (PUT, b"d", b"1")])
    db.desc = metapb_pb2.RangeDescriptor(id=1, start_key=b"b", end_key=b"d")
    db.resolve_lock(10, 0)
    assert [k for k, _ in db.raw_lock_cf()] == [b"a", b"d"]


def test_resolve_lock_commit_below_min_commit_ts_writes_nothing():
    db = Db()
    db.max_read_ts = 30
    db.prewrite(10, [(PUT, b"a", b"1")], async_commit=True)
    resp = db.resolve_lock(10, 20, [b"a"])
    assert "below the lock's min_commit_ts 31" in resp.key_error.message
    assert db.lock(b"a") is not None and db.raw_write_cf() == []

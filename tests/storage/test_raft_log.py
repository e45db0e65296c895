"""RaftLogStorage must behave as MemoryStorage does, and recover its state from the engine."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kvdb.raft.codec import entry_to_pb
from kvdb.raft.errors import CompactedError, SnapshotOutOfDateError, StorageError, UnavailableError
from kvdb.raft.storage import MemoryStorage
from kvdb.raft.types import ConfState, Entry, HardState, Snapshot, SnapshotMetadata
from kvdb.storage import CF_RAFT, Engine, MemEngine, RaftLogStorage, RocksEngine, WriteBatch
from kvdb.storage.keys import (
    RANGE_STATE_PREFIX,
    STORE_IDENT_KEY,
    apply_state_key,
    hard_state_key,
    prefix_end,
    raft_log_index,
    raft_log_key,
    raft_log_prefix_bounds,
    range_id_from_state_key,
    range_state_key,
    truncated_state_key,
)
from kvdb.storage.raft_log import CorruptLogError

CS = ConfState(voters=[1, 2, 3])
SNAP = Snapshot(SnapshotMetadata(7, 2, CS), b"state machine")


class Disk:
    """An engine that can be restarted: RocksDB is closed and reopened, a MemEngine is kept."""

    def __init__(self, kind: str, path: Path) -> None:
        self.kind = kind
        self.path = path
        self.engine: Engine = RocksEngine(path) if kind == "rocks" else MemEngine()

    def restart(self) -> Engine:
        self.engine.close()
        if self.kind == "rocks":
            self.engine = RocksEngine(self.path)
        return self.engine

    def write(self, fn: Callable[..., None], *args: object) -> None:
        """Run a RaftLogStorage write method on a batch of its own and write that, synced."""
        batch = self.engine.batch()
        fn(batch, *args)
        self.engine.write(batch, sync=True)


@pytest.fixture(params=["rocks", "mem"])
def disk(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Disk]:
    d = Disk(request.param, tmp_path / "db")
    yield d
    d.engine.close()


def open_log(
    engine: Engine, range_id: int = 1, cache_entries: int = 4096, cs: ConfState = CS
) -> RaftLogStorage:
    return RaftLogStorage(engine, range_id, cs, lambda: SNAP, cache_entries)


def ents(*terms: int, start: int = 1) -> list[Entry]:
    return [Entry(t, start + i, b"data %d" % (start + i)) for i, t in enumerate(terms)]


def encoded_size(entries: list[Entry]) -> int:
    return sum(len(entry_to_pb(e).SerializeToString()) for e in entries)


def log_keys(engine: Engine, range_id: int = 1) -> list[bytes]:
    start, end = raft_log_prefix_bounds(range_id)
    return [key for key, _ in engine.scan(CF_RAFT, start, end, 0)]


def test_log_keys_sort_by_range_then_index_and_stay_inside_their_bounds() -> None:
    ids, indexes = (0, 1, 255, 256, 2**40), (0, 1, 255, 256, 2**63)
    keys = [raft_log_key(r, i) for r in ids for i in indexes]
    assert keys == sorted(keys)
    assert [raft_log_index(key) for key in keys] == list(indexes) * len(ids)
    for r in ids:
        start, end = raft_log_prefix_bounds(r)
        for other in ids:
            inside = [start <= raft_log_key(other, i) < end for i in indexes]
            assert inside == [other == r] * len(indexes)
            for state_key in (hard_state_key(other), truncated_state_key(other)):
                assert not start <= state_key < end


def test_meta_keys() -> None:
    ids = (0, 7, 256, 2**64 - 1)
    state_keys = [range_state_key(r) for r in ids]
    assert state_keys == sorted(state_keys)
    assert [range_id_from_state_key(key) for key in state_keys] == list(ids)
    end = prefix_end(RANGE_STATE_PREFIX)
    assert all(key.startswith(RANGE_STATE_PREFIX) and key < end for key in state_keys)
    for other in [STORE_IDENT_KEY] + [apply_state_key(r) for r in ids]:
        assert not RANGE_STATE_PREFIX <= other < end
        with pytest.raises(ValueError):
            range_id_from_state_key(other)
    assert (prefix_end(b"a\xff\xff"), prefix_end(b"\xff")) == (b"b", None)


def test_fresh_log_is_empty(disk: Disk) -> None:
    log = open_log(disk.engine)
    assert log.initial_state() == (HardState(), CS)
    assert (log.first_index(), log.last_index(), log.term(0)) == (1, 0, 0)
    assert log.truncated == (0, 0) and log.log_size_bytes() == 0
    assert log.entries(1, 1) == []
    assert log.snapshot() is SNAP
    with pytest.raises(UnavailableError):
        log.term(1)
    with pytest.raises(CompactedError):
        log.entries(0, 1)


def test_append_read_and_errors(disk: Disk) -> None:
    log = open_log(disk.engine)
    disk.write(log.append, ents(1, 1, 2, 2, 3))
    assert (log.first_index(), log.last_index()) == (1, 5)
    assert [log.term(i) for i in range(6)] == [0, 1, 1, 2, 2, 3]
    assert log.entries(2, 5) == ents(1, 2, 2, start=2)
    assert log.entries(3, 3) == []
    assert log.log_size_bytes() == encoded_size(ents(1, 1, 2, 2, 3))
    with pytest.raises(UnavailableError):
        log.entries(4, 7)
    with pytest.raises(UnavailableError):
        log.term(6)
    with pytest.raises(UnavailableError):
        log.append(disk.engine.batch(), ents(3, start=7))  # a gap after 5


def test_conflicting_suffix_is_truncated_in_the_engine(disk: Disk) -> None:
    log = open_log(disk.engine)
    disk.write(log.append, ents(1, 1, 2, 2, 3))
    disk.write(log.append, [Entry(3, 3, b"new")])
    assert log.last_index() == 3 and log.term(3) == 3
    assert log.entries(1, 4) == [*ents(1, 1), Entry(3, 3, b"new")]
    assert log.log_size_bytes() == encoded_size(log.entries(1, 4))
    assert len(log_keys(disk.engine)) == 3

    again = open_log(disk.restart())
    assert again.last_index() == 3 and again.entries(1, 4) == log.entries(1, 4)
    assert again.log_size_bytes() == log.log_size_bytes()


def test_append_ignores_compacted_entries(disk: Disk) -> None:
    log = open_log(disk.engine)
    disk.write(log.append, ents(1, 1, 1, 1))
    disk.write(log.compact, 3)
    disk.write(log.append, ents(1, 1))  # all at or before the truncated index: nothing to do
    assert (log.first_index(), log.last_index()) == (4, 4)
    disk.write(log.append, ents(1, 1, 1, 2, 2, 2))  # 1..3 dropped, 4 rewritten, 5..6 added
    assert (log.first_index(), log.last_index()) == (4, 6)
    assert log.entries(4, 7) == ents(2, 2, 2, start=4)
    assert open_log(disk.restart()).entries(4, 7) == ents(2, 2, 2, start=4)


def test_compact(disk: Disk) -> None:
    log = open_log(disk.engine)
    disk.write(log.append, ents(1, 1, 2, 2, 3))
    disk.write(log.compact, 3)
    assert log.truncated == (3, 2)
    assert (log.first_index(), log.last_index(), log.term(3)) == (4, 5, 2)
    assert log.log_size_bytes() == encoded_size(ents(2, 3, start=4))
    assert len(log_keys(disk.engine)) == 2
    with pytest.raises(CompactedError):
        log.term(2)
    with pytest.raises(CompactedError):
        log.entries(3, 5)
    with pytest.raises(CompactedError):
        log.compact(disk.engine.batch(), 3)
    with pytest.raises(UnavailableError):
        log.compact(disk.engine.batch(), 6)
    disk.write(log.compact, 5)
    assert (log.first_index(), log.last_index(), log.term(5)) == (6, 5, 3)
    assert log_keys(disk.engine) == [] and log.log_size_bytes() == 0

    again = open_log(disk.restart())
    assert again.truncated == (5, 3) and again.last_index() == 5


def test_apply_snapshot_drops_the_log(disk: Disk) -> None:
    log = open_log(disk.engine)
    disk.write(log.append, ents(1, 1, 2, 2, 3))
    new_cs = ConfState(voters=[1, 2], learners=[4])
    disk.write(log.apply_snapshot, 4, 2, new_cs)
    assert log.truncated == (4, 2) and log.initial_state()[1] == new_cs
    assert (log.first_index(), log.last_index(), log.term(4)) == (5, 4, 2)
    assert log_keys(disk.engine) == [] and log.log_size_bytes() == 0
    with pytest.raises(SnapshotOutOfDateError):
        log.apply_snapshot(disk.engine.batch(), 4, 5, new_cs)
    with pytest.raises(SnapshotOutOfDateError):
        log.apply_snapshot(disk.engine.batch(), 2, 5, new_cs)
    disk.write(log.append, ents(3, 3, start=5))
    assert log.entries(5, 7) == ents(3, 3, start=5)

    again = open_log(disk.restart(), cs=new_cs)
    assert again.truncated == (4, 2) and again.entries(5, 7) == ents(3, 3, start=5)


@pytest.mark.parametrize("cache_entries", [0, 2, 4096])
def test_max_size(disk: Disk, cache_entries: int) -> None:
    log = open_log(disk.engine, cache_entries=cache_entries)
    for e in ents(1, 1, 1, 1, 1, 1):
        disk.write(log.append, [e])
    one = ents(1)[0].size()
    memory = MemoryStorage()
    memory.append(ents(1, 1, 1, 1, 1, 1))
    for max_size in (None, 0, one - 1, one, 2 * one, 3 * one + 1, 100 * one):
        for lo, hi in ((1, 7), (2, 6), (5, 7), (6, 7)):
            assert log.entries(lo, hi, max_size) == memory.entries(lo, hi, max_size), (lo, hi, max_size)


def test_recovery_after_restart(disk: Disk) -> None:
    log = open_log(disk.engine)
    batch = disk.engine.batch()
    log.append(batch, ents(1, 2, 2, 3, 3, 3))
    log.set_hard_state(batch, HardState(3, 2, 5))
    disk.engine.write(batch, sync=True)
    disk.write(log.compact, 2)
    assert log.hard_state == HardState(3, 2, 5)

    again = open_log(disk.restart(), cs=ConfState(voters=[7]))
    assert again.initial_state() == (HardState(3, 2, 5), ConfState(voters=[7]))
    assert again.truncated == (2, 2)
    assert (again.first_index(), again.last_index()) == (3, 6)
    assert again.entries(3, 7) == ents(2, 3, 3, 3, start=3)
    assert [again.term(i) for i in range(2, 7)] == [2, 2, 3, 3, 3]
    assert again.log_size_bytes() == log.log_size_bytes() == encoded_size(ents(2, 3, 3, 3, start=3))


class CountingEngine:
    """Passes everything through, counting reads: the hot path must not make any."""

    def __init__(self, inner: Engine) -> None:
        self.inner = inner
        self.reads = 0

    def batch(self) -> WriteBatch:
        return self.inner.batch()

    def write(self, batch: WriteBatch, sync: bool) -> None:
        self.inner.write(batch, sync)

    def get(self, cf: str, key: bytes) -> bytes | None:
        self.reads += 1
        return self.inner.get(cf, key)

    def scan(
        self, cf: str, start: bytes, end: bytes | None, limit: int, reverse: bool = False
    ) -> list[tuple[bytes, bytes]]:
        self.reads += 1
        return self.inner.scan(cf, start, end, limit, reverse)

    def iter_range(self, cf: str, start: bytes, end: bytes | None) -> Iterator[tuple[bytes, bytes]]:
        self.reads += 1
        return self.inner.iter_range(cf, start, end)

    def close(self) -> None:
        self.inner.close()


def test_cache_and_engine_paths(disk: Disk) -> None:
    engine = CountingEngine(disk.engine)
    log = open_log(engine, cache_entries=4)
    all_entries = ents(*[1 + i // 5 for i in range(20)])
    for e in all_entries:
        disk.write(log.append, [e])
    engine.reads = 0
    assert log.entries(17, 21) == all_entries[16:] and log.term(17) == 4
    assert engine.reads == 0, "the hot path (entries just appended) read the engine"
    assert log.entries(1, 21) == all_entries  # engine, then cache
    assert log.entries(3, 10) == all_entries[2:9]  # engine only
    assert log.entries(15, 19) == all_entries[14:18]  # spanning
    assert log.term(3) == 1
    assert engine.reads > 0

    # A conflicting append that starts before the cache replaces it.
    replacement = ents(9, 9, start=10)
    disk.write(log.append, replacement)
    assert log.last_index() == 11
    assert log.entries(1, 12) == all_entries[:9] + replacement


def test_latest_append_is_readable_before_the_batch_is_written(disk: Disk) -> None:
    """The store stages a Ready's entries and writes later; the cache must cover that window,
    even for an append longer than cache_entries."""
    engine = CountingEngine(disk.engine)
    log = open_log(engine, cache_entries=2)
    disk.write(log.append, ents(1, 1, 1))
    batch = disk.engine.batch()
    log.append(batch, ents(2, 2, 2, 2, 2, start=3))
    engine.reads = 0
    assert log.entries(3, 8) == ents(2, 2, 2, 2, 2, start=3) and log.term(3) == 2
    assert engine.reads == 0


def test_compact_and_snapshot_trim_the_cache(disk: Disk) -> None:
    log = open_log(disk.engine, cache_entries=4)
    for e in ents(1, 1, 1, 1, 1, 1):
        disk.write(log.append, [e])
    disk.write(log.compact, 4)
    assert log.entries(5, 7) == ents(1, 1, start=5)
    disk.write(log.apply_snapshot, 10, 3, CS)
    disk.write(log.append, ents(3, start=11))
    assert log.entries(11, 12) == ents(3, start=11)
    with pytest.raises(CompactedError):
        log.entries(10, 12)


def test_bootstrap_matches_a_founding_memory_storage(disk: Disk) -> None:
    batch = disk.engine.batch()
    RaftLogStorage.bootstrap(batch, 5)
    disk.engine.write(batch, sync=True)
    log = open_log(disk.engine, range_id=5)
    memory = MemoryStorage(CS)
    assert log.initial_state() == memory.initial_state()
    assert (log.first_index(), log.last_index()) == (memory.first_index(), memory.last_index())
    assert log.term(1) == memory.term(1) == 1
    assert log.truncated == (1, 1)


def test_ranges_share_an_engine_without_interfering(disk: Disk) -> None:
    logs = {rid: open_log(disk.engine, range_id=rid) for rid in (1, 2, 256)}
    batch = disk.engine.batch()
    for rid, log in logs.items():
        log.append(batch, ents(*[rid % 7 + 1] * 5))
        log.set_hard_state(batch, HardState(rid, 1, 1))
    disk.engine.write(batch, sync=True)
    disk.write(logs[2].compact, 3)
    disk.write(logs[256].apply_snapshot, 9, 9, CS)
    engine = disk.restart()
    reopened = {rid: open_log(engine, rid) for rid in logs}
    assert reopened[1].entries(1, 6) == ents(2, 2, 2, 2, 2)
    assert reopened[2].truncated == (3, 3) and reopened[2].entries(4, 6) == ents(3, 3, start=4)
    assert (reopened[256].truncated, reopened[256].last_index()) == ((9, 9), 9)
    assert [log.hard_state.term for log in reopened.values()] == [1, 2, 256]


def test_destroy(disk: Disk) -> None:
    keep, gone = open_log(disk.engine, 1), open_log(disk.engine, 2)
    for log in (keep, gone):
        batch = disk.engine.batch()
        log.append(batch, ents(1, 1, 1))
        log.set_hard_state(batch, HardState(1, 1, 2))
        log.compact(batch, 1)
        disk.engine.write(batch, sync=True)
    disk.write(gone.destroy)
    assert (gone.last_index(), gone.truncated, gone.hard_state) == (0, (0, 0), HardState())
    for key in (hard_state_key(2), truncated_state_key(2)):
        assert disk.engine.get(CF_RAFT, key) is None
    assert log_keys(disk.engine, 2) == []
    engine = disk.restart()
    fresh = open_log(engine, 2)
    assert (fresh.last_index(), fresh.truncated, fresh.hard_state) == (0, (0, 0), HardState())
    kept = open_log(engine, 1)
    assert (kept.last_index(), kept.truncated, kept.hard_state) == (3, (1, 1), HardState(1, 1, 2))


def test_a_gap_in_the_engine_is_corruption_not_a_storage_error(disk: Disk) -> None:
    log = open_log(disk.engine)
    disk.write(log.append, ents(1, 1, 1, 1))
    batch = disk.engine.batch()
    batch.delete(CF_RAFT, log_keys(disk.engine)[1])
    disk.engine.write(batch, sync=True)
    assert not issubclass(CorruptLogError, StorageError)
    with pytest.raises(CorruptLogError):
        open_log(disk.engine)


# -- randomized comparison with MemoryStorage ---------------------------------------------------


def _outcome(fn: Callable[..., object], *args: object) -> object:
    """What a call returned, or the type of the storage error it raised."""
    try:
        return fn(*args)
    except StorageError as exc:
        return type(exc)


def _check_same(log: RaftLogStorage, mem: MemoryStorage, rng: random.Random, where: str) -> None:
    first, last = mem.first_index(), mem.last_index()
    assert (log.first_index(), log.last_index()) == (first, last), where
    assert log.initial_state() == mem.initial_state(), where
    for i in range(max(0, first - 2), last + 2):
        assert _outcome(log.term, i) == _outcome(mem.term, i), f"{where}: term({i})"
    for _ in range(4):
        lo = rng.randint(max(0, first - 1), last + 1)
        hi = rng.randint(lo, last + 1) if rng.random() < 0.85 else last + 2
        max_size = rng.choice([None, 0, 30, 100, 1000])
        got, want = _outcome(log.entries, lo, hi, max_size), _outcome(mem.entries, lo, hi, max_size)
        assert got == want, f"{where}: entries({lo}, {hi}, {max_size})"
    live = mem.entries(first, last + 1) if last >= first else []
    assert log.log_size_bytes() == encoded_size(live), where


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_matches_memory_storage_on_random_operations(disk: Disk, seed: int) -> None:
    """Each iteration is one store loop: stage at most one append, maybe a hard state and a
    compaction or snapshot, write the batch, then read; now and then the store restarts."""
    rng = random.Random(seed)
    mem = MemoryStorage()
    log = open_log(disk.engine, cache_entries=rng.choice([0, 3, 8]), cs=ConfState())
    term = 1
    for step in range(150):
        where = f"seed {seed} step {step}"
        batch = disk.engine.batch()
        if rng.random() < 0.7:
            gap = 2 if rng.random() < 0.1 else 1
            start = rng.randint(max(1, mem.first_index() - 3), mem.last_index() + gap)
            if rng.random() < 0.3:
                term += 1
            new = [Entry(term, start + i, rng.randbytes(rng.randrange(40))) for i in range(rng.randint(1, 6))]
            assert _outcome(log.append, batch, new) == _outcome(mem.append, new), where
        if rng.random() < 0.3:
            hs = HardState(term, rng.randrange(4), rng.randrange(mem.last_index() + 1))
            log.set_hard_state(batch, hs)
            mem.set_hard_state(hs)
        r = rng.random()
        if r < 0.15:
            index = rng.randint(mem.first_index() - 2, mem.last_index() + 1)
            got = _outcome(log.compact, batch, index)
            want = _outcome(mem.compact, index)
            if want is None:
                mem.create_snapshot(index, None, b"")
            assert got == want, f"{where}: compact({index})"
        elif r < 0.2:
            index = rng.randint(mem.first_index() - 2, mem.last_index() + 5)
            cs = ConfState(voters=rng.sample(range(1, 6), 3))
            snap_term = rng.randint(1, term)
            got = _outcome(log.apply_snapshot, batch, index, snap_term, cs)
            want = _outcome(mem.apply_snapshot, Snapshot(SnapshotMetadata(index, snap_term, cs)))
            assert got == want, f"{where}: apply_snapshot({index})"
        disk.engine.write(batch, sync=rng.random() < 0.5)
        if rng.random() < 0.1:
            log = open_log(disk.restart(), cache_entries=rng.choice([0, 3, 8]), cs=log.initial_state()[1])
        _check_same(log, mem, rng, where)

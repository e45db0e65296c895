"""The Raft log (stable + unstable) and MemoryStorage."""

import pytest

from kvdb.raft import (
    CompactedError,
    ConfState,
    Entry,
    MemoryStorage,
    Snapshot,
    SnapshotMetadata,
    UnavailableError,
)
from kvdb.raft.errors import RaftError
from kvdb.raft.log import RaftLog


def entries(*terms: int, start: int = 1) -> list[Entry]:
    return [Entry(t, start + i, b"%d" % (start + i)) for i, t in enumerate(terms)]


def storage_with(*terms: int) -> MemoryStorage:
    storage = MemoryStorage()
    storage.append(entries(*terms))
    return storage


def test_founding_storage_starts_from_bootstrap_snapshot() -> None:
    storage = MemoryStorage(ConfState(voters=[1, 2, 3]))
    hard_state, conf_state = storage.initial_state()
    assert conf_state.voters == [1, 2, 3]
    assert (storage.first_index(), storage.last_index()) == (2, 1)
    assert hard_state.commit == 1 and storage.term(1) == 1
    assert not storage.snapshot().is_empty()


def test_storage_append_truncates_conflicting_suffix() -> None:
    storage = storage_with(1, 1, 2, 2)
    storage.append([Entry(3, 3, b"x")])
    assert storage.last_index() == 3 and storage.term(3) == 3
    with pytest.raises(UnavailableError):
        storage.append([Entry(3, 9)])


def test_storage_compact_and_snapshot_bounds() -> None:
    storage = storage_with(1, 1, 2, 2, 3)
    snap = storage.create_snapshot(4, ConfState(voters=[1]), b"state")
    assert snap.metadata.term == 2
    storage.compact(4)
    assert storage.first_index() == 5 and storage.term(4) == 2
    with pytest.raises(CompactedError):
        storage.entries(4, 6)
    with pytest.raises(CompactedError):
        storage.term(3)
    assert [e.index for e in storage.entries(5, 6)] == [5]


def test_storage_entries_respects_max_size_but_returns_at_least_one() -> None:
    storage = storage_with(1, 1, 1)
    assert len(storage.entries(1, 4, max_size=0)) == 1
    assert len(storage.entries(1, 4, max_size=2 * Entry(1, 1, b"1").size())) == 2


def test_log_maybe_append_and_conflict() -> None:
    log = RaftLog(storage_with(1, 1, 2))
    assert log.maybe_append(3, 2, 3, entries(2, 3, start=4)) == 5
    assert log.committed == 3 and log.last_index() == 5
    # Mismatch on the previous entry: rejected, nothing changes.
    assert log.maybe_append(5, 9, 5, []) is None
    # A conflicting entry replaces the unstable suffix.
    assert log.maybe_append(4, 2, 3, [Entry(4, 5)]) == 5
    assert log.term(5) == 4
    # Overwriting a committed entry would break safety: refuse loudly.
    with pytest.raises(RaftError):
        log.maybe_append(1, 1, 3, [Entry(5, 2), Entry(5, 3)])


def test_log_find_conflict_by_term_skips_whole_terms() -> None:
    log = RaftLog(storage_with(1, 1, 2, 2, 2, 4, 4))
    assert log.find_conflict_by_term(7, 3) == (5, 2)
    assert log.find_conflict_by_term(7, 4) == (7, 4)
    assert log.find_conflict_by_term(7, 0) == (0, 0)


def test_log_commit_only_counts_entries_of_given_term() -> None:
    log = RaftLog(storage_with(1, 2, 2))
    assert not log.maybe_commit(3, 3)
    assert log.maybe_commit(3, 2)
    assert log.committed == 3


def test_unstable_entries_are_handed_out_once_and_stabilized() -> None:
    log = RaftLog(storage_with(1))
    log.append(entries(1, 1, start=2))
    assert [e.index for e in log.unstable.next_entries()] == [2, 3]
    log.unstable.accept_in_progress()
    assert log.unstable.next_entries() == []
    log.append(entries(1, start=4))
    assert [e.index for e in log.unstable.next_entries()] == [4]
    log.stable_to(3, 1)
    assert log.unstable.offset == 4
    # A stale acknowledgement (the log changed under it) is ignored.
    log.stable_to(4, 7)
    assert log.unstable.offset == 4


def test_log_slices_across_stable_and_unstable() -> None:
    storage = storage_with(1, 1, 1)
    log = RaftLog(storage)
    log.append(entries(2, 2, start=4))
    assert [e.index for e in log.slice(2, 6)] == [2, 3, 4, 5]
    with pytest.raises(UnavailableError):
        log.slice(2, 9)


def test_log_restore_from_snapshot() -> None:
    log = RaftLog(storage_with(1, 1))
    snap = Snapshot(SnapshotMetadata(10, 3, ConfState(voters=[1])))
    log.restore(snap)
    assert log.committed == 10 and log.last_index() == 10 and log.term(10) == 3
    assert log.has_pending_snapshot()
    assert log.next_committed_entries() == []

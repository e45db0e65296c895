"""The Raft log as the core sees it: durable entries behind ``Storage`` plus an unstable tail.

The unstable tail holds entries (and possibly an incoming snapshot) that the application has
not yet persisted. Entries handed out in a ``Ready`` are "in progress" until ``advance`` says
they are durable, so they are not handed out twice.
"""

from __future__ import annotations

from kvdb.raft.errors import CompactedError, RaftError, StorageError, UnavailableError
from kvdb.raft.storage import Storage, limit_size
from kvdb.raft.types import Entry, Snapshot


class Unstable:
    __slots__ = ("snapshot", "entries", "offset", "offset_in_progress", "snapshot_in_progress")

    def __init__(self, offset: int) -> None:
        self.snapshot: Snapshot | None = None
        self.entries: list[Entry] = []
        self.offset = offset
        self.offset_in_progress = offset
        self.snapshot_in_progress = False

    def maybe_first_index(self) -> int | None:
        if self.snapshot is not None:
            return self.snapshot.metadata.index + 1
        return None

    def maybe_last_index(self) -> int | None:
        if self.entries:
            return self.offset + len(self.entries) - 1
        if self.snapshot is not None:
            return self.snapshot.metadata.index
        return None

    def maybe_term(self, index: int) -> int | None:
        if index < self.offset:
            snap = self.snapshot
            if snap is not None and snap.metadata.index == index:
                return snap.metadata.term
            return None
        i = index - self.offset
        if i >= len(self.entries):
            return None
        return self.entries[i].term

    def next_entries(self) -> list[Entry]:
        """Entries not yet handed out for persisting."""
        start = self.offset_in_progress - self.offset
        return self.entries[start:] if start < len(self.entries) else []

    def next_snapshot(self) -> Snapshot | None:
        if self.snapshot is None or self.snapshot_in_progress:
            return None
        return self.snapshot

    def accept_in_progress(self) -> None:
        if self.entries:
            self.offset_in_progress = self.entries[-1].index + 1
        if self.snapshot is not None:
            self.snapshot_in_progress = True

    def stable_to(self, index: int, term: int) -> None:
        """Entries up to ``index`` (of ``term``) are durable. Ignored if the log changed since."""
        if self.maybe_term(index) != term or index < self.offset:
            return
        n = index + 1 - self.offset
        self.entries = self.entries[n:]
        self.offset = index + 1
        self.offset_in_progress = max(self.offset_in_progress, self.offset)

    def stable_snap_to(self, index: int) -> None:
        if self.snapshot is not None and self.snapshot.metadata.index == index:
            self.snapshot = None
            self.snapshot_in_progress = False

    def restore(self, snapshot: Snapshot) -> None:
        self.offset = snapshot.metadata.index + 1
        self.offset_in_progress = self.offset
        self.entries = []
        self.snapshot = snapshot
        self.snapshot_in_progress = False

    def truncate_and_append(self, entries: list[Entry]) -> None:
        first = entries[0].index
        if first == self.offset + len(self.entries):
            self.entries = self.entries + entries
        elif first <= self.offset:
            # Replaces the whole unstable tail (and shadows the storage from ``first`` on).
            self.offset = first
            self.entries = list(entries)
        else:
            self.entries = self.entries[: first - self.offset] + entries
        self.offset_in_progress = min(self.offset_in_progress, first)

    def slice(self, lo: int, hi: int) -> list[Entry]:
        return self.entries[lo - self.offset : hi - self.offset]


class RaftLog:
    def __init__(self, storage: Storage, max_applying_size: int | None = None) -> None:
        self.storage = storage
        first = storage.first_index()
        last = storage.last_index()
        self.unstable = Unstable(last + 1)
        # The highest index known to be committed, handed out for applying, and applied.
        self.committed = first - 1
        self.applying = first - 1
        self.applied = first - 1
        self.max_applying_size = max_applying_size

    def __repr__(self) -> str:
        return (
            f"committed={self.committed} applied={self.applied} applying={self.applying} "
            f"unstable.offset={self.unstable.offset} len(unstable)={len(self.unstable.entries)}"
        )

    def first_index(self) -> int:
        first = self.unstable.maybe_first_index()
        return first if first is not None else self.storage.first_index()

    def last_index(self) -> int:
        last = self.unstable.maybe_last_index()
        return last if last is not None else self.storage.last_index()

    def last_stable_index(self) -> int:
        """The last index known durable (used for the leader's own acknowledgement)."""
        if self.unstable.snapshot is not None:
            return 0
        return self.unstable.offset - 1

    def term(self, index: int) -> int:
        """The term at ``index``; raises ``CompactedError``/``UnavailableError`` out of range."""
        term = self.unstable.maybe_term(index)
        if term is not None:
            return term
        if index + 1 < self.first_index():
            raise CompactedError(index)
        if index > self.last_index():
            raise UnavailableError(index)
        return self.storage.term(index)

    def term_or_zero(self, index: int) -> int:
        try:
            return self.term(index)
        except StorageError:
            return 0

    def last_term(self) -> int:
        return self.term(self.last_index())

    def match_term(self, index: int, term: int) -> bool:
        try:
            return self.term(index) == term
        except StorageError:
            return False

    def is_up_to_date(self, index: int, term: int) -> bool:
        """Whether a log ending at (term, index) is at least as up to date as ours (§5.4.1)."""
        last_term = self.last_term()
        return term > last_term or (term == last_term and index >= self.last_index())

    def maybe_append(self, index: int, log_term: int, committed: int, entries: list[Entry]) -> int | None:
        """Append ``entries`` that follow (log_term, index); the new last index, or None on mismatch."""
        if not self.match_term(index, log_term):
            return None
        last_new = index + len(entries)
        conflict = self.find_conflict(entries)
        if conflict:
            if conflict <= self.committed:
                raise RaftError(
                    f"entry {conflict} conflicts with committed entry (committed={self.committed})"
                )
            self.append(entries[conflict - (index + 1) :])
        self.commit_to(min(committed, last_new))
        return last_new

    def append(self, entries: list[Entry]) -> int:
        if not entries:
            return self.last_index()
        if entries[0].index - 1 < self.committed:
            raise RaftError(f"append at {entries[0].index} is before committed {self.committed}")
        self.unstable.truncate_and_append(entries)
        return self.last_index()

    def find_conflict(self, entries: list[Entry]) -> int:
        """The first index where ``entries`` disagree with the log or extend it, else 0."""
        last = self.last_index()
        for entry in entries:
            if entry.index > last or not self.match_term(entry.index, entry.term):
                return entry.index
        return 0

    def find_conflict_by_term(self, index: int, term: int) -> tuple[int, int]:
        """The largest index <= ``index`` whose term is <= ``term``, with that term.

        This lets a rejecting follower (and the leader, on the hint) skip a whole term of
        mismatched entries per round trip instead of one entry.
        """
        while index > 0:
            try:
                our_term = self.term(index)
            except StorageError:
                return index, 0
            if our_term <= term:
                return index, our_term
            index -= 1
        return 0, 0

    def commit_to(self, index: int) -> None:
        if index > self.committed:
            if self.last_index() < index:
                raise RaftError(f"commit {index} is out of range [last index {self.last_index()}]")
            self.committed = index

    def maybe_commit(self, index: int, term: int) -> bool:
        """Advance the commit index to ``index`` if that entry is of ``term`` (§5.4.2)."""
        if index > self.committed and self.term_or_zero(index) == term:
            self.commit_to(index)
            return True
        return False

    def applied_to(self, index: int) -> None:
        if index == 0:
            return
        if index > self.committed or index < self.applied:
            raise RaftError(f"applied {index} out of range [{self.applied}, {self.committed}]")
        self.applied = index
        self.applying = max(self.applying, index)

    def has_next_committed_entries(self) -> bool:
        return self.unstable.snapshot is None and self.committed > self.applying

    def next_committed_entries(self) -> list[Entry]:
        if not self.has_next_committed_entries():
            return []
        return self.slice(self.applying + 1, self.committed + 1, self.max_applying_size)

    def accept_applying(self, index: int) -> None:
        self.applying = max(self.applying, index)

    def has_pending_snapshot(self) -> bool:
        return self.unstable.snapshot is not None

    def snapshot(self) -> Snapshot:
        if self.unstable.snapshot is not None:
            return self.unstable.snapshot
        return self.storage.snapshot()

    def entries(self, index: int, max_size: int | None = None) -> list[Entry]:
        last = self.last_index()
        if index > last:
            return []
        return self.slice(index, last + 1, max_size)

    def slice(self, lo: int, hi: int, max_size: int | None = None) -> list[Entry]:
        """Entries in [lo, hi), limited to ``max_size`` bytes (at least one entry)."""
        if lo >= hi:
            return []
        if lo < self.first_index():
            raise CompactedError(lo)
        if hi > self.last_index() + 1:
            raise UnavailableError(hi)
        offset = self.unstable.offset
        if hi <= offset:
            return self.storage.entries(lo, hi, max_size)
        if lo >= offset:
            return limit_size(self.unstable.slice(lo, hi), max_size)
        stored = self.storage.entries(lo, offset, max_size)
        if len(stored) < offset - lo:
            return stored
        return limit_size(stored + self.unstable.slice(offset, hi), max_size)

    def restore(self, snapshot: Snapshot) -> None:
        self.committed = snapshot.metadata.index
        self.unstable.restore(snapshot)

    def stable_to(self, index: int, term: int) -> None:
        self.unstable.stable_to(index, term)

    def stable_snap_to(self, index: int) -> None:
        self.unstable.stable_snap_to(index)

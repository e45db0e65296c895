"""The ``Storage`` interface the core reads its durable log through, and an in-memory version.

The core never writes to storage itself: the application persists what a ``Ready`` hands out and
only then calls ``advance``. ``MemoryStorage`` backs unit tests and the simulator (where it *is*
the simulated disk); the RocksDB engine in ``kvdb.storage`` implements the same read side.
"""

from __future__ import annotations

from typing import Protocol

from kvdb.raft.errors import CompactedError, SnapshotOutOfDateError, UnavailableError
from kvdb.raft.types import ConfState, Entry, HardState, Snapshot, SnapshotMetadata

BOOTSTRAP_INDEX = 1
BOOTSTRAP_TERM = 1


class Storage(Protocol):
    def initial_state(self) -> tuple[HardState, ConfState]: ...

    def entries(self, lo: int, hi: int, max_size: int | None = None) -> list[Entry]:
        """Entries in [lo, hi); at least one entry if any, then as many as fit in ``max_size``."""
        ...

    def term(self, index: int) -> int:
        """Term of the entry at ``index``; valid from ``first_index() - 1`` to ``last_index()``."""
        ...

    def first_index(self) -> int: ...

    def last_index(self) -> int: ...

    def snapshot(self) -> Snapshot: ...


def limit_size(entries: list[Entry], max_size: int | None) -> list[Entry]:
    """The longest prefix within ``max_size`` bytes, but never fewer than one entry."""
    if max_size is None or not entries:
        return entries
    size = entries[0].size()
    for n in range(1, len(entries)):
        size += entries[n].size()
        if size > max_size:
            return entries[:n]
    return entries


class MemoryStorage:
    """A ``Storage`` in memory. ``self._ents[0]`` is a dummy entry at the snapshot index."""

    def __init__(self, conf_state: ConfState | None = None) -> None:
        """A founding member's storage when ``conf_state`` is given, else a joining node's.

        A founding member starts from a snapshot at ``BOOTSTRAP_INDEX`` that carries the initial
        membership, so the log never holds entries a config-less node could not replay: a node
        added later starts empty and is sent a snapshot first (as TiKV does).
        """
        if conf_state is None:
            self.hard_state = HardState()
            self._snapshot = Snapshot()
        else:
            self.hard_state = HardState(BOOTSTRAP_TERM, 0, BOOTSTRAP_INDEX)
            self._snapshot = Snapshot(SnapshotMetadata(BOOTSTRAP_INDEX, BOOTSTRAP_TERM, conf_state))
        meta = self._snapshot.metadata
        self._ents: list[Entry] = [Entry(meta.term, meta.index)]

    def initial_state(self) -> tuple[HardState, ConfState]:
        return self.hard_state, self._snapshot.metadata.conf_state

    def set_hard_state(self, hard_state: HardState) -> None:
        self.hard_state = HardState(hard_state.term, hard_state.vote, hard_state.commit)

    def first_index(self) -> int:
        return self._ents[0].index + 1

    def last_index(self) -> int:
        return self._ents[0].index + len(self._ents) - 1

    def term(self, index: int) -> int:
        offset = self._ents[0].index
        if index < offset:
            raise CompactedError(index)
        if index - offset >= len(self._ents):
            raise UnavailableError(index)
        return self._ents[index - offset].term

    def entries(self, lo: int, hi: int, max_size: int | None = None) -> list[Entry]:
        offset = self._ents[0].index
        if lo <= offset:
            raise CompactedError(lo)
        if hi > self.last_index() + 1:
            raise UnavailableError(hi)
        return limit_size(self._ents[lo - offset : hi - offset], max_size)

    def snapshot(self) -> Snapshot:
        return self._snapshot

    def apply_snapshot(self, snapshot: Snapshot) -> None:
        """Replace everything with ``snapshot``; the log restarts after its index."""
        meta = snapshot.metadata
        if meta.index <= self._snapshot.metadata.index:
            raise SnapshotOutOfDateError(meta.index)
        self._snapshot = snapshot
        self._ents = [Entry(meta.term, meta.index)]

    def create_snapshot(self, index: int, conf_state: ConfState | None, data: bytes) -> Snapshot:
        """Record a snapshot of the state machine as of ``index`` (which must be applied)."""
        if index <= self._snapshot.metadata.index:
            raise SnapshotOutOfDateError(index)
        if index > self.last_index():
            raise UnavailableError(index)
        term = self._ents[index - self._ents[0].index].term
        cs = conf_state if conf_state is not None else self._snapshot.metadata.conf_state
        self._snapshot = Snapshot(SnapshotMetadata(index, term, cs), data)
        return self._snapshot

    def compact(self, compact_index: int) -> None:
        """Drop entries before ``compact_index``; it becomes the new dummy entry."""
        offset = self._ents[0].index
        if compact_index <= offset:
            raise CompactedError(compact_index)
        if compact_index > self.last_index():
            raise UnavailableError(compact_index)
        i = compact_index - offset
        self._ents = [Entry(self._ents[i].term, self._ents[i].index)] + self._ents[i + 1 :]

    def append(self, entries: list[Entry]) -> None:
        """Append ``entries``, replacing any existing suffix they conflict with."""
        if not entries:
            return
        first = self.first_index()
        if entries[-1].index < first:
            return
        if entries[0].index < first:
            entries = entries[first - entries[0].index :]
        offset = entries[0].index - self._ents[0].index
        if offset > len(self._ents):
            raise UnavailableError(entries[0].index)
        del self._ents[offset:]
        self._ents.extend(entries)

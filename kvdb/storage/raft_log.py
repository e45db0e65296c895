"""A range's Raft log in the store-wide engine: ``kvdb.raft.Storage`` on top of ``Engine``.

Writes are staged into the caller's batch so the store can persist every range's Ready with one
synced write per loop iteration; the in-memory view (last index, truncated state, hard state,
entry cache) changes at once. That is safe because the Ready contract has the store write the
batch before it calls ``advance``, and until then the core reads the new entries from its own
unstable log. The one read that could see the engine behind the staged state, an entry appended
but not yet written, is served from the cache instead: the cache always keeps the entries of the
latest append, whatever ``cache_entries`` says. (So stage at most one append per range per
batch: a second one may push the first out of the cache before the engine has it.)

Semantics and errors match ``kvdb.raft.storage.MemoryStorage``, with the truncated state (index,
term) in the role of its dummy entry / snapshot index.
"""

from __future__ import annotations

import struct
from array import array
from collections.abc import Callable

from kvdb.pb import raft_pb2 as pb
from kvdb.raft.codec import entry_from_pb, entry_to_pb, hard_state_from_pb, hard_state_to_pb
from kvdb.raft.errors import CompactedError, SnapshotOutOfDateError, UnavailableError
from kvdb.raft.storage import BOOTSTRAP_INDEX, BOOTSTRAP_TERM, limit_size
from kvdb.raft.types import ConfState, Entry, HardState, Snapshot
from kvdb.storage.engine import CF_RAFT, Engine, WriteBatch
from kvdb.storage.keys import (
    hard_state_key,
    raft_log_index,
    raft_log_key,
    raft_log_prefix_bounds,
    truncated_state_key,
)

_TRUNCATED = struct.Struct(">QQ")  # (index, term); no proto message exists for it


class CorruptLogError(RuntimeError):
    """The engine's log disagrees with the range's recorded state (a missing or stray entry).

    Deliberately not a ``StorageError``: the core treats those as "compacted/unavailable" and
    carries on, where this must stop the replica.
    """


def _encode_hard_state(hs: HardState) -> bytes:
    return hard_state_to_pb(hs).SerializeToString()


def _decode_entry(raw: bytes) -> Entry:
    return entry_from_pb(pb.Entry.FromString(raw))


class RaftLogStorage:
    """Implements kvdb.raft.Storage for one range, with its log in the shared store-wide engine."""

    def __init__(
        self,
        engine: Engine,
        range_id: int,
        conf_state: ConfState,
        snapshot_fn: Callable[[], Snapshot],
        cache_entries: int = 4096,
    ) -> None:
        """Load the range's state. ``conf_state`` is what ``initial_state()`` reports; the store
        keeps it with the applied index, since the log alone cannot tell it.

        The whole log is scanned once to learn each entry's size (for ``log_size_bytes``) and
        to check it is contiguous; logs are truncated regularly, so this stays short.
        """
        self._engine = engine
        self.range_id = range_id
        self._conf_state = conf_state
        self._snapshot_fn = snapshot_fn
        self._cache_entries = cache_entries
        self._log_start, self._log_end = raft_log_prefix_bounds(range_id)
        raw = engine.get(CF_RAFT, hard_state_key(range_id))
        self._hard_state = HardState() if raw is None else hard_state_from_pb(pb.HardState.FromString(raw))
        raw = engine.get(CF_RAFT, truncated_state_key(range_id))
        self._trunc_index, self._trunc_term = (0, 0) if raw is None else _TRUNCATED.unpack(raw)
        # Encoded size of each entry in (truncated index, last index], in index order.
        self._sizes = array("I")
        expected = self._trunc_index + 1
        for key, value in engine.iter_range(CF_RAFT, self._log_start, self._log_end):
            index = raft_log_index(key)
            if index != expected:
                raise CorruptLogError(
                    f"range {range_id}: log entry {index} found where {expected} was expected "
                    f"(truncated at {self._trunc_index})"
                )
            self._sizes.append(len(value))
            expected += 1
        self._last_index = expected - 1
        self._log_size = sum(self._sizes)
        # The most recent entries, contiguous and ending at the last index (or empty).
        self._cache: list[Entry] = []

    # -- Storage (read side) ----------------------------------------------------------------

    def initial_state(self) -> tuple[HardState, ConfState]:
        return self._hard_state, self._conf_state

    def entries(self, lo: int, hi: int, max_size: int | None = None) -> list[Entry]:
        if lo <= self._trunc_index:
            raise CompactedError(lo)
        if hi > self._last_index + 1:
            raise UnavailableError(hi)
        if lo >= hi:
            return []
        cache = self._cache
        cache_first = cache[0].index if cache else hi
        if lo >= cache_first:
            return limit_size(cache[lo - cache_first : hi - cache_first], max_size)
        engine_hi = min(hi, cache_first)
        out: list[Entry] = []
        size = 0
        expected = lo
        pairs = self._engine.iter_range(
            CF_RAFT, raft_log_key(self.range_id, lo), raft_log_key(self.range_id, engine_hi)
        )
        for _, value in pairs:
            entry = _decode_entry(value)
            if entry.index != expected:
                raise CorruptLogError(f"range {self.range_id}: read entry {entry.index}, expected {expected}")
            out.append(entry)
            expected += 1
            size += entry.size()
            if max_size is not None and size > max_size:
                return limit_size(out, max_size)
        if expected != engine_hi:
            raise CorruptLogError(f"range {self.range_id}: log entry {expected} is missing")
        if engine_hi < hi:
            out.extend(cache[: hi - cache_first])
        return limit_size(out, max_size)

    def term(self, index: int) -> int:
        if index < self._trunc_index:
            raise CompactedError(index)
        if index > self._last_index:
            raise UnavailableError(index)
        if index == self._trunc_index:
            return self._trunc_term
        cache = self._cache
        if cache and index >= cache[0].index:
            return cache[index - cache[0].index].term
        raw = self._engine.get(CF_RAFT, raft_log_key(self.range_id, index))
        if raw is None:
            raise CorruptLogError(f"range {self.range_id}: log entry {index} is missing")
        return pb.Entry.FromString(raw).term

    def first_index(self) -> int:
        return self._trunc_index + 1

    def last_index(self) -> int:
        return self._last_index

    def snapshot(self) -> Snapshot:
        return self._snapshot_fn()

    # -- write side ---------------------------------------------------------------------------

    def append(self, batch: WriteBatch, entries: list[Entry]) -> None:
        """Append ``entries``, replacing any suffix they conflict with; entries that are already
        compacted away are ignored."""
        if not entries:
            return
        first = self._trunc_index + 1
        if entries[-1].index < first:
            return
        if entries[0].index < first:
            entries = entries[first - entries[0].index :]
        start = entries[0].index
        if start > self._last_index + 1:
            raise UnavailableError(start)
        sizes = self._sizes
        keep = start - first
        if keep < len(sizes):
            self._log_size -= sum(sizes[keep:])
            del sizes[keep:]
        put = batch.put
        range_id = self.range_id
        for e in entries:
            value = entry_to_pb(e).SerializeToString()
            put(CF_RAFT, raft_log_key(range_id, e.index), value)
            sizes.append(len(value))
            self._log_size += len(value)
        new_last = entries[-1].index
        if new_last < self._last_index:
            batch.delete_range(
                CF_RAFT, raft_log_key(range_id, new_last + 1), raft_log_key(range_id, self._last_index + 1)
            )
        self._last_index = new_last

        cache = self._cache
        if cache and cache[0].index <= start:
            del cache[start - cache[0].index :]
            cache.extend(entries)
        else:
            cache = self._cache = list(entries)
        excess = len(cache) - max(self._cache_entries, len(entries))
        if excess > 0:
            del cache[:excess]

    def set_hard_state(self, batch: WriteBatch, hs: HardState) -> None:
        batch.put(CF_RAFT, hard_state_key(self.range_id), _encode_hard_state(hs))
        self._hard_state = HardState(hs.term, hs.vote, hs.commit)

    def apply_snapshot(self, batch: WriteBatch, index: int, term: int, conf_state: ConfState) -> None:
        """Drop the whole log: it restarts after the snapshot's ``index``.

        Entries past ``index`` are dropped too, as ``MemoryStorage.apply_snapshot`` does: the
        leader sends what follows.
        """
        if index <= self._trunc_index:
            raise SnapshotOutOfDateError(index)
        batch.delete_range(CF_RAFT, self._log_start, self._log_end)
        self._set_truncated(batch, index, term)
        self._last_index = index
        self._cache = []
        del self._sizes[:]
        self._log_size = 0
        self._conf_state = conf_state

    def compact(self, batch: WriteBatch, index: int) -> None:
        """Drop the entries up to and including ``index``, which becomes the truncated state."""
        if index <= self._trunc_index:
            raise CompactedError(index)
        if index > self._last_index:
            raise UnavailableError(index)
        term = self.term(index)
        batch.delete_range(CF_RAFT, self._log_start, raft_log_key(self.range_id, index + 1))
        dropped = index - self._trunc_index
        self._log_size -= sum(self._sizes[:dropped])
        del self._sizes[:dropped]
        cache = self._cache
        if cache and cache[0].index <= index:
            del cache[: index - cache[0].index + 1]
        self._set_truncated(batch, index, term)

    def set_conf_state(self, conf_state: ConfState) -> None:
        self._conf_state = conf_state

    @property
    def hard_state(self) -> HardState:
        return self._hard_state

    @property
    def truncated(self) -> tuple[int, int]:
        """(index, term) of the last entry dropped from the log, by compaction or a snapshot."""
        return self._trunc_index, self._trunc_term

    def log_size_bytes(self) -> int:
        """Encoded bytes of the entries in the log (what a size-based truncation policy needs)."""
        return self._log_size

    def destroy(self, batch: WriteBatch) -> None:
        """Delete all of the range's Raft state (its replica was removed); this object is then
        an empty log."""
        range_id = self.range_id
        batch.delete_range(CF_RAFT, self._log_start, self._log_end)
        batch.delete(CF_RAFT, hard_state_key(range_id))
        batch.delete(CF_RAFT, truncated_state_key(range_id))
        self._hard_state = HardState()
        self._trunc_index = self._trunc_term = self._last_index = 0
        self._cache = []
        del self._sizes[:]
        self._log_size = 0

    @staticmethod
    def bootstrap(batch: WriteBatch, range_id: int, voted: HardState | None = None) -> None:
        """Stage a founding member's Raft state, as ``MemoryStorage(conf_state)`` starts: the log
        begins after the bootstrap snapshot, whose index is already committed. A range made by a
        split starts the same way; ``voted`` is the term and vote its replica may already have
        given (as an uninitialized replica), which must never be forgotten."""
        batch.put(CF_RAFT, truncated_state_key(range_id), _TRUNCATED.pack(BOOTSTRAP_INDEX, BOOTSTRAP_TERM))
        hard_state = HardState(BOOTSTRAP_TERM, 0, BOOTSTRAP_INDEX)
        if voted is not None and voted.term >= BOOTSTRAP_TERM:
            hard_state = HardState(voted.term, voted.vote, BOOTSTRAP_INDEX)
        batch.put(CF_RAFT, hard_state_key(range_id), _encode_hard_state(hard_state))

    def _set_truncated(self, batch: WriteBatch, index: int, term: int) -> None:
        batch.put(CF_RAFT, truncated_state_key(self.range_id), _TRUNCATED.pack(index, term))
        self._trunc_index = index
        self._trunc_term = term

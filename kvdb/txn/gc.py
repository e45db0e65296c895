"""Which range and which slice of its keys a store garbage-collects next (sans-I/O).

A store learns the cluster's GC safe point from PD (``Store.gc_safe_point``). Every range it
leads must then drop the versions no reader at or above the safe point can see; that happens at
apply, through ``GcCommand(safe_point, start_key, end_key)`` entries in the range's Raft log, so
every replica drops the same records. One command must stay small (its apply runs on the store
loop and its deletions go into one write batch), so a range is collected in chunks of user keys
holding about ``versions_per_command`` ``write`` records each: the planner scans the ``write``
column family from where the last chunk ended and cuts at a user-key boundary (a chunk never
splits one key's versions, else a later chunk could not tell which version was the newest at
the safe point).

The planner remembers, per range, the safe point it collected the range at and where the chunk
in progress starts; the I/O (the scan, proposing, waiting for the apply) is the caller's
(``kvdb.server.gc_worker``). Nothing here is needed for correctness after a restart or a leader
change: a new leader simply collects its ranges again (a ``GcCommand`` is idempotent).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from kvdb.mvcc import keys
from kvdb.pb import metapb_pb2, raft_serverpb_pb2
from kvdb.store import keyspace

ScanWriteKeys = Callable[[bytes, bytes, int], list[bytes]]
"""``scan(start, end, limit)``: up to ``limit`` keys of the ``write`` column family in [start, end)."""

DEFAULT_VERSIONS_PER_COMMAND = 1024


@dataclass
class _Cursor:
    safe_point: int
    next_key: bytes
    """The user key the next chunk starts at."""


class GcPlanner:
    def __init__(self, versions_per_command: int = DEFAULT_VERSIONS_PER_COMMAND) -> None:
        if versions_per_command < 1:
            raise ValueError(f"versions_per_command must be positive, got {versions_per_command}")
        self.versions_per_command = versions_per_command
        self._done: dict[int, int] = {}
        """Range id -> the safe point the range was collected at, all of it."""
        self._cursors: dict[int, _Cursor] = {}

    def due(self, descs: Iterable[metapb_pb2.RangeDescriptor], safe_point: int
            ) -> list[metapb_pb2.RangeDescriptor]:
        """The ranges among ``descs`` (those led here) not yet collected at ``safe_point``, a range
        in progress first (a busy store must not keep restarting some and never finish any)."""
        if safe_point <= 0:
            return []
        due = [d for d in descs if self._done.get(d.id, 0) < safe_point]
        return sorted(due, key=lambda d: (d.id not in self._cursors, d.id))

    def next_command(self, desc: metapb_pb2.RangeDescriptor, safe_point: int,
                     scan: ScanWriteKeys) -> raft_serverpb_pb2.GcCommand | None:
        """The next chunk of ``desc`` to collect at ``safe_point``, or None once the range holds
        nothing more to look at (it then counts as collected at ``safe_point``).

        A raised safe point restarts the range from its start: the chunks collected at the
        older one left versions the new one drops."""
        if self._done.get(desc.id, 0) >= safe_point:
            return None
        cursor = self._cursors.get(desc.id)
        if cursor is None or cursor.safe_point != safe_point:
            cursor = self._cursors[desc.id] = _Cursor(safe_point, desc.start_key)
        start = max(cursor.next_key, desc.start_key)  # the range may have shrunk by a split
        end = keyspace.data_end(desc)
        if start >= end:
            self._finish(desc.id, safe_point)
            return None
        limit = self.versions_per_command
        found = scan(*keys.user_bounds_to_versions(start, end), limit + 1)
        if not found:
            self._finish(desc.id, safe_point)
            return None
        if len(found) <= limit:
            chunk_end = desc.end_key  # the rest of the range (empty: unbounded)
        else:
            first, _ = keys.split_version_key(found[0])
            cut, _ = keys.split_version_key(found[limit])
            # Cut before the key of the first record past the budget; a single key with more
            # versions than that is one chunk by itself (its versions are never split).
            chunk_end = cut if cut != first else first + b"\x00"
        return raft_serverpb_pb2.GcCommand(safe_point=safe_point, start_key=start, end_key=chunk_end)

    def applied(self, range_id: int, cmd: raft_serverpb_pb2.GcCommand) -> None:
        """``cmd`` (from ``next_command``) applied: the next chunk starts where it ended."""
        cursor = self._cursors.get(range_id)
        if cursor is None or cursor.safe_point != cmd.safe_point:
            return  # the safe point moved meanwhile: the range restarts anyway
        if not cmd.end_key:
            self._finish(range_id, cmd.safe_point)
        else:
            cursor.next_key = cmd.end_key

    def forget(self, keep: set[int]) -> None:
        """Drop the state of ranges not in ``keep`` (no longer led here, merged or removed)."""
        for table in (self._done, self._cursors):
            for range_id in [rid for rid in table if rid not in keep]:
                del table[range_id]

    def collected_at(self, range_id: int) -> int:
        """The safe point the range was last fully collected at here (0: never)."""
        return self._done.get(range_id, 0)

    def _finish(self, range_id: int, safe_point: int) -> None:
        self._cursors.pop(range_id, None)
        self._done[range_id] = safe_point

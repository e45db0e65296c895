"""The storage engine interface a store runs on, and the column families it is split into.

One engine per store holds every range's data and Raft log, so a loop iteration can make all of
its ranges' Raft state durable with a single synced batch (one fsync for many entries). Column
families separate data with different access patterns (append-and-truncate Raft logs versus
user data) so each can be compacted on its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

from kvdb.storage.files import FileStore

CF_DEFAULT = "default"
"""User data (raw KV)."""
CF_LOCK = "lock"
"""Reserved for MVCC."""
CF_WRITE = "write"
"""Reserved for MVCC."""
CF_RAFT = "raft"
"""Raft log entries, hard state and truncated state, per range."""
CF_META = "meta"
"""Range-local state (descriptor, apply state) and the store ident."""
ALL_CFS = (CF_DEFAULT, CF_LOCK, CF_WRITE, CF_RAFT, CF_META)

ITER_CHUNK = 256
"""Pairs ``iter_range`` reads per engine seek (see ``iter_in_chunks``)."""


class WriteBatch(Protocol):
    """Writes staged to be applied atomically by ``Engine.write``.

    An empty or inverted ``delete_range`` (``start >= end``) is not staged: RocksDB rejects an
    inverted range when the batch is written and then refuses every later write.
    """

    def put(self, cf: str, key: bytes, value: bytes) -> None: ...

    def delete(self, cf: str, key: bytes) -> None: ...

    def delete_range(self, cf: str, start: bytes, end: bytes) -> None:
        """Delete every key in [start, end)."""
        ...

    def __len__(self) -> int:
        """Number of operations staged."""
        ...

    @property
    def size(self) -> int:
        """Approximate bytes staged (keys + values)."""
        ...


class EngineView(Protocol):
    """A read-only, point-in-time copy of the whole engine (``Engine.checkpoint``)."""

    def get(self, cf: str, key: bytes) -> bytes | None: ...

    def iter_range(self, cf: str, start: bytes, end: bytes | None) -> Iterator[tuple[bytes, bytes]]: ...

    def close(self) -> None:
        """Release the copy (and delete its files)."""
        ...


class Engine(Protocol):
    files: FileStore
    """The store's snapshot files (see ``kvdb.storage.files``)."""

    def batch(self) -> WriteBatch: ...

    def write(self, batch: WriteBatch, sync: bool) -> None:
        """Apply ``batch`` atomically and make it visible at once.

        ``sync=True`` returns only once the batch is on disk (WAL fsync), and with it every
        earlier write, as the WAL is sequential. An unsynced write survives a process crash (it
        is in the OS page cache) but not a power cut, unless a later synced write covered it;
        ``MemEngine.crash`` models the power cut."""
        ...

    def get(self, cf: str, key: bytes) -> bytes | None: ...

    def scan(
        self, cf: str, start: bytes, end: bytes | None, limit: int, reverse: bool = False
    ) -> list[tuple[bytes, bytes]]:
        """Pairs with keys in [start, end) (``end=None``: unbounded), at most ``limit`` of them
        (``limit <= 0``: all). ``reverse=True`` starts from the highest key below ``end``."""
        ...

    def iter_range(self, cf: str, start: bytes, end: bytes | None) -> Iterator[tuple[bytes, bytes]]:
        """Pairs in [start, end) in key order, read lazily (see ``iter_in_chunks``)."""
        ...

    def checkpoint(self, name: str) -> EngineView:
        """A consistent copy of everything written so far, kept in ``files`` under ``name``.

        Unlike iterating the live engine (or a RocksDB snapshot through rocksdict, see
        DEPENDENCY-NOTES.md), reading the copy never sees a later write, so it may be read on
        another thread while the store keeps writing."""
        ...

    def write_sst(self, name: str, pairs: Iterable[tuple[bytes, bytes]]) -> int:
        """Write ``pairs`` (ascending keys) to the file ``name`` in ``files`` in a form ``ingest``
        takes; returns how many there were. With no pairs no file is created."""
        ...

    def ingest(self, cf: str, name: str) -> None:
        """Add the pairs of the file ``name`` (from ``write_sst``) to ``cf``, durably and over
        every earlier write to their keys; the file stays in ``files``."""
        ...

    def close(self) -> None: ...


ScanFn = Callable[[str, bytes, bytes | None, int], list[tuple[bytes, bytes]]]


def iter_in_chunks(
    scan: ScanFn, cf: str, start: bytes, end: bytes | None, chunk: int = ITER_CHUNK
) -> Iterator[tuple[bytes, bytes]]:
    """Iterate [start, end) with one bounded ``scan`` per ``chunk`` pairs.

    No engine iterator stays open between two ``next()`` calls, so an abandoned generator can
    never keep RocksDB from closing (a live iterator holds its lock), and the in-memory engine
    can be written while a caller iterates. The price: this is not a point-in-time view, a write
    made during the iteration may or may not be seen. Nothing here needs one (RocksDB snapshot
    iteration does not isolate either, see DEPENDENCY-NOTES.md).
    """
    while True:
        pairs = scan(cf, start, end, chunk)
        yield from pairs
        if len(pairs) < chunk:
            return
        start = pairs[-1][0] + b"\x00"  # the smallest key after the last one seen

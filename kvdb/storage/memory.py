"""An in-memory ``Engine`` for the deterministic simulator and fast tests.

It models RocksDB's write-ahead log on a machine that can lose power: a write is visible at once,
but ``crash()`` takes back every write not yet made durable. ``write(sync=True)`` makes its batch
and every earlier one durable (the WAL is one sequential file, so its fsync covers all that was
appended before). A restarted store is handed the same ``MemEngine`` after ``crash()`` and finds
exactly what a store restarted after a power cut would find. Unsynced writes are undone from an
undo log (each changed key's previous value), cleared by every synced write: a workload that never
crashes pays one dict lookup per staged operation and memory for the writes since the last sync.

Each column family is a sorted key list (searched with ``bisect``) plus a dict, so scans never
depend on hash order.
"""

from __future__ import annotations

import struct
from bisect import bisect_left, insort
from collections.abc import Iterable, Iterator
from random import Random

from kvdb.storage.engine import ALL_CFS, WriteBatch, iter_in_chunks
from kvdb.storage.files import MemFiles

_LEN = struct.Struct(">II")
"""A ``write_sst`` file: (key length, value length) before each key and value."""

_PUT = 0
_DELETE = 1
_DELETE_RANGE = 2


class MemWriteBatch:
    __slots__ = ("_ops", "_size")

    def __init__(self) -> None:
        self._ops: list[tuple[int, str, bytes, bytes]] = []
        self._size = 0

    def put(self, cf: str, key: bytes, value: bytes) -> None:
        _check_cf(cf)
        self._ops.append((_PUT, cf, key, value))
        self._size += len(key) + len(value)

    def delete(self, cf: str, key: bytes) -> None:
        _check_cf(cf)
        self._ops.append((_DELETE, cf, key, b""))
        self._size += len(key)

    def delete_range(self, cf: str, start: bytes, end: bytes) -> None:
        _check_cf(cf)
        if start >= end:
            return  # as RocksWriteBatch, which must not stage an inverted range
        self._ops.append((_DELETE_RANGE, cf, start, end))
        self._size += len(start) + len(end)

    def __len__(self) -> int:
        return len(self._ops)

    @property
    def size(self) -> int:
        return self._size


def _check_cf(cf: str) -> None:
    """Fail at staging time, as RocksDB does, so a bad batch is never half applied."""
    if cf not in ALL_CFS:
        raise KeyError(f"unknown column family {cf!r}")


class _Family:
    __slots__ = ("keys", "data")

    def __init__(self) -> None:
        self.keys: list[bytes] = []
        self.data: dict[bytes, bytes] = {}


_Undo = list[tuple[str, bytes, bytes | None]]
"""(column family, key, value before the write or None) per key a write changed, in order."""


class MemEngine:
    def __init__(self) -> None:
        self._cfs = {name: _Family() for name in ALL_CFS}
        self._unsynced: list[_Undo] = []  # one undo list per unsynced write since the last sync
        self.files = MemFiles()

    def batch(self) -> MemWriteBatch:
        return MemWriteBatch()

    def write(self, batch: WriteBatch, sync: bool) -> None:
        """Apply ``batch`` atomically; with ``sync`` it and every earlier write become durable."""
        if not isinstance(batch, MemWriteBatch):
            raise TypeError(f"MemEngine cannot write a {type(batch).__name__}")
        if sync:
            self._unsynced.clear()
            undo = None
        else:
            undo = []
            self._unsynced.append(undo)
        for op, cf, key, arg in batch._ops:
            fam = self._cfs[cf]
            if op == _PUT:
                old = fam.data.get(key)
                if old is None:
                    insort(fam.keys, key)
                fam.data[key] = arg
                if undo is not None:
                    undo.append((cf, key, old))
            elif op == _DELETE:
                old = fam.data.pop(key, None)
                if old is not None:
                    del fam.keys[bisect_left(fam.keys, key)]
                    if undo is not None:
                        undo.append((cf, key, old))
            else:
                keys = fam.keys
                lo = bisect_left(keys, key)
                hi = bisect_left(keys, arg, lo)
                for k in keys[lo:hi]:
                    old = fam.data.pop(k)
                    if undo is not None:
                        undo.append((cf, k, old))
                del keys[lo:hi]

    def crash(self, rng: Random | None = None) -> int:
        """Lose the writes a power cut would: every unsynced one, or with ``rng`` a random suffix
        of them (the OS may have written back part of the WAL; never a later write without the
        earlier ones, and never part of a batch). Returns how many writes were lost."""
        keep = rng.randint(0, len(self._unsynced)) if rng is not None and self._unsynced else 0
        lost = self._unsynced[keep:]
        del self._unsynced[:]
        for undo in reversed(lost):
            for cf, key, old in reversed(undo):
                self._restore(self._cfs[cf], key, old)
        return len(lost)

    @staticmethod
    def _restore(fam: _Family, key: bytes, old: bytes | None) -> None:
        if old is None:
            if fam.data.pop(key, None) is not None:
                del fam.keys[bisect_left(fam.keys, key)]
            return
        if key not in fam.data:
            insort(fam.keys, key)
        fam.data[key] = old

    def get(self, cf: str, key: bytes) -> bytes | None:
        return self._cfs[cf].data.get(key)

    def scan(
        self, cf: str, start: bytes, end: bytes | None, limit: int, reverse: bool = False
    ) -> list[tuple[bytes, bytes]]:
        fam = self._cfs[cf]
        keys = fam.keys
        lo = bisect_left(keys, start)
        hi = len(keys) if end is None else bisect_left(keys, end, lo)
        if limit > 0 and hi - lo > limit:
            if reverse:
                lo = hi - limit
            else:
                hi = lo + limit
        selected = keys[lo:hi]
        if reverse:
            selected.reverse()
        data = fam.data
        return [(k, data[k]) for k in selected]

    def iter_range(self, cf: str, start: bytes, end: bytes | None) -> Iterator[tuple[bytes, bytes]]:
        return iter_in_chunks(self.scan, cf, start, end)

    def checkpoint(self, name: str) -> MemEngine:
        """A copy of every family (the simulator's engines are small); nothing in ``files``."""
        view = MemEngine()
        for cf, fam in self._cfs.items():
            copy = view._cfs[cf]
            copy.keys = list(fam.keys)
            copy.data = dict(fam.data)
        return view

    def write_sst(self, name: str, pairs: Iterable[tuple[bytes, bytes]]) -> int:
        sink = None
        count = 0
        for key, value in pairs:
            if sink is None:
                sink = self.files.create(name)
            sink.write(_LEN.pack(len(key), len(value)) + key + value)
            count += 1
        if sink is not None:
            sink.close()
        return count

    def ingest(self, cf: str, name: str) -> None:
        """Durable at once, as RocksDB's ingestion (it writes the MANIFEST synced): a crash no
        longer undoes an earlier unsynced write to an ingested key, whose new value wins."""
        pairs = list(_decode(b"".join(self.files.chunks(name, 1 << 20))))
        if not pairs:
            return
        lo, hi = pairs[0][0], pairs[-1][0]
        for undo in self._unsynced:
            undo[:] = [u for u in undo if u[0] != cf or not lo <= u[1] <= hi]
        fam = self._cfs[cf]
        for key, value in pairs:
            if key not in fam.data:
                insort(fam.keys, key)
            fam.data[key] = value

    def close(self) -> None:
        """Nothing to release: a clean shutdown keeps even unsynced writes (RocksDB flushes its
        WAL on close), and the engine stays usable so a restarted store can reuse it."""


def _decode(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    pos = 0
    while pos < len(data):
        klen, vlen = _LEN.unpack_from(data, pos)
        pos += _LEN.size
        yield data[pos : pos + klen], data[pos + klen : pos + klen + vlen]
        pos += klen + vlen

"""An in-memory ``Engine`` for the deterministic simulator and fast tests.

It models a disk that survives process crashes: a restarted store is handed the same
``MemEngine`` object and finds everything that was written, synced or not. Each column family is
a sorted key list (searched with ``bisect``) plus a dict, so scans never depend on hash order.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterator

from kvdb.storage.engine import ALL_CFS, WriteBatch, iter_in_chunks

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


class MemEngine:
    def __init__(self) -> None:
        self._cfs = {name: _Family() for name in ALL_CFS}

    def batch(self) -> MemWriteBatch:
        return MemWriteBatch()

    def write(self, batch: WriteBatch, sync: bool) -> None:
        """Apply ``batch``; ``sync`` changes nothing, as everything written survives a crash here."""
        if not isinstance(batch, MemWriteBatch):
            raise TypeError(f"MemEngine cannot write a {type(batch).__name__}")
        for op, cf, key, arg in batch._ops:
            fam = self._cfs[cf]
            if op == _PUT:
                if key not in fam.data:
                    insort(fam.keys, key)
                fam.data[key] = arg
            elif op == _DELETE:
                if fam.data.pop(key, None) is not None:
                    del fam.keys[bisect_left(fam.keys, key)]
            else:
                keys = fam.keys
                lo = bisect_left(keys, key)
                hi = bisect_left(keys, arg, lo)
                for k in keys[lo:hi]:
                    del fam.data[k]
                del keys[lo:hi]

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

    def close(self) -> None:
        """Nothing to release; the engine stays usable so a restarted store can reuse it."""

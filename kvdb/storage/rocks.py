"""The RocksDB ``Engine`` (through rocksdict), one database per store.

rocksdict pitfalls this works around (see ../shared/design/DEPENDENCY-NOTES.md and
tests/storage/test_rocksdict_behaviour.py):
- every column-family object, handle and iterator keeps the database's lock file held, so
  ``close()`` drops all of them before closing, and scans never keep an iterator past the call;
- ``ReadOptions`` has no raw mode, so its iterate bounds are not used: scans seek and compare;
- an inverted ``delete_range`` fails the write and then every later write, so it is not staged.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import NoReturn

from rocksdict import Options, Rdict, WriteOptions
from rocksdict import WriteBatch as RdictWriteBatch

from kvdb.storage.engine import ALL_CFS, WriteBatch, iter_in_chunks


class RocksWriteBatch:
    __slots__ = ("_wb", "_handles", "_count", "_size")

    def __init__(self, handles: _ByName) -> None:
        self._wb = RdictWriteBatch(raw_mode=True)
        # The engine's own dict, emptied by close(): a batch must not keep a handle alive.
        self._handles = handles
        self._count = 0
        self._size = 0

    def put(self, cf: str, key: bytes, value: bytes) -> None:
        self._wb.put(key, value, self._handles[cf])
        self._count += 1
        self._size += len(key) + len(value)

    def delete(self, cf: str, key: bytes) -> None:
        self._wb.delete(key, self._handles[cf])
        self._count += 1
        self._size += len(key)

    def delete_range(self, cf: str, start: bytes, end: bytes) -> None:
        handle = self._handles[cf]
        if start >= end:
            return
        self._wb.delete_range(start, end, handle)
        self._count += 1
        self._size += len(start) + len(end)

    def __len__(self) -> int:
        return self._count

    @property
    def size(self) -> int:
        return self._size


class _ByName(dict):
    """Column-family objects by name; a miss tells an unknown name from a closed engine."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        self.closed = False

    def __missing__(self, name: str) -> NoReturn:
        if self.closed:
            raise RuntimeError(f"engine {self.path} is closed")
        raise KeyError(f"unknown column family {name!r}")


def _options() -> Options:
    opts = Options(raw_mode=True)
    opts.create_if_missing(True)
    opts.create_missing_column_families(True)
    return opts


class RocksEngine:
    def __init__(self, path: str | os.PathLike) -> None:
        self.path = os.fspath(path)
        self._db: Rdict | None = Rdict(
            self.path, _options(), column_families={name: Options(raw_mode=True) for name in ALL_CFS}
        )
        self._cfs = _ByName(self.path)
        self._handles = _ByName(self.path)
        for name in ALL_CFS:
            self._cfs[name] = self._db.get_column_family(name)
            self._handles[name] = self._db.get_column_family_handle(name)
        self._sync = WriteOptions()
        self._sync.sync = True
        self._nosync = WriteOptions()

    def batch(self) -> RocksWriteBatch:
        return RocksWriteBatch(self._handles)

    def write(self, batch: WriteBatch, sync: bool) -> None:
        if not isinstance(batch, RocksWriteBatch):
            raise TypeError(f"RocksEngine cannot write a {type(batch).__name__}")
        if self._db is None:
            raise RuntimeError(f"engine {self.path} is closed")
        self._db.write(batch._wb, self._sync if sync else self._nosync)

    def get(self, cf: str, key: bytes) -> bytes | None:
        return self._cfs[cf].get(key)

    def scan(
        self, cf: str, start: bytes, end: bytes | None, limit: int, reverse: bool = False
    ) -> list[tuple[bytes, bytes]]:
        if end is not None and start >= end:
            return []
        family = self._cfs[cf]
        out: list[tuple[bytes, bytes]] = []
        if limit <= 0:
            limit = -1  # never reached by len(out)
        if reverse:
            # Seeks to the last key <= end (the first one when end is None); end itself is excluded.
            for key, value in family.items(backwards=True, from_key=end):
                if key < start or len(out) == limit:
                    break
                if key != end:
                    out.append((key, value))
        else:
            for key, value in family.items(from_key=start):
                if (end is not None and key >= end) or len(out) == limit:
                    break
                out.append((key, value))
        return out

    def iter_range(self, cf: str, start: bytes, end: bytes | None) -> Iterator[tuple[bytes, bytes]]:
        return iter_in_chunks(self.scan, cf, start, end)

    def close(self) -> None:
        """Release every handle, then the database; a second call does nothing."""
        if self._db is None:
            return
        for family in self._cfs.values():
            family.close()
        for by_name in (self._cfs, self._handles):
            by_name.clear()
            by_name.closed = True
        self._db.close()
        self._db = None

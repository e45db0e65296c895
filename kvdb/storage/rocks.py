"""The RocksDB ``Engine`` (through rocksdict), one database per store.

rocksdict pitfalls this works around (see ../shared/design/DEPENDENCY-NOTES.md and
tests/storage/test_rocksdict_behaviour.py):
- every column-family object, handle and iterator keeps the database's lock file held, so
  ``close()`` drops all of them before closing, and scans never keep an iterator past the call;
- ``ReadOptions`` has no raw mode, so its iterate bounds are not used: scans seek and compare;
- an inverted ``delete_range`` fails the write and then every later write, so it is not staged.

WAL recycling (``wal_recycle_bytes``): a synced write that appends to a file also changes the
file's size and allocates blocks, so ext4's ``fdatasync`` must commit its journal as well, and
the three stores of a cluster on one disk queue behind each other's journal commits. RocksDB can
instead reuse its obsolete WAL files, overwriting blocks already written, so ``fdatasync`` flushes
the data alone (measured here, three processes each syncing ~3.5 KB batches: 333 us per sync
appending, 206 us overwriting). It reuses only files it made obsolete while running, and at open
it deletes every old WAL, so the engine fills the pool itself as it opens (``_fill_wal_pool``),
the way etcd preallocates its WAL segments, and caps the live WAL at the same size
(``max_total_wal_size``: beyond it, RocksDB flushes the memtables and switches to a pooled file).
RocksDB >= 9.1 keeps point-in-time recovery with recycled files (the bundled one is 9.8.4): a
record left from a file's earlier life carries an older log number and ends the replay.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from typing import NoReturn

from rocksdict import (
    AccessType,
    Checkpoint,
    IngestExternalFileOptions,
    Options,
    Rdict,
    SstFileWriter,
    WriteOptions,
)
from rocksdict import WriteBatch as RdictWriteBatch

from kvdb.storage.engine import ALL_CFS, CF_META, WriteBatch, iter_in_chunks
from kvdb.storage.files import DirFiles
from kvdb.storage.keys import WAL_FILL_KEY

_FLUSH_POLL = 0.002
"""Seconds between looks at a background memtable flush (``checkpoint``)."""
WAL_POOL_FILES = 2
"""WAL files RocksDB keeps for reuse (``recycle_log_file_num``), all filled at open: the live one
and the next."""
_WAL_FILL_BLOCK = 1 << 20
"""Bytes per write while filling the WAL pool: few writes, and a memtable that holds one value."""
_WAL_FILL_MARGIN = 64 << 10
"""Bytes a filled WAL file stays under ``wal_recycle_bytes`` (more than its records' headers), so
``max_total_wal_size`` does not switch it while it is being filled."""


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


def _options(wal_recycle_bytes: int) -> Options:
    opts = Options(raw_mode=True)
    opts.create_if_missing(True)
    opts.create_missing_column_families(True)
    if wal_recycle_bytes:
        opts.set_recycle_log_file_num(WAL_POOL_FILES)
        opts.set_max_total_wal_size(wal_recycle_bytes)
    return opts


class RocksEngine:
    def __init__(self, path: str | os.PathLike, snap_dir: str | os.PathLike | None = None,
                 wal_recycle_bytes: int = 0) -> None:
        """``snap_dir``: where snapshot files go (default: ``<path>.snap``). ``wal_recycle_bytes``:
        the size of the WAL files reused for synced writes (module docstring; 0: append to new
        files, RocksDB's default)."""
        self.path = os.fspath(path)
        self.files = DirFiles(os.fspath(snap_dir) if snap_dir is not None else self.path + ".snap")
        self._db: Rdict | None = Rdict(
            self.path, _options(wal_recycle_bytes),
            column_families={name: Options(raw_mode=True) for name in ALL_CFS}
        )
        self._cfs = _ByName(self.path)
        self._handles = _ByName(self.path)
        for name in ALL_CFS:
            self._cfs[name] = self._db.get_column_family(name)
            self._handles[name] = self._db.get_column_family_handle(name)
        self._nosync = WriteOptions()
        if wal_recycle_bytes:
            self._fill_wal_pool(wal_recycle_bytes)

    def _fill_wal_pool(self, size: int) -> None:
        """Write junk into each WAL file of the pool (synced, so its blocks are allocated and
        written), then make RocksDB switch files: at the end, the live WAL and the next one are
        full-size files that synced writes overwrite in place. ~0.16 s for 32 MiB at every open."""
        assert self._db is not None
        handle, meta = self._handles[CF_META], self._cfs[CF_META]
        for _ in range(WAL_POOL_FILES):
            left = size - _WAL_FILL_MARGIN
            while left > 0:
                fill = RdictWriteBatch(raw_mode=True)
                fill.put(WAL_FILL_KEY, bytes(min(left, _WAL_FILL_BLOCK)), handle)
                self._db.write(fill, self._nosync)
                left -= _WAL_FILL_BLOCK
            done = RdictWriteBatch(raw_mode=True)
            done.delete(WAL_FILL_KEY, handle)
            self._db.write(done, self._nosync)
            self._db.flush_wal(True)
            meta.flush(True)  # the only memtable written to: flushing it switches to the next WAL

    def batch(self) -> RocksWriteBatch:
        return RocksWriteBatch(self._handles)

    def write(self, batch: WriteBatch, sync: bool) -> None:
        if not isinstance(batch, RocksWriteBatch):
            raise TypeError(f"RocksEngine cannot write a {type(batch).__name__}")
        if self._db is None:
            raise RuntimeError(f"engine {self.path} is closed")
        if sync:
            # Not WriteOptions.sync: rocksdict holds the GIL through that fsync, so the event loop
            # stalls for every group commit. flush_wal(True) syncs the same WAL records (and any
            # unsynced ones before them) with the GIL released. The records are readable before the
            # sync ends, which changes nothing: the caller acts on them only once write() returns.
            self._db.write(batch._wb, self._nosync)
            self._db.flush_wal(True)
        else:
            self._db.write(batch._wb, self._nosync)

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

    def checkpoint(self, name: str) -> RocksView:
        """A RocksDB checkpoint (hard links to the SST files), opened read-only.

        Creating one flushes the memtables while holding the GIL (~80 ms for a full 64 MB
        memtable, measured): the memtables are first flushed in the background, which does not
        hold it, so the checkpoint's own flush has little left to do (~10 ms)."""
        families = [self._cfs[cf] for cf in ALL_CFS]
        for family in families:
            family.flush(False)
        while any(f.property_int_value("rocksdb.num-immutable-mem-table") for f in families):
            time.sleep(_FLUSH_POLL)
        if self._db is None:
            raise RuntimeError(f"engine {self.path} is closed")
        self.files.remove(name)
        path = self.files.path(name)
        Checkpoint(self._db).create_checkpoint(path)
        return RocksView(self.files, name)

    def write_sst(self, name: str, pairs: Iterable[tuple[bytes, bytes]]) -> int:
        writer = None
        count = 0
        for key, value in pairs:
            if writer is None:
                writer = SstFileWriter(Options(raw_mode=True))
                writer.open(self.files.path(name))
            writer[key] = value
            count += 1
        if writer is not None:
            writer.finish()  # syncs the file
        return count

    def ingest(self, cf: str, name: str) -> None:
        """Ingest a hard link of the file, which RocksDB moves into the database (no copy, however
        big the file): the file itself stays, so an ingestion can be done again after a crash."""
        link = self.files.path(name + ".ingest")
        if os.path.exists(link):
            os.unlink(link)
        os.link(self.files.path(name), link)
        opts = IngestExternalFileOptions()
        opts.set_move_files(True)
        self._cfs[cf].ingest_external_file([link], opts)

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


class RocksView:
    """A checkpoint of a ``RocksEngine``, open read-only; ``close`` deletes it."""

    def __init__(self, files: DirFiles, name: str) -> None:
        self._files = files
        self._name = name
        self._db = Rdict(files.path(name), Options(raw_mode=True),
                         column_families={cf: Options(raw_mode=True) for cf in ALL_CFS},
                         access_type=AccessType.read_only())
        self._cfs = {cf: self._db.get_column_family(cf) for cf in ALL_CFS}

    def get(self, cf: str, key: bytes) -> bytes | None:
        return self._cfs[cf].get(key)

    def iter_range(self, cf: str, start: bytes, end: bytes | None) -> Iterator[tuple[bytes, bytes]]:
        """One open iterator for the whole pass (the checkpoint never changes, and nothing else
        uses this database, so no lock is held against anyone)."""
        for key, value in self._cfs[cf].items(from_key=start):
            if end is not None and key >= end:
                return
            yield key, value

    def close(self) -> None:
        for family in self._cfs.values():
            family.close()
        self._cfs.clear()
        self._db.close()
        self._files.remove(self._name)


def read_only_get(path: str | os.PathLike, cf: str, key: bytes) -> bytes | None:
    """One value from the database at ``path``, opened read-only: nothing in it changes (no WAL
    replay, no new log or manifest; rocksdict rewrites its options sidecar with the same bytes)."""
    db = Rdict(os.fspath(path), Options(raw_mode=True),
               column_families={name: Options(raw_mode=True) for name in ALL_CFS},
               access_type=AccessType.read_only())
    family = db.get_column_family(cf)
    try:
        return family.get(key)
    finally:
        family.close()
        db.close()

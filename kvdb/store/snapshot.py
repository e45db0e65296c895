"""Range snapshots as files: built from a checkpoint, streamed to disk, ingested crash-safely.

Memory stays bounded on both sides whatever the range's size (see docs/store.md, "Snapshots"):

- **Build** (sender, ``build``; runs on a background thread in a real store): a checkpoint of the
  engine is a consistent copy, so the range's pairs, applied index, conf state, descriptor and
  sessions are all read from it, while the store keeps writing. (Iterating the live engine, or
  a rocksdict snapshot, would see later writes: DEPENDENCY-NOTES.md.) The pairs go one by one
  into one SST file per data column family that has any (``keyspace.data_bounds``: raw pairs,
  transaction locks, MVCC versions); the header lists the files (``cf_files``) and carries their
  total size and the xxh64 of the files back to back.
- **Stream**: the transport reads the files one after the other, a chunk at a time; the receiver
  cuts the stream back into per-family files (``Incoming``) by the sizes the header lists,
  hashing as it goes, and checks size and checksum at the end.
- **Apply** (receiver): one synced batch holds the deletion of the range's old data, the new
  Raft and apply state, descriptor and sessions, and a marker naming the file
  (``snapshot_ingest_key``). Only after that write does the store ingest the file, then delete
  the marker (synced) and the file. A crash in between leaves the marker: ``recover`` deletes
  the range's data and ingests the file again before the store starts (idempotent: nothing
  of the range is applied after the ingest until the marker is gone).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import xxhash
from google.protobuf.message import DecodeError

from kvdb.pb import raft_serverpb_pb2
from kvdb.raft import ConfState
from kvdb.raft.codec import conf_state_from_pb
from kvdb.storage.engine import CF_META, Engine
from kvdb.storage.files import FileSink, FileStore
from kvdb.storage.keys import (
    SNAPSHOT_INGEST_PREFIX,
    apply_state_key,
    prefix_end,
    range_id_from_ingest_key,
    range_state_key,
    snapshot_ingest_key,
)
from kvdb.store import keyspace
from kvdb.store.errors import DamagedStateError
from kvdb.store.sessions import Sessions

log = logging.getLogger(__name__)

HASH_CHUNK = 1 << 20
"""Bytes read at a time to checksum a built file."""


class SnapshotCorruptError(Exception):
    pass


def part_name(name: str, cf: str) -> str:
    """The file of column family ``cf`` of the snapshot called ``name``."""
    return f"{name}.{cf}"


class Built:
    """A snapshot built by the sender: its data files and what the Raft message says of it.

    ``users`` counts the streams sending it; the files are deleted when the last one is done.
    """

    def __init__(self, files: FileStore, name: str | None, index: int, conf_state: ConfState,
                 header: raft_serverpb_pb2.SnapshotHeader) -> None:
        self.files = files
        self.name = name
        self.index = index
        self.conf_state = conf_state
        self.header = header
        self.header_bytes = header.SerializeToString()
        self.size = header.data_size
        self.users = 0

    def chunks(self, size: int) -> Iterator[bytes]:
        """The data files back to back, ``size`` bytes at a time (the transport's stream)."""
        if self.name is None:
            return
        for part in self.header.cf_files:
            yield from self.files.chunks(part_name(self.name, part.cf), size)

    def remove(self) -> None:
        if self.name is not None:
            for part in self.header.cf_files:
                self.files.remove(part_name(self.name, part.cf))


def build(engine: Engine, range_id: int, name: str, session_ttl_ms: int) -> Built:
    """The range as of the checkpoint taken now: data files ``name.<cf>`` plus their header.

    Memory use is one pair at a time (and RocksDB's SST writer block); safe on any thread.
    """
    view = engine.checkpoint(name + ".checkpoint")
    try:
        raw_state = view.get(CF_META, range_state_key(range_id))
        raw_apply = view.get(CF_META, apply_state_key(range_id))
        if raw_state is None or raw_apply is None:
            raise SnapshotCorruptError(f"range {range_id} has no state to snapshot")
        state = raft_serverpb_pb2.RangeLocalState.FromString(raw_state)
        if state.state == raft_serverpb_pb2.RangeLocalState.TOMBSTONE:
            raise SnapshotCorruptError(f"range {range_id} was removed")
        apply = raft_serverpb_pb2.ApplyState.FromString(raw_apply)
        desc = state.descriptor
        header = raft_serverpb_pb2.SnapshotHeader(descriptor=desc)
        header.sessions.CopyFrom(Sessions.load(view, range_id, session_ttl_ms).to_pb())
        header.gc_safe_point = apply.gc_safe_point
        hasher = xxhash.xxh64()
        for cf, start, end in keyspace.data_bounds(desc):
            part = part_name(name, cf)
            pairs = view.iter_range(cf, start, end)
            try:
                count = engine.write_sst(part, pairs)
            finally:
                pairs.close()  # type: ignore[attr-defined]  # a generator: releases the view's iterator
            if not count:
                continue
            for chunk in engine.files.chunks(part, HASH_CHUNK):
                hasher.update(chunk)
            size = engine.files.size(part)
            header.cf_files.add(cf=cf, size=size, key_count=count)
            header.key_count += count
            header.data_size += size
        header.checksum = hasher.intdigest()
    except BaseException:
        for cf in keyspace.DATA_CFS:
            engine.files.remove(part_name(name, cf))
        raise
    finally:
        view.close()
    return Built(engine.files, name if header.key_count else None, apply.applied_index,
                 conf_state_from_pb(apply.conf_state), header)


class Incoming:
    """A snapshot stream being received: chunks go straight to the column families' files (cut
    where the header's sizes say), hashed on the way."""

    def __init__(self, files: FileStore, name: str, message: raft_serverpb_pb2.RaftMessage) -> None:
        self.files = files
        self.message = message
        try:
            self.header = raft_serverpb_pb2.SnapshotHeader.FromString(message.message.snapshot.data)
        except DecodeError as exc:
            raise SnapshotCorruptError(f"bad snapshot header: {exc}") from exc
        parts = self.header.cf_files
        cfs = [p.cf for p in parts]
        if (any(cf not in keyspace.DATA_CFS for cf in cfs) or len(set(cfs)) != len(cfs)
                or sum(p.size for p in parts) != self.header.data_size or any(p.size == 0 for p in parts)):
            raise SnapshotCorruptError(f"snapshot header lists files {[(p.cf, p.size) for p in parts]} "
                                       f"for {self.header.data_size} bytes")
        self.index = message.message.snapshot.metadata.index
        self.name: str | None = name if self.header.data_size else None
        self._part = -1  # the file being written: header.cf_files[_part]
        self._left = 0  # bytes still due to it
        self._sink: FileSink | None = None
        self._hasher = xxhash.xxh64()
        self._received = 0

    def write(self, data: bytes) -> None:
        if not data:
            return
        self._received += len(data)
        if self._received > self.header.data_size or self.name is None:
            raise SnapshotCorruptError(f"snapshot data is over {self.header.data_size} bytes, "
                                       "as the header says")
        self._hasher.update(data)
        while data:
            if self._left == 0:
                self._next_part()
            piece, data = data[:self._left], data[self._left:]
            self._left -= len(piece)
            assert self._sink is not None
            self._sink.write(piece)

    def _next_part(self) -> None:
        assert self.name is not None
        if self._sink is not None:
            self._sink.close()
        self._part += 1
        part = self.header.cf_files[self._part]
        self._sink = self.files.create(part_name(self.name, part.cf))
        self._left = part.size

    def finish(self) -> None:
        """All chunks arrived: check them against the header and make the file durable."""
        if self._received != self.header.data_size:
            raise SnapshotCorruptError(f"snapshot data is {self._received} bytes, "
                                       f"header says {self.header.data_size}")
        if self._hasher.intdigest() != self.header.checksum:
            raise SnapshotCorruptError("snapshot checksum mismatch")
        if self._sink is not None:
            self._sink.close()
            self._sink = None

    def discard(self) -> None:
        """Delete the files (a failed or refused stream, or a snapshot that will never apply)."""
        if self._sink is not None:
            self._sink.close()
            self._sink = None
        if self.name is not None:
            for cf in keyspace.DATA_CFS:
                self.files.remove(part_name(self.name, cf))


def _parts(engine: Engine, name: str) -> list[tuple[str, str]]:
    """(column family, file) of each file snapshot ``name`` has (a family without pairs has none)."""
    return [(cf, part_name(name, cf)) for cf in keyspace.DATA_CFS if engine.files.exists(part_name(name, cf))]


def ingest(engine: Engine, range_id: int, name: str) -> None:
    """Second half of applying a snapshot, after the synced batch holding the marker: add the
    files to the data, then drop the marker (synced, so that the files are no longer needed) and
    the files."""
    parts = _parts(engine, name)
    for cf, part in parts:
        engine.ingest(cf, part)
    batch = engine.batch()
    batch.delete(CF_META, snapshot_ingest_key(range_id))
    engine.write(batch, sync=True)
    for _, part in parts:
        engine.files.remove(part)


def recover(engine: Engine) -> None:
    """At start-up, before the ranges load: finish ingestions a crash interrupted, then delete
    every other snapshot file (sends, receptions and checkpoints of the previous life)."""
    end = prefix_end(SNAPSHOT_INGEST_PREFIX)
    for key, value in engine.scan(CF_META, SNAPSHOT_INGEST_PREFIX, end, 0):
        range_id = range_id_from_ingest_key(key)
        name = value.decode()
        raw = engine.get(CF_META, range_state_key(range_id))
        state = raft_serverpb_pb2.RangeLocalState.FromString(raw or b"")
        batch = engine.batch()
        if raw is not None and state.state != raft_serverpb_pb2.RangeLocalState.TOMBSTONE:
            if not _parts(engine, name):
                raise DamagedStateError(f"range {range_id}: snapshot files {name}.* to ingest are missing")
            keyspace.delete_data(batch, state.descriptor)
            engine.write(batch, sync=True)
            log.info("range %d: ingesting snapshot file %s again after a crash", range_id, name)
            ingest(engine, range_id, name)
        else:
            batch.delete(CF_META, key)
            engine.write(batch, sync=True)
    for name in engine.files.names():
        engine.files.remove(name)

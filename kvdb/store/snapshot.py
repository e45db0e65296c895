"""Range snapshots as files: built from a checkpoint, streamed to disk, ingested crash-safely.

Memory stays bounded on both sides whatever the range's size (see docs/store.md, "Snapshots"):

- **Build** (sender, ``build``; runs on a background thread in a real store): a checkpoint of the
  engine is a consistent copy, so the range's pairs, applied index, conf state, descriptor and
  sessions are all read from it, while the store keeps writing. (Iterating the live engine, or
  a rocksdict snapshot, would see later writes: DEPENDENCY-NOTES.md.) The pairs go one by one
  into an SST file; the header carries the file's size and xxh64.
- **Stream**: the transport reads the file a chunk at a time; the receiver writes each chunk to
  a file of its own (``Incoming``), hashing as it goes, and checks size and checksum at the end.
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
from kvdb.storage.engine import CF_DEFAULT, CF_META, Engine
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


class Built:
    """A snapshot built by the sender: its data file and what the Raft message says of it.

    ``users`` counts the streams sending it; the file is deleted when the last one is done.
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
        """The data file, ``size`` bytes at a time (the transport's stream)."""
        if self.name is None:
            return iter(())
        return self.files.chunks(self.name, size)

    def remove(self) -> None:
        if self.name is not None:
            self.files.remove(self.name)


def build(engine: Engine, range_id: int, name: str, session_ttl_ms: int) -> Built:
    """The range as of the checkpoint taken now: data file ``name`` plus its header.

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
        pairs = view.iter_range(CF_DEFAULT, desc.start_key, keyspace.data_end(desc))
        try:
            header.key_count = engine.write_sst(name, pairs)
        finally:
            pairs.close()  # type: ignore[attr-defined]  # a generator: releases the view's iterator
        hasher = xxhash.xxh64()
        if header.key_count:
            for chunk in engine.files.chunks(name, HASH_CHUNK):
                hasher.update(chunk)
            header.data_size = engine.files.size(name)
        header.checksum = hasher.intdigest()
    except BaseException:
        engine.files.remove(name)
        raise
    finally:
        view.close()
    return Built(engine.files, name if header.key_count else None, apply.applied_index,
                 conf_state_from_pb(apply.conf_state), header)


class Incoming:
    """A snapshot stream being received: chunks go straight to a file, hashed on the way."""

    def __init__(self, files: FileStore, name: str, message: raft_serverpb_pb2.RaftMessage) -> None:
        self.files = files
        self.message = message
        try:
            self.header = raft_serverpb_pb2.SnapshotHeader.FromString(message.message.snapshot.data)
        except DecodeError as exc:
            raise SnapshotCorruptError(f"bad snapshot header: {exc}") from exc
        self.index = message.message.snapshot.metadata.index
        self.name: str | None = name if self.header.data_size else None
        self._sink: FileSink | None = files.create(name) if self.name is not None else None
        self._hasher = xxhash.xxh64()
        self._received = 0

    def write(self, data: bytes) -> None:
        if not data:
            return
        self._received += len(data)
        if self._received > self.header.data_size or self._sink is None:
            raise SnapshotCorruptError(f"snapshot data is over {self.header.data_size} bytes, "
                                       "as the header says")
        self._hasher.update(data)
        self._sink.write(data)

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
        """Delete the file (a failed or refused stream, or a snapshot that will never apply)."""
        if self._sink is not None:
            self._sink.close()
            self._sink = None
        if self.name is not None:
            self.files.remove(self.name)


def ingest(engine: Engine, range_id: int, name: str) -> None:
    """Second half of applying a snapshot, after the synced batch holding the marker: add the
    file to the data, then drop the marker (synced, so that the file is no longer needed) and
    the file."""
    engine.ingest(CF_DEFAULT, name)
    batch = engine.batch()
    batch.delete(CF_META, snapshot_ingest_key(range_id))
    engine.write(batch, sync=True)
    engine.files.remove(name)


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
            if not engine.files.exists(name):
                raise DamagedStateError(f"range {range_id}: snapshot file {name} to ingest is missing")
            desc = state.descriptor
            batch.delete_range(CF_DEFAULT, desc.start_key, keyspace.data_end(desc))
            engine.write(batch, sync=True)
            log.info("range %d: ingesting snapshot file %s again after a crash", range_id, name)
            ingest(engine, range_id, name)
        else:
            batch.delete(CF_META, key)
            engine.write(batch, sync=True)
    for name in engine.files.names():
        engine.files.remove(name)

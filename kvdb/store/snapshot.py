"""Range snapshots: the range's key-value pairs as one checksummed blob, and its header.

The blob is built in one pass over the range while nothing writes it (the store applies on the
same thread and builds the snapshot between iterations), which is what makes it consistent:
rocksdict's snapshot iteration does not isolate (see DEPENDENCY-NOTES.md). It travels in chunks
on the snapshot stream and is applied on the receiver in the same atomic batch as the Raft
state it belongs to.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator

import xxhash

from kvdb.pb import metapb_pb2, raft_serverpb_pb2

_LEN = struct.Struct(">II")


class SnapshotCorruptError(Exception):
    pass


def encode_pairs(pairs: Iterable[tuple[bytes, bytes]]) -> tuple[bytes, int]:
    """The blob of ``pairs`` and how many there were."""
    parts: list[bytes] = []
    count = 0
    for key, value in pairs:
        parts.append(_LEN.pack(len(key), len(value)))
        parts.append(key)
        parts.append(value)
        count += 1
    return b"".join(parts), count


def decode_pairs(blob: bytes) -> Iterator[tuple[bytes, bytes]]:
    pos, end = 0, len(blob)
    while pos < end:
        if pos + _LEN.size > end:
            raise SnapshotCorruptError("truncated snapshot record header")
        klen, vlen = _LEN.unpack_from(blob, pos)
        pos += _LEN.size
        if pos + klen + vlen > end:
            raise SnapshotCorruptError("truncated snapshot record")
        yield blob[pos : pos + klen], blob[pos + klen : pos + klen + vlen]
        pos += klen + vlen


def build_header(desc: metapb_pb2.RangeDescriptor, blob: bytes, count: int,
                 sessions: raft_serverpb_pb2.RangeSessions | None = None) -> bytes:
    """The header of the snapshot ``blob``; the range's client sessions travel in it (they are part
    of the state machine: without them a follower that later leads would apply re-sent writes)."""
    header = raft_serverpb_pb2.SnapshotHeader(
        data_size=len(blob), key_count=count, checksum=xxhash.xxh64_intdigest(blob)
    )
    header.descriptor.CopyFrom(desc)
    if sessions is not None:
        header.sessions.CopyFrom(sessions)
    return header.SerializeToString()


def verify(header_bytes: bytes, blob: bytes) -> raft_serverpb_pb2.SnapshotHeader:
    """The header, once the blob is known to be the one it describes."""
    header = raft_serverpb_pb2.SnapshotHeader.FromString(header_bytes)
    if len(blob) != header.data_size:
        raise SnapshotCorruptError(f"snapshot data is {len(blob)} bytes, header says {header.data_size}")
    if xxhash.xxh64_intdigest(blob) != header.checksum:
        raise SnapshotCorruptError("snapshot checksum mismatch")
    return header

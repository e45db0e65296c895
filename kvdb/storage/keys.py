"""Key encodings of the store's local state (column families ``raft`` and ``meta``).

Integers are big-endian and fixed-width, so byte order is numeric order: a range's log keys sort
by index, and the keys of one kind sort by range id.

CF_RAFT: ``range_id (8) | kind (1) [| index (8)]``, with kind 0x01 log entry, 0x02 hard state,
0x03 truncated state. A range's log keys are exactly the keys between its 0x01 and 0x02 prefixes,
so one ``delete_range`` drops a whole log and never touches the hard or truncated state.

CF_META: ``kind (1) | ...``: 0x00 store ident, 0x01 range state, 0x02 apply state, 0x03 client
sessions (``range_id (8) | 0x00`` the range's log time, ``range_id (8) | 0x01 | session_id (8)``
one session), 0x04 a snapshot being ingested (``snapshot_ingest_key``), 0x05 the GC safe point,
0xff the engine's WAL filler (``WAL_FILL_KEY``, deleted again as it opens). Range state keys have a
prefix of their own so a restarting store can list its ranges with one scan; a range's sessions
likewise.
"""

from __future__ import annotations

import struct

_U64 = struct.Struct(">Q")
_RANGE_KIND = struct.Struct(">QB")
_LOG_KEY = struct.Struct(">QBQ")

_LOG = 0x01
_HARD_STATE = 0x02
_TRUNCATED_STATE = 0x03

STORE_IDENT_KEY = b"\x00"
"""CF_META: the store's (cluster id, store id)."""
RANGE_STATE_PREFIX = b"\x01"
"""CF_META: prefix of every ``range_state_key``."""
_APPLY_STATE_PREFIX = b"\x02"
_SESSION_PREFIX = b"\x03"
SNAPSHOT_INGEST_PREFIX = b"\x04"
"""CF_META: prefix of every ``snapshot_ingest_key``."""
GC_SAFE_POINT_KEY = b"\x05"
"""CF_META: the highest MVCC GC safe point the store's data was collected at (8 bytes, big
endian), written with the deletions (``Store.raise_gc_safe_point``)."""
WAL_FILL_KEY = b"\xff"
"""CF_META: the junk ``RocksEngine`` writes as it opens to fill the WAL files it will reuse, then
deletes; one left by a crash is deleted by the next open."""
_SESSION_CLOCK = 0x00
_SESSION = 0x01


def raft_log_key(range_id: int, index: int) -> bytes:
    """CF_RAFT: the log entry at ``index``."""
    return _LOG_KEY.pack(range_id, _LOG, index)


def raft_log_index(key: bytes) -> int:
    """The index a ``raft_log_key`` encodes."""
    return _U64.unpack_from(key, _RANGE_KIND.size)[0]


def raft_log_prefix_bounds(range_id: int) -> tuple[bytes, bytes]:
    """CF_RAFT: [start, end) holding every log key of the range and nothing else."""
    return _RANGE_KIND.pack(range_id, _LOG), _RANGE_KIND.pack(range_id, _LOG + 1)


def hard_state_key(range_id: int) -> bytes:
    """CF_RAFT."""
    return _RANGE_KIND.pack(range_id, _HARD_STATE)


def truncated_state_key(range_id: int) -> bytes:
    """CF_RAFT."""
    return _RANGE_KIND.pack(range_id, _TRUNCATED_STATE)


def range_state_key(range_id: int) -> bytes:
    """CF_META: the range's descriptor and state, owned by the store."""
    return RANGE_STATE_PREFIX + _U64.pack(range_id)


def range_id_from_state_key(key: bytes) -> int:
    """The range id of a ``range_state_key``; ``ValueError`` for any other key."""
    if len(key) != len(RANGE_STATE_PREFIX) + _U64.size or not key.startswith(RANGE_STATE_PREFIX):
        raise ValueError(f"not a range state key: {key!r}")
    return _U64.unpack_from(key, len(RANGE_STATE_PREFIX))[0]


def apply_state_key(range_id: int) -> bytes:
    """CF_META: the range's applied index and conf state, owned by the store."""
    return _APPLY_STATE_PREFIX + _U64.pack(range_id)


def snapshot_ingest_key(range_id: int) -> bytes:
    """CF_META: the snapshot file the range's data is being replaced with (``kvdb.store.snapshot``)."""
    return SNAPSHOT_INGEST_PREFIX + _U64.pack(range_id)


def range_id_from_ingest_key(key: bytes) -> int:
    return _U64.unpack_from(key, len(SNAPSHOT_INGEST_PREFIX))[0]


def session_clock_key(range_id: int) -> bytes:
    """CF_META: the range's log time (``SessionClock``)."""
    return _SESSION_PREFIX + _RANGE_KIND.pack(range_id, _SESSION_CLOCK)


def session_key(range_id: int, session_id: int) -> bytes:
    """CF_META: one client session's state in the range (``SessionState``)."""
    return _SESSION_PREFIX + _RANGE_KIND.pack(range_id, _SESSION) + _U64.pack(session_id)


def session_bounds(range_id: int) -> tuple[bytes, bytes]:
    """CF_META: [start, end) holding every ``session_key`` of the range and nothing else."""
    return (_SESSION_PREFIX + _RANGE_KIND.pack(range_id, _SESSION),
            _SESSION_PREFIX + _RANGE_KIND.pack(range_id, _SESSION + 1))


def prefix_end(prefix: bytes) -> bytes | None:
    """The smallest key above every key starting with ``prefix``: the ``end`` of a prefix scan
    (None, i.e. unbounded, when the prefix is all 0xff bytes)."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes([stripped[-1] + 1])

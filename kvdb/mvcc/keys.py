"""Keys of the transactional key space (column families ``lock`` and ``write``).

``lock``: the user key itself, one lock per key, so a range's locks are exactly its key bounds.

``write``: ``escape(user key) ++ big-endian(~ts)``. Escaping (0x00 -> 0x00 0xff, then the
terminator 0x00 0x01, as CockroachDB encodes bytes ascending) keeps byte order and makes no
escaped key a prefix of another, so (a) every version of a key sorts before the next key's,
newest first, and (b) a range's versions are exactly the keys in
``[escape(start_key), escape(end_key))`` (``version_bounds``): ``a < b`` iff ``escape(a) <
escape(b)``, and the suffix can never carry a key across a bound.
"""

from __future__ import annotations

import struct

from kvdb.pb import metapb_pb2
from kvdb.store import keyspace

_TS = struct.Struct(">Q")
_MAX_TS = (1 << 64) - 1
_TERMINATOR = b"\x00\x01"
TS_SIZE = _TS.size
MAX_TS = _MAX_TS
"""The highest timestamp a version key holds (uint64): ``version_key(k, MAX_TS)`` is k's first."""


def escape(key: bytes) -> bytes:
    return key.replace(b"\x00", b"\x00\xff") + _TERMINATOR


def unescape(escaped: bytes) -> bytes:
    if not escaped.endswith(_TERMINATOR):
        raise ValueError(f"not an escaped key: {escaped[:64]!r}")
    return escaped[: -len(_TERMINATOR)].replace(b"\x00\xff", b"\x00")


def version_key(key: bytes, ts: int) -> bytes:
    """The ``write`` key of ``key``'s version at ``ts``; higher ``ts`` sorts first."""
    return escape(key) + _TS.pack(_MAX_TS - ts)


def split_version_key(vkey: bytes) -> tuple[bytes, int]:
    """(user key, ts) of a ``version_key``."""
    return unescape(vkey[:-TS_SIZE]), _MAX_TS - _TS.unpack_from(vkey, len(vkey) - TS_SIZE)[0]


def version_ts(vkey: bytes) -> int:
    """The timestamp of a ``version_key``, without decoding the user key."""
    return _MAX_TS - _TS.unpack_from(vkey, len(vkey) - TS_SIZE)[0]


def versions_of(key: bytes) -> tuple[bytes, bytes]:
    """[start, end) of every ``write`` key of ``key``, newest version first."""
    prefix = escape(key)
    return prefix, prefix + b"\xff" * (TS_SIZE + 1)


def version_bounds(desc: metapb_pb2.RangeDescriptor) -> tuple[bytes, bytes]:
    """[start, end) of every ``write`` key whose user key lies in the range."""
    return user_bounds_to_versions(desc.start_key, keyspace.data_end(desc))


def user_bounds_to_versions(start: bytes, end: bytes) -> tuple[bytes, bytes]:
    """[start, end) of user keys (``end`` exclusive, non-empty) as ``write`` key bounds."""
    return escape(start), escape(end)

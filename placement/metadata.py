"""Where the placement driver keeps cluster metadata in its replicated key-value range.

PD members replicate their metadata through Raft with the same store code as data ranges: the
metadata lives as keys of one range hosted by every PD member. Keys:

    c/meta            ClusterMeta (cluster id, schedule config)
    c/bootstrapped    the BootstrapRequest that bootstrapped the cluster
    s/<id>            StoreInfo
    r/<id>            RangeInfo
    e/1<end key>      range id, for ranges with an end key: the lookup index by end key
    e/2               range id of the range that extends to the end of the key space
    w/alloc, w/tso    Window: upper bounds persisted ahead of use by the id allocator and TSO
"""

from __future__ import annotations

CLUSTER_META = b"c/meta"
BOOTSTRAPPED = b"c/bootstrapped"
ALLOC_WINDOW = b"w/alloc"
TSO_WINDOW = b"w/tso"
STORE_PREFIX = b"s/"
RANGE_PREFIX = b"r/"
END_INDEX_PREFIX = b"e/"
_BOUNDED = b"e/1"
UNBOUNDED_END_KEY = b"e/2"
END_INDEX_END = b"e/3"


def store_key(store_id: int) -> bytes:
    return STORE_PREFIX + store_id.to_bytes(8, "big")


def range_key(range_id: int) -> bytes:
    return RANGE_PREFIX + range_id.to_bytes(8, "big")


def end_index_key(end_key: bytes) -> bytes:
    """Index entry of a range by its end key; sorts like the end keys, +inf last."""
    return _BOUNDED + end_key if end_key else UNBOUNDED_END_KEY


def lookup_start(key: bytes) -> bytes:
    """Where to scan the end index for the range holding ``key``: the first end key above it."""
    return _BOUNDED + key + b"\x00"


def prefix_end(prefix: bytes) -> bytes:
    return prefix[:-1] + bytes([prefix[-1] + 1])

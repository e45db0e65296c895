"""Where the placement driver keeps cluster metadata in its replicated key-value range.

PD members replicate their metadata through Raft with the same store code as data ranges: the
metadata lives as keys of one range hosted by every PD member. Keys:

    c/meta            ClusterMeta (cluster id, schedule config, MVCC GC safe point)
    c/bootstrapped    the BootstrapRequest that bootstrapped the cluster
    s/<id>            StoreInfo
    r/<id>            RangeInfo (lookups by key go through the leader's in-memory range tree,
                      placement/range_tree.py, built from these records)
    w/alloc, w/tso    Window: upper bounds persisted ahead of use by the id allocator and TSO
    m/<id>            Member: a PD member's address (placement/members.py); who votes is the
                      metadata range's own membership, the record follows it
"""

from __future__ import annotations

CLUSTER_META = b"c/meta"
BOOTSTRAPPED = b"c/bootstrapped"
ALLOC_WINDOW = b"w/alloc"
TSO_WINDOW = b"w/tso"
STORE_PREFIX = b"s/"
RANGE_PREFIX = b"r/"


def store_key(store_id: int) -> bytes:
    return STORE_PREFIX + store_id.to_bytes(8, "big")


def range_key(range_id: int) -> bytes:
    return RANGE_PREFIX + range_id.to_bytes(8, "big")


def prefix_end(prefix: bytes) -> bytes:
    return prefix[:-1] + bytes([prefix[-1] + 1])


MEMBER_PREFIX = b"m/"
"""m/<id>    Member: a PD member's id, address and whether it is still a learner."""


def member_key(member_id: int) -> bytes:
    return MEMBER_PREFIX + member_id.to_bytes(8, "big")

"""The simulator's ranges: the founding layout of a seed, and the key-space checks over them.

Without PD a seed starts with K disjoint ranges (K drawn per seed) that tile the key space, each
with a replica on every store; splits add more later. The checks say no key is in two ranges
and no key is lost:

- ``check_disjoint`` (every tick): on each store, the initialized replicas' bounds never overlap
  (a store that holds two replicas of one key could serve or write it twice);
- ``check_tiling`` (at quiescence): the leaders' descriptors tile the key space, with no gap
  (a key whose range vanished) and no overlap;
- per range, every member holds the same data within the range's bounds (cluster.py), and each
  client key's final read comes from the range that owns it, so the linearizability checker
  sees every acknowledged write there.
"""

from __future__ import annotations

import random
from collections.abc import Iterable

from kvdb.pb import metapb_pb2
from kvdb.store import keyspace
from kvdb.store.peer import Peer

FOUNDING_RANGE_CHOICES = (1, 1, 2, 2, 3, 4)
"""One in three seeds has one range: ranges multiply the simulator's work (each has its own Raft
group), and the splits that some seeds run add more."""
FOUNDING_PEER_STRIDE = 10
"""Founding range r > 1 has peer id ``r * stride + store id`` (range 1: the store id), so
founding peer ids are unique and below the ids churn (100 up) and splits (``FIRST_SPLIT_ID``) use."""
FIRST_SPLIT_ID = 1000
"""The simulator's allocator for ranges and peers made by splits starts here: ids only grow."""


class KeySpaceViolation(AssertionError):
    """A key is in two ranges on one store, or in none across the cluster."""


def draw_range_count(seed: int, single: bool) -> int:
    """K founding ranges, drawn from the seed on a generator of its own, so that adding ranges
    did not reshuffle what the rest of a seed draws (a one-range seed runs as it always did);
    ``single``: one (PD mode, whose PD grows one range from a single replica, and schedules
    that watch one range)."""
    if single:
        return 1
    return random.Random(f"founding-ranges-{seed}").choice(FOUNDING_RANGE_CHOICES)


def founding_ranges(count: int, store_ids: Iterable[int], keys: list[bytes], first_id: int
                    ) -> list[metapb_pb2.RangeDescriptor]:
    """``count`` ranges (ids from ``first_id``) that split ``keys`` as evenly as they can; the
    first starts at b"" and the last ends at b"" (the end of the key space)."""
    count = max(1, min(count, len(keys)))
    bounds = [b""] + [keys[i * len(keys) // count] for i in range(1, count)] + [b""]
    ranges = []
    for i in range(count):
        range_id = first_id + i
        desc = metapb_pb2.RangeDescriptor(id=range_id, start_key=bounds[i], end_key=bounds[i + 1],
                                          epoch=metapb_pb2.RangeEpoch(conf_ver=1, version=1))
        base = 0 if i == 0 else range_id * FOUNDING_PEER_STRIDE
        for store_id in store_ids:
            desc.peers.add(id=base + store_id, store_id=store_id, role=metapb_pb2.VOTER)
        ranges.append(desc)
    return ranges


def _overlap(a: metapb_pb2.RangeDescriptor, b: metapb_pb2.RangeDescriptor) -> bool:
    return a.start_key < keyspace.data_end(b) and b.start_key < keyspace.data_end(a)


def _span(desc: metapb_pb2.RangeDescriptor) -> str:
    return f"range {desc.id} [{desc.start_key!r}, {desc.end_key or b'+inf'!r}) v{desc.epoch.version}"


def check_disjoint(store_id: int, peers: Iterable[Peer]) -> None:
    """The initialized replicas on one store cover disjoint keys."""
    descs = sorted((p.desc for p in peers if p.initialized), key=lambda d: d.start_key)
    for a, b in zip(descs, descs[1:], strict=False):
        if _overlap(a, b):
            raise KeySpaceViolation(f"store {store_id} holds overlapping replicas: {_span(a)} and {_span(b)}")


def check_lease_overlap(holders: list[tuple[int, metapb_pb2.RangeDescriptor]]) -> None:
    """No key is under two valid leases of different ranges at one instant: a parent whose lease
    still covers keys a split gave a child would serve them while the child takes writes."""
    holders = sorted(holders, key=lambda h: h[1].start_key)
    for (sa, a), (sb, b) in zip(holders, holders[1:], strict=False):
        if a.id != b.id and _overlap(a, b):
            raise KeySpaceViolation(f"store {sa} ({_span(a)}) and store {sb} ({_span(b)}) hold valid leases "
                                    "over the same keys")


def check_tiling(descs: list[metapb_pb2.RangeDescriptor]) -> None:
    """The settled ranges cover the key space exactly once, from b"" to the end."""
    descs = sorted(descs, key=lambda d: d.start_key)
    expected = b""
    for desc in descs:
        if desc.start_key != expected:
            what = "a gap" if desc.start_key > expected else "an overlap"
            raise KeySpaceViolation(f"{what} before {_span(desc)}: the previous range ends at {expected!r}")
        if not desc.end_key:
            if desc is not descs[-1]:
                raise KeySpaceViolation(f"{_span(desc)} runs to the end, yet ranges follow it")
            return
        expected = desc.end_key
    raise KeySpaceViolation(f"no range covers the keys from {expected!r} on")


def owner(descs: Iterable[metapb_pb2.RangeDescriptor], key: bytes) -> metapb_pb2.RangeDescriptor:
    return next(d for d in descs if keyspace.contains(d, key))

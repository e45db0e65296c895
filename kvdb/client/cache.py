"""The client's map from keys to ranges: descriptors sorted by start key, looked up by bisection.

Entries come from PD (in batches, so walking the key space costs one PD call per batch of
ranges) and from stores' ``epoch_not_match`` answers; a newer descriptor evicts every cached one
it overlaps, so the cache never holds two entries for one key. The leader is a hint: the store
that answered last, or PD's view; a wrong hint costs one ``not_leader`` round trip.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from kvdb.pb import kvrpc_pb2, metapb_pb2


@dataclass
class CachedRange:
    descriptor: metapb_pb2.RangeDescriptor
    leader_store: int | None = None
    _context: kvrpc_pb2.Context | None = field(default=None, repr=False)

    def context(self, cluster_id: int) -> kvrpc_pb2.Context:
        """The context every request to this range carries, built once (an entry is replaced,
        never changed, when its descriptor changes)."""
        if self._context is None:
            self._context = kvrpc_pb2.Context(cluster_id=cluster_id, range_id=self.descriptor.id,
                                              epoch=self.descriptor.epoch)
        return self._context

    @property
    def id(self) -> int:
        return self.descriptor.id

    @property
    def start(self) -> bytes:
        return self.descriptor.start_key

    @property
    def end(self) -> bytes:
        """The exclusive end; b"" is the end of the key space."""
        return self.descriptor.end_key

    def contains(self, key: bytes) -> bool:
        return self.start <= key and (not self.end or key < self.end)

    def store_ids(self) -> list[int]:
        return [p.store_id for p in self.descriptor.peers]


def _overlaps(a: metapb_pb2.RangeDescriptor, b: metapb_pb2.RangeDescriptor) -> bool:
    return (not a.end_key or b.start_key < a.end_key) and (not b.end_key or a.start_key < b.end_key)


class RangeCache:
    def __init__(self) -> None:
        self._starts: list[bytes] = []
        self._ranges: list[CachedRange] = []
        self._by_id: dict[int, CachedRange] = {}  # the same entries: a cluster may have many ranges

    def __len__(self) -> int:
        return len(self._ranges)

    def find(self, key: bytes) -> CachedRange | None:
        """The cached range holding ``key``."""
        i = bisect.bisect_right(self._starts, key) - 1
        if i >= 0 and self._ranges[i].contains(key):
            return self._ranges[i]
        return None

    def find_before(self, end: bytes) -> CachedRange | None:
        """The cached range holding the keys just below ``end`` (b"": the last range), for reverse scans."""
        if not end:
            last = self._ranges[-1] if self._ranges else None
            return last if last is not None and not last.end else None
        i = bisect.bisect_left(self._starts, end) - 1
        if i >= 0 and (not self._ranges[i].end or self._ranges[i].end >= end):
            return self._ranges[i]
        return None

    def by_id(self, range_id: int) -> CachedRange | None:
        return self._by_id.get(range_id)

    def insert(self, descriptor: metapb_pb2.RangeDescriptor, leader_store: int | None = None) -> CachedRange:
        """Caches ``descriptor``, evicting what it overlaps, unless a cached overlapping range is
        newer (a late PD answer must not undo what a store just told us)."""
        lo = bisect.bisect_right(self._starts, descriptor.start_key) - 1
        if lo < 0 or not _overlaps(self._ranges[lo].descriptor, descriptor):
            lo += 1  # (a range starting below every cached one goes first, not second)
        hi = lo
        while hi < len(self._ranges) and _overlaps(self._ranges[hi].descriptor, descriptor):
            hi += 1
        for old in self._ranges[lo:hi]:
            if old.descriptor.epoch.version > descriptor.epoch.version or (
                old.id == descriptor.id and old.descriptor.epoch.conf_ver > descriptor.epoch.conf_ver
            ):
                return old
        same = self._by_id.get(descriptor.id)
        if same is not None and not any(r is same for r in self._ranges[lo:hi]):  # its bounds moved
            self.invalidate(same.id)
            return self.insert(descriptor, leader_store)
        copy = metapb_pb2.RangeDescriptor()
        copy.CopyFrom(descriptor)  # the caller's message may change later; the index must not
        entry = CachedRange(copy, leader_store)
        for old in self._ranges[lo:hi]:
            self._by_id.pop(old.id, None)
        self._starts[lo:hi] = [descriptor.start_key]
        self._ranges[lo:hi] = [entry]
        self._by_id[entry.id] = entry
        return entry

    def invalidate(self, range_id: int) -> None:
        entry = self._by_id.pop(range_id, None)
        if entry is None:
            return
        i = bisect.bisect_left(self._starts, entry.start)
        while self._ranges[i] is not entry:
            i += 1
        del self._starts[i], self._ranges[i]

    def set_leader(self, range_id: int, store_id: int | None) -> None:
        entry = self.by_id(range_id)
        if entry is not None:
            entry.leader_store = store_id

"""The store's initialized ranges ordered by start key: which range holds a key, which overlap a span.

Requests carry their range id, so serving them needs no lookup by key; this index exists for the
decisions that must be made by key: whether a leader's message may create a new replica here
(never over a range this store still holds, e.g. a parent that has not applied its split yet),
whether a snapshot may be applied, and which ranges a split produced. Lookups are O(log n);
inserts and removals shift a list, which is cheap at the tens of thousands of ranges a store holds.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right

from kvdb.pb import metapb_pb2
from kvdb.store import keyspace


class RangeIndex:
    def __init__(self) -> None:
        self._starts: list[bytes] = []  # sorted start keys of the indexed ranges
        self._ranges: list[metapb_pb2.RangeDescriptor] = []  # in the same order
        self._by_id: dict[int, metapb_pb2.RangeDescriptor] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    def put(self, desc: metapb_pb2.RangeDescriptor) -> None:
        """Index ``desc`` (replacing the range's previous bounds); it must not overlap another range."""
        self.remove(desc.id)
        i = bisect_left(self._starts, desc.start_key)
        self._starts.insert(i, desc.start_key)
        self._ranges.insert(i, desc)
        self._by_id[desc.id] = desc

    def remove(self, range_id: int) -> None:
        old = self._by_id.pop(range_id, None)
        if old is None:
            return
        i = bisect_left(self._starts, old.start_key)
        while self._ranges[i].id != range_id:
            i += 1
        del self._starts[i]
        del self._ranges[i]

    def find(self, key: bytes) -> int | None:
        """The id of the range holding ``key``, if this store holds one."""
        i = bisect_right(self._starts, key) - 1
        if i >= 0 and keyspace.contains(self._ranges[i], key):
            return self._ranges[i].id
        return None

    def overlapping(self, start: bytes, end: bytes) -> list[int]:
        """Ids of the ranges that overlap [start, end) (an empty ``end``: to the end), in key order."""
        i = max(bisect_right(self._starts, start) - 1, 0)
        out = []
        stop = end or keyspace.KEY_SPACE_END
        for desc in self._ranges[i:]:
            if desc.start_key >= stop:
                break
            if keyspace.data_end(desc) > start:
                out.append(desc.id)
        return out

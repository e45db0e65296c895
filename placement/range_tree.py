"""PD's in-memory view of the ranges, sorted by start key: routing and scans without a metadata scan.

The PD leader builds it from the replicated metadata when it starts to serve and updates it with
every range record it writes, so lookups are a bisect over a sorted list. Reports arrive in any
order, so the tree decides which one to trust (as TiKV PD's region tree does):

- of two reports of one range, the one with the higher epoch (in either part) wins, and of the
  same epoch, the one of the higher leader term (``range_report_stale``);
- a report whose key span overlaps another range of a higher ``epoch.version`` is stale: that
  range came out of a later split;
- otherwise the report replaces every range it overlaps: they are older than it (a child of a
  split reporting before its parent's shrunk descriptor replaces the parent's old, wider entry;
  the parent comes back with its own report). Keys may meanwhile map to no range: a lookup then
  finds nothing, and the client retries, which is better than routing to a stale range.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable

from kvdb.pb import metapb_pb2, pdpb_pb2


def _epoch_older(a: metapb_pb2.RangeEpoch, b: metapb_pb2.RangeEpoch) -> bool:
    return a.conf_ver < b.conf_ver or a.version < b.version


def range_report_stale(new: pdpb_pb2.RangeInfo, recorded: pdpb_pb2.RangeInfo) -> bool:
    """Whether a range heartbeat says less than PD's record of the same range: an epoch older in
    either part, or a leader of an older term (a deposed leader that has not heard yet reports
    the same epoch)."""
    if _epoch_older(new.descriptor.epoch, recorded.descriptor.epoch):
        return True
    return 0 < new.term < recorded.term


def covers(desc: metapb_pb2.RangeDescriptor, key: bytes) -> bool:
    return desc.start_key <= key and (not desc.end_key or key < desc.end_key)


class RangeTree:
    """Ranges by start key (non-overlapping) and by id."""

    def __init__(self, infos: Iterable[pdpb_pb2.RangeInfo] = ()) -> None:
        self._starts: list[bytes] = []
        self._infos: list[pdpb_pb2.RangeInfo] = []
        self._by_id: dict[int, pdpb_pb2.RangeInfo] = {}
        # Higher versions first, so whatever the stored order, the newest records win.
        for info in sorted(infos, key=lambda i: -i.descriptor.epoch.version):
            if not self.is_stale(info):
                self.put(info)

    def __len__(self) -> int:
        return len(self._infos)

    def get_by_id(self, range_id: int) -> pdpb_pb2.RangeInfo | None:
        return self._by_id.get(range_id)

    def find(self, key: bytes) -> pdpb_pb2.RangeInfo | None:
        """The range holding ``key``, or None if no known range does (yet)."""
        i = bisect.bisect_right(self._starts, key) - 1
        if i >= 0 and covers(self._infos[i].descriptor, key):
            return self._infos[i]
        return None

    def scan(self, start: bytes, end: bytes = b"", limit: int = 0) -> list[pdpb_pb2.RangeInfo]:
        """Ranges overlapping [start, end) in key order (``end`` empty: to the end), at most
        ``limit`` of them (0: all)."""
        return [self._infos[i] for i in self._overlapping(start, end, limit)]

    def is_stale(self, info: pdpb_pb2.RangeInfo) -> bool:
        """Whether ``info`` says less than what the tree holds (see the module docstring)."""
        desc = info.descriptor
        recorded = self._by_id.get(desc.id)
        if recorded is not None and range_report_stale(info, recorded):
            return True
        return any(self._infos[i].descriptor.id != desc.id
                   and self._infos[i].descriptor.epoch.version > desc.epoch.version
                   for i in self._overlapping(desc.start_key, desc.end_key))

    def put(self, info: pdpb_pb2.RangeInfo) -> list[int]:
        """Record ``info`` (the caller checked ``is_stale``); returns the ids of the other ranges
        it replaced because they overlap it."""
        desc = info.descriptor
        old = self._by_id.pop(desc.id, None)
        if old is not None:
            self._remove_at(self._index_of(old))
        doomed = list(self._overlapping(desc.start_key, desc.end_key))
        replaced = [self._infos[i].descriptor.id for i in doomed]
        for i in reversed(doomed):
            del self._by_id[self._infos[i].descriptor.id]
            self._remove_at(i)
        i = bisect.bisect_left(self._starts, desc.start_key)
        self._starts.insert(i, desc.start_key)
        self._infos.insert(i, info)
        self._by_id[desc.id] = info
        return replaced

    def _index_of(self, info: pdpb_pb2.RangeInfo) -> int:
        i = bisect.bisect_left(self._starts, info.descriptor.start_key)
        assert self._infos[i] is info, "the tree's lists and id map disagree"
        return i

    def _remove_at(self, i: int) -> None:
        del self._starts[i]
        del self._infos[i]

    def _overlapping(self, start: bytes, end: bytes, limit: int = 0) -> list[int]:
        i = max(bisect.bisect_right(self._starts, start) - 1, 0)
        if i < len(self._infos) and not covers(self._infos[i].descriptor, start) \
                and self._infos[i].descriptor.start_key < start:
            i += 1  # the range before ``start`` ends at or before it
        out = []
        while i < len(self._infos) and (not end or self._starts[i] < end):
            out.append(i)
            if len(out) == limit:
                break
            i += 1
        return out

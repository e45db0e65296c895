"""PD's in-memory model of the cluster: stores and ranges as the leader last heard of them.

Sans-I/O and clock-free (times are passed in), so the PD service, the coordinator, the store
simulator and table-driven tests share it. The PD leader builds it from the replicated records
when it starts to serve and keeps it from then on: range heartbeats replace range records, store
heartbeats refresh a store's liveness and stats **in memory only** (a heartbeat costs no Raft
read or write; the persisted store record changes only with PutStore, labels or a state an
operator set). After a PD leader change, store silence counts from ``serving_since_ms``: while
no leader served, a heartbeat had nowhere to go.

Per-store indexes (which ranges have a replica on a store, which it leads, their sizes) are kept
as ranges are put, so schedulers ask "how loaded is store 3" in O(1) rather than walking every
range.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from kvdb.pb import metapb_pb2, pdpb_pb2
from placement.range_tree import RangeTree

# A DISCONNECTED store has only missed a few heartbeats: replacing it would move a whole replica
# for what is usually a short blip, so it still counts as holding a live replica.
HEALTHY = (pdpb_pb2.UP, pdpb_pb2.DISCONNECTED)


def store_state(info: pdpb_pb2.StoreInfo, now_ms: int, disconnect_ms: int, down_ms: int,
                listening_since_ms: int = 0) -> int:
    """The store's state as PD should act on it now.

    OFFLINE and TOMBSTONE are operator decisions that a heartbeat must not undo; the other states
    follow from how long the store has been silent, so a store that comes back is UP again
    without anyone having to reset it. Silence counts only from ``listening_since_ms``, when the
    current PD leader began to serve: while no leader served, a heartbeat had nowhere to go.
    """
    if info.state in (pdpb_pb2.OFFLINE, pdpb_pb2.TOMBSTONE):
        return info.state
    silent_ms = now_ms - max(info.last_heartbeat_ms, listening_since_ms)
    if silent_ms < disconnect_ms:
        return pdpb_pb2.UP
    if silent_ms < down_ms:
        return pdpb_pb2.DISCONNECTED
    return pdpb_pb2.DOWN


@dataclass
class _StoreLoad:
    """What the ranges put so far place on one store."""

    ranges: set[int] = field(default_factory=set)
    leaders: set[int] = field(default_factory=set)
    size: int = 0
    """Sum of the approximate sizes of the ranges with a replica here (bytes)."""


class ClusterModel:
    """Stores (records plus in-memory liveness) and ranges (the range tree plus per-store indexes).

    ``stores`` maps a store id to its record; ``last_heartbeat_ms`` and ``stats`` in it are the
    in-memory liveness, not what is persisted. Callers treat the records and range infos they get
    as read-only: replace them through the methods here, which keep the indexes right.
    """

    def __init__(self, config: pdpb_pb2.ScheduleConfig, disconnect_ms: int,
                 stores: Iterable[pdpb_pb2.StoreInfo] = (), ranges: Iterable[pdpb_pb2.RangeInfo] = (),
                 serving_since_ms: int = 0) -> None:
        self.config = config
        self.disconnect_ms = disconnect_ms
        self.serving_since_ms = serving_since_ms
        self.stores: dict[int, pdpb_pb2.StoreInfo] = {}
        self._labels: dict[int, dict[str, str]] = {}
        """Store id -> its labels as a dict (checkers ask per candidate store and per replica)."""
        self.ranges = RangeTree()
        self._loads: dict[int, _StoreLoad] = {}
        for info in stores:
            self.put_store(info)
        for rng in sorted(ranges, key=lambda i: -i.descriptor.epoch.version):
            if not self.ranges.is_stale(rng):
                self.put_range(rng)

    # ------------------------------------------------------------------------------ stores
    def put_store(self, info: pdpb_pb2.StoreInfo) -> None:
        """Record a store's persisted record (keeping the liveness PD already has in memory)."""
        known = self.stores.get(info.id)
        if known is not None and known.last_heartbeat_ms > info.last_heartbeat_ms:
            info.last_heartbeat_ms = known.last_heartbeat_ms
            info.stats.CopyFrom(known.stats)
        self.stores[info.id] = info
        self._labels[info.id] = {label.key: label.value for label in info.labels}

    def store_heartbeat(self, store_id: int, stats: pdpb_pb2.StoreStats, now_ms: int) -> bool:
        """Refresh a store's liveness; False if the store is unknown (it must PutStore first)."""
        info = self.stores.get(store_id)
        if info is None:
            return False
        info.last_heartbeat_ms = now_ms
        info.stats.CopyFrom(stats)
        return True

    def state(self, store_id: int, now_ms: int) -> int:
        """The store's state now; an unknown store counts as TOMBSTONE (gone for good)."""
        info = self.stores.get(store_id)
        if info is None:
            return pdpb_pb2.TOMBSTONE
        return store_state(info, now_ms, self.disconnect_ms, self.config.store_down_ms, self.serving_since_ms)

    def store_with_state(self, store_id: int, now_ms: int) -> pdpb_pb2.StoreInfo:
        """A copy of the store's record with its state now and range/leader counts from the ranges
        PD holds (fresher than the store's own last report)."""
        info = pdpb_pb2.StoreInfo()
        info.CopyFrom(self.stores[store_id])
        info.state = self.state(store_id, now_ms)
        load = self._loads.get(store_id)
        info.stats.range_count = 0 if load is None else len(load.ranges)
        info.stats.leader_count = 0 if load is None else len(load.leaders)
        return info

    def labels(self, store_id: int) -> dict[str, str]:
        return self._labels.get(store_id, {})

    # ------------------------------------------------------------------------------ ranges
    def put_range(self, info: pdpb_pb2.RangeInfo) -> list[int]:
        """Record a range report the caller found not stale (``ranges.is_stale``); returns the ids
        of other ranges it replaced because they overlap it."""
        desc = info.descriptor
        old = self.ranges.get_by_id(desc.id)
        if old is not None:
            self._unindex(old)
        for other in self.ranges.scan(desc.start_key, desc.end_key):
            if other.descriptor.id != desc.id:
                self._unindex(other)  # about to be replaced: it overlaps the newer report
        replaced = self.ranges.put(info)
        self._index(info)
        return replaced

    def _index(self, info: pdpb_pb2.RangeInfo) -> None:
        range_id, size = info.descriptor.id, info.stats.approximate_size
        for peer in info.descriptor.peers:
            load = self._loads.setdefault(peer.store_id, _StoreLoad())
            load.ranges.add(range_id)
            load.size += size
        if info.leader.id:
            self._loads.setdefault(info.leader.store_id, _StoreLoad()).leaders.add(range_id)

    def _unindex(self, info: pdpb_pb2.RangeInfo) -> None:
        range_id, size = info.descriptor.id, info.stats.approximate_size
        for peer in info.descriptor.peers:
            load = self._loads.get(peer.store_id)
            if load is not None and range_id in load.ranges:
                load.ranges.discard(range_id)
                load.size -= size
        if info.leader.id and (load := self._loads.get(info.leader.store_id)) is not None:
            load.leaders.discard(range_id)

    def get_range(self, range_id: int) -> pdpb_pb2.RangeInfo | None:
        return self.ranges.get_by_id(range_id)

    def all_ranges(self) -> Iterator[pdpb_pb2.RangeInfo]:
        """Every range in key order."""
        return iter(self.ranges.scan(b""))

    def ranges_on(self, store_id: int) -> set[int]:
        """Ids of the ranges with a replica (voter or learner) on the store (do not modify)."""
        load = self._loads.get(store_id)
        return set() if load is None else load.ranges

    def leaders_on(self, store_id: int) -> set[int]:
        """Ids of the ranges the store leads (do not modify)."""
        load = self._loads.get(store_id)
        return set() if load is None else load.leaders

    def range_count(self, store_id: int) -> int:
        return len(self.ranges_on(store_id))

    def leader_count(self, store_id: int) -> int:
        return len(self.leaders_on(store_id))

    def range_size(self, store_id: int) -> int:
        load = self._loads.get(store_id)
        return 0 if load is None else load.size


def peer_on(info: pdpb_pb2.RangeInfo, store_id: int) -> metapb_pb2.Peer | None:
    """The range's replica on the store, if it has one."""
    for peer in info.descriptor.peers:
        if peer.store_id == store_id:
            return peer
    return None

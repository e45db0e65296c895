"""The store's split checker: splits the ranges it leads when they grow too big or too busy.

Every ``split_check_interval`` a round closes each led range's load window and advances the size
measures that are due (``kvdb.store.split_check`` decides; this module only drives it). A load
window counts only while the store's process is short of CPU (``StoreConfig.load_split_cpu``). A round
reads at most ``split_check_keys_per_round`` keys, and yields to the event loop after every
``split_check_keys_per_scan`` of them, so requests keep being served while a big range is measured.

A split takes two steps: new range and peer ids from PD (one ``ask_batch_split`` call), then
``Store.split``, which proposes it through the range's Raft log. Either may fail (PD unreachable,
leadership lost, the epoch moved); nothing is retried here, because the next round decides again
from fresh numbers. One split per range is in flight at a time.

Requests reach the checker through ``KvHandler.on_served`` (``observe``): their key spans feed
the load windows, the bytes they wrote the size estimates, and the bytes and keys they wrote and
read the traffic rates each range's heartbeat reports to PD (``kvdb.store.flow``; PD's
hot-region scheduler spreads the hot ranges).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from kvdb.pb import metapb_pb2, pdpb_pb2, raft_serverpb_pb2
from kvdb.pdclient.client import PdError
from kvdb.server.supervisor import spawn
from kvdb.store import keyspace
from kvdb.store.config import DEFAULT_MAX_RANGE_SIZE, StoreConfig
from kvdb.store.errors import StoreError
from kvdb.store.flow import FlowMeter
from kvdb.store.split_check import LoadChecker, LoadConfig, SizeChecker, Span, point

if TYPE_CHECKING:
    from kvdb.store.peer import Peer
    from kvdb.store.store import Store

log = logging.getLogger(__name__)

SPLIT_TIMEOUT = 30.0
"""Seconds a proposed split may take to apply before the checker stops waiting for it."""


class SplitIds(Protocol):
    async def ask_batch_split(self, desc: metapb_pb2.RangeDescriptor, count: int) -> list[pdpb_pb2.SplitID]:
        """New range and peer ids for ``count`` splits of ``desc``."""
        ...


class SplitWorker:
    def __init__(self, store: Store, pd: SplitIds, config: StoreConfig,
                 cluster_config: Callable[[], pdpb_pb2.ScheduleConfig | None] = lambda: None) -> None:
        self.store = store
        self.pd = pd
        self.config = config
        self.cluster_config = cluster_config
        """The cluster's settings as PD last sent them (its max_range_size applies unless the
        store sets its own)."""
        self.size = SizeChecker(self.max_range_size())
        self.load = LoadChecker(LoadConfig(qps_threshold=config.load_split_qps,
                                           detect_seconds=config.load_split_seconds))
        self.flow = FlowMeter()
        self._splitting: set[int] = set()
        self._resume_at = 0
        """The range id the size measures continue from in the next round."""
        self._tasks: list[asyncio.Task] = []
        self.splits: dict[str, int] = {"size": 0, "load": 0}
        """Splits applied, by reason (tests and logs)."""

    # ------------------------------------------------------------------------------- requests
    def observe(self, kind: str, request: object, result: object = None) -> None:
        """A request of ``kind`` (a ``kvrpc.Request`` field) succeeded on this store with
        ``result`` (what the store answered, before it was put in the response)."""
        peer = self.store.peers.get(request.context.range_id)
        if peer is None:
            return
        desc = peer.desc
        spans, written, keys = request_load(kind, request, desc)
        read, read_keys = read_load(kind, result)
        self.flow.record(desc.id, written, keys, read, read_keys)
        if written:
            self.size.on_write(desc, written, keys)
        if spans and self.config.load_split_qps > 0:
            self.load.record(desc, spans)

    # ---------------------------------------------------------------------------------- rounds
    def start(self) -> None:
        self._tasks.append(spawn(self._run(), "split checker"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _run(self) -> None:
        last, last_cpu = time.monotonic(), time.process_time()
        while True:
            await asyncio.sleep(self.config.split_check_interval)
            now, cpu = time.monotonic(), time.process_time()
            await self.round(now - last, (cpu - last_cpu) / max(now - last, 1e-9))
            last, last_cpu = now, cpu

    def max_range_size(self) -> int:
        """The store's setting, else the cluster's, else the default."""
        cluster = self.cluster_config()
        return (self.config.max_range_size or (cluster.max_range_size if cluster is not None else 0)
                or DEFAULT_MAX_RANGE_SIZE)

    async def round(self, elapsed: float, cpu: float | None = None) -> None:
        """One check of every range led here, ``elapsed`` seconds after the last one, in which
        this process used ``cpu`` cores (None: not measured, load splits by QPS alone)."""
        self.size.max_range_size = self.max_range_size()
        store = self.store
        # A hibernated range serves nothing (a request wakes it), so neither its size nor its
        # load can have changed: only awake ranges are looked at, and an idle store with many
        # ranges pays nothing per range here.
        hibernation = store.hibernation
        awake = list(hibernation.awake) if hibernation.enabled else list(store.peers.values())
        led = {p.range_id: p for p in awake if p.is_leader and p.initialized and not p.destroyed}
        peers = store.peers
        self.size.forget({rid for rid in self.size.ranges
                          if (p := peers.get(rid)) is not None and p.is_leader})
        busy = cpu is None or cpu >= self.config.load_split_cpu
        # A load streak survives neither a nap nor an interval in which the store had CPU to spare.
        self.load.forget(set(led) if busy else set())
        self.flow.close(elapsed)
        for peer in led.values():
            if self.config.load_split_qps > 0 and busy:
                key = self.load.check(peer.desc, elapsed)
                if key is not None:
                    self._split(peer, key, "load")
        budget = self.config.split_check_keys_per_round
        scan = self.store.engine.scan
        # Go on where the last round stopped: a big range being measured, or one written to all
        # the time, must not keep the ranges after it from ever being measured.
        for range_id in sorted(led, key=lambda rid: (rid < self._resume_at, rid)):
            peer = led[range_id]
            if budget <= 0:
                break
            if range_id in self._splitting or not self.size.due(peer.desc):
                continue
            self._resume_at = range_id  # if the keys run out before this measure is done
            while budget > 0 and not peer.destroyed and peer.is_leader:
                step = self.size.measure(peer.desc, scan, min(budget, self.config.split_check_keys_per_scan))
                budget -= max(step.read, 1)
                if step.split_key is not None:
                    self._split(peer, step.split_key, "size")
                await asyncio.sleep(0)  # let requests in between two scans
                if step.done:
                    self._resume_at = range_id + 1
                    break

    # ---------------------------------------------------------------------------------- splits
    def _split(self, peer: Peer, key: bytes, reason: str) -> None:
        if peer.range_id in self._splitting:
            return
        self._splitting.add(peer.range_id)
        task = spawn(self._do_split(peer, key, reason), f"split of range {peer.range_id}")
        self._tasks.append(task)
        task.add_done_callback(self._tasks.remove)

    async def _do_split(self, peer: Peer, key: bytes, reason: str) -> None:
        range_id, desc = peer.range_id, metapb_pb2.RangeDescriptor()
        desc.CopyFrom(peer.desc)
        try:
            log.info("range %d: splitting at %r by %s", range_id, key[:64], reason)
            ids = await self.pd.ask_batch_split(desc, 1)
            if len(ids) != 1:
                log.warning("range %d: PD answered %d split ids for one split", range_id, len(ids))
                return
            if peer.destroyed or peer.desc.epoch != desc.epoch:
                return  # changed meanwhile: the next round decides again
            req = raft_serverpb_pb2.SplitRequest(split_key=key, new_range_id=ids[0].new_range_id,
                                                 new_peer_ids=ids[0].new_peer_ids)
            done: asyncio.Future = asyncio.get_running_loop().create_future()

            def callback(result: object) -> None:
                if not done.done():
                    done.set_result(result)

            self.store.split(range_id, desc.epoch, [req], callback)
            result = await asyncio.wait_for(done, SPLIT_TIMEOUT)
            if isinstance(result, StoreError):
                raise result
            self.splits[reason] += 1
            log.info("range %d: split by %s into %s", range_id, reason, [d.id for d in result])
        except (StoreError, PdError, TimeoutError) as exc:
            log.info("range %d: %s split at %r not done (the next round decides again): %s",
                     range_id, reason, key[:64], exc)
        finally:
            self._splitting.discard(range_id)

    def range_stats(self, desc: metapb_pb2.RangeDescriptor) -> pdpb_pb2.RangeStats | None:
        """The approximate size and the traffic rates of a range led here, for its heartbeat to
        PD; None while neither is known."""
        size, flow = self.size.stats(desc), self.flow.rate(desc.id)
        if size is None and flow is None:
            return None
        stats = pdpb_pb2.RangeStats()
        if size is not None:
            stats.approximate_size, stats.approximate_keys = size
        if flow is not None:
            stats.written_bytes_per_sec = round(flow.written_bytes)
            stats.written_keys_per_sec = round(flow.written_keys)
            stats.read_bytes_per_sec = round(flow.read_bytes)
            stats.read_keys_per_sec = round(flow.read_keys)
        return stats


def read_load(kind: str, result: object) -> tuple[int, int]:
    """(bytes, keys) a request of ``kind`` read, from its result (before it became a response:
    counting the response's protobuf pairs again cost 6x as much on a scan)."""
    if kind == "get":
        return (len(result), 1) if result else (0, 0)
    if kind in ("batch_get", "scan"):
        return sum(len(k) + len(v) for k, v in result), len(result)
    return 0, 0


def request_load(kind: str, request: object, desc: metapb_pb2.RangeDescriptor) -> tuple[list[Span], int, int]:
    """(key spans touched, bytes written, keys written) of a request of ``kind`` on ``desc``."""
    if kind in ("get", "delete"):
        return [point(request.key)], 0, 0
    if kind in ("put", "cas"):
        return [point(request.key)], len(request.key) + len(request.value), 1
    if kind == "batch_get":
        return [point(k) for k in request.keys], 0, 0
    if kind == "batch_put":
        return [point(p.key) for p in request.pairs], sum(len(p.key) + len(p.value) for p in request.pairs), \
            len(request.pairs)
    if kind in ("scan", "delete_range", "txn_scan", "scan_lock"):
        bounds = keyspace.clip(desc, request.start_key, request.end_key)
        return ([bounds] if bounds is not None else []), 0, 0
    if kind == "txn_get":
        return [point(request.key)], 0, 0
    if kind == "prewrite":  # the bytes a transaction writes: its values land in the range at commit
        muts = request.mutations
        return [point(m.key) for m in muts], sum(len(m.key) + len(m.value) for m in muts), len(muts)
    if kind in _TXN_BY_KEYS:
        return [point(k) for k in request.keys], 0, 0
    if kind in _TXN_BY_PRIMARY:
        return [point(getattr(request, _TXN_BY_PRIMARY[kind]))], 0, 0
    return [], 0, 0


_TXN_BY_KEYS = frozenset({"txn_batch_get", "commit", "rollback", "check_secondary_locks", "resolve_lock"})
_TXN_BY_PRIMARY = {"check_txn_status": "primary_key", "txn_heart_beat": "primary_lock"}
"""Transactional requests that touch one key, and the field naming it."""


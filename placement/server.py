"""A placement driver member: the PD metadata range on our own Raft store, and the PD service.

Every member hosts a replica of one metadata range (bootstrapped over the initial members, peer
id = member id) on a ``RaftHost``, exactly like a store hosts data ranges: the same log engine,
group commit, leases and snapshots. The PD leader is that range's leader; it serves once it holds
its lease and has loaded its per-leadership state (cluster id, TSO and id windows).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import xxhash

from kvdb.metrics.endpoint import MetricsEndpoint
from kvdb.metrics.raft import engine_families, raft_families
from kvdb.metrics.rpc import RpcMetricsInterceptor
from kvdb.net import grpc_factory
from kvdb.net.tls import TlsFiles
from kvdb.pb import pdpb_pb2, pdpb_pb2_grpc, raft_serverpb_pb2, raft_serverpb_pb2_grpc
from kvdb.server.addresses import on_listen_host
from kvdb.server.node import static_first_range
from kvdb.server.raft_host import RaftHost, db_path, serve_until_signalled
from kvdb.server.readiness import Health
from kvdb.server.services import RaftService
from kvdb.server.supervisor import spawn
from kvdb.storage.engine import CF_DEFAULT
from kvdb.store.clock import MonotonicClock
from kvdb.store.config import DEFAULT_MAX_RANGE_SIZE, StoreConfig
from kvdb.store.store import Store
from placement import metadata as md
from placement.gc_rpcs import raise_safe_point
from placement.members import Membership, fetch_group, read_group_file, write_group_file
from placement.metrics import PdStats, pd_families
from placement.schedule import runner
from placement.service import PdService, now_ms
from placement.state import MetadataState
from placement.windows import IdAllocator, Persist, TimestampOracle

log = logging.getLogger(__name__)

SERVICES = [pdpb_pb2.DESCRIPTOR.services_by_name["PD"].full_name,
            raft_serverpb_pb2.DESCRIPTOR.services_by_name["RaftTransport"].full_name]
"""What a PD member serves (health reports each; reflection lists them)."""


def default_schedule() -> pdpb_pb2.ScheduleConfig:
    return pdpb_pb2.ScheduleConfig(replica_count=3, max_range_size=DEFAULT_MAX_RANGE_SIZE,
                                   store_down_ms=30_000, operator_timeout_ms=60_000)


PD_TICK_INTERVAL = 0.03
"""Seconds per Raft tick in a PD member (a store's default is 0.05). While PD has no leader no
timestamp is handed out, and a kill -9 of the leader costs an election: 10-19 ticks after the
last heartbeat (sent every 2 ticks), so from the kill 0.4-0.95 s at 0.05 s ticks and, with a vote,
a lease round and the clients' poll (at most 0.1 s), up to ~1.1 s. At 0.03 s: 0.24-0.57 s, under
~0.75 s in all. The lease is then 0.2 s (promise 0.3 s less the 0.1 s drift margin), renewed every
60 ms; PD's group is small and its loop lightly loaded. ``kvdb pd --tick-interval`` overrides it."""


def pd_store_config() -> StoreConfig:
    """The settings of a PD member's Raft host: a store's, with PD's shorter tick."""
    return StoreConfig(tick_interval=PD_TICK_INTERVAL)


@dataclass
class PdConfig:
    member_id: int
    listen: str
    data_dir: Path
    initial_members: dict[int, str]
    """Member id -> address of every founding PD member (an odd number); empty with ``join``."""
    join: list[str] = field(default_factory=list)
    """Addresses of members of a running PD that this member joins (added by AddMember first)."""
    store: StoreConfig = field(default_factory=pd_store_config)
    schedule: pdpb_pb2.ScheduleConfig = field(default_factory=default_schedule)
    """Used when the cluster is first created; afterwards the replicated config wins."""
    store_disconnect_ms: int = 5_000
    tso_window_ms: int = 3_000
    tls: TlsFiles | None = None
    """Mutual TLS for every connection in and out (docs/security.md); None: plaintext."""
    metrics_listen: str = ""
    """HOST:PORT to serve Prometheus metrics on (``/metrics``; port 0 picks one); empty: none."""
    raft_port: int = 0
    """The PD Raft listener's port on the host of ``listen`` (0: an ephemeral one, members ask RaftPort)."""

    def validate(self) -> None:
        n = len(self.initial_members)
        if self.join:
            if n:
                raise ValueError("a joining member takes its members from the PD it joins: "
                                 "give either --join or --initial-members")
            if self.member_id <= 0:
                raise ValueError("a joining member needs the id AddMember gave it")
        elif n % 2 == 0:
            raise ValueError(f"a PD needs an odd number of members, got {n}")
        elif self.member_id not in self.initial_members:
            raise ValueError(f"member {self.member_id} is not among the initial members")
        if self.schedule.replica_count < 1:
            raise ValueError("the replica count must be at least 1")  # 0 would never place a replica
        if self.store_disconnect_ms <= 0:
            # A store would count as disconnected the moment it heartbeats, never UP, so PD would
            # never find a store to place a replica on.
            raise ValueError("the store disconnect time must be positive")
        down_ms = self.schedule.store_down_ms
        if self.store_disconnect_ms > down_ms:
            # The states are tested in order, so a store would stay UP until it is DOWN at the
            # disconnect time: the down time asked for would silently not apply.
            raise ValueError(f"the store disconnect time ({self.store_disconnect_ms} ms) must not exceed "
                             f"the store down time ({down_ms} ms)")


def pd_group_id(members: dict[int, str]) -> int:
    """The PD Raft group's own cluster id for its transport: one per initial membership."""
    spec = ",".join(f"{i}={a}" for i, a in sorted(members.items()))
    return xxhash.xxh64_intdigest(spec.encode()) >> 1


class PdMember:
    def __init__(self, config: PdConfig) -> None:
        config.validate()
        self.config = config
        self.members = dict(config.initial_members)
        self.group_id = pd_group_id(self.members) if self.members else 0
        """The PD Raft group's transport id (``_find_group``)."""
        self.membership = Membership(self)
        self.port = 0
        self.cluster_id = 0
        self.schedule = config.schedule
        self.host: RaftHost | None = None
        self.state: MetadataState | None = None
        self.tso: TimestampOracle | None = None
        self.ids: IdAllocator | None = None
        self._ready_term = 0
        self.serving_since_ms = 0
        """When this member last became a serving leader (PD's wall clock): store silence counts
        from then, so a PD outage or failover is not mistaken for dead stores."""
        self._ready_lock = asyncio.Lock()
        self._server: grpc.aio.Server | None = None
        self._coordinator: asyncio.Task | None = None
        self.stats = PdStats()
        self.metrics = MetricsEndpoint()
        self.metrics_port = 0
        self.health: Health | None = None
        self.controller = None
        # The leader's in-memory view of the replicated records it serves from (the cluster
        # model) and the scheduling over it: loaded when it starts to serve, updated with every
        # write it makes, reloaded after a write that failed (it may or may not have applied).
        self._use(runner.build(config.schedule, config.store_disconnect_ms, [], [], 0, self.take_id))
        self.bootstrapped = False
        self.range_lock = asyncio.Lock()
        """Held by whoever writes range records: decisions against the tree and their writes
        happen in the same order."""
        self._views_stale = True
        self._ranges_changed = asyncio.Event()
        self.gc_safe_point = 0
        """The MVCC GC safe point as this leader last read or wrote it (``placement.gc_rpcs``):
        stores learn it from their heartbeat's answer."""

    @property
    def store(self) -> Store:
        return self.host.store

    def take_id(self) -> int:
        """A fresh id for the scheduling code, from the same increasing sequence as every other
        (``IdAllocator.take``)."""
        return self.ids.take()

    def wake(self) -> None:
        self.host.wake()

    async def start(self) -> None:
        cfg = self.config
        # The metadata range serves every PD answer from its leader's lease, which a hibernated
        # range drops (and nothing here would wake it): it never hibernates.
        store_config = dataclasses.replace(cfg.store, hibernate=False)
        await self._find_group()
        self.host = RaftHost(self.group_id, cfg.member_id, cfg.data_dir, store_config,
                             MonotonicClock(), self.membership.resolve, self.members, cfg.tls,
                             on_listen_host(cfg.listen, cfg.raft_port))
        if not self.store.peers and not cfg.join:
            self.store.bootstrap_range(static_first_range(self.members))
        self.membership.refresh()
        self.state = MetadataState(self.store, self.wake)
        self.tso = TimestampOracle(now_ms, self._persister(md.TSO_WINDOW), cfg.tso_window_ms)
        self.ids = IdAllocator(self._persister(md.ALLOC_WINDOW))
        self.refresh_cluster_id()
        self._server = grpc_factory.server(cfg.tls, [RpcMetricsInterceptor(self.metrics.rpc)])
        raft_serverpb_pb2_grpc.add_RaftTransportServicer_to_server(RaftService(self), self._server)
        pdpb_pb2_grpc.add_PDServicer_to_server(PdService(self), self._server)
        self.health = await Health.add(self._server, SERVICES)
        self.port = grpc_factory.listen(self._server, cfg.listen, cfg.tls)
        await self.host.start()  # before the server: RaftPort answers the listener's port
        await self._server.start()
        self.membership.start()
        if cfg.metrics_listen:
            self.metrics_port = self.metrics.start(
                cfg.metrics_listen, asyncio.get_running_loop(),
                lambda: [*raft_families(self.store, self.host.timings), *pd_families(self, now_ms())],
                lambda: engine_families(db_path(cfg.data_dir)))
        await self.health.serving()
        log.info("PD member %d serving on %s (members %s)", cfg.member_id, cfg.listen, self.members)

    async def _find_group(self) -> None:
        """The PD Raft group's id: kept in the data dir once known, so a restart needs neither
        the PD it joined nor the founding member list as it was. A joining member asks the PD it
        joins, then starts with an empty host (no bootstrap): the leader's first message creates
        its replica of the metadata, which comes by snapshot."""
        cfg = self.config
        kept = read_group_file(cfg.data_dir)
        if kept:
            self.group_id = kept
        elif cfg.join:
            self.group_id, members = await fetch_group(cfg.join, cfg.member_id, cfg.tls)
            self.members.update(members)
        write_group_file(cfg.data_dir, self.group_id)

    def refresh_cluster_id(self) -> None:
        """Members that applied the cluster meta know the id even as followers (it never changes)."""
        raw = self.store.engine.get(CF_DEFAULT, md.CLUSTER_META)
        if raw is not None:
            meta = pdpb_pb2.ClusterMeta.FromString(raw)
            self.cluster_id, self.schedule = meta.cluster_id, meta.config

    def _persister(self, key: bytes) -> Persist:
        async def persist(upper: int) -> None:
            await self.state.write({key: pdpb_pb2.Window(upper=upper).SerializeToString()})

        return persist

    async def ensure_leader_ready(self) -> None:
        """Serve only as the leaseholder, after loading this leadership's state once per term."""
        term = self.state.check_serving()
        if term != self._ready_term:
            async with self._ready_lock:
                if self.state.check_serving() != self._ready_term:
                    await self._become_ready()
                    self._ready_term = term
        if self._views_stale:
            async with self._ready_lock, self.range_lock:
                if self._views_stale:
                    await self._load_views()

    async def _load_views(self) -> None:
        """Rebuild the cluster model (and the scheduling over it) from the replicated metadata
        (one scan each of stores and ranges)."""
        state = self.state
        self.bootstrapped = await state.get(md.BOOTSTRAPPED) is not None
        stores = await state.scan(md.STORE_PREFIX, md.prefix_end(md.STORE_PREFIX))
        ranges = await state.scan(md.RANGE_PREFIX, md.prefix_end(md.RANGE_PREFIX))
        self._use(runner.build(
            self.schedule, self.config.store_disconnect_ms,
            [pdpb_pb2.StoreInfo.FromString(v) for _, v in stores],
            [pdpb_pb2.RangeInfo.FromString(v) for _, v in ranges], self.serving_since_ms, self.take_id,
            previous=self.cluster))
        self._views_stale = False
        self.ranges_changed()

    def _use(self, scheduling: runner.Scheduling) -> None:
        if self.controller is not None:  # its finished operators still count (``kvdb_pd_operators``)
            self.stats.retired_outcomes += self.controller.outcomes
        self.cluster = scheduling.cluster
        self.controller = scheduling.controller
        self.coordinator = scheduling.coordinator

    async def update_config(self, modify: Callable[[pdpb_pb2.ScheduleConfig], None]
                            ) -> pdpb_pb2.ScheduleConfig:
        """Change the replicated schedule config (see ``runner.update_config``)."""
        return await runner.update_config(self, modify)

    async def raise_gc_safe_point(self, asked: int) -> int:
        """Raise the replicated GC safe point to ``asked`` (never lower it); the one in force."""
        in_force = await raise_safe_point(self, asked)
        self.gc_safe_point = max(self.gc_safe_point, in_force)
        return in_force

    def views_stale(self) -> None:
        """A write failed without telling whether it applied: reload the views before serving."""
        self._views_stale = True

    def ranges_changed(self) -> None:
        """Wake whoever waits for the range tree to change (``SplitRanges``)."""
        self._ranges_changed.set()
        self._ranges_changed = asyncio.Event()

    def ranges_change_event(self) -> asyncio.Event:
        return self._ranges_changed

    async def _become_ready(self) -> None:
        state = self.state
        raw = await state.get(md.CLUSTER_META)
        if raw is None:
            meta = pdpb_pb2.ClusterMeta(cluster_id=random.getrandbits(62) | 1, config=self.config.schedule)
            await state.write({}, expect=(md.CLUSTER_META, None), new_value=meta.SerializeToString())
            raw = await state.get(md.CLUSTER_META)
        meta = pdpb_pb2.ClusterMeta.FromString(raw)
        self.cluster_id, self.schedule = meta.cluster_id, meta.config
        self.gc_safe_point = meta.gc_safe_point
        await self.membership.ensure_records()
        windows = {}
        for key in (md.TSO_WINDOW, md.ALLOC_WINDOW):
            raw = await state.get(key)
            windows[key] = pdpb_pb2.Window.FromString(raw).upper if raw else 0
        self.ids.start(windows[md.ALLOC_WINDOW])
        await self.tso.start(windows[md.TSO_WINDOW])
        self._views_stale = True
        self.serving_since_ms = now_ms()
        if self._coordinator is not None:
            self._coordinator.cancel()
        term = self.state.check_serving()
        self._coordinator = spawn(runner.coordinate(self, term, now_ms), "PD coordinator")
        log.info("PD member %d leads (cluster %d)", self.config.member_id, self.cluster_id)

    async def stop(self) -> None:
        if self.health is not None:
            await self.health.stopping()  # probes see NOT_SERVING before anything goes away
        if self._coordinator is not None:
            self._coordinator.cancel()
        await self.membership.stop()
        if self._server is not None:
            await self._server.stop(grace=0.5)
        if self.host is not None:
            await self.host.stop()
        self.metrics.stop()


async def serve(config: PdConfig, ready_file: Path | None = None) -> None:
    """Run a PD member until SIGINT/SIGTERM; writes the bound port to ``ready_file`` once serving."""
    await serve_until_signalled(PdMember(config), ready_file)

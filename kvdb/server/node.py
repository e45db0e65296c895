"""A store process: RocksDB engine, the store loop, tick timer and gRPC server on one event loop.

The Raft machinery itself (engine, store, loops) is ``kvdb.server.raft_host.RaftHost``; this
module adds the store's services, the raw KV listener (``kvdb.server.kv_listener``), failpoints
and the static bootstrap.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from kvdb.metrics.endpoint import MetricsEndpoint
from kvdb.metrics.kv import kv_families
from kvdb.metrics.raft import engine_families, raft_families
from kvdb.metrics.rpc import RpcMetricsInterceptor
from kvdb.net import grpc_factory
from kvdb.net.tls import TlsFiles
from kvdb.pb import (
    adminpb_pb2,
    adminpb_pb2_grpc,
    kvrpc_pb2,
    kvrpc_pb2_grpc,
    metapb_pb2,
    raft_serverpb_pb2,
    raft_serverpb_pb2_grpc,
)
from kvdb.pdclient.client import PdClient
from kvdb.server.addresses import advertised, on_listen_host
from kvdb.server.gc_worker import GcWorker
from kvdb.server.identity import claim_store_id
from kvdb.server.kv_handler import KvHandler
from kvdb.server.kv_listener import KvListener
from kvdb.server.pd_worker import PdWorker
from kvdb.server.raft_host import RaftHost, db_path, serve_until_signalled
from kvdb.server.readiness import Health, StartupGate
from kvdb.server.services import AdminService, KvService, RaftService
from kvdb.server.split_worker import SplitWorker
from kvdb.server.transport import StoreTransport
from kvdb.store.clock import MonotonicClock, SkewedClock
from kvdb.store.config import StoreConfig
from kvdb.store.errors import InvalidArgumentError
from kvdb.store.store import Store

log = logging.getLogger(__name__)

FIRST_RANGE_ID = 1
SERVICES = [pb.DESCRIPTOR.services_by_name[name].full_name
            for pb, name in ((kvrpc_pb2, "Kv"), (adminpb_pb2, "Admin"), (raft_serverpb_pb2, "RaftTransport"))]
"""What a store serves (health reports each; reflection lists them)."""


@dataclass
class NodeConfig:
    store_id: int
    """0: the data dir's identity, or one PD allocates for a new data dir (``kvdb.server.identity``)."""
    listen: str
    data_dir: Path
    cluster_id: int = 1
    advertise: str = ""
    """What the store registers with PD (default: ``listen``; port 0 = the bound port)."""
    labels: dict[str, str] = field(default_factory=dict)
    """Where the store stands (``zone=a``), registered with PD for placement."""
    static_cluster: dict[int, str] = field(default_factory=dict)
    """Store id -> address of every store, for a cluster bootstrapped without PD."""
    pd_endpoints: str = ""
    """Placement driver members (HOST:PORT,...); empty for a static cluster."""
    pd_heartbeat_interval: float = 1.0
    test_failpoints: bool = False
    request_timeout: float = 10.0
    tls: TlsFiles | None = None
    """Mutual TLS for every connection in and out (docs/security.md); None: plaintext."""
    metrics_listen: str = ""
    """HOST:PORT to serve Prometheus metrics on (``/metrics``; port 0 picks one); empty: none."""
    raft_port: int = 0
    """The Raft listener's port on the host of ``listen`` (0: an ephemeral one, peers ask RaftPort)."""
    kv_port: int = 0
    """The client KV stream's port on the host of ``listen`` (0: an ephemeral one, clients ask KvPort)."""
    store: StoreConfig = field(default_factory=StoreConfig)


def parse_static_cluster(spec: str) -> dict[int, str]:
    """``"1=127.0.0.1:20161,2=127.0.0.1:20162"`` -> {1: "127.0.0.1:20161", 2: ...}."""
    stores: dict[int, str] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        sid, sep, address = item.partition("=")
        if not sep or not sid.strip().isdigit() or ":" not in address:
            raise ValueError(f"bad store '{item}' in static cluster (want ID=HOST:PORT)")
        if int(sid) in stores:
            raise ValueError(f"store {sid} appears twice in the static cluster")
        stores[int(sid)] = address.strip()
    if not stores:
        raise ValueError("the static cluster names no stores")
    return stores


def static_first_range(stores: dict[int, str]) -> metapb_pb2.RangeDescriptor:
    """One range over all keys with a voter on every store; peer ids are the store ids."""
    desc = metapb_pb2.RangeDescriptor(id=FIRST_RANGE_ID, epoch=metapb_pb2.RangeEpoch(conf_ver=1, version=1))
    for store_id in sorted(stores):
        desc.peers.add(id=store_id, store_id=store_id, role=metapb_pb2.VOTER)
    return desc


class StoreNode:
    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.store_id = config.store_id
        """This store's id: the config's, the data dir's, or PD's (known once started)."""
        self.port = 0
        self._server: grpc.aio.Server | None = None
        self.clock = SkewedClock(MonotonicClock()) if config.test_failpoints else MonotonicClock()
        self.addresses = dict(config.static_cluster)
        self.host: RaftHost | None = None
        self.kv_handler: KvHandler | None = None
        self.kv_listener: KvListener | None = None
        self.pd_worker: PdWorker | None = None
        self.split_worker: SplitWorker | None = None
        self.gc_worker: GcWorker | None = None
        self.metrics = MetricsEndpoint()
        self.metrics_port = 0
        self.health: Health | None = None
        self._gate = StartupGate("the store is starting: its ranges are not loaded yet")

    @property
    def store(self) -> Store:
        return self.host.store

    @property
    def transport(self) -> StoreTransport:
        return self.host.transport

    def wake(self) -> None:
        self.host.wake()

    async def start(self) -> None:
        """Serve health checks (NOT_SERVING) at once, load (PD may not be up yet), then SERVING."""
        cfg = self.config
        self._server = grpc_factory.server(cfg.tls, [RpcMetricsInterceptor(self.metrics.rpc), self._gate])
        kvrpc_pb2_grpc.add_KvServicer_to_server(KvService(self), self._server)
        raft_serverpb_pb2_grpc.add_RaftTransportServicer_to_server(RaftService(self), self._server)
        adminpb_pb2_grpc.add_AdminServicer_to_server(AdminService(self), self._server)
        self.health = await Health.add(self._server, SERVICES)
        self.port = grpc_factory.listen(self._server, cfg.listen, cfg.tls)
        await self._server.start()
        try:
            if cfg.metrics_listen:
                self.metrics_port = self.metrics.start(cfg.metrics_listen, asyncio.get_running_loop(),
                                                       self._gather_metrics,
                                                       lambda: engine_families(db_path(cfg.data_dir)))
            await self._load()
        except BaseException:
            await self.stop()
            raise
        await self.health.serving()

    async def _load(self) -> None:
        cfg = self.config
        cluster_id, resolve = cfg.cluster_id, self.addresses.get
        if cfg.pd_endpoints:
            pd = PdClient(cfg.pd_endpoints, tls=cfg.tls)
            try:
                await pd.connect()
                await pd.is_bootstrapped()  # the PD leader has settled the cluster id once this answers
                cluster_id = pd.cluster_id
                self.store_id = await claim_store_id(cfg.data_dir, cluster_id, cfg.store_id, pd.alloc_id)
            except BaseException:
                await pd.close()
                raise
            self.pd_worker = PdWorker(pd, self.addresses, cfg.pd_heartbeat_interval, cfg.labels)
            resolve = self.pd_worker.resolve
        else:
            self.store_id = await claim_store_id(cfg.data_dir, cluster_id, cfg.store_id, None)
        self.host = RaftHost(cluster_id, self.store_id, cfg.data_dir, cfg.store, self.clock, resolve,
                             self.addresses, cfg.tls, on_listen_host(cfg.listen, cfg.raft_port))
        store = self.host.store
        if cfg.static_cluster and not store.peers and FIRST_RANGE_ID not in store.tombstones:
            store.bootstrap_range(static_first_range(cfg.static_cluster))
        self.kv_handler = KvHandler(store)
        await self.host.start()  # before the gate opens: RaftPort answers the listener's port
        self.kv_listener = KvListener(self, cfg.tls)
        await self.kv_listener.start(on_listen_host(cfg.listen, cfg.kv_port))  # likewise for KvPort
        self._gate.open()  # loaded: calls may come
        address = advertised(cfg.listen, cfg.advertise, self.port)
        if self.pd_worker is not None:
            await self.pd_worker.join(store, address)
            store.request_ts = self.pd_worker.request_ts  # a static cluster has no TSO: no async commit
            self.pd_worker.start()
            # Splits need ids from PD, so a static cluster (no PD) never splits by itself.
            pd_worker = self.pd_worker
            self.split_worker = SplitWorker(store, pd_worker.pd, cfg.store, lambda: pd_worker.cluster_config)
            self.kv_handler.on_served = self.split_worker.observe
            pd_worker.range_stats = self.split_worker.range_stats
            self.split_worker.start()
            # The safe point comes from PD, so a static cluster (no PD) never collects either.
            self.gc_worker = GcWorker(store)
            self.gc_worker.start()
        log.info("store %d serving on %s as %s (cluster %d, %d ranges)", self.store_id, cfg.listen, address,
                 cluster_id, len(store.peers))

    def _gather_metrics(self) -> list:
        """On the event loop (``kvdb.metrics.endpoint``): what has been loaded so far."""
        out = []
        if self.kv_handler is not None:
            out += kv_families(self.kv_handler.stats)
        if self.host is not None:
            out += raft_families(self.host.store, self.host.timings)
        return out

    def set_failpoint(self, kind: int, store_id: int, value: float) -> None:
        if not self.config.test_failpoints:
            raise InvalidArgumentError("failpoints are off: start the store with --test-failpoints")
        K = adminpb_pb2.SetFailpointRequest
        if kind == K.DROP_TO_STORE:
            (self.transport.drop_to.add if value else self.transport.drop_to.discard)(store_id)
        elif kind == K.DELAY_TO_STORE:
            self.transport.delay_to[store_id] = value / 1000
        elif kind == K.CLOCK_OFFSET:
            self.clock.shift(value / 1000)
        elif kind == K.CLOCK_RATE:
            if value <= 0:
                raise InvalidArgumentError(f"clock rate must be positive, got {value}")
            self.clock.set_rate(value)
        elif kind == K.DROP_WRITE_RESPONSES:
            self.kv_handler.drop_write_responses = int(value)
        elif kind == K.CRASH_TICK_LOOP:
            self.host.crash_tick_loop = bool(value)
        else:
            raise InvalidArgumentError(f"unknown failpoint {kind}")

    async def stop(self) -> None:
        if self.health is not None:
            await self.health.stopping()  # probes see NOT_SERVING before anything goes away
        if self._server is not None:
            await self._server.stop(grace=0.5)
        if self.kv_listener is not None:
            await self.kv_listener.stop()
        if self.split_worker is not None:
            await self.split_worker.stop()
        if self.gc_worker is not None:
            await self.gc_worker.stop()
        if self.pd_worker is not None:
            await self.pd_worker.stop()
        if self.host is not None:
            await self.host.stop()
        self.metrics.stop()
        log.info("store %d stopped", self.store_id)


async def serve(config: NodeConfig, ready_file: Path | None = None) -> None:
    """Run a store until SIGINT/SIGTERM; writes the bound port to ``ready_file`` once serving."""
    await serve_until_signalled(StoreNode(config), ready_file)

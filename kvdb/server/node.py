"""A store process: RocksDB engine, the store loop, tick timer and gRPC server on one event loop.

The Raft loop runs an iteration whenever the store says one is due. The synced write of an
iteration runs on a dedicated writer thread (RocksDB releases the GIL while it syncs), so
requests and Raft messages keep arriving during the fsync and all go into the next iteration:
the longer a write takes, the larger the next group commit.
"""

from __future__ import annotations

import asyncio
import logging
import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from kvdb.pb import adminpb_pb2, adminpb_pb2_grpc, kvrpc_pb2_grpc, metapb_pb2, raft_serverpb_pb2_grpc
from kvdb.server.services import AdminService, KvService, RaftService
from kvdb.server.transport import GRPC_OPTIONS, GrpcTransport
from kvdb.storage.rocks import RocksEngine
from kvdb.store.clock import MonotonicClock, SkewedClock
from kvdb.store.config import StoreConfig
from kvdb.store.errors import InvalidArgumentError
from kvdb.store.store import Store

log = logging.getLogger(__name__)

FIRST_RANGE_ID = 1


@dataclass
class NodeConfig:
    store_id: int
    listen: str
    data_dir: Path
    cluster_id: int = 1
    static_cluster: dict[int, str] = field(default_factory=dict)
    """Store id -> address of every store, for a cluster bootstrapped without PD."""
    test_failpoints: bool = False
    request_timeout: float = 10.0
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
        self.port = 0
        self._wakeup: asyncio.Event | None = None
        self._tasks: list[asyncio.Task] = []
        self._server: grpc.aio.Server | None = None
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="raft-writer")
        self.clock = SkewedClock(MonotonicClock()) if config.test_failpoints else MonotonicClock()
        self.addresses = dict(config.static_cluster)
        self.engine: RocksEngine | None = None
        self.transport: GrpcTransport | None = None
        self.store: Store | None = None

    async def start(self) -> None:
        cfg = self.config
        self._wakeup = asyncio.Event()
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
        self.engine = RocksEngine(cfg.data_dir / "db")
        self.transport = GrpcTransport(cfg.cluster_id, cfg.store_id, self.addresses.get,
                                       cfg.store.snapshot_chunk_bytes)
        self.store = Store(cfg.cluster_id, cfg.store_id, self.engine, self.transport, self.clock, cfg.store,
                           random.Random(), self.addresses)
        self.store.wake = self.wake
        if cfg.static_cluster and not self.store.peers and FIRST_RANGE_ID not in self.store.tombstones:
            self.store.bootstrap_range(static_first_range(cfg.static_cluster))
        self._server = grpc.aio.server(options=GRPC_OPTIONS)
        kvrpc_pb2_grpc.add_KvServicer_to_server(KvService(self), self._server)
        raft_serverpb_pb2_grpc.add_RaftTransportServicer_to_server(RaftService(self), self._server)
        adminpb_pb2_grpc.add_AdminServicer_to_server(AdminService(self), self._server)
        self.port = self._server.add_insecure_port(cfg.listen)
        if self.port == 0:
            raise OSError(f"cannot listen on {cfg.listen}")
        await self._server.start()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._raft_loop()), loop.create_task(self._tick_loop())]
        log.info("store %d serving on %s (cluster %d, %d ranges)", cfg.store_id, cfg.listen, cfg.cluster_id,
                 len(self.store.peers))

    def wake(self) -> None:
        self._wakeup.set()

    async def _tick_loop(self) -> None:
        """One tick per interval by the store's clock, never a burst to catch up (a late tick
        only makes followers wait longer, which keeps the lease promise)."""
        interval = self.config.store.tick_interval
        while True:
            rate = self.clock.rate if isinstance(self.clock, SkewedClock) else 1.0
            await asyncio.sleep(interval / rate)
            self.store.tick()

    async def _raft_loop(self) -> None:
        loop = asyncio.get_running_loop()
        store, engine = self.store, self.engine
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while store.has_work():
                it = store.begin()
                if it.must_sync:
                    await loop.run_in_executor(self._writer, engine.write, it.batch, True)
                elif len(it.batch):
                    engine.write(it.batch, False)  # no fsync: cheaper inline than a thread hop
                store.finish(it)

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
        else:
            raise InvalidArgumentError(f"unknown failpoint {kind}")

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(grace=0.5)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.transport is not None:
            await self.transport.close()
        self._writer.shutdown(wait=True)
        if self.engine is not None:
            self.engine.close()
        log.info("store %d stopped", self.config.store_id)


async def serve(config: NodeConfig, ready_file: Path | None = None) -> None:
    """Run a store until SIGINT/SIGTERM; writes the bound port to ``ready_file`` once serving."""
    import signal

    node = StoreNode(config)
    await node.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if ready_file is not None:
        tmp = ready_file.with_suffix(".tmp")
        tmp.write_text(str(node.port))
        tmp.replace(ready_file)
    try:
        await stop.wait()
    finally:
        await node.stop()

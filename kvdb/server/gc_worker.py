"""The store's MVCC garbage collector: collects the ranges it leads below the GC safe point.

The safe point comes from PD with every store heartbeat's answer (``Store.gc_safe_point``, raised
by ``kvdb.server.pd_worker``); the store never collects above the one it learned. Every
``interval`` a round asks the planner (``kvdb.txn.gc``) which led ranges are not collected at it
yet and proposes their chunks one at a time as ``RaftCommand(txn=TxnCommand(gc=GcCommand))``:
the versions are dropped at apply, on every replica alike (``kvdb.txn.actions``), and one
command touches about ``versions_per_command`` records, so an apply stays short. A range whose
``write`` column family holds nothing costs one scan and no proposal; a collected range costs
nothing until the safe point rises again.

Failures (leadership lost, an epoch moved by a split, the store busy, an apply that takes too
long) end the range's turn; the next round picks it up from where it stopped, or the new
leader collects it again (a ``GcCommand`` is idempotent).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from kvdb.pb import metapb_pb2, raft_serverpb_pb2
from kvdb.server.supervisor import spawn
from kvdb.storage.engine import CF_WRITE
from kvdb.store.errors import StoreError
from kvdb.txn.gc import DEFAULT_VERSIONS_PER_COMMAND, GcPlanner

if TYPE_CHECKING:
    from kvdb.store.peer import Peer
    from kvdb.store.store import Store

log = logging.getLogger(__name__)

GC_INTERVAL = 1.0
"""Seconds between two rounds (a round after a raised safe point starts within this)."""
APPLY_TIMEOUT = 30.0
"""Seconds a proposed chunk may take to apply before the round gives up on its range."""


class GcWorker:
    def __init__(self, store: Store, interval: float = GC_INTERVAL,
                 versions_per_command: int = DEFAULT_VERSIONS_PER_COMMAND) -> None:
        self.store = store
        self.interval = interval
        self.planner = GcPlanner(versions_per_command)
        self.commands_applied = 0
        """GC commands applied since start (tests and logs)."""
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = spawn(self._run(), "MVCC garbage collector")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.round()

    def _scan(self, start: bytes, end: bytes, limit: int) -> list[bytes]:
        return [key for key, _ in self.store.engine.scan(CF_WRITE, start, end, limit)]

    async def round(self) -> None:
        """Collect every led range not yet collected at the store's safe point."""
        store = self.store
        safe_point = store.gc_safe_point
        led = {p.range_id: p for p in list(store.peers.values())
               if p.is_leader and p.initialized and not p.destroyed}
        self.planner.forget(set(led))
        for desc in self.planner.due([p.desc for p in led.values()], safe_point):
            await self._collect(led[desc.id], safe_point)

    async def _collect(self, peer: Peer, safe_point: int) -> None:
        while peer.is_leader and not peer.destroyed:
            gc = self.planner.next_command(peer.desc, safe_point, self._scan)
            if gc is None:
                log.debug("range %d: collected at safe point %d", peer.range_id, safe_point)
                return
            epoch = metapb_pb2.RangeEpoch()
            epoch.CopyFrom(peer.desc.epoch)
            cmd = raft_serverpb_pb2.RaftCommand()
            cmd.txn.gc.CopyFrom(gc)
            try:
                result = await self._propose(peer.range_id, epoch, cmd)
            except (StoreError, TimeoutError) as exc:
                log.info("range %d: GC at safe point %d stopped (the next round goes on): %s",
                         peer.range_id, safe_point, exc)
                return
            if isinstance(result, StoreError):
                log.info("range %d: GC chunk not applied (the next round goes on): %s", peer.range_id, result)
                return
            self.planner.applied(peer.range_id, gc)
            self.commands_applied += 1

    async def _propose(self, range_id: int, epoch: metapb_pb2.RangeEpoch,
                       cmd: raft_serverpb_pb2.RaftCommand) -> object:
        done: asyncio.Future = asyncio.get_running_loop().create_future()

        def callback(result: object) -> None:
            if not done.done():
                done.set_result(result)

        self.store.propose(range_id, epoch, cmd, callback)
        return await asyncio.wait_for(done, APPLY_TIMEOUT)

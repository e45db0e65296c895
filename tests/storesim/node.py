"""One simulated store process: a real ``Store`` over a ``MemEngine``, its clock, ticks and loop.

The ``MemEngine`` is the disk: it outlives the process. A crash is a power cut: it drops the
``Store`` object (with whatever it held in memory: a begun but unwritten batch, pending requests,
leases) and the writes the disk had not made durable (``MemEngine.crash``: every unsynced write
no later synced one covered, except a random prefix the OS may have written back, which may be
all of them as after a kill -9; a synced write in flight may be among them); a restart
builds a new ``Store`` over the same engine, as ``kvdb.server.node`` does over RocksDB. The loop
is the production one (``kvdb.store.loop.RaftLoop``): this driver only makes its synced write
take simulated disk time, during which inputs keep arriving to be group-committed by the next
iteration, and a crash during which loses the write.

A process can also pause (a GC or VM stall): its clock runs on, but it handles nothing until it
resumes; then it finds every input that queued up meanwhile, in per-connection order. That is
the classic hazard for leases: a leader resuming with a stale view must judge its lease by its
clock, not by what it has not heard yet.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kvdb.server.kv_handler import KvHandler
from kvdb.storage.memory import MemEngine
from kvdb.store.loop import RaftLoop
from kvdb.store.peer import Peer
from kvdb.store.store import Iteration, Store
from tests.sim.world import World
from tests.storesim.transport import PD_NODE, SimTransport

if TYPE_CHECKING:
    from tests.storesim.cluster import StoreSimulation
    from tests.storesim.pd import PdAgent

CLUSTER_ID = 1
TICK_JITTER = 0.05
"""A tick comes up to this fraction of an interval late, never early: a late tick only makes a
follower wait longer before it votes again, so jitter cannot break the lease promise (which is
what the real store's tick loop guarantees too)."""


class SimClock:
    """A store's monotonic clock: world time at a rate, from an offset; rate changes are continuous.

    The store only compares its own readings, so the offset just keeps clocks from agreeing by
    accident; the rate is what the lease's ``max_clock_drift`` has to cover.
    """

    def __init__(self, world: World, rate: float, offset: float) -> None:
        self._world = world
        self._anchor_us = world.now
        self._anchor_value = offset
        self.rate = rate

    def now(self) -> float:
        return self._anchor_value + (self._world.now - self._anchor_us) * self.rate / 1e6

    def set_rate(self, rate: float) -> None:
        self._anchor_value = self.now()
        self._anchor_us = self._world.now
        self.rate = rate


class SimStore:
    """The process of store ``store_id``; ``store`` is None while it is down."""

    def __init__(self, sim: StoreSimulation, store_id: int, rate: float) -> None:
        self.sim = sim
        self.world = sim.world
        self.id = store_id
        self.rng = sim.world.child_rng()
        self.engine = MemEngine()
        self.clock = SimClock(sim.world, rate, offset=self.rng.uniform(0, 1000))
        self.transport = SimTransport(sim.network, store_id)
        self.store: Store | None = None
        self.loop: RaftLoop | None = None
        self.handler: KvHandler | None = None
        # Bumped on every crash: events of an earlier life carry a stale number and do nothing,
        # which is how a crash cancels the write in flight, the tick chain and snapshot reports.
        self.incarnation = 0
        self.looping = False  # an iteration is scheduled or its write is in flight
        self.writing = False
        self.paused = False
        self.crash_on_next_write = False  # the nemesis's: crash during the next synced write
        self._deferred: list[tuple[object, Callable[..., Any], tuple[Any, ...]]] = []
        # Every replica object this store ever had, for their counters (they die with a crash).
        self.peers_seen: set[Peer] = set()
        self.pd_agent: PdAgent | None = None  # PD mode: heartbeats on ticks, operators from replies

    @property
    def alive(self) -> bool:
        return self.store is not None

    def __repr__(self) -> str:
        return f"store {self.id}"

    # -- life cycle ---------------------------------------------------------------------------

    def start(self, bootstrap: bool = False) -> None:
        """Start the process: the Store constructor reloads every replica from the engine;
        ``bootstrap``: first create this store's replicas of the founding ranges."""
        store = Store(CLUSTER_ID, self.id, self.engine, self.transport, self.clock, self.sim.config,
                      self.world.child_rng())
        if bootstrap:  # the founding ranges with a replica here (PD mode: store 1 alone)
            for desc in self.sim.founding:
                if any(p.store_id == self.id for p in desc.peers):
                    store.bootstrap_range(desc)
        self.store = store
        self.loop = RaftLoop(store)
        self.handler = KvHandler(store)
        incarnation = self.incarnation
        store.wake = lambda: self._wake(incarnation)
        store.on_split = lambda descs: self.sim.on_split(self, descs)
        store.request_ts = lambda done: self._request_ts(incarnation, done)
        self.world.trace("%r start (%d replicas)", self, len(store.peers))
        if self.pd_agent is not None:
            self.pd_agent.started()
        self.world.after(self._tick_delay(), self._tick, incarnation)
        self._wake(incarnation)

    def _request_ts(self, incarnation: int, done: Callable[[int], None]) -> None:
        """``Store.request_ts``: a TSO request to PD and its reply, across the network (either
        may be lost: the store asks again later)."""
        network, tso = self.sim.network, self.sim.tso

        def reply(data: bytes) -> None:
            if incarnation == self.incarnation and self.alive:
                self.deliver(("pd",), done, int.from_bytes(data, "big"))

        network.send_pd(self.id, PD_NODE, b"", lambda _: tso.serve(network, self.id, reply))

    def crash(self) -> None:
        self.world.trace("%r crash (write in flight: %s)", self, self.writing)
        self.peers_seen.update(self.store.peers.values())
        self.count_hibernation()
        self.sim.network.receiver_died(self.id)
        in_flight = self.loop.in_flight
        if in_flight is not None and self.rng.random() < 0.5:
            # The synced write had reached the WAL but not the platter: it is one more unsynced
            # write (kept or not below), whose acks were never sent.
            self.engine.write(in_flight.batch, sync=False)
        self.store = None
        self.loop = None
        self.handler = None
        lost = self.engine.crash(self.rng)
        self.world.trace("%r lost %d unsynced writes", self, lost)
        self.incarnation += 1
        self.looping = False
        self.writing = False
        self.paused = False
        self.crash_on_next_write = False
        self._deferred = []

    def count_hibernation(self) -> None:
        """Add this life's hibernation counters to the run's stats (they die with the process)."""
        counters = self.store.hibernation.counters
        self.sim.stats.hibernations += counters["hibernated"]
        self.sim.stats.liveness_wakes += counters["woken_by_liveness"]

    # -- pauses -------------------------------------------------------------------------------

    def deliver(self, channel: object, fn: Callable[..., Any], *args: Any) -> None:
        """Handle an input now, or when the pause ends; one ``channel`` is one connection."""
        if self.paused:
            self._deferred.append((channel, fn, args))
        else:
            fn(*args)

    def pause(self) -> None:
        self.world.trace("%r pause", self)
        self.paused = True

    def resume(self) -> None:
        """Handle what queued up: each connection in order, connections interleaved at random,
        as an event loop that finds many sockets readable at once; and one tick, not a burst."""
        self.world.trace("%r resume (%d inputs queued)", self, len(self._deferred))
        self.paused = False
        channels: dict[object, deque[tuple[Callable[..., Any], tuple[Any, ...]]]] = {}
        for channel, fn, args in self._deferred:
            channels.setdefault(channel, deque()).append((fn, args))
        self._deferred = []
        queues = list(channels.values())
        while queues:
            queue = self.rng.choice(queues)
            fn, args = queue.popleft()
            if not queue:
                queues.remove(queue)
            fn(*args)

    # -- the loop -----------------------------------------------------------------------------

    def _tick_delay(self) -> int:
        interval = self.sim.config.tick_interval / self.clock.rate
        return int(interval * (1 + self.rng.uniform(0, TICK_JITTER)) * 1e6)

    def _tick(self, incarnation: int) -> None:
        if incarnation != self.incarnation:
            return
        if self.paused:
            self._deferred.append(("tick", self._tick, (incarnation,)))
            return  # the tick chain stops; resuming runs this tick and restarts it
        self.store.tick()
        if self.pd_agent is not None:
            self.pd_agent.tick()
        self.world.after(self._tick_delay(), self._tick, incarnation)

    def _wake(self, incarnation: int) -> None:
        if incarnation == self.incarnation and not self.looping:
            self.looping = True
            self.world.after(0, self._iterate, incarnation)

    def _iterate(self, incarnation: int) -> None:
        if incarnation != self.incarnation:
            return
        if self.paused:
            self._deferred.append(("loop", self._iterate, (incarnation,)))
            return
        self.peers_seen.update(self.store.peers.values())
        it = self.loop.step()
        if it is None:
            self.looping = False
            return
        latency = self.sim.disk_latency()
        self.writing = True
        self.sim.nemesis.on_write_started(self, latency)
        self.world.after(latency, self._written, incarnation, it)

    def _written(self, incarnation: int, it: Iteration) -> None:
        if incarnation != self.incarnation:
            return  # the process died during the write: the batch never reached the disk
        if self.paused:
            self._deferred.append(("loop", self._written, (incarnation, it)))
            return
        self.writing = False
        self.loop.write(it)
        self.peers_seen.update(self.store.peers.values())
        self.loop.written(it)
        self._iterate(incarnation)

"""The store's loop, sans I/O: what each iteration writes, whether it is synced, and when its acks go.

Every driver runs this same logic, so what the simulator checks is what production runs:
``RaftHost._raft_loop`` (real processes: the synced write on a writer thread), ``SimStore`` in
tests/storesim (the synced write takes simulated disk time, and a crash during it loses it) and
``Store.run_once`` (tests and tools: the synced write inline). A driver does:

    loop = RaftLoop(store)
    while (it := loop.step()) is not None:   # iterations needing no fsync run inside step()
        loop.write(it)                         # the fsync, however the driver waits for the disk
        loop.written(it)                       # only now: acks, apply, answers

The rules kept here:
- an iteration whose Ready holds new entries, a snapshot or a term/vote change (``must_sync``)
  has its batch written with fsync, and ``Store.finish`` (which releases the acknowledgements
  that promise durability, applies and answers) runs only after that write returned;
- any other iteration's batch (commit indexes only) is written unsynced, inline, and finished at
  once: losing it in a crash loses nothing Raft promised;
- one synced write is in flight at a time; whatever arrives meanwhile goes into the next
  iteration (the group commit).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from kvdb.metrics.histogram import LatencyHistogram

if TYPE_CHECKING:
    from kvdb.store.store import Iteration, Store


class LoopTimings:
    """Where the loop's time goes, per iteration (exported by ``kvdb.metrics.raft``)."""

    def __init__(self) -> None:
        self.append = LatencyHistogram()
        """``Store.begin``: collect the Readies, send what may go early, stage the log append."""
        self.fsync = LatencyHistogram()
        """The synced write of an iteration (in a real store inline, or on the writer thread while
        reads come: ``kvdb.server.raft_host``)."""
        self.apply = LatencyHistogram()
        """``Store.finish``: release acks, apply committed entries, answer."""
        self.inline_writes = 0
        """Synced writes the driver ran on the loop's own thread (``kvdb.server.raft_host``)."""


class RaftLoop:
    """Runs a store's iterations; the driver only performs the synced writes it hands out."""

    def __init__(self, store: Store, timings: LoopTimings | None = None) -> None:
        self.store = store
        self.timings = timings or LoopTimings()
        self._in_flight: Iteration | None = None

    def step(self) -> Iteration | None:
        """Run iterations while there is work, until one must be synced: return it (the driver
        calls ``write`` and then ``written``). None: nothing to do."""
        if self._in_flight is not None:
            raise RuntimeError("step() while a synced write is in flight: call written() first")
        store, clock, timings = self.store, time.perf_counter, self.timings
        while store.has_work():
            start = clock()
            it = store.begin()
            timings.append.observe(clock() - start)
            if it.must_sync:
                self._in_flight = it
                return it
            if len(it.batch):
                store.engine.write(it.batch, sync=False)  # nothing promised rests on it
            self._finish(it)
        return None

    def _finish(self, it: Iteration) -> None:
        start = time.perf_counter()
        self.store.finish(it)
        self.timings.apply.observe(time.perf_counter() - start)

    @property
    def in_flight(self) -> Iteration | None:
        """The iteration handed out by ``step`` whose synced write has not been reported yet."""
        return self._in_flight

    def write(self, it: Iteration) -> None:
        """The synced write of ``it`` (WAL fsync) that every driver performs. Touches no loop
        state, so a driver may run it on another thread (``RaftHost`` does)."""
        start = time.perf_counter()
        self.store.engine.write(it.batch, sync=True)
        self.timings.fsync.observe(time.perf_counter() - start)

    def written(self, it: Iteration) -> None:
        """``it``'s synced write returned: its batch is durable, so release what waited on it."""
        if it is not self._in_flight:
            raise RuntimeError("written() for an iteration that is not the one in flight")
        self._in_flight = None
        self._finish(it)

    def drain(self) -> None:
        """Run until idle with every synced write done inline (``Store.run_once``: tests, tools)."""
        while (it := self.step()) is not None:
            self.write(it)
            self.written(it)

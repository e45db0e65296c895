"""The machinery every Raft-hosting process runs: engine, store, transport and the two loops.

A store process (``kvdb.server.node``) and a placement driver member (``placement.server``)
both host replicas with the same ``Store``; they differ only in the services they put on top.
Raft messages leave through the ``transport`` and arrive through the ``listener``
(``kvdb.server.raft_listener``), which listens on the host of the process's listen address
(``--raft-port``, by default an ephemeral port).

The Raft loop runs an iteration whenever the store says one is due. Whatever arrives while an
iteration's synced write is in flight goes into the next iteration: the longer a write takes,
the larger the next group commit. Where the write runs depends on the reads: while reads come
in, it runs on a dedicated writer thread (RocksDB releases the GIL while it syncs), so the event
loop serves them during the fsync; while none come, it runs inline on the loop. Requests and
Raft messages then wait in their sockets for the fsync to end, which costs them nothing (they
join the next iteration either way), and the hand-off to the thread and back, ~60-90 us of CPU
per write on our 2-core VMs plus a wait in the loop's queue, is saved (docs/store.md).

Both loops are supervised (``kvdb.server.supervisor``): if one dies, the process exits non-zero
instead of answering requests that no loop will ever serve.
"""

from __future__ import annotations

import asyncio
import gc
import random
import signal
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

from kvdb.net.tls import TlsFiles
from kvdb.server.raft_listener import RaftListener
from kvdb.server.supervisor import spawn
from kvdb.server.transport import StoreTransport
from kvdb.storage.rocks import RocksEngine
from kvdb.store.clock import Clock, SkewedClock
from kvdb.store.config import StoreConfig
from kvdb.store.loop import LoopTimings, RaftLoop
from kvdb.store.store import Store


def db_path(data_dir: Path) -> Path:
    """Where a process keeps its RocksDB inside its data dir (snapshot files go beside it)."""
    return data_dir / "db"


class RaftHost:
    def __init__(self, cluster_id: int, store_id: int, data_dir: Path, config: StoreConfig, clock: Clock,
                 resolve: Callable[[int], str], addresses: dict[int, str] | None = None,
                 tls: TlsFiles | None = None, raft_listen: str = "127.0.0.1:0") -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.config = config
        self.clock = clock
        self.engine = RocksEngine(db_path(data_dir), data_dir / "snap", config.wal_recycle_bytes)
        self.transport = StoreTransport(cluster_id, store_id, resolve, config.snapshot_chunk_bytes, tls)
        self.store = Store(cluster_id, store_id, self.engine, self.transport, clock, config, random.Random(),
                           addresses)
        self.store.wake = self.wake
        self.raft_listen = raft_listen
        """HOST:PORT the Raft listener binds (port 0: an ephemeral one)."""
        self.listener = RaftListener(self.store, self.wake, tls)
        self.store.background = self._background
        self._wakeup = asyncio.Event()
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="raft-writer")
        # Snapshot builds: one at a time, each a long pass in Python that the GIL interleaves
        # with the loop (it yields every switch interval, ~5 ms).
        self._builder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="snapshot-builder")
        self._tasks: list[asyncio.Task] = []
        self.timings = LoopTimings()
        self.crash_tick_loop = False
        """Failpoint (tests only): the tick loop raises at its next tick."""

    async def start(self) -> None:
        """Listen for Raft messages (``listener.port`` is known once this returns), start the loops."""
        await self.listener.start(self.raft_listen)
        self._tasks = [spawn(self._raft_loop(), "raft loop"),
                       spawn(self._tick_loop(), "tick loop")]

    def wake(self) -> None:
        self._wakeup.set()

    async def _tick_loop(self) -> None:
        """One tick per interval by the store's clock, never a burst to catch up (a late tick
        only makes followers wait longer, which keeps the lease promise)."""
        interval = self.config.tick_interval
        while True:
            rate = self.clock.rate if isinstance(self.clock, SkewedClock) else 1.0
            await asyncio.sleep(interval / rate)
            if self.crash_tick_loop:
                raise RuntimeError("failpoint crash_tick_loop: the tick loop dies")
            self.store.tick()

    def _background(self, work: Callable[[], object], done: Callable[[object], None]) -> None:
        def finished(future: asyncio.Future) -> None:  # on the loop
            if not future.cancelled():  # cancelled: the host is stopping
                done(future.exception() or future.result())

        asyncio.get_running_loop().run_in_executor(self._builder, work).add_done_callback(finished)

    async def _raft_loop(self) -> None:
        """Drive ``kvdb.store.loop.RaftLoop``: a synced write runs on the writer thread if a read
        came since the last one that did, else inline (module docstring)."""
        loop = asyncio.get_running_loop()
        raft_loop = RaftLoop(self.store, self.timings)
        stats = self.store.stats
        reads_seen = stats.reads
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while (it := raft_loop.step()) is not None:
                if stats.reads == reads_seen:
                    raft_loop.write(it)
                    self.timings.inline_writes += 1
                else:
                    reads_seen = stats.reads
                    await loop.run_in_executor(self._writer, raft_loop.write, it)
                raft_loop.written(it)

    async def stop(self) -> None:
        await self.listener.stop()  # no message reaches a store whose loops are gone
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.transport.close()
        self._writer.shutdown(wait=True)
        self._builder.shutdown(wait=True, cancel_futures=True)  # a build uses the engine
        self.engine.close()


class Process(Protocol):
    port: int

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


SWITCH_INTERVAL_S = 0.001
"""The interpreter's GIL switch interval in a node process (Python's default is 5 ms). The writer
thread's fsync releases the GIL; afterwards it waits for the event loop to hand it back, up to
one switch interval, before the iteration's acks can go out."""


GC_YOUNG_THRESHOLD = 50_000
"""Allocations (less deallocations) of tracked objects between two young-generation collections
in a node process, against Python's 700. Requests and Raft messages make short-lived protobuf and
Python objects by the thousand per loop iteration, and every 10th young collection also scans
the middle generation, every 10th of those the whole heap: in a leader at 64 writers that was
~1,500 collections and 11 full ones of ~11 ms each per 20 s, pauses that showed in the p99.9."""


def tune_interpreter() -> None:
    """A node process's interpreter settings, once it has started: the GIL switch interval, and
    the garbage collector. What exists after start-up lives as long as the process, so it is
    frozen (kept out of every later collection) and full collections stop scanning it."""
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 100)


async def serve_until_signalled(process: Process, ready_file: Path | None) -> None:
    """Start ``process``, announce its port in ``ready_file`` (atomically), stop on SIGINT/SIGTERM."""
    await process.start()
    tune_interpreter()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if ready_file is not None:
        tmp = ready_file.with_suffix(".tmp")
        tmp.write_text(str(process.port))
        tmp.replace(ready_file)
    try:
        await stop.wait()
    finally:
        await process.stop()

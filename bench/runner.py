"""Runs a workload: several client processes, each an asyncio loop with its share of the workers.

``concurrency`` is the total number of requests in flight, all processes together (as in every
``kvdb bench`` command); each process runs its share of it. Closed loop (the default), a worker
sends its next request when the last one answers, so a slow target also slows the load: under
overload the latency is understated (coordinated omission). Open loop (``rate``), the requests
follow a fixed schedule of ``rate`` per second in total and each one's latency counts from its
intended start, as wrk2 and YCSB's intended latency do; ``concurrency`` then caps the requests in
flight, and a request that waits for a free slot still counts from its intended time.

One Python process saturates a core long before a cluster does, so the load comes from
``processes`` spawned processes (spawn, not fork: the parent may hold gRPC threads). They preload
their share of the keys, meet at a barrier so that everyone measures the same window, run the
warm-up unrecorded (connections, range cache, leader leases), then record. Each process sends
progress counts and, at the end, its histograms (sparse bucket counts) to the parent through a
queue; the parent merges them, draws the progress line and builds the result. The transactional
workloads also count aborted attempts (retried conflicts), and a bank run ends with an audit of
the total (bench/bank.py).
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing as mp
import os
import queue
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.bank import LOAD_BATCH, audit, bank_pairs
from bench.drivers import TARGETS, Driver, open_driver
from bench.histogram import MAX_RELATIVE_ERROR, Histogram
from bench.report import SCHEMA_VERSION, write_result
from bench.workloads import (
    INSERT,
    READ,
    RMW,
    SCAN,
    TRANSACTIONAL,
    TRANSFER,
    TXN,
    UPDATE,
    WORKLOADS,
    Generator,
    key_of,
    needs_preload,
    workload_key,
)
from kvdb.net.tls import TlsFiles
from kvdb.pdclient.client import PdClient

PROGRESS_INTERVAL = 0.25
PRELOAD_CONCURRENCY = 32
START_TIMEOUT = 300.0
"""Seconds the processes may take to connect and preload before the parent gives up."""
SILENCE_LIMIT = 60.0
"""Seconds without a word from any process after which the run is taken as hung (they report every
PROGRESS_INTERVAL while running, and a call gives up after 10 s)."""


class BenchError(Exception):
    """The benchmark could not run (bad configuration, target unreachable, a process died)."""


@dataclass
class BenchConfig:
    workload: str
    target: str
    addresses: str
    duration: float = 5.0
    ops: int = 0
    warmup: float = 1.0
    concurrency: int = 8
    processes: int = 1
    key_count: int = 10_000
    value_size: int = 100
    preload: bool = True
    output: Path | None = None
    progress: bool = True
    seed: int = 0
    rate: float = 0.0
    """Open loop: requests per second, all processes together (0: closed loop)."""
    groups: int = 1
    """bank: keep each transfer inside one of this many blocks of accounts (one range each)."""
    tls: TlsFiles | None = None
    """kvdb: the client's certificate files (``--ca --cert --key``); None: plaintext, or the KVDB_*
    environment variables when set (as ``kvdb.connect``)."""

    def validate(self) -> None:
        if self.workload not in WORKLOADS:
            raise BenchError(f"unknown workload {self.workload!r} (workloads: {', '.join(WORKLOADS)})")
        if self.target not in TARGETS:
            raise BenchError(f"unknown target {self.target!r} (targets: {', '.join(TARGETS)})")
        if not self.addresses:
            raise BenchError("no addresses to connect to")
        for name in ("concurrency", "processes", "key_count", "value_size"):
            if getattr(self, name) < 1:
                raise BenchError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.concurrency < self.processes:
            raise BenchError(f"concurrency is the total in flight: {self.concurrency} cannot give each of "
                             f"{self.processes} processes one")
        if self.rate < 0:
            raise BenchError(f"rate cannot be negative, got {self.rate:g}")
        if self.ops < 0 or self.warmup < 0:
            raise BenchError("ops and warmup cannot be negative")
        if not self.ops and self.duration <= 0:
            raise BenchError("give a positive duration or an op count")
        if self.workload == "bank" and not 1 <= self.groups <= self.key_count // 2:
            raise BenchError(f"the bank needs at least 2 accounts per range: {self.key_count} accounts "
                             f"cannot make {self.groups} groups")


@dataclass
class _Tally:
    """One process's measurements."""

    histograms: dict[str, Histogram] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    done: int = 0
    failed: int = 0
    aborts: int = 0
    """Attempts of transactions that conflicted and were retried."""
    missed: int = 0
    """Open loop: requests due before the end that were never sent (the target was so far behind
    that the in-flight cap held them back): the queue left at the end."""


def share(total: int, processes: int, slot: int) -> int:
    """Process ``slot``'s part of ``total`` (requests in flight or operations): as even as can be."""
    return total // processes + (slot < total % processes)


def run_bench(config: BenchConfig) -> dict[str, Any]:
    """Runs ``config`` and returns the result (see bench/report.py); also written to ``config.output``."""
    config.validate()
    ctx = mp.get_context("spawn")
    messages = ctx.Queue()
    barrier = ctx.Barrier(config.processes + 1)
    procs = [ctx.Process(target=_child, args=(config, slot, messages, barrier), daemon=True)
             for slot in range(config.processes)]
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    for p in procs:
        p.start()
    if config.progress:
        preloading = config.preload and needs_preload(config.workload)
        sys.stderr.write(f"{config.workload} {config.target}: connecting"
                         + (f", preloading {config.key_count:,} keys" if preloading else "") + "...")
        sys.stderr.flush()
    try:
        _wait_start(barrier, messages, procs)
        layout_before = range_layout(config)  # after any pre-split: the ranges the run starts on
        tallies, elapsed = _collect(config, messages, procs)
    except BenchError:
        if config.progress:  # the error goes on a line of its own, not after the progress line
            sys.stderr.write("\n")
        raise
    finally:
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
    result = build_result(config, tallies, elapsed, started_at)
    if layout_before is not None:
        result["ranges"] = {"before": layout_before, "after": range_layout(config)}
    if config.workload == "bank":
        result["bank"] = _audit(config)
    if config.output is not None:
        write_result(result, config.output)
    return result


def _wait_start(barrier: Any, messages: Any, procs: list[Any]) -> None:
    """Meets the processes at the barrier, or reports why one of them never came."""
    try:
        barrier.wait(timeout=START_TIMEOUT)
    except Exception:  # BrokenBarrierError; the reason is in the queue if a process failed
        try:
            kind, payload = messages.get(timeout=2)
        except queue.Empty:
            raise BenchError("the client processes did not start (see stderr)") from None
        raise BenchError(payload if kind == "failed" else f"unexpected {kind} before start") from None


def _collect(config: BenchConfig, messages: Any, procs: list[Any]) -> tuple[list[_Tally], float]:
    start = last_heard = time.monotonic()
    done = [0] * len(procs)
    errors = [0] * len(procs)
    tallies: list[_Tally] = []
    elapsed = 0.0
    while len(tallies) < len(procs):
        try:
            kind, payload = messages.get(timeout=PROGRESS_INTERVAL)
        except queue.Empty:
            if time.monotonic() - last_heard > SILENCE_LIMIT or not any(p.is_alive() for p in procs):
                raise BenchError("a client process died or hung (see stderr)") from None
            continue
        last_heard = time.monotonic()
        if kind == "progress":
            slot, done[slot], errors[slot] = payload
            if config.progress:
                _draw(config, time.monotonic() - start, sum(done), sum(errors))
        elif kind == "result":
            slot, state, errs, proc_elapsed, aborts, missed = payload
            tallies.append(_Tally({op: Histogram.from_sparse(*s) for op, s in state.items()}, errs,
                                  aborts=aborts, missed=missed))
            elapsed = max(elapsed, proc_elapsed)
        elif kind == "failed":
            raise BenchError(payload)
    if config.progress:
        sys.stderr.write("\n")
    return tallies, elapsed


def _draw(config: BenchConfig, since_start: float, done: int, errors: int) -> None:
    """One line redrawn with \\r: enough to see a run moving and whether it errs; no dependency."""
    measuring = since_start - config.warmup
    if config.ops:
        fraction = done / config.ops
    else:
        fraction = max(0.0, measuring) / config.duration
    fraction = min(1.0, fraction)
    bar = "#" * int(fraction * 30)
    phase = "warm-up" if measuring < 0 else f"{done / max(measuring, 1e-9):,.0f} ops/s"
    sys.stderr.write(f"\r{config.workload} {config.target} [{bar:<30}] {fraction:4.0%} {done:,} ops "
                     f"{phase} errors {errors}   ")
    sys.stderr.flush()


def build_result(config: BenchConfig, tallies: list[_Tally], elapsed: float, started_at: str
                 ) -> dict[str, Any]:
    """Merges the processes' histograms into the result dict that report.py writes."""
    per_op: dict[str, Histogram] = {}
    errors: dict[str, int] = {}
    for t in tallies:
        for op, h in t.histograms.items():
            per_op.setdefault(op, Histogram()).merge(h)
        for name, n in t.errors.items():
            errors[name] = errors.get(name, 0) + n
    overall = Histogram()
    for h in per_op.values():
        overall.merge(h)
    cfg = asdict(config)
    cfg["output"] = str(config.output) if config.output is not None else None
    cfg["tls"] = config.tls is not None  # whether it ran over TLS; the file paths say nothing of speed
    result = {
        "schema": SCHEMA_VERSION,
        "workload": config.workload,
        "target": config.target,
        "concurrency": config.concurrency,
        "concurrency_total": config.concurrency,
        "processes": config.processes,
        "config": cfg,
        "started_at": started_at,
        "duration": round(elapsed, 3),
        "ops": overall.count,
        "throughput": round(overall.count / elapsed, 1) if elapsed > 0 else 0.0,
        "latency_us": {"overall": overall.summary(), **{op: h.summary() for op, h in sorted(per_op.items())}},
        "latency_max_relative_error": MAX_RELATIVE_ERROR,
        "errors": dict(sorted(errors.items())),
        "error_count": sum(errors.values()),
        "host": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
    }
    if config.rate:
        result["rate"] = config.rate
        result["missed"] = sum(t.missed for t in tallies)
    if config.workload in TRANSACTIONAL:
        aborts = sum(t.aborts for t in tallies)
        attempts = overall.count + aborts
        result["aborts"] = aborts
        result["abort_rate"] = round(aborts / attempts, 4) if attempts else 0.0
    return result


def range_layout(config: BenchConfig) -> dict[str, Any] | None:
    """kvdb's ranges and the stores leading them (None for etcd, or when PD does not answer).

    Taken before and after a run: a load split or a leader moved by PD during the run changes what
    it measures (a 2-core machine gains nothing from two leaders on two stores, and each leader's
    batches get smaller), so the result says when it happened.
    """
    if config.target != "kvdb":
        return None
    import uvloop

    async def run() -> dict[str, Any]:
        async with PdClient(config.addresses, tls=config.tls) as pd:
            ranges = await pd.scan_ranges(b"")
        leaders: dict[str, int] = {}
        for info in ranges:
            store = str(info.leader.store_id) if info.leader.store_id else "none"
            leaders[store] = leaders.get(store, 0) + 1
        return {"count": len(ranges), "leaders_by_store": dict(sorted(leaders.items()))}

    try:
        return uvloop.run(run())
    except Exception:  # the numbers stand without it
        return None


def _audit(config: BenchConfig) -> dict[str, Any]:
    """The bank's invariant after the run, read from one snapshot by the parent."""
    import uvloop

    async def run() -> dict[str, Any]:
        driver = await open_driver(config.target, config.addresses, config.tls)
        try:
            return await audit(driver, config.key_count)
        finally:
            await driver.close()

    try:
        return uvloop.run(run())
    except Exception as exc:  # the numbers stand; the audit says it could not run
        return {"ok": False,
                "violation": f"the audit could not read the accounts: {type(exc).__name__}: {exc}"}


# ----------------------------------------------------------------------------- client process


def _child(config: BenchConfig, slot: int, messages: Any, barrier: Any) -> None:
    """A client process's entry point; any failure before the barrier breaks it for everyone."""
    try:
        import uvloop

        uvloop.run(_process(config, slot, messages, barrier))
    except BaseException as exc:  # the parent must hear why, not time out
        messages.put(("failed", f"client process {slot}: {type(exc).__name__}: {exc}"))
        barrier.abort()


async def _process(config: BenchConfig, slot: int, messages: Any, barrier: Any) -> None:
    driver = await open_driver(config.target, config.addresses, config.tls)
    try:
        rng = random.Random(config.seed * 7919 + slot)
        value = rng.randbytes(config.value_size)
        if config.preload and needs_preload(config.workload):
            await _preload(driver, config, slot, value)
        await asyncio.to_thread(barrier.wait, START_TIMEOUT)
        tally, elapsed = await _measure(driver, config, slot, value, messages)
    finally:
        await driver.close()
    state = {op: h.state() for op, h in tally.histograms.items()}
    messages.put(("result", (slot, state, tally.errors, elapsed, tally.aborts, tally.missed)))


async def _preload(driver: Driver, config: BenchConfig, slot: int, value: bytes) -> None:
    """This process's share (every ``processes``-th key) of the keys the workload reads: raw puts,
    or for a transactional workload transactions of LOAD_BATCH keys (the bank's opening balances)."""
    if config.workload in TRANSACTIONAL:
        pairs = (bank_pairs(config.key_count, slot, config.processes) if config.workload == "bank"
                 else [(key_of(i), value) for i in range(slot, config.key_count, config.processes)])
        batches = iter(range(0, len(pairs), LOAD_BATCH))

        async def txn_loader() -> None:
            for i in batches:
                await driver.txn_put(pairs[i:i + LOAD_BATCH])

        await asyncio.gather(*(txn_loader() for _ in range(PRELOAD_CONCURRENCY)))
        return
    keys = iter(range(slot, config.key_count, config.processes))

    async def loader() -> None:
        for i in keys:
            await driver.put(key_of(i), value)

    await asyncio.gather(*(loader() for _ in range(PRELOAD_CONCURRENCY)))


async def _measure(driver: Driver, config: BenchConfig, slot: int, value: bytes, messages: Any
                   ) -> tuple[_Tally, float]:
    """Runs the workers; returns what they recorded and the seconds from warm-up end to the last op."""
    gen = Generator(config.workload, config.key_count, config.seed, slot, config.processes, config.groups)
    tally = _Tally()
    quota = share(config.ops, config.processes, slot) if config.ops else None
    began = time.perf_counter()
    measure_from = began + config.warmup
    stop_at = measure_from + config.duration if not config.ops else float("inf")
    issued = 0

    async def one(op: Any) -> int:
        """Runs ``op``; the aborted attempts it took (transactions only)."""
        key = workload_key(config.workload, op.key)
        if op.kind == TRANSFER:
            return await driver.transfer(key, workload_key(config.workload, op.others[0]), op.amount)
        if op.kind == TXN:
            return await driver.read_modify_write([key, *map(key_of, op.others)], value)
        if op.kind == READ:
            await driver.get(key)
        elif op.kind in (UPDATE, INSERT):
            await driver.put(key, value)
        elif op.kind == SCAN:
            await driver.scan(key, op.scan_length)
        elif op.kind == RMW:
            await driver.get(key)
            await driver.put(key, value)
        return 0

    async def timed(since: float, measuring: bool) -> None:
        """Runs the next operation; if ``measuring``, records its latency counted from ``since``."""
        op = gen.next()
        try:
            aborts = await one(op)
        except Exception as exc:
            if measuring:
                tally.errors[type(exc).__name__] = tally.errors.get(type(exc).__name__, 0) + 1
                tally.failed += 1
            return
        if measuring:
            latency_us = int((time.perf_counter() - since) * 1_000_000)
            tally.histograms.setdefault(op.kind, Histogram()).record(latency_us)
            tally.done += 1
            tally.aborts += aborts

    def over(now: float, measuring: bool) -> bool:
        return now >= stop_at or (quota is not None and measuring and issued >= quota)

    async def closed_worker() -> None:
        nonlocal issued
        while True:
            now = time.perf_counter()
            measuring = now >= measure_from
            if over(now, measuring):
                return
            issued += measuring
            await timed(now, measuring)

    # Open loop: this process takes every ``processes``-th slot of the total schedule, so the
    # processes' requests interleave evenly; ``ticket`` is the next slot of this process.
    interval = config.processes / config.rate if config.rate else 0.0
    first = began + slot / config.rate if config.rate else began
    ticket = 0

    async def open_worker() -> None:
        nonlocal issued, ticket
        while True:
            intended = first + ticket * interval
            now = time.perf_counter()
            # Measured by when it is sent: behind schedule, the requests sent in the window are the
            # backlog's, and their latency from the intended start is what their users waited.
            measuring = max(intended, now) >= measure_from
            if intended >= stop_at or over(now, measuring):
                return
            ticket += 1
            issued += measuring
            if intended > now:
                await asyncio.sleep(intended - now)
            await timed(intended, measuring)

    async def reporter() -> None:
        while True:
            await asyncio.sleep(PROGRESS_INTERVAL)
            messages.put(("progress", (slot, tally.done, tally.failed)))

    progress = asyncio.create_task(reporter())
    try:
        await asyncio.gather(*((open_worker if config.rate else closed_worker)()
                               for _ in range(share(config.concurrency, config.processes, slot))))
    finally:
        progress.cancel()
    if config.rate and stop_at != float("inf"):
        # The queue left at the end: requests due before it that were never sent (the target was
        # too slow for the schedule and the in-flight cap held them back).
        due = max(0, math.ceil((stop_at - first) / interval))
        while due > 0 and first + (due - 1) * interval >= stop_at:  # the workers' own sum decides
            due -= 1
        while first + due * interval < stop_at:
            due += 1
        tally.missed = due - ticket
    messages.put(("progress", (slot, tally.done, tally.failed)))
    return tally, time.perf_counter() - max(measure_from, began)

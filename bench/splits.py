"""Benchmarks with many ranges: ``--pre-split N`` for any workload, and "split under load".

``--pre-split N`` cuts the benchmark's key space into N ranges of equal key counts through PD's
SplitRanges (what ``kvdb admin split`` calls) before the clients start, so a run measures a
cluster of many ranges rather than one.

``kvdb bench split-under-load`` writes to one range at a steady concurrency, splits that hot range
into ``--ranges`` pieces in the middle of the run, and reports throughput and latency before,
during and after the split, the longest stall a request saw, and how long throughput took to come
back. Every operation's start and end are kept (a run is bounded by its duration, tens of thousands
of operations), so the timeline can be cut at the split exactly.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bench.histogram import Histogram
from bench.workloads import key_of

if TYPE_CHECKING:
    from kvdb.net.tls import TlsFiles

WINDOW = 0.5
"""Seconds per throughput sample of the timeline."""
RECOVERED = 0.8
"""Throughput is back once ``STEADY`` windows in a row reach this share of the level it is compared
with: the throughput before the split, and the level it settled at in the second half after it."""
STEADY = 2


def split_keys(key_count: int, ranges: int, key: Callable[[int], bytes] = key_of) -> list[bytes]:
    """The ``ranges - 1`` keys that cut ``key(0 .. key_count)`` into ranges of equal key counts."""
    if ranges < 2:
        return []
    if ranges > key_count:
        raise ValueError(f"cannot cut {key_count} keys into {ranges} ranges")
    return [key(key_count * i // ranges) for i in range(1, ranges)]


async def pre_split(pd_endpoints: str, key_count: int, ranges: int, timeout: float = 120.0,
                    key: Callable[[int], bytes] = key_of, tls: TlsFiles | None = None) -> int:
    """Split the bench key space into ``ranges`` ranges; returns how many ranges now start at a split key."""
    return await split_at(pd_endpoints, split_keys(key_count, ranges, key), timeout, tls)


async def split_at(pd_endpoints: str, keys: list[bytes], timeout: float, tls: TlsFiles | None = None) -> int:
    """Split so that every key starts a range (through PD, as ``kvdb admin split``); returns how
    many ranges now start at one of the keys."""
    from kvdb.pdclient.client import PdClient
    from placement.service import MAX_SPLITS

    done = 0
    async with PdClient(pd_endpoints, timeout=timeout, tls=tls) as pd:
        for i in range(0, len(keys), MAX_SPLITS):  # PD takes that many per call
            done += len(await pd.split_ranges(keys[i:i + MAX_SPLITS], timeout))
    return done


# ------------------------------------------------------------------------------ split under load
@dataclass(frozen=True)
class Op:
    start: float
    end: float
    ok: bool


def analyse(ops: list[Op], split_start: float, split_end: float, end: float) -> dict[str, Any]:
    """Throughput and latency before [0, split_start), during and after [split_end, end); stalls
    and recovery. Times are seconds from the start of the measurement."""

    def phase(lo: float, hi: float) -> dict[str, Any]:
        done = [op for op in ops if lo <= op.end < hi]
        h = Histogram()
        for op in done:
            if op.ok:
                h.record(int((op.end - op.start) * 1_000_000))
        span = hi - lo
        return {"seconds": round(span, 3), "throughput": round(h.count / span, 1) if span > 0 else 0.0,
                "errors": sum(not op.ok for op in done),
                "p99_ms": round(h.percentile(99) / 1000, 2) if h.count else None,
                "max_ms": round(h.max / 1000, 2) if h.count else None}

    before = phase(0.0, split_start)
    windows = []
    t = 0.0
    while t + WINDOW <= end + 1e-9:
        windows.append((t, sum(t <= op.end < t + WINDOW and op.ok for op in ops) / WINDOW))
        t += WINDOW
    def back_to(level: float) -> tuple[float, bool]:
        """Seconds from the split's start to the first of ``STEADY`` windows in a row that all
        reach RECOVERED * level (a later dip is noise, not the split); False if that never came."""
        after = [(w, rate >= RECOVERED * level) for w, rate in windows if w + WINDOW > split_start]
        for i in range(len(after) - STEADY + 1):
            if all(ok for _, ok in after[i:i + STEADY]):
                return max(0.0, after[i][0] - split_start), True
        return round(end - split_start, 3), False

    recovery, recovered = back_to(before["throughput"])
    # Many ranges may run slower than one for good (more Raft groups per write batch): how long the
    # split itself disturbed the writes is measured against the level they settled at.
    late = sorted(rate for w, rate in windows if w >= split_end + (end - split_end) / 2)
    settled_level = late[len(late) // 2] if late else 0.0
    settle, _ = back_to(settled_level)
    completions = sorted(op.end for op in ops if op.ok)
    gaps = [b - a for a, b in zip(completions, completions[1:], strict=False) if a >= split_start - WINDOW]
    return {
        "before": before,
        "during": phase(split_start, split_end),
        "after": phase(split_end, end),
        "split_seconds": round(split_end - split_start, 3),
        "max_latency_ms": round(max((op.end - op.start for op in ops), default=0.0) * 1000, 2),
        "max_gap_ms": round(max(gaps, default=0.0) * 1000, 2),
        "recovery_seconds": round(recovery, 2),
        "recovered": recovered,
        "settled_throughput": round(settled_level, 1),
        "settle_seconds": round(settle, 2),
        "timeline": [[round(w, 2), round(rate, 1)] for w, rate in windows],
    }


async def split_under_load(pd_endpoints: str, ranges: int = 64, key_count: int = 20_000,
                           value_size: int = 100, concurrency: int = 32, before: float = 5.0,
                           after: float = 10.0, seed: int = 0, tls: TlsFiles | None = None
                           ) -> dict[str, Any]:
    """Write uniformly over ``key_count`` keys of one range; split it into ``ranges`` after
    ``before`` seconds; keep writing ``after`` seconds past the split's answer."""
    import kvdb.aio
    from kvdb.pdclient.client import PdClient

    keys = split_keys(key_count, ranges)
    rng = random.Random(seed)
    value = rng.randbytes(value_size)
    ops: list[Op] = []
    stop = asyncio.Event()
    async with await kvdb.aio.connect(pd_endpoints, timeout=10.0, tls=tls) as client, \
            PdClient(pd_endpoints, timeout=120.0, tls=tls) as pd:
        await client.put(key_of(0), value)  # connections and range cache, before the clock starts
        t0 = time.perf_counter()

        async def writer() -> None:
            while not stop.is_set():
                key = key_of(int(rng.random() * key_count))
                began = time.perf_counter() - t0
                try:
                    await client.put(key, value)
                    ok = True
                except Exception:  # counted, not fatal: the run measures what clients saw
                    ok = False
                ops.append(Op(began, time.perf_counter() - t0, ok))

        writers = [asyncio.create_task(writer()) for _ in range(concurrency)]
        try:
            await asyncio.sleep(before)
            split_start = time.perf_counter() - t0
            infos = await pd.split_ranges(keys, 120.0)
            split_end = time.perf_counter() - t0
            await asyncio.sleep(after)
        finally:
            stop.set()
            await asyncio.gather(*writers)
        end = time.perf_counter() - t0
    result = analyse(ops, split_start, split_end, end)
    result.update(ranges=ranges, new_ranges=len(infos), keys=key_count, value_size=value_size,
                  concurrency=concurrency, concurrency_total=concurrency, processes=1)
    return result


def summary(result: dict[str, Any]) -> str:
    b, d, a = result["before"], result["during"], result["after"]
    return (f"split into {result['ranges']} in {result['split_seconds']:.2f}s: "
            f"before {b['throughput']:,.0f} ops/s p99 {b['p99_ms']} ms; "
            f"during {d['throughput']:,.0f} ops/s p99 {d['p99_ms']} ms; "
            f"after {a['throughput']:,.0f} ops/s p99 {a['p99_ms']} ms; "
            f"max latency {result['max_latency_ms']} ms, max gap {result['max_gap_ms']} ms; "
            + (f"back to 80% of before in {result['recovery_seconds']}s" if result["recovered"]
               else "never back to 80% of before")
            + f"; settled at {result['settled_throughput']:,.0f} ops/s after {result['settle_seconds']}s")

"""Runs a sweep of simulator seeds on every core the machine gives this process.

A simulation is pure Python in one thread, so a sweep in the test process used one of CI's two
cores while the other sat idle: the seed sweeps were about 200 s of a 930 s suite. Seeds are
independent and deterministic, so running them in worker processes changes nothing but the
wall time. Workers are spawned (not forked: the test process may hold gRPC threads and locks),
so they run the code as imported, never a test's monkeypatch; sweeps of a planted bug stay in
the test process.
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Protocol

FAILURE_LINES = 3
"""A failure's first lines: what failed, its repro command, its swarm profile."""


class SweepStats(Protocol):
    def add(self, other: Any) -> None: ...


class Simulation(Protocol):
    def __init__(self, options: Any) -> None: ...

    def run(self) -> Any: ...


_pool: ProcessPoolExecutor | None = None


def _workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _executor() -> ProcessPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ProcessPoolExecutor(_workers(), mp_context=multiprocessing.get_context("spawn"))
        atexit.register(_pool.shutdown, cancel_futures=True)
    return _pool


def _run_one(simulation: type[Simulation], failure: type[Exception], options: Any) -> tuple[Any, str | None]:
    try:
        return simulation(options).run(), None
    except failure as exc:
        return None, "\n".join(str(exc).splitlines()[:FAILURE_LINES])


def sweep(simulation: type[Simulation], failure: type[Exception], runs: Iterable[Any],
          totals: SweepStats) -> list[str]:
    """Runs ``simulation(options).run()`` for every options of ``runs``, adds each run's stats to
    ``totals`` and returns the ``failure`` messages (any other exception propagates)."""
    runs = list(runs)
    if _workers() == 1:
        results = [_run_one(simulation, failure, options) for options in runs]
    else:
        pool = _executor()
        results = [f.result() for f in [pool.submit(_run_one, simulation, failure, o) for o in runs]]
    failures = []
    for stats, message in results:
        if message is None:
            totals.add(stats)
        else:
            failures.append(message)
    return failures

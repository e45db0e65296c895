"""CPU time per process while a benchmark runs, from ``/proc`` (Linux): what each process of the
cluster and the client spends per operation.

A throughput figure alone does not say which process to make cheaper, nor whether the machine
had cores to spare: on the 2-core development machines a write costs ~140 us of CPU summed over
the leader's store, both followers' stores and the client (``docs/performance.md``). A sampler
thread reads every watched process's user and system time a few times a second; the report takes
the rates over a window inside the measured period and divides them by the throughput.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
INTERVAL = 0.2
"""Seconds between two samples."""


def _stat(pid: int | str, proc: Path) -> list[str] | None:
    """``/proc/PID/stat`` from its third field (state) on, or None if the process is gone."""
    try:
        text = (proc / str(pid) / "stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()  # the command name may hold spaces and parentheses


def process_cpu(pid: int, proc: Path = Path("/proc")) -> tuple[float, float] | None:
    """Seconds of user and system CPU ``pid`` has used, or None if it is gone (or no ``/proc``)."""
    fields = _stat(pid, proc)
    if fields is None:
        return None
    return int(fields[11]) / CLOCK_TICKS, int(fields[12]) / CLOCK_TICKS  # stat fields 14 and 15


def machine_idle(proc: Path = Path("/proc")) -> tuple[float, float] | None:
    """(idle + iowait ticks, all ticks) since boot over every core, or None without ``/proc/stat``."""
    try:
        first = (proc / "stat").read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    ticks = [int(v) for v in first[1:9]]  # user nice system idle iowait irq softirq steal
    return ticks[3] + ticks[4], sum(ticks)


@dataclass(frozen=True)
class Sample:
    at: float
    cpu: dict[str, tuple[float, float]]
    """Label -> (user, system) seconds, for the processes alive then."""
    idle: tuple[float, float] | None


@dataclass(frozen=True)
class Usage:
    label: str
    user: float
    system: float
    """Cores (CPU seconds per second) over the window."""

    @property
    def cores(self) -> float:
        return self.user + self.system


class CpuSampler:
    """Samples ``watch()`` (label -> pid, asked again at every sample, so processes may come and
    go) every ``INTERVAL`` seconds on a thread, from ``start`` to ``stop``."""

    def __init__(self, watch: Callable[[], dict[str, list[int]]], proc: Path = Path("/proc")) -> None:
        self.watch = watch
        self.proc = proc
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def sample(self) -> None:
        cpu: dict[str, tuple[float, float]] = {}
        for label, pids in self.watch().items():
            readings = [r for pid in pids if (r := process_cpu(pid, self.proc)) is not None]
            if readings:
                cpu[label] = (sum(r[0] for r in readings), sum(r[1] for r in readings))
        self.samples.append(Sample(time.monotonic(), cpu, machine_idle(self.proc)))

    def _run(self) -> None:
        while True:
            self.sample()
            if self._stop.wait(INTERVAL):
                self.sample()
                return

    def usage(self, start: float, end: float) -> tuple[list[Usage], float | None, float]:
        """Cores per label between the first sample at or after ``start`` and the last at or before
        ``end`` (labels present in both), the machine's idle share then (None without ``/proc/stat``)
        and the window's length; ValueError if fewer than two samples fall in it."""
        inside = [s for s in self.samples if start <= s.at <= end]
        if len(inside) < 2:
            raise ValueError("fewer than two CPU samples in the measured window")
        a, b = inside[0], inside[-1]
        span = b.at - a.at
        rows = [Usage(label, (b.cpu[label][0] - a.cpu[label][0]) / span,
                      (b.cpu[label][1] - a.cpu[label][1]) / span)
                for label in b.cpu if label in a.cpu]
        idle = None
        if a.idle is not None and b.idle is not None and b.idle[1] > a.idle[1]:
            idle = (b.idle[0] - a.idle[0]) / (b.idle[1] - a.idle[1])
        return rows, idle, span


def usage_table(rows: list[Usage], ops_per_second: float, idle: float | None, span: float) -> str:
    """The per-process table: cores, user and system, and microseconds of CPU per operation."""
    lines = [f"CPU over {span:.1f} s of the measured period at {ops_per_second:,.0f} ops/s (from /proc):",
             f"{'process':<24} {'cores':>6} {'user':>6} {'system':>7} {'us/op':>8}"]
    per_op = 1e6 / ops_per_second if ops_per_second > 0 else 0.0
    for r in [*rows, Usage("all", sum(r.user for r in rows), sum(r.system for r in rows))]:
        lines.append(f"{r.label:<24} {r.cores:6.2f} {r.user:6.2f} {r.system:7.2f} {r.cores * per_op:8.1f}")
    if idle is not None:
        lines.append(f"machine idle (incl. I/O wait): {100 * idle:.0f} % of {os.cpu_count()} cores")
    return "\n".join(lines) + "\n"


def children(pid: int, proc: Path = Path("/proc")) -> list[int]:
    """The processes whose parent is ``pid``."""
    return [int(entry.name) for entry in proc.iterdir() if entry.name.isdigit()
            and (fields := _stat(entry.name, proc)) is not None and int(fields[1]) == pid]

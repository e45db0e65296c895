"""Simulated time and the event queue: the only clock and the only source of ordering in a run.

Everything that happens in a simulation is an event popped from one heap keyed by
``(time, seq)``. ``seq`` is a counter, so events scheduled for the same instant run in the order
they were scheduled and a run is a pure function of its seed.
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from collections.abc import Callable
from typing import Any

TICK_US = 10_000
"""One Raft tick of simulated time, in microseconds (the unit of the clock)."""

TRACE_TAIL = 60
"""How many of the latest trace lines a failure report carries."""

MAX_EVENTS = 10_000_000
"""Events one run may take: some 40 times a long store-simulator run (a 5-store run takes about
250,000; a Raft-simulator run some 30,000). A run that needs more is
livelocked (e.g. two stores trading messages without simulated time moving) and fails instead
of hanging a soak or a planted-bug search."""


class EventBudgetExhausted(AssertionError):
    """The run took ``MAX_EVENTS`` events: a livelock, reported like any failed check."""


class World:
    """Clock, event queue, the world's random generator and the event trace."""

    def __init__(self, seed: int, verbose: bool = False) -> None:
        self.rng = random.Random(seed)
        self.now = 0
        self.verbose = verbose
        self._queue: list[tuple[int, int, Callable[..., Any], tuple[Any, ...]]] = []
        self._seq = 0
        self.events = 0
        # Unformatted (time, format, args): formatting only happens on failure or with --verbose.
        self._recent: deque[tuple[int, str, tuple[Any, ...]]] = deque(maxlen=TRACE_TAIL)
        # Called after every event, for invariants that must hold at every instant (a check only
        # every tick could miss a window shorter than a tick).
        self.after_event: Callable[[], None] | None = None

    def child_rng(self) -> random.Random:
        """A new generator seeded from the world's, e.g. for a node's ``Config.rng``."""
        return random.Random(self.rng.getrandbits(64))

    def after(self, delay_us: int, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` ``delay_us`` microseconds from now (0 = after what is already due now)."""
        heapq.heappush(self._queue, (self.now + delay_us, self._seq, fn, args))
        self._seq += 1

    def run_until(self, end_us: int, stop: Callable[[], bool] | None = None) -> None:
        """Run events due up to ``end_us``, or until ``stop()`` becomes true after some event."""
        queue = self._queue
        after_event = self.after_event
        while queue and queue[0][0] <= end_us:
            when, _, fn, args = heapq.heappop(queue)
            self.now = when
            self.events += 1
            if self.events > MAX_EVENTS:
                raise EventBudgetExhausted(f"{MAX_EVENTS} events by {when / 1000:.3f}ms: livelocked?")
            fn(*args)
            if after_event is not None:
                after_event()
            if stop is not None and stop():
                return
        self.now = max(self.now, end_us)

    def trace(self, fmt: str, *args: Any) -> None:
        """Record one line of the event trace (``fmt % args``), printed at once with ``verbose``."""
        self._recent.append((self.now, fmt, args))
        if self.verbose:
            print(_format(self.now, fmt, args))

    def recent_trace(self) -> str:
        """The last ``TRACE_TAIL`` trace lines, for failure reports."""
        return "\n".join(_format(now, fmt, args) for now, fmt, args in self._recent)


def _format(now: int, fmt: str, args: tuple[Any, ...]) -> str:
    return f"{now / 1000:10.3f}ms  " + (fmt % args if args else fmt)

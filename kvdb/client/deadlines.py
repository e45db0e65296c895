"""Deadlines for many short waits, kept by one timer.

A reading client with 64 calls in flight spent a third of its own CPU on ``asyncio.timeout``
(~7 µs of ~21 µs per get, measured with ``bench/micro/test_client_bench.py``'s answering stream
under uvloop): each call scheduled and cancelled a timer handle. Here a deadline is one small
object appended to a queue of waits of the same length, so the queue is in deadline order; one
timer, armed at the earliest deadline still pending, fires when something expires, and waits that
finish in order leave the queue at once. Expiry is exact (the timer fires at the deadline), not
rounded up to a sweep period.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable


class Deadline:
    """One wait's deadline; ``on_expiry`` runs at ``at`` (loop time) unless ``finish`` came first."""

    __slots__ = ("at", "on_expiry", "finished", "expired", "_queue")

    def __init__(self, at: float, on_expiry: Callable[[], object], queue: deque[Deadline]) -> None:
        self.at = at
        self.on_expiry = on_expiry
        self.finished = False
        self.expired = False
        self._queue = queue

    def finish(self) -> None:
        """The wait ended: it can no longer expire."""
        self.finished = True
        queue = self._queue
        while queue and queue[0].finished:
            queue.popleft()


class DeadlineQueue:
    def __init__(self) -> None:
        self._queues: dict[float, deque[Deadline]] = {}
        """Per wait length, in deadline order (a wait of one length that starts later ends later)."""
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False

    def add(self, delay: float, on_expiry: Callable[[], object]) -> Deadline:
        """A deadline ``delay`` seconds from now; ``on_expiry`` runs on the loop when it passes."""
        loop = asyncio.get_running_loop()
        queue = self._queues.get(delay)
        if queue is None:
            queue = self._queues[delay] = deque()
        deadline = Deadline(loop.time() + delay, on_expiry, queue)
        queue.append(deadline)
        if self._timer is None or deadline.at < self._timer.when():
            self._arm(loop, deadline.at)
        return deadline

    def close(self) -> None:
        """Stops the timer: nothing added so far expires any more."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._queues.clear()

    def _arm(self, loop: asyncio.AbstractEventLoop, at: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = loop.call_at(at, self._expire)

    def _expire(self) -> None:
        self._timer = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        earliest = None
        for delay, queue in list(self._queues.items()):
            while queue and (queue[0].finished or queue[0].at <= now):
                deadline = queue.popleft()
                if not deadline.finished:
                    deadline.finished = deadline.expired = True
                    deadline.on_expiry()
            if not queue:
                del self._queues[delay]
            elif earliest is None or queue[0].at < earliest:
                earliest = queue[0].at
        if earliest is not None and not self._closed:
            self._arm(loop, earliest)

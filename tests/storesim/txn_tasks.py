"""Sequential code in simulated time: generator tasks for the transaction clients.

A transaction is a long conversation (timestamp, reads, lock resolution, prewrites to several
ranges at once, commit). Written as callbacks it would be unreadable, and the production client's
asyncio cannot run in simulated time; so each step of a client is a generator that yields an
*awaitable* (a function taking a ``resume`` callback) and gets the result back from ``yield``.
``yield from`` composes steps; ``gather`` runs several at once (a prewrite to every range).

A client crash is a new incarnation: every task of the old one stops at its next resume, which is
exactly a process that stopped in the middle of whatever it was doing.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any, TypeVar

from tests.sim.world import World

T = TypeVar("T")
Awaitable = Callable[[Callable[[Any], None]], None]
Proc = Generator[Awaitable, Any, T]


class Owner:
    """What a task belongs to: it runs while the owner's incarnation is the one it started in."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.incarnation = 0
        self.running = 0
        """Tasks started and not yet finished (nor killed by a crash)."""

    def crash(self) -> None:
        self.incarnation += 1
        self.running = 0

    def spawn(self, proc: Proc[T], done: Callable[[T], None] | None = None) -> None:
        """Run ``proc`` from now on; ``done`` gets its return value (never, if the owner crashes)."""
        _Task(self, proc, done).step(None)

    def sleep(self, delay_us: int) -> Awaitable:
        return lambda resume: self.world.after(delay_us, resume, None)

    def gather(self, procs: list[Proc[Any]]) -> Awaitable:
        """Run ``procs`` at once; resume with their results, in order, once all returned."""

        def start(resume: Callable[[Any], None]) -> None:
            results: list[Any] = [None] * len(procs)
            left = [len(procs)]
            if not procs:
                self.world.after(0, resume, results)
                return

            def one_done(i: int, value: Any) -> None:
                results[i] = value
                left[0] -= 1
                if left[0] == 0:
                    resume(results)

            for i, proc in enumerate(procs):
                self.spawn(proc, lambda value, i=i: one_done(i, value))

        return start


class _Task:
    __slots__ = ("owner", "proc", "done", "incarnation")

    def __init__(self, owner: Owner, proc: Proc[Any], done: Callable[[Any], None] | None) -> None:
        self.owner = owner
        self.proc = proc
        self.done = done
        self.incarnation = owner.incarnation
        owner.running += 1

    def step(self, value: Any) -> None:
        if self.incarnation != self.owner.incarnation:
            return  # the owner crashed: this task died with it
        try:
            awaitable = self.proc.send(value)
        except StopIteration as stop:
            if self.incarnation != self.owner.incarnation:
                return  # it crashed its owner on its way out
            self.owner.running -= 1
            if self.done is not None:
                self.done(stop.value)
            return
        fired = [False]

        def resume(result: Any) -> None:
            if not fired[0]:  # a timeout and a late answer may both try: the first one counts
                fired[0] = True
                self.step(result)

        awaitable(resume)

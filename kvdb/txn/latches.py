"""Latches: transactional write commands on the same keys run one at a time on a leader.

A Percolator command reads the data it decides on at apply, but its leader decides things
before proposing too (the max read timestamp it stamps, ``kvdb.txn.concurrency``), and reads
must be able to tell when a stamped prewrite is between proposal and apply. A command takes a
latch on each of its keys before it is proposed and gives them back when it is answered.

- FIFO per key and all-or-wait: a command enqueues on every one of its keys at once and holds
  its latch once it is first in every queue. Enqueueing all keys in one step gives every queue
  the same arrival order, so no two commands ever wait on each other (no deadlock), and a
  command is never overtaken by a later one on any key.
- A read that meets a key latched by a *stamped* prewrite parks (``park``) until that latch is
  released, then runs again: it will then see the prewrite's locks or its 1PC commit.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Collection, Iterable


class Latch:
    """One command's hold on its keys (sorted, distinct)."""

    __slots__ = ("keys", "held", "stamped", "_on_held", "_parked")

    def __init__(self, keys: tuple[bytes, ...], on_held: Callable[[Latch], None]) -> None:
        self.keys = keys
        self.held = False
        self.stamped = False
        """Set by the holder once it stamped a max read timestamp (async commit / 1PC prewrite)."""
        self._on_held = on_held
        self._parked: list[Callable[[], None]] = []


class Latches:
    def __init__(self) -> None:
        self._queues: dict[bytes, deque[Latch]] = {}
        self._stamped: dict[bytes, Latch] = {}
        """Key -> the held, stamped latch on it (held latches never share a key): a point read
        looks its keys up instead of walking every stamped latch."""

    def acquire(self, keys: Iterable[bytes], on_held: Callable[[Latch], None]) -> Latch:
        """Queue for ``keys``; ``on_held(latch)`` runs once they are all held (maybe at once,
        before this returns)."""
        latch = Latch(tuple(sorted(set(keys))), on_held)
        for key in latch.keys:
            self._queues.setdefault(key, deque()).append(latch)
        self._try_hold(latch)
        return latch

    def stamp(self, latch: Latch) -> None:
        """``latch``'s holder stamped its command: reads of its keys wait for its release."""
        assert latch.held, "only a held latch's command is stamped"
        latch.stamped = True
        for key in latch.keys:
            self._stamped[key] = latch

    def release(self, latch: Latch) -> None:
        """The command was answered (or will never be): give the keys to the next in line and
        run the reads parked behind it. Releasing twice does nothing."""
        if not latch.keys:
            return
        keys, latch.keys = latch.keys, ()
        if latch.stamped:
            for key in keys:
                del self._stamped[key]
        waiting: list[Latch] = []
        for key in keys:
            queue = self._queues[key]
            queue.remove(latch)  # held: at the front; given up while waiting: anywhere
            if queue:
                waiting.append(queue[0])
            else:
                del self._queues[key]
        parked, latch._parked = latch._parked, []
        for nxt in waiting:
            self._try_hold(nxt)
        for read in parked:
            read()

    def blocking_read(self, keys: Collection[bytes] = (),
                      bounds: tuple[bytes, bytes] | None = None) -> Latch | None:
        """A held, stamped latch on one of ``keys`` or on a key in ``bounds`` = [start, end)."""
        stamped = self._stamped
        if not stamped:
            return None
        for key in keys:
            latch = stamped.get(key)
            if latch is not None:
                return latch
        if bounds is not None:
            start, end = bounds
            for key, latch in stamped.items():
                if start <= key < end:
                    return latch
        return None

    def park(self, latch: Latch, read: Callable[[], None]) -> None:
        """Run ``read()`` once ``latch`` is released."""
        latch._parked.append(read)

    def __len__(self) -> int:
        """Keys latched or waited for (tests: nothing leaks)."""
        return len(self._queues)

    def _try_hold(self, latch: Latch) -> None:
        if latch.held:
            return
        if all(self._queues[key][0] is latch for key in latch.keys):
            latch.held = True
            latch._on_held(latch)

"""Timestamps and ids handed out from windows persisted ahead of use.

The PD leader persists an upper bound through Raft before it hands out anything below it, and a
new leader starts at the persisted bound. So nothing is handed out twice across leader changes,
at the price of skipping the unused rest of a window. A leader also hands out nothing unless it
holds its lease (checked by the caller), so an old leader that has not yet noticed a new one
cannot hand out a smaller timestamp after the new leader's first.

Timestamps are ``physical_ms << 18 | logical``; when the logical part of a millisecond runs
out, the oracle waits for the next millisecond.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

LOGICAL_BITS = 18
MAX_LOGICAL = 1 << LOGICAL_BITS

Persist = Callable[[int], Awaitable[None]]
"""Replicates a new upper bound; returns once it is committed and applied."""


def compose_ts(physical_ms: int, logical: int) -> int:
    return (physical_ms << LOGICAL_BITS) | logical


class TimestampOracle:
    def __init__(self, clock_ms: Callable[[], int], persist: Persist, window_ms: int = 3000) -> None:
        self._clock_ms = clock_ms
        self._persist = persist
        self._window_ms = window_ms
        self._physical = 0
        self._logical = 0
        self._upper = 0
        self._lock = asyncio.Lock()

    async def start(self, persisted_upper: int) -> None:
        """Begin a leadership: above everything any earlier leader may have handed out."""
        self._physical = max(self._clock_ms(), persisted_upper)
        self._logical = 0
        self._upper = 0
        await self._extend()

    async def _extend(self) -> None:
        upper = max(self._physical, self._clock_ms()) + self._window_ms
        await self._persist(upper)
        self._upper = max(self._upper, upper)

    async def get(self, count: int) -> int:
        """``count`` consecutive stamps sharing one physical part; returns the last one."""
        if not 0 < count < MAX_LOGICAL:
            raise ValueError(f"count must be in 1..{MAX_LOGICAL - 1}, got {count}")
        async with self._lock:
            while True:
                now = self._clock_ms()
                if now > self._physical:
                    self._physical, self._logical = now, 0
                if self._logical + count >= MAX_LOGICAL:
                    await asyncio.sleep(0.001)  # the logical space of this millisecond is used up
                    continue
                if self._physical >= self._upper:
                    await self._extend()
                    continue
                self._logical += count
                ts = compose_ts(self._physical, self._logical - 1)
                if self._upper - self._physical < self._window_ms // 3:
                    await self._extend()  # renew ahead of time; rarely, so the wait is cheap
                return ts


class IdsExhausted(Exception):
    """No id can be taken without persisting a new window first: stop, and ``reserve`` before the
    next try."""


class IdAllocator:
    """Ids in one increasing sequence, whichever way they are taken.

    Peer ids must only grow (a store that removed peer 45 of a range drops messages for any peer
    of that range numbered 45 or less, and takes a message for a higher one as proof its own
    replica is stale), so there is one counter: ``alloc`` awaits a new window when needed, and
    ``take`` hands out the next id synchronously from the window already persisted (for the
    scheduling code, which does not await). A pool of ids fetched ahead would break the order:
    ids allocated directly meanwhile (a split's) would be higher than the pooled ones handed out
    after them.
    """

    def __init__(self, persist: Persist, step: int = 1000) -> None:
        self._persist = persist
        self._step = step
        self._next = 0
        self._upper = 0
        self._lock = asyncio.Lock()

    def start(self, persisted_upper: int) -> None:
        """Begin a leadership: ids below the persisted bound may have been handed out."""
        self._next = self._upper = max(persisted_upper, 1)

    async def alloc(self) -> int:
        async with self._lock:
            if self._next >= self._upper:
                upper = self._next + self._step
                await self._persist(upper)
                self._upper = upper
            value = self._next
            self._next += 1
            return value

    def take(self) -> int:
        """The next id, without I/O; raises ``IdsExhausted`` when the persisted window is used up."""
        if self._next >= self._upper:
            raise IdsExhausted("no id left in the persisted window until the next reserve")
        value = self._next
        self._next += 1
        return value

    async def reserve(self, count: int) -> None:
        """Make sure ``count`` ids can be taken without I/O (persists a further window if needed)."""
        async with self._lock:
            if self._upper - self._next < count:
                upper = self._next + max(self._step, count)
                await self._persist(upper)
                self._upper = upper

"""Clocks the store reads time from: the real monotonic clock, and one tests can skew.

Leases are only as safe as the clock they are measured with, so the store reads time through
this interface alone: the simulator injects its virtual clock, and failpoints shift or speed up
a real store's clock to test that drift within ``max_clock_drift`` stays safe.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Monotonic seconds; only differences mean anything."""
        ...


def wall_ms(clock: Clock) -> int:
    """Wall-clock milliseconds from ``clock``, for the log time a leader stamps on commands
    (``kvdb.store.sessions``): comparable across stores, unlike ``now``. A clock without a
    ``wall_ms`` (the simulator's, the unit tests') stamps its ``now`` instead."""
    read = getattr(clock, "wall_ms", None)
    return read() if read is not None else int(clock.now() * 1000)


class MonotonicClock:
    def now(self) -> float:
        return time.monotonic()

    def wall_ms(self) -> int:
        return time.time_ns() // 1_000_000


class SkewedClock:
    """``base`` shifted by an offset and running at a rate; both can change while it runs.

    Changing the rate keeps the clock continuous (it never jumps at the change), so only an
    explicit offset makes it jump, as a misbehaving clock source would.
    """

    def __init__(self, base: Clock) -> None:
        self._base = base
        self._anchor_base = base.now()
        self._anchor_value = self._anchor_base
        self._rate = 1.0

    def now(self) -> float:
        return self._anchor_value + (self._base.now() - self._anchor_base) * self._rate

    def wall_ms(self) -> int:
        """The base's wall clock, skewed as ``now`` is."""
        return wall_ms(self._base) + int((self.now() - self._base.now()) * 1000)

    @property
    def rate(self) -> float:
        return self._rate

    def set_rate(self, rate: float) -> None:
        if rate <= 0:
            raise ValueError(f"clock rate must be positive, got {rate}")
        self._anchor_value = self.now()
        self._anchor_base = self._base.now()
        self._rate = rate

    def shift(self, seconds: float) -> None:
        self._anchor_value += seconds

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


class MonotonicClock:
    def now(self) -> float:
        return time.monotonic()


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

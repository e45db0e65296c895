"""The TSO and id windows: nothing handed out twice, above every earlier leader's window."""

from __future__ import annotations

import asyncio

import pytest

from placement.windows import LOGICAL_BITS, MAX_LOGICAL, IdAllocator, IdsExhausted, TimestampOracle


class FakeClock:
    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


class Disk:
    """Records the persisted upper bounds, like the replicated window key."""

    def __init__(self) -> None:
        self.saved: list[int] = []

    async def persist(self, upper: int) -> None:
        self.saved.append(upper)

    @property
    def upper(self) -> int:
        return self.saved[-1] if self.saved else 0


def run(coro: object) -> object:
    return asyncio.run(coro)


def test_stamps_increase_and_stay_below_the_persisted_bound() -> None:
    async def scenario() -> None:
        clock, disk = FakeClock(1_000), Disk()
        tso = TimestampOracle(clock, disk.persist, window_ms=3_000)
        await tso.start(0)
        last = 0
        for step in range(200):
            clock.ms += step % 3  # sometimes the clock stands still
            ts = await tso.get(1 + step % 5)
            assert ts > last
            assert ts >> LOGICAL_BITS < disk.upper
            last = ts

    run(scenario())


def test_a_new_leader_starts_above_the_old_window_even_with_a_clock_behind() -> None:
    async def scenario() -> None:
        disk = Disk()
        old = TimestampOracle(FakeClock(50_000), disk.persist, window_ms=3_000)
        await old.start(0)
        old_last = await old.get(10)
        new = TimestampOracle(FakeClock(10_000), disk.persist, window_ms=3_000)  # clock far behind
        await new.start(disk.upper)
        assert await new.get(1) > old_last

    run(scenario())


def test_logical_overflow_waits_for_the_next_millisecond() -> None:
    async def scenario() -> None:
        clock, disk = FakeClock(7_000), Disk()
        tso = TimestampOracle(clock, disk.persist)
        await tso.start(0)
        first = await tso.get(MAX_LOGICAL - 10)
        waiter = asyncio.ensure_future(tso.get(20))
        for _ in range(20):
            await asyncio.sleep(0.001)
        assert not waiter.done()  # no room left in this millisecond
        clock.ms += 1
        ts = await asyncio.wait_for(waiter, 5)
        assert ts > first and ts >> LOGICAL_BITS == 7_001

    run(scenario())


def test_count_is_validated() -> None:
    async def scenario() -> None:
        tso = TimestampOracle(FakeClock(1), Disk().persist)
        await tso.start(0)
        for bad in (0, MAX_LOGICAL):
            with pytest.raises(ValueError):
                await tso.get(bad)

    run(scenario())


def test_ids_are_never_reused_across_leaders() -> None:
    async def scenario() -> None:
        disk = Disk()
        first = IdAllocator(disk.persist, step=10)
        first.start(disk.upper)
        handed = [await first.alloc() for _ in range(15)]
        second = IdAllocator(disk.persist, step=10)
        second.start(disk.upper)
        later = [await second.alloc() for _ in range(5)]
        assert len(set(handed)) == 15 and min(later) > max(handed)
        assert all(i > 0 for i in handed)

    run(scenario())


def test_ids_taken_without_io_and_allocated_directly_form_one_increasing_sequence() -> None:
    """Peer ids must only grow: the scheduling code's synchronous takes and a split's allocations,
    interleaved, never hand out an id below one already handed out."""

    async def scenario() -> None:
        disk = Disk()
        ids = IdAllocator(disk.persist, step=4)
        ids.start(disk.upper)
        with pytest.raises(IdsExhausted):
            ids.take()  # nothing reserved yet: a take never does I/O
        await ids.reserve(3)
        handed = [ids.take(), await ids.alloc(), ids.take()]
        handed += [await ids.alloc() for _ in range(3)]  # beyond the window: persists a new one
        await ids.reserve(2)
        handed += [ids.take(), ids.take()]
        assert handed == sorted(handed) and len(set(handed)) == len(handed)
        assert max(handed) < disk.upper  # nothing handed out beyond what is persisted

    run(scenario())

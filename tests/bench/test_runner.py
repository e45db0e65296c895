"""The runner's measuring loop against an in-memory driver: op counts, warm-up, errors by class."""

from __future__ import annotations

import asyncio
import queue

import pytest

from bench.drivers import open_driver
from bench.runner import BenchConfig, BenchError, _measure


class Flaky(Exception):
    pass


class MemoryDriver:
    """A dict behind the Driver interface; every ``fail_every``-th call raises Flaky."""

    name = "memory"

    def __init__(self, fail_every: int = 0) -> None:
        self.data: dict[bytes, bytes] = {}
        self.calls = 0
        self.fail_every = fail_every

    async def _call(self) -> None:
        self.calls += 1
        await asyncio.sleep(0)
        if self.fail_every and self.calls % self.fail_every == 0:
            raise Flaky("injected")

    async def put(self, key: bytes, value: bytes) -> None:
        await self._call()
        self.data[key] = value

    async def get(self, key: bytes) -> bytes | None:
        await self._call()
        return self.data.get(key)

    async def scan(self, start: bytes, limit: int) -> int:
        await self._call()
        return min(limit, sum(k >= start for k in self.data))

    async def close(self) -> None:
        pass


def measure(driver: MemoryDriver, **kwargs: object) -> tuple:
    config = BenchConfig(target="kvdb", addresses="-", **kwargs)
    config.validate()
    return asyncio.run(_measure(driver, config, 0, b"v" * 10, queue.Queue()))


def test_op_count_is_exact_and_errors_count_by_class() -> None:
    driver = MemoryDriver(fail_every=10)
    tally, elapsed = measure(driver, workload="ycsb-f", ops=1000, warmup=0, concurrency=8, key_count=100)
    assert tally.done + tally.failed == 1000
    assert tally.errors == {"Flaky": tally.failed} and 50 < tally.failed < 200
    assert set(tally.histograms) == {"read", "rmw"}
    assert sum(h.count for h in tally.histograms.values()) == tally.done
    assert elapsed > 0


def test_op_count_is_split_between_processes() -> None:
    config = BenchConfig(workload="write", target="kvdb", addresses="-", ops=3, warmup=0, processes=2)
    quotas = [asyncio.run(_measure(MemoryDriver(), config, slot, b"v", queue.Queue()))[0].done
              for slot in range(2)]
    assert quotas == [2, 1]
    config.ops = 1  # a process with no share of the ops does none, rather than run forever
    assert asyncio.run(_measure(MemoryDriver(), config, 1, b"v", queue.Queue()))[0].done == 0


def test_warmup_ops_are_not_recorded() -> None:
    driver = MemoryDriver()
    tally, elapsed = measure(driver, workload="write", duration=0.2, warmup=0.2, concurrency=4)
    assert 0 < tally.done < driver.calls  # the calls made during the warm-up are not in the tally
    assert 0.2 <= elapsed < 1.0


def test_bad_configs_and_targets_are_refused() -> None:
    for bad in ({"workload": "ycsb-z"}, {"target": "redis"}, {"concurrency": 0}, {"duration": 0},
                {"addresses": ""}):
        config = BenchConfig(**{"workload": "write", "target": "kvdb", "addresses": "-", **bad})
        with pytest.raises(BenchError):
            config.validate()
    with pytest.raises(ValueError, match="redis"):
        asyncio.run(open_driver("redis", "127.0.0.1:1"))


class SlowDriver(MemoryDriver):
    """Every call takes ``service`` seconds: a target slower than the schedule asks."""

    def __init__(self, service: float) -> None:
        super().__init__()
        self.service = service

    async def _call(self) -> None:
        self.calls += 1
        await asyncio.sleep(self.service)


def test_open_loop_counts_latency_from_the_intended_start() -> None:
    """One request in flight, 20 ms each, 200 scheduled per second: closed loop would report ~20 ms;
    open loop charges each request the time it waited behind the previous ones."""
    service = 0.02
    tally, _ = measure(SlowDriver(service), workload="write", duration=0.3, warmup=0, concurrency=1,
                       rate=200)
    h = tally.histograms["update"]
    assert h.count == tally.done > 2
    assert h.percentile(99.0) > 3 * service * 1_000_000  # the 4th request already waited 45 ms
    # 0.3 s at 200/s, every slot sent or counted as missed (the slot on the window's edge falls either
    # side by float rounding)
    assert tally.missed > 0 and tally.done + tally.missed in (60, 61)


def test_open_loop_sends_the_schedule_and_nothing_more() -> None:
    tally, _ = measure(MemoryDriver(), workload="write", duration=0.2, warmup=0, concurrency=4, rate=500)
    assert tally.done + tally.failed + tally.missed in (100, 101)  # the slots in [0, 0.2 s)


def test_open_loop_behind_schedule_measures_the_backlog_sent_in_the_window() -> None:
    """Far behind from the warm-up on: what the window sends is the warm-up's backlog, charged from
    its intended start; nothing sent is not recorded as nothing waited."""
    tally, _ = measure(SlowDriver(0.02), workload="write", duration=0.2, warmup=0.2, concurrency=1, rate=1000)
    assert tally.done > 0 and tally.missed > 300  # 400 due, ~20 sent
    assert tally.histograms["update"].percentile(50.0) > 200_000  # sent in the window, due before it


def test_open_loop_processes_share_the_total_rate() -> None:
    config = BenchConfig(workload="write", target="kvdb", addresses="-", duration=0.2, warmup=0,
                         processes=2, concurrency=2, rate=100)
    sent = [asyncio.run(_measure(MemoryDriver(), config, slot, b"v", queue.Queue()))[0]
            for slot in range(2)]
    assert all(t.done + t.missed in (10, 11) for t in sent)  # 20 slots in 0.2 s, half each


def test_concurrency_is_the_total_over_processes() -> None:
    with pytest.raises(BenchError, match="total in flight"):
        BenchConfig(workload="write", target="kvdb", addresses="-", processes=4, concurrency=2).validate()
    with pytest.raises(BenchError, match="rate"):
        BenchConfig(workload="write", target="kvdb", addresses="-", rate=-1).validate()

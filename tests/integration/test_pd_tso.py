"""TSO under load stays strictly increasing in real time while the PD leader dies by kill -9.

Transactions order themselves by these stamps, so a stamp handed out after another one was
received must be larger, whichever PD member handed either out: the new leader starts above the
window its predecessor persisted, and a deposed leader hands out nothing once its lease is gone.
The test drives ``get_ts`` from many tasks (so the client batches them), kills the leader in the
middle, and checks every pair of calls that did not overlap in time.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections.abc import Callable
from dataclasses import dataclass

from kvdb.pdclient.client import PdClient
from tests.integration.cluster import Cluster
from tests.integration.conftest import MakePdCluster

CALLERS = 32
LOAD_BEFORE_KILL = 2.0
"""Seconds of batched load measured before the kill."""
LOAD_AFTER_FAILOVER = 1.0
FAILOVER_DEADLINE = 15.0
SINGLE_CALLER_SECONDS = 0.5


@dataclass(frozen=True)
class Stamp:
    issued: float
    received: float
    ts: int


async def until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout:.1f}s waiting for {what}"
        await asyncio.sleep(0.01)


def real_time_violations(stamps: list[Stamp]) -> list[tuple[Stamp, int]]:
    """Calls whose stamp is not above every stamp received before they were issued.

    Sweeps the calls in issue order against a running maximum over the calls in receive order,
    so the check covers every non-overlapping pair in O(n log n).
    """
    by_receipt = sorted(stamps, key=lambda s: s.received)
    receipts = [s.received for s in by_receipt]
    running_max = []
    best = -1
    for s in by_receipt:
        best = max(best, s.ts)
        running_max.append(best)
    bad = []
    for s in stamps:
        n_before = bisect.bisect_left(receipts, s.issued)
        if n_before and running_max[n_before - 1] >= s.ts:
            bad.append((s, running_max[n_before - 1]))
    return bad


async def single_caller_rate(pd: PdClient) -> float:
    """Stamps per second of one caller alone: one round trip per stamp, the baseline batching beats."""
    n, start = 0, time.monotonic()
    while time.monotonic() - start < SINGLE_CALLER_SECONDS:
        await pd.get_ts()
        n += 1
    return n / (time.monotonic() - start)


async def tso_through_leader_kill(cluster: Cluster) -> None:
    async with PdClient(cluster.pd_endpoints, timeout=20.0) as pd:
        baseline = await single_caller_rate(pd)
        stamps: list[Stamp] = []
        running = True

        async def caller() -> None:
            while running:
                issued = time.monotonic()
                ts = await pd.get_ts()
                stamps.append(Stamp(issued, time.monotonic(), ts))

        tasks = [asyncio.create_task(caller()) for _ in range(CALLERS)]
        try:
            load_start = time.monotonic()
            await until(lambda: time.monotonic() - load_start >= LOAD_BEFORE_KILL and stamps, 30,
                        "stamps before the kill")
            before_kill = len(stamps)
            old_leader = cluster.pd_member_at(pd.leader_address)
            killed_at = time.monotonic()
            cluster.kill_pd(old_leader)
            rate = before_kill / (killed_at - load_start)

            def new_leader_stamp() -> bool:
                return any(s.issued > killed_at for s in stamps[before_kill:])

            await until(new_leader_stamp, FAILOVER_DEADLINE, "a stamp from the new leader")
            first_new = min(s.received for s in stamps[before_kill:] if s.issued > killed_at)
            failover = first_new - killed_at
            resumed = time.monotonic()
            await until(lambda: time.monotonic() - resumed >= LOAD_AFTER_FAILOVER, 30, "load after failover")
        finally:
            running = False
            results = await asyncio.gather(*tasks, return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        assert not errors, f"get_ts failed: {errors[:3]}"
        new_leader = cluster.pd_member_at(pd.leader_address)

    print(f"\nTSO: {baseline:.0f} stamps/s from 1 caller; {rate:.0f} stamps/s from {CALLERS} callers "
          f"(batched) before the kill; failover (kill -9 of member {old_leader} -> first stamp from "
          f"member {new_leader}) {failover * 1000:.0f} ms; {len(stamps)} stamps in all")
    assert new_leader != old_leader
    assert len({s.ts for s in stamps}) == len(stamps), "a timestamp was handed out twice"
    bad = real_time_violations(stamps)
    assert not bad, f"{len(bad)} stamps not above one received before they were asked for, e.g. {bad[:3]}"
    assert len(stamps) > before_kill + CALLERS, "too few stamps after the failover to show anything"


def test_tso_increases_strictly_through_a_leader_kill(make_pd_cluster: MakePdCluster) -> None:
    cluster, _ = make_pd_cluster(n_stores=0)
    asyncio.run(asyncio.wait_for(tso_through_leader_kill(cluster), 90))


def test_the_real_time_check_catches_a_stale_stamp() -> None:
    """The check itself must be able to fail: a call issued after another's answer got a smaller stamp."""
    ok = [Stamp(0.0, 1.0, 10), Stamp(0.5, 1.5, 5), Stamp(2.0, 3.0, 11)]
    assert real_time_violations(ok) == []  # overlapping calls may come back in either order
    stale = Stamp(3.5, 4.0, 11)
    assert real_time_violations([*ok, stale]) == [(stale, 11)]

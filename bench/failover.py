"""``kvdb bench failover``: how long clients go without a successful operation when a process dies.

Starts three PD members and three stores on loopback (the integration tests' harness, with the
stores' and PD's default tick), runs writers and readers through the real client and a TSO client
fetching stamps, and for each of ``--rounds`` rounds kills one victim with kill -9, restarts it
``--restart-after`` seconds later and keeps the load going ``--settle`` seconds more. The victim
is the store holding the leader of the range the load uses (``leader``), the PD leader
(``pd-leader``) or a store holding only a follower of it (``follower``).

Per round it reports the longest gap between successful operations, writes and reads apart, and
between TSO stamps: the time clients saw nothing succeed, which is what a failover costs them. A
gap is measured from the last success before the kill to the end of the round, so a round where
nothing succeeds after the kill still has a finite gap (the whole window).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.workloads import key_of
from kvdb.errors import KvdbError
from kvdb.net.tls_options import forget_tls_env
from kvdb.pb import metapb_pb2
from kvdb.pdclient.client import PdClient, PdError
from kvdb.store.config import StoreConfig

if TYPE_CHECKING:  # imported when run: the installed ``kvdb bench`` has no tests package on its path
    from tests.integration.cluster import Cluster

USAGE, FAILED = 2, 3
VICTIMS = ("leader", "pd-leader", "follower")
KEYS = 1000
"""Keys the load writes and reads: all in range 1, the one range of a fresh cluster."""
VALUE = b"v" * 100
OP_TIMEOUT = 10.0
"""Seconds one client operation may take (the client retries within it)."""
READY_TIMEOUT = 120.0
"""Seconds the cluster may take to serve with three voters, at the start and before each kill."""
POLL = 0.1


@dataclass(frozen=True)
class Round:
    """One kill -9 and restart; gaps in seconds."""

    victim: str
    killed: str
    write_gap: float
    read_gap: float
    tso_gap: float


class FailoverError(Exception):
    """The cluster did not get ready or a process did not come back: the run cannot measure."""


def longest_gap(successes: list[float], start: float, end: float) -> float:
    """The longest time in [``start``, ``end``] without a success in ``successes`` (sorted times),
    counted from the last success before ``start`` (or ``start`` if none) to ``end``."""
    before = [t for t in successes if t < start]
    times = [before[-1] if before else start, *(t for t in successes if start <= t <= end), end]
    return max(b - a for a, b in zip(times, times[1:], strict=False))


class Load:
    """Writers, readers and a TSO client running until ``stop``; each keeps its successes' end times."""

    def __init__(self, pd: str, concurrency: int) -> None:
        self.pd = pd
        self.concurrency = concurrency
        self.writes: list[float] = []
        self.reads: list[float] = []
        self.stamps: list[float] = []
        self.stop = asyncio.Event()

    async def run(self) -> None:
        import kvdb.aio

        async with await kvdb.aio.connect(self.pd, timeout=OP_TIMEOUT) as client, \
                PdClient(self.pd, timeout=OP_TIMEOUT) as pd:
            async def loop(n: int, op: Any, done: list[float]) -> None:
                i = n
                while not self.stop.is_set():
                    try:
                        await op(key_of(i % KEYS))
                    except Exception:  # not fatal: the run measures what clients saw
                        await asyncio.sleep(0.01)  # a refused connection fails at once: do not spin
                        continue
                    done.append(time.monotonic())
                    i += self.concurrency

            tasks = [asyncio.create_task(loop(n, lambda k: client.put(k, VALUE), self.writes))
                     for n in range(self.concurrency)]
            tasks += [asyncio.create_task(loop(n, client.get, self.reads)) for n in range(self.concurrency)]
            tasks.append(asyncio.create_task(loop(0, lambda _k: pd.get_ts(), self.stamps)))
            try:
                await self.stop.wait()
            finally:
                self.stop.set()
                # every operation ends within OP_TIMEOUT; the margin covers the client's own retries
                await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 3 * OP_TIMEOUT)


async def _until(what: str, check: Any, timeout: float = READY_TIMEOUT) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = await check()
        except PdError:
            result = None
        if result:
            return result
        await asyncio.sleep(POLL)
    raise FailoverError(f"{what} within {timeout:g}s")


async def _range_with_three_voters(pd: PdClient) -> Any:
    """Range 1's info once PD sees three voters and a leader; None before."""
    info = await pd.get_range(key_of(0))
    if info is None or not info.leader.id:
        return None
    return info if sum(p.role == metapb_pb2.VOTER for p in info.descriptor.peers) >= 3 else None


async def _choose(victim: str, pd: PdClient, cluster: Cluster) -> tuple[str, int]:
    """(kind, id): the store or PD member to kill."""
    if victim == "pd-leader":
        leader = (await pd.get_members()).leader.id
        if leader not in cluster.pd:
            raise FailoverError(f"PD names member {leader} as its leader, not one of this cluster's")
        return "pd", leader
    info = await _until("range 1 to have three voters and a leader", lambda: _range_with_three_voters(pd))
    if victim == "leader":
        return "store", info.leader.store_id
    return "store", next(p.store_id for p in info.descriptor.peers
                         if p.role == metapb_pb2.VOTER and p.store_id != info.leader.store_id)


async def run_failover(cluster: Cluster, victim: str, rounds: int, restart_after: float, settle: float,
                       concurrency: int) -> list[Round]:
    """The rounds against a started ``cluster``, each printed as it ends; the load runs from before
    the first kill to the end."""
    pd_addresses = cluster.pd_endpoints
    load = Load(pd_addresses, concurrency)
    load_task = asyncio.create_task(load.run())
    results: list[Round] = []
    try:
        async with PdClient(pd_addresses, timeout=OP_TIMEOUT) as pd:
            for n in range(1, rounds + 1):
                await _until("writes, reads and TSO stamps to succeed", lambda: _serving(load, load_task))
                await asyncio.sleep(settle)  # steady load before the kill: part of the measurement
                kind, ident = await _choose(victim, pd, cluster)
                process = cluster.pd[ident] if kind == "pd" else cluster.stores[ident]
                start = time.monotonic()
                await asyncio.to_thread(process.kill)
                await asyncio.sleep(restart_after)  # the outage being measured, not a synchronisation
                await asyncio.to_thread(cluster.start_pd if kind == "pd" else cluster.start, ident)
                await asyncio.sleep(settle)  # load after the restart: part of the measurement
                end = time.monotonic()
                r = Round(victim, process.label, round(longest_gap(load.writes, start, end), 3),
                          round(longest_gap(load.reads, start, end), 3),
                          round(longest_gap(load.stamps, start, end), 3))
                results.append(r)
                print(f"round {n}: kill -9 {r.killed} ({victim}): longest gap writes {r.write_gap:.3f}s, "
                    f"reads {r.read_gap:.3f}s, TSO {r.tso_gap:.3f}s", flush=True)
    finally:
        load.stop.set()
        await load_task
    return results


async def _serving(load: Load, load_task: asyncio.Task[None]) -> bool:
    """Whether writes, reads and stamps have all succeeded in the last second (the load's own
    failure, such as a client that could not connect, ends the wait with that error)."""
    if load_task.done():
        load_task.result()
        raise FailoverError("the load stopped early")
    recent = time.monotonic() - 1.0
    return all(times and times[-1] > recent for times in (load.writes, load.reads, load.stamps))


def add_failover_parser(sub: Any) -> None:
    p = sub.add_parser("failover", help="kill -9 a range leader, PD leader or follower: client gaps",
                       description="Start 3 PD members and 3 stores on loopback, run writers, readers and a "
                                   "TSO client, and per round kill -9 the victim and restart it; prints the "
                                   "longest gap between successful writes, reads and TSO stamps per round; "
                                   "--json writes them.")
    p.add_argument("--victim", choices=VICTIMS, default="leader",
                   help="leader: the store holding range 1's leader; pd-leader; follower (default leader)")
    p.add_argument("--rounds", type=int, default=3, help="kill -9 and restart this many times (default 3)")
    p.add_argument("--restart-after", type=float, default=8.0,
                   help="seconds between the kill and the restart (default 8)")
    p.add_argument("--settle", type=float, default=3.0,
                   help="seconds of load before each kill and after each restart (default 3)")
    p.add_argument("--concurrency", type=int, default=4,
                   help="writers, and as many readers, in flight (default 4)")
    p.add_argument("--json", type=Path, dest="json_path", metavar="PATH",
                   help="write the per-round gaps here")
    p.add_argument("--dir", type=Path,
                   help="keep the cluster's data and logs here (default: a temporary dir)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """``kvdb bench failover``; returns the exit status. The cluster is shut down however it ends."""
    from tests.integration.cluster import Cluster

    if args.rounds < 1 or args.concurrency < 1 or args.restart_after <= 0 or args.settle <= 0:
        print("kvdb bench failover: need positive --rounds, --concurrency, --restart-after and --settle",
              file=sys.stderr)
        return USAGE
    forget_tls_env()  # the cluster started here runs plaintext
    root = args.dir or Path(tempfile.mkdtemp(prefix="kvdb-failover-"))
    cluster = Cluster.create_with_pd(root, 3, 3, tick_interval=StoreConfig.tick_interval,
                                     max_clock_drift=StoreConfig.max_clock_drift)
    try:
        cluster.start_pd()
        cluster.start()
        rounds = asyncio.run(run_failover(cluster, args.victim, args.rounds, args.restart_after,
                                          args.settle, args.concurrency))
    except (FailoverError, AssertionError, KvdbError, PdError, OSError) as exc:
        # AssertionError: a process of the harness did not start; its logs say why, so they stay
        print(f"kvdb bench failover: {exc} (logs in {root})", file=sys.stderr)
        return FAILED
    finally:
        cluster.shutdown()
    if args.dir is None:
        shutil.rmtree(root, ignore_errors=True)
    if args.json_path is not None:
        args.json_path.write_text(json.dumps({"victim": args.victim, "restart_after": args.restart_after,
                                              "settle": args.settle, "concurrency": args.concurrency,
                                              "rounds": [asdict(r) for r in rounds]}, indent=1) + "\n")
    return 0

"""``kvdb bench failover``: how long clients go without a successful operation when a process dies.

Starts three PD members and three stores on loopback (the integration tests' harness, with the
stores' and PD's default tick, no load splits), runs writers and readers through the real client
and a TSO client fetching stamps, and for each of ``--rounds`` rounds kills one victim with
kill -9, restarts it ``--restart-after`` seconds later and keeps the load going ``--settle``
seconds more. The victim is the store holding the leader of the range the load uses
(``leader``), the PD leader (``pd-leader``) or a store holding only a follower of it
(``follower``).

Per round it reports the longest gap between successful operations, writes and reads apart, and
between TSO stamps: the time clients saw nothing succeed, which is what a failover costs them. A
gap is measured from the last success before the kill to the end of the round, so a round where
nothing succeeds after the kill still has a finite gap (the whole window).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from bench.workloads import key_of
from kvdb.errors import KvdbError
from kvdb.net.tls_options import forget_tls_env
from kvdb.pb import metapb_pb2
from kvdb.pdclient.client import PdClient, PdError
from kvdb.store.config import StoreConfig
from placement.server import PD_TICK_INTERVAL

if TYPE_CHECKING:  # imported when run: the installed ``kvdb bench`` has no tests package on its path
    from tests.integration.cluster import Cluster

USAGE, FAILED = 2, 3
VICTIMS = ("leader", "pd-leader", "follower", "leader-stop")
KEYS = 1000
"""Keys the load writes and reads: all in range 1, the one range of a fresh cluster. The stores
never split by load (``--load-split-qps 0``): the load (a few thousand operations a second) split
range 1 within the first round, after which a round's victim led only part of the keys, and a
round could measure 0.04 s for the kill of "the" leader."""
VALUE = b"v" * 100
OP_TIMEOUT = 10.0
"""Seconds one client operation may take (the client retries within it)."""
READY_TIMEOUT = 120.0
"""Seconds the cluster may take to serve with three voters, at the start and before each kill."""
POLL = 0.1
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Round:
    """One kill -9 and restart; gaps in seconds (``tso_gap`` None for a system without a TSO)."""

    victim: str
    killed: str
    write_gap: float
    read_gap: float
    tso_gap: float | None


class Ops(NamedTuple):
    """What the load calls: a write and a read of a key, and a TSO stamp if the system has one."""

    put: Callable[[bytes], Awaitable[Any]]
    get: Callable[[bytes], Awaitable[Any]]
    get_ts: Callable[[], Awaitable[Any]] | None


@dataclass(frozen=True)
class Victim:
    """The process a round kills -9 (``label`` names it) and how to start it again; ``stopped`` and
    ``resumed`` name the two for the log."""

    label: str
    kill: Callable[[], None]
    restart: Callable[[], None]
    stopped: str = "kill -9"
    resumed: str = "restart"


class FailoverError(Exception):
    """The cluster did not get ready or a process did not come back: the run cannot measure."""


def longest_gap(successes: list[float], start: float, end: float) -> float:
    """The longest time in [``start``, ``end``] without a success in ``successes`` (sorted times),
    counted from the last success before ``start`` (or ``start`` if none) to ``end``."""
    before = [t for t in successes if t < start]
    times = [before[-1] if before else start, *(t for t in successes if start <= t <= end), end]
    return max(b - a for a, b in zip(times, times[1:], strict=False))


@asynccontextmanager
async def kvdb_ops(pd_endpoints: str) -> AsyncIterator[Ops]:
    """Writes and reads through the real client, stamps through a PD client."""
    import kvdb.aio

    async with await kvdb.aio.connect(pd_endpoints, timeout=OP_TIMEOUT) as client, \
            PdClient(pd_endpoints, timeout=OP_TIMEOUT) as pd:
        yield Ops(lambda k: client.put(k, VALUE), client.get, pd.get_ts)


class Load:
    """Writers, readers and (if the system has one) a TSO client running until ``stop``; each keeps
    its successes' end times. ``concurrency`` is the writers and readers together in flight."""

    def __init__(self, connect: Callable[[], AbstractAsyncContextManager[Ops]], concurrency: int) -> None:
        self.connect = connect
        self.concurrency = concurrency
        self.writes: list[float] = []
        self.reads: list[float] = []
        self.stamps: list[float] | None = None
        """None until connected, and for a system without a TSO."""
        self.stop = asyncio.Event()

    async def run(self) -> None:
        async with self.connect() as ops:
            async def loop(n: int, step: int, op: Any, done: list[float]) -> None:
                i = n
                while not self.stop.is_set():
                    try:
                        await op(key_of(i % KEYS))
                    except Exception:  # not fatal: the run measures what clients saw
                        await asyncio.sleep(0.01)  # a refused connection fails at once: do not spin
                        continue
                    done.append(time.monotonic())
                    i += step

            writers = (self.concurrency + 1) // 2
            readers = self.concurrency - writers
            tasks = [asyncio.create_task(loop(n, writers, ops.put, self.writes)) for n in range(writers)]
            tasks += [asyncio.create_task(loop(n, readers, ops.get, self.reads)) for n in range(readers)]
            if ops.get_ts is not None:
                get_ts = ops.get_ts
                self.stamps = []
                tasks.append(asyncio.create_task(loop(0, 1, lambda _k: get_ts(), self.stamps)))
            try:
                await self.stop.wait()
            finally:
                self.stop.set()
                # The rounds are measured by now: an operation still in flight counts for nothing, and
                # one sent to a killed leader may wait out the server's timeout (etcd's is 7 s).
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    def kinds(self) -> list[list[float]]:
        """The success lists a round needs recent entries in: writes, reads and stamps if any."""
        return [self.writes, self.reads] + ([self.stamps] if self.stamps is not None else [])


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


async def _choose(victim: str, pd: PdClient, cluster: Cluster) -> Victim:
    """The store or PD member to kill this round."""
    if victim == "pd-leader":
        leader = (await pd.get_members()).leader.id
        if leader not in cluster.pd:
            raise FailoverError(f"PD names member {leader} as its leader, not one of this cluster's")
        process = cluster.pd[leader]
        return Victim(process.label, process.kill, lambda: cluster.start_pd(leader))
    info = await _until("range 1 to have three voters and a leader", lambda: _range_with_three_voters(pd))
    if victim in ("leader", "leader-stop"):
        store = info.leader.store_id
    else:
        store = next(p.store_id for p in info.descriptor.peers
                     if p.role == metapb_pb2.VOTER and p.store_id != info.leader.store_id)
    process = cluster.stores[store]
    if victim == "leader-stop":  # hung, not dead: its connections stay open and answer nothing
        return Victim(process.label, process.pause, process.resume, "SIGSTOP", "SIGCONT")
    return Victim(process.label, process.kill, lambda: cluster.start(store))


async def run_rounds(load: Load, pick: Callable[[], Awaitable[Victim]], victim: str, rounds: int,
                     restart_after: float, settle: float, name: str = "") -> list[Round]:
    """``rounds`` rounds of: steady load, kill -9 of ``pick()``'s process, restart it after
    ``restart_after`` s, more load; each round printed as it ends (prefixed by ``name``). The load
    runs from before the first kill to the end."""
    load_task = asyncio.create_task(load.run())
    results: list[Round] = []
    try:
        for n in range(1, rounds + 1):
            await _until("writes, reads and TSO stamps to succeed", lambda: _serving(load, load_task))
            await asyncio.sleep(settle)  # steady load before the kill: part of the measurement
            chosen = await pick()
            start = time.monotonic()
            log.info("round %d: %s %s (%s)", n, chosen.stopped, chosen.label, victim)
            await asyncio.to_thread(chosen.kill)
            await asyncio.sleep(restart_after)  # the outage being measured, not a synchronisation
            log.info("round %d: %s %s", n, chosen.resumed, chosen.label)
            await asyncio.to_thread(chosen.restart)
            await asyncio.sleep(settle)  # load after the restart: part of the measurement
            end = time.monotonic()
            stamps = load.stamps
            r = Round(victim, chosen.label, round(longest_gap(load.writes, start, end), 3),
                      round(longest_gap(load.reads, start, end), 3),
                      None if stamps is None else round(longest_gap(stamps, start, end), 3))
            results.append(r)
            tso = "" if r.tso_gap is None else f", TSO {r.tso_gap:.3f}s"
            print(f"{name}round {n}: {chosen.stopped} {r.killed} ({victim}): longest gap writes "
                  f"{r.write_gap:.3f}s, reads {r.read_gap:.3f}s{tso}", flush=True)
    finally:
        load.stop.set()
        await load_task
    return results


async def run_failover(cluster: Cluster, victim: str, rounds: int, restart_after: float, settle: float,
                       concurrency: int, name: str = "") -> list[Round]:
    """The rounds against a started kvdb ``cluster``."""
    pd_addresses = cluster.pd_endpoints
    load = Load(lambda: kvdb_ops(pd_addresses), concurrency)
    async with PdClient(pd_addresses, timeout=OP_TIMEOUT) as pd:
        return await run_rounds(load, lambda: _choose(victim, pd, cluster), victim, rounds, restart_after,
                                settle, name)


async def _serving(load: Load, load_task: asyncio.Task[None]) -> bool:
    """Whether writes, reads and stamps have all succeeded in the last second (the load's own
    failure, such as a client that could not connect, ends the wait with that error)."""
    if load_task.done():
        load_task.result()
        raise FailoverError("the load stopped early")
    recent = time.monotonic() - 1.0
    return all(times and times[-1] > recent for times in load.kinds())


def add_failover_parser(sub: Any) -> None:
    p = sub.add_parser("failover", help="kill -9 a range leader, PD leader or follower: client gaps",
                       description="Start 3 PD members and 3 stores on loopback, run writers, readers and a "
                                   "TSO client, and per round kill -9 the victim and restart it; prints the "
                                   "longest gap between successful writes, reads and TSO stamps per round; "
                                   "--json writes them.")
    p.add_argument("--victim", choices=VICTIMS, default="leader",
                   help="leader: the store holding range 1's leader; pd-leader; follower; leader-stop: "
                        "SIGSTOP the leader's store instead of kill -9, SIGCONT instead of a restart "
                        "(a hung store: its connections stay open) (default leader)")
    p.add_argument("--rounds", type=int, default=3, help="kill -9 and restart this many times (default 3)")
    p.add_argument("--restart-after", type=float, default=8.0,
                   help="seconds between the kill and the restart (default 8)")
    p.add_argument("--settle", type=float, default=3.0,
                   help="seconds of load before each kill and after each restart (default 3)")
    p.add_argument("--concurrency", type=int, default=8,
                   help="requests in flight, writers and readers together (half each; default 8)")
    p.add_argument("--json", type=Path, dest="json_path", metavar="PATH",
                   help="write the per-round gaps here")
    p.add_argument("--dir", type=Path,
                   help="keep the cluster's data and logs here, and the client's retries in client.log "
                        "(default: a temporary dir)")
    p.set_defaults(func=main)


def _cluster_class() -> type[Cluster]:
    """The integration tests' process harness (tests/integration/cluster.py). The installed package
    maps only kvdb, placement and bench, so the checkout's root is put on the path for it (the
    installed ``kvdb bench failover`` failed with "No module named 'tests'" outside the checkout)."""
    root = str(Path(__file__).resolve().parent.parent)
    if root not in sys.path:
        sys.path.append(root)
    try:
        from tests.integration.cluster import Cluster
    except ImportError as exc:
        raise FailoverError(f"the failover harness needs a source checkout ({exc})") from None
    return Cluster


def kvdb_failover(root: Path, victim: str, rounds: int, restart_after: float, settle: float,
                  concurrency: int, name: str = "") -> list[Round]:
    """Starts 3 PD members and 3 stores in ``root``, runs the rounds, shuts the cluster down however
    it ends; FailoverError if it could not measure (the logs in ``root`` say why)."""
    forget_tls_env()  # the cluster started here runs plaintext
    cluster = _cluster_class().create_with_pd(root, 3, 3, tick_interval=StoreConfig.tick_interval,
                                     max_clock_drift=StoreConfig.max_clock_drift,
                                     extra_args=["--load-split-qps", "0"],
                                     pd_args=["--tick-interval", str(PD_TICK_INTERVAL)])
    try:
        cluster.start_pd()
        cluster.start()
        return asyncio.run(run_failover(cluster, victim, rounds, restart_after, settle, concurrency, name))
    except (FailoverError, AssertionError, KvdbError, PdError, OSError) as exc:
        # AssertionError: a process of the harness did not start; its logs say why, so they stay
        raise FailoverError(f"{exc} (logs in {root})") from exc
    finally:
        cluster.shutdown()


def _log_client_retries(path: Path) -> None:
    """Every retry of the load's client and every kill and restart, timestamped, in ``path``: a
    long gap's cause is in the errors the client retried during it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
    for name in ("kvdb.client", __name__):
        logger = logging.getLogger(name)
        logger.setLevel(logging.DEBUG)
        logger.addHandler(handler)


def main(args: argparse.Namespace) -> int:
    """``kvdb bench failover``; returns the exit status."""
    if args.rounds < 1 or args.concurrency < 2 or args.restart_after <= 0 or args.settle <= 0:
        print("kvdb bench failover: need positive --rounds, --restart-after and --settle, and --concurrency "
              "of at least 2 (a writer and a reader)", file=sys.stderr)
        return USAGE
    root = args.dir or Path(tempfile.mkdtemp(prefix="kvdb-failover-"))
    if args.dir is not None:
        _log_client_retries(root / "client.log")
    try:
        rounds = kvdb_failover(root, args.victim, args.rounds, args.restart_after, args.settle,
                               args.concurrency)
    except FailoverError as exc:
        print(f"kvdb bench failover: {exc}", file=sys.stderr)
        return FAILED
    if args.dir is None:
        shutil.rmtree(root, ignore_errors=True)
    if args.json_path is not None:
        args.json_path.write_text(json.dumps({"victim": args.victim, "restart_after": args.restart_after,
                                              "settle": args.settle, "concurrency": args.concurrency,
                                              "concurrency_total": args.concurrency, "processes": 1,
                                              "rounds": [asdict(r) for r in rounds]}, indent=1) + "\n")
    return 0

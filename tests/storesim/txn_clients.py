"""Transactional clients of the store simulator: a driver of the Percolator protocol.

Each client runs one transaction at a time, drawn by the run's workload (``txn_workloads.py``:
bank transfers, list appends). It sends kvrpc txn requests to ``KvHandler.handle`` of the store
its ``RangeCache`` names, with network latency each way, like the raw clients (``clients.py``).
Timestamps come from the simulated PD's TSO (``pd.SimTso``, which the stores' max-ts sync asks
too) in simulated milliseconds, so a lock's TTL runs in sim time.

This is not a copy of ``kvdb/client/txn.py`` (the real-process tests cover that one); its
decisions are deliberately simple, so that what the checkers flag is the store's doing:

- reads: ``txn_batch_get`` at start_ts, per range, or (bank audits, half of them) ``txn_scan``
  range by range; a blocking lock is resolved, then the read is asked again;
- commit mode, drawn per transaction: 1PC when every key lies in one cached range (and the draw
  says so), async commit, or classic 2PC; the primary is a random key;
- a routing error or no answer within the timeout: ask again (every txn command is idempotent
  by start_ts), until ``RPC_DEADLINE_US``; then the step's outcome is unknown;
- prewrite: ``locked`` → resolve, then prewrite again (at most ``PREWRITE_ATTEMPTS`` times);
  ``conflict``/``aborted`` → roll back every key, the transaction aborted;
- commit: 2PC commits the primary at a fresh TSO stamp (the commit point), async commit
  commits at the max of the prewrites' ``min_commit_ts`` once every prewrite succeeded (the
  commit point); the other keys are committed in the background, and a secondary's commit
  answered ``aborted`` or ``lock_not_found`` after the commit point is an atomicity violation;
- no heart beats: the TTL (drawn per seed, in ms) is long enough for a healthy commit;
- lock resolution (``resolve``): ``check_txn_status`` on the primary with a fresh TSO stamp
  (``rollback_if_not_exist`` once the lock's TTL has passed), then ``resolve_lock`` with the
  answer; a live lock is waited for; an async-commit primary whose TTL passed is decided by
  ``check_secondary_locks`` on every secondary (all locked: commit at the max min_commit_ts);
- client crashes (``CRASH_SHARE`` of transactions, at ``CRASH_POINTS``): the client stops, its
  locks are left for others to resolve after the TTL. The outcome is known only where the
  simulator knows it.

Outcomes (``TxnRecord.outcome``): committed (the client reached the commit point), aborted (it
is certain no key can ever commit: 2PC before the primary's commit, a refused prewrite, a
read-only transaction that failed) or unknown.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from google.protobuf import text_format

from kvdb.client.cache import CachedRange, RangeCache
from kvdb.mvcc.records import lock_expired as expired
from kvdb.mvcc.records import physical_ms
from kvdb.pb import kvrpc_pb2
from tests.storesim.clients import (
    NOT_EXECUTED,
    WrongAnswer,
    follow_routing_error,
    leader_of,
    locate,
)
from tests.storesim.node import CLUSTER_ID
from tests.storesim.txn_tasks import Awaitable, Owner, Proc

if TYPE_CHECKING:
    from tests.storesim.cluster import StoreSimulation
    from tests.storesim.txn_workloads import Workload

RPC_TIMEOUT_US = 100_000
RPC_DEADLINE_US = 3_000_000
"""How long one step keeps asking before its outcome counts as unknown: past the store's
``TS_FETCH_TIMEOUT`` (2 s), after which a store whose TSO fetch was lost asks again (until then
its new leaders refuse async-commit and 1PC prewrites with ``max_ts_not_synced``)."""
PREWRITE_ATTEMPTS = 5
READ_ATTEMPTS = 8
SCAN_STEPS = 64
"""Bound on one scan's requests (a piece per range, again after resolving its locks)."""
RESOLVE_DEADLINE_US = 3_000_000
CRASH_SHARE = 0.08
CRASH_POINTS = ("prewrite", "commit_point")
"""Where a crashing client stops: after prewriting some keys, or right after the commit point
(async commit: every prewrite answered; 2PC: the primary's commit answered)."""
RETRY_ERRORS = NOT_EXECUTED | {"stale_command", "timeout", "max_ts_not_synced"}
"""Routing errors after which the same request is simply asked again."""


class TxnViolation(AssertionError):
    """The store broke a transactional promise the driver can see directly."""


@dataclass
class TxnRecord:
    """One transaction as the checkers see it."""

    client: int
    invoke: int
    start_ts: int = 0
    commit_ts: int = 0
    complete: int = 0
    outcome: str = "aborted"
    reads: dict[bytes, bytes | None] = field(default_factory=dict)
    writes: dict[bytes, bytes | None] = field(default_factory=dict)
    mode: str = ""


class Crash(Exception):
    """Raised inside a transaction to stop its client at a crash point."""


class TxnClients:
    """Every transactional client of a run, the TSO, and what they did."""

    def __init__(self, sim: StoreSimulation, count: int, workload: Workload) -> None:
        self.sim = sim
        self.world = sim.world
        self.rng = sim.world.child_rng()
        self.workload = workload
        self.ttl_ms = self.rng.choice([200, 400, 800])
        self.records: list[TxnRecord] = []
        self.active = False
        self.last_commit_invoke = -1
        self.clients = [TxnClient(self, i) for i in range(count)]
        self.counts = dict.fromkeys(("committed", "aborted", "unknown", "one_pc", "async", "two_pc",
                                     "crashes", "conflicts", "locks_met", "resolved", "async_resolved",
                                     "scans"), 0)

    def start(self) -> None:
        self.active = True
        for client in self.clients:
            self.world.after(self.rng.randint(0, 5_000), client.next_txn)

    @property
    def outstanding(self) -> int:
        return sum(c.owner.running for c in self.clients)

    def stop(self) -> None:
        """End the run's transactions: the tasks still running die as a crash would stop them, and
        each transaction in flight is recorded as far as it got (with writes: unknown unless it
        reached its commit point)."""
        self.active = False
        for client in self.clients:
            client.owner.crash()
            record = client.current
            if record is not None:
                if record.outcome != "committed" and record.writes:
                    record.outcome = "unknown"
                client._record(record)

    def final_read(self, keys: list[bytes], done: Any) -> None:
        """Read every key in one snapshot (resolving what the run left locked); ``done`` gets the
        read-only transaction that did, or None when the reads did not get through."""
        reader = TxnClient(self, len(self.clients))
        reader.owner.spawn(reader.final_read(keys), done)


class TxnClient:
    def __init__(self, clients: TxnClients, client_id: int) -> None:
        self.clients = clients
        self.sim = clients.sim
        self.world = clients.world
        self.rng = clients.sim.world.child_rng()
        self.id = client_id
        self.owner = Owner(self.world)
        self.cache = RangeCache()
        guess = self.rng.choice(sorted(self.sim.stores))
        for desc in self.sim.founding:
            self.cache.insert(desc, guess)
        self.req_id = 0
        self.current: TxnRecord | None = None

    # -- the transaction loop -----------------------------------------------------------------

    def next_txn(self) -> None:
        if not self.clients.active:
            return
        plan = self.clients.workload.draw(self.rng)
        record = TxnRecord(self.id, self.world.now)
        self.current = record
        self.owner.spawn(self.run(plan, record), self._finished)

    def _finished(self, record: TxnRecord) -> None:
        self._record(record)
        self.world.after(self.rng.randint(0, 3_000), self.next_txn)

    def _record(self, record: TxnRecord) -> None:
        record.complete = self.world.now
        self.clients.records.append(record)
        self.clients.counts[record.outcome] += 1
        if record.outcome == "committed" and record.writes:
            self.clients.last_commit_invoke = max(self.clients.last_commit_invoke, record.invoke)
        self.current = None

    def crash(self, record: TxnRecord) -> Crash:
        """Stop this client now (every task of it dies); it starts afresh after a while."""
        self.world.trace("txn client %d crashes in txn %d (%s)", self.id, record.start_ts, record.outcome)
        self.clients.counts["crashes"] += 1
        self.owner.crash()
        self._record(record)
        self.world.after(self.rng.randint(10_000, 50_000), self.next_txn)
        return Crash()

    def run(self, plan: Any, record: TxnRecord) -> Proc[TxnRecord]:
        record.start_ts = yield self.tso()
        if plan.scan is not None:
            values = yield from self.scan(*plan.scan, record.start_ts)
            values = None if values is None else {k: values.get(k) for k in plan.reads}
        else:
            values = yield from self.read(plan.reads, record.start_ts)
        if values is None:
            return record  # aborted: nothing was written
        record.reads = values
        record.writes = plan.writes(values)
        if not record.writes:
            record.outcome = "committed"
            return record
        crash = self.rng.choice(CRASH_POINTS) if self.rng.random() < CRASH_SHARE else None
        try:
            yield from self.commit(record, crash)
        except Crash:
            return None  # the client is gone: this task is dead and its value goes nowhere
        return record

    # -- timestamps and requests --------------------------------------------------------------

    def tso(self) -> Awaitable:
        """A TSO stamp, one network round trip away (taken halfway)."""

        def start(resume: Any) -> None:
            def at_pd() -> None:
                self.world.after(self.sim.client_latency(), resume, self.sim.tso.next())

            self.world.after(self.sim.client_latency(), at_pd)

        return start

    def send(self, store_id: int, req: kvrpc_pb2.Request) -> Awaitable:
        """Deliver ``req`` to the store; resume with its response, or None after the timeout."""

        def start(resume: Any) -> None:
            incarnation = self.owner.incarnation

            def deliver() -> None:
                node = self.sim.stores[store_id]
                if node.handler is None or incarnation != self.owner.incarnation:
                    return  # the store is down, or the client crashed before the request got out

                def answered(resp: kvrpc_pb2.Response) -> None:
                    data = resp.SerializeToString()
                    self.world.after(self.sim.client_latency(), resume, (store_id, data))

                node.deliver(("txn", self.id), node.handler.handle, req, answered)

            self.world.after(self.sim.client_latency(), deliver)
            self.world.after(RPC_TIMEOUT_US, resume, None)

        return start

    def call(self, kind: str, keys: list[bytes], fill: Any) -> Proc[list[tuple[list[bytes], Any]] | None]:
        """Send ``kind`` for ``keys``, one request per cached range (``fill(body, keys)`` writes each
        request's body); returns (keys, response body) per request, or None if some request got
        no answer before the deadline."""
        deadline = self.world.now + RPC_DEADLINE_US
        groups = yield from self._group(keys, deadline)
        if groups is None:
            return None
        parts = yield self.owner.gather([self._call_range(kind, loc, ks, fill, deadline)
                                         for loc, ks in groups])
        if any(p is None for p in parts):
            return None
        return [answer for part in parts for answer in part]

    def _group(self, keys: list[bytes], deadline: int) -> Proc[list[tuple[CachedRange, list[bytes]]] | None]:
        while True:
            groups: dict[int, tuple[CachedRange, list[bytes]]] = {}
            for key in keys:
                loc = locate(self.sim, self.cache, self.rng, key)
                if loc is None:
                    break
                groups.setdefault(loc.id, (loc, []))[1].append(key)
            else:
                return list(groups.values())
            if self.world.now >= deadline:
                return None
            yield self.owner.sleep(self.rng.randint(5_000, 20_000))

    def _call_range(self, kind: str, loc: CachedRange, keys: list[bytes], fill: Any, deadline: int
                    ) -> Proc[list[tuple[list[bytes], Any]] | None]:
        while self.world.now < deadline:
            self.req_id += 1
            req = kvrpc_pb2.Request(id=self.req_id)
            body = getattr(req, kind)
            body.context.cluster_id = CLUSTER_ID
            body.context.range_id = loc.id
            body.context.epoch.CopyFrom(loc.descriptor.epoch)
            fill(body, keys)
            target = leader_of(self.sim, loc, self.rng)
            self.world.trace("txn client %d -> store %d: %s range %d %r", self.id, target, kind, loc.id, keys)
            answer = yield self.send(target, req)
            if answer is None:
                loc.leader_store = self.rng.choice(sorted(self.sim.stores))
                continue
            store_id, data = answer
            resp = getattr(kvrpc_pb2.Response.FromString(data), kind)
            self.world.trace("txn client %d <- store %d: %s %s", self.id, store_id, kind,
                             text_format.MessageToString(resp, as_one_line=True))
            if not resp.HasField("error"):
                self.cache.set_leader(loc.id, store_id)
                return [(keys, resp)]
            err = resp.error
            what = err.WhichOneof("kind")
            if what not in RETRY_ERRORS:
                raise WrongAnswer(f"store {store_id} answered a valid {kind} with {what}: {err.message}")
            follow_routing_error(self.sim, self.cache, loc, store_id, err, self.rng)
            backoff = err.max_ts_not_synced.backoff_ms * 1000 if what == "max_ts_not_synced" else 0
            yield self.owner.sleep(max(backoff, self.rng.randint(1_000, 10_000)))
            if what in ("epoch_not_match", "key_not_in_range", "range_not_found"):
                # The keys may lie in other ranges now: regroup them.
                left = deadline - self.world.now
                return (yield from self.call(kind, keys, fill)) if left > 0 else None
        return None

    # -- reads --------------------------------------------------------------------------------

    def read(self, keys: list[bytes], ts: int) -> Proc[dict[bytes, bytes | None] | None]:
        """Snapshot values of ``keys`` at ``ts`` (absent: None), resolving the locks met."""
        values: dict[bytes, bytes | None] = {}
        pending = list(keys)
        for _ in range(READ_ATTEMPTS):
            if not pending:
                return values

            def fill(body: kvrpc_pb2.TxnBatchGetRequest, ks: list[bytes]) -> None:
                body.keys.extend(ks)
                body.version = ts

            answers = yield from self.call("txn_batch_get", pending, fill)
            if answers is None:
                return None
            pending = []
            for ks, body in answers:
                if body.HasField("key_error"):
                    raise WrongAnswer(f"txn_batch_get at {ts} answered {body.key_error}")
                if body.locks:
                    if body.pairs:
                        raise WrongAnswer(f"txn_batch_get answered locks and pairs: {body}")
                    pending += ks
                    self.clients.counts["locks_met"] += len(body.locks)
                    for lock in body.locks:
                        if not (yield from self.resolve(lock, ts)):
                            return None
                    continue
                found = {p.key: p.value for p in body.pairs}
                if set(found) - set(ks):
                    raise WrongAnswer(f"txn_batch_get over {ks} answered keys {sorted(found)}")
                for key in ks:
                    values[key] = found.get(key)
        return values if not pending else None

    def scan(self, start: bytes, end: bytes, ts: int) -> Proc[dict[bytes, bytes] | None]:
        """Every pair in [start, end) (``end`` non-empty) at ``ts``, one ``txn_scan`` per range
        (resolving the locks met, then scanning that range again); None if it did not get through.
        A piece is kept only if its range's cached bounds did not change during the call (a
        request that succeeded matched the range's epoch, so the store clipped to those bounds)."""
        values: dict[bytes, bytes] = {}
        for _ in range(SCAN_STEPS):
            if start >= end:
                self.clients.counts["scans"] += 1
                return values
            loc = locate(self.sim, self.cache, self.rng, start)
            if loc is None:
                yield self.owner.sleep(self.rng.randint(5_000, 20_000))
                continue
            hi = end if not loc.end or loc.end > end else loc.end
            epoch = (loc.id, loc.descriptor.epoch.version)

            def fill(body: kvrpc_pb2.TxnScanRequest, ks: list[bytes], lo: bytes = start,
                     hi: bytes = hi) -> None:
                body.start_key, body.end_key = lo, hi
                body.version = ts

            answers = yield from self.call("txn_scan", [start], fill)
            if answers is None:
                return None
            now = self.cache.find(start)
            if now is None or (now.id, now.descriptor.epoch.version) != epoch or len(answers) != 1:
                continue  # the range changed under the call: scan this piece again
            body = answers[0][1]
            if body.HasField("key_error"):
                raise WrongAnswer(f"txn_scan at {ts} answered {body.key_error}")
            if body.locks:
                self.clients.counts["locks_met"] += len(body.locks)
                for lock in body.locks:
                    if not (yield from self.resolve(lock, ts)):
                        return None
                continue
            outside = [p.key for p in body.pairs if not start <= p.key < hi]
            if outside:
                raise WrongAnswer(f"txn_scan of [{start!r}, {hi!r}) answered keys {outside}")
            values.update((p.key, p.value) for p in body.pairs)
            start = hi
        return None

    def final_read(self, keys: list[bytes]) -> Proc[TxnRecord | None]:
        record = TxnRecord(self.id, self.world.now, outcome="committed")
        record.start_ts = yield self.tso()
        values = yield from self.read(keys, record.start_ts)
        if values is None:
            return None
        record.reads, record.complete = values, self.world.now
        return record

    # -- lock resolution ----------------------------------------------------------------------

    def resolve(self, lock: kvrpc_pb2.LockInfo, caller_ts: int) -> Proc[bool]:
        """Resolve ``lock`` (commit or roll back its key as its primary says), or wait while its
        transaction is alive; False if that did not get through in time."""
        deadline = self.world.now + RESOLVE_DEADLINE_US
        while self.world.now < deadline:
            now = yield self.tso()
            gone = expired(lock, now)

            def fill(body: kvrpc_pb2.CheckTxnStatusRequest, ks: list[bytes], now: int = now,
                     gone: bool = gone) -> None:
                body.primary_key = lock.primary
                body.lock_ts = lock.start_ts
                body.caller_start_ts = caller_ts
                body.current_ts = now
                body.rollback_if_not_exist = gone

            answers = yield from self.call("check_txn_status", [lock.primary], fill)
            if answers is None:
                return False
            status = answers[0][1]
            if status.HasField("key_error") and status.key_error.WhichOneof("kind") != "lock_not_found":
                raise WrongAnswer(f"check_txn_status answered {status.key_error}")
            if status.lock_ttl_ms > 0 and status.lock.use_async_commit and gone:
                return (yield from self._resolve_async(status.lock))
            if status.HasField("key_error") or status.lock_ttl_ms > 0:
                # Alive, or its primary not prewritten yet (and the TTL not over): wait a while.
                wait_ms = physical_ms(lock.start_ts) + lock.ttl_ms - physical_ms(now)
                yield self.owner.sleep(max(1_000, min(wait_ms * 1000, 50_000)))
                continue
            return (yield from self._resolve_keys(lock.start_ts, status.commit_ts, [lock.key]))
        return False

    def _resolve_keys(self, start_ts: int, commit_ts: int, keys: list[bytes]) -> Proc[bool]:
        def fill(body: kvrpc_pb2.ResolveLockRequest, ks: list[bytes]) -> None:
            body.start_ts = start_ts
            body.commit_ts = commit_ts
            body.keys.extend(ks)

        answers = yield from self.call("resolve_lock", keys, fill)
        if answers is None:
            return False
        for _, body in answers:
            if body.HasField("key_error"):
                raise WrongAnswer(f"resolve_lock of txn {start_ts} at {commit_ts} answered {body.key_error}")
        self.clients.counts["resolved"] += len(keys)
        return True

    def _resolve_async(self, primary: kvrpc_pb2.LockInfo) -> Proc[bool]:
        """An async-commit transaction whose primary lock expired: it committed iff every key is
        locked (at the max of their min_commit_ts) or any committed; else it is rolled back."""
        secondaries = list(primary.secondaries)

        def fill(body: kvrpc_pb2.CheckSecondaryLocksRequest, ks: list[bytes]) -> None:
            body.keys.extend(ks)
            body.start_ts = primary.start_ts

        answers: list[tuple[list[bytes], Any]] | None = []
        if secondaries:
            answers = yield from self.call("check_secondary_locks", secondaries, fill)
        if answers is None:
            return False
        locks = [lock for _, body in answers for lock in body.locks]
        locked_ts = max([primary.min_commit_ts, *(lock.min_commit_ts for lock in locks)])
        committed = {body.commit_ts for _, body in answers if body.commit_ts}
        rolled_back = any(body.rolled_back for _, body in answers)
        for _, body in answers:
            if body.HasField("key_error"):
                raise WrongAnswer(f"check_secondary_locks answered {body.key_error}")
        if len(committed) > 1 or (committed and rolled_back):
            raise TxnViolation(f"async-commit txn {primary.start_ts}: its secondaries are committed at "
                               f"{sorted(committed)}{' and rolled back' if rolled_back else ''}")
        commit_ts = 0 if rolled_back else committed.pop() if committed else locked_ts
        self.clients.counts["async_resolved"] += 1
        return (yield from self._resolve_keys(primary.start_ts, commit_ts, [primary.key, *secondaries]))

    # -- commit -------------------------------------------------------------------------------

    def commit(self, record: TxnRecord, crash: str | None) -> Proc[None]:
        keys = sorted(record.writes)
        primary = self.rng.choice(keys)
        groups = yield from self._group(keys, self.world.now)
        one_range = groups is not None and len(groups) == 1
        mode = self.rng.choice(["1pc", "async", "2pc"] if one_range else ["async", "2pc"])
        record.mode = mode
        self.clients.counts[{"1pc": "one_pc", "async": "async", "2pc": "two_pc"}[mode]] += 1
        start_ts = record.start_ts
        use_async = mode == "async"

        def fill(body: kvrpc_pb2.PrewriteRequest, ks: list[bytes]) -> None:
            for key in ks:
                value = record.writes[key]
                if value is None:
                    body.mutations.add(op=kvrpc_pb2.DELETE, key=key)
                else:
                    body.mutations.add(op=kvrpc_pb2.PUT, key=key, value=value)
            body.primary_lock = primary
            body.start_ts = start_ts
            body.lock_ttl_ms = self.clients.ttl_ms
            body.txn_size = len(keys)
            body.use_async_commit = use_async
            if use_async and primary in ks:
                body.secondaries.extend(k for k in keys if k != primary)
            body.try_one_pc = mode == "1pc" and len(ks) == len(keys)

        if crash == "prewrite":
            # Prewrite some of the keys (all of them, sometimes), then stop.
            some = self.rng.sample(keys, self.rng.randint(1, len(keys)))
            answers = yield from self.prewrite(some, fill, start_ts)
            record.outcome = "unknown" if use_async or mode == "1pc" else "aborted"
            raise self.crash(record)
        answers = yield from self.prewrite(keys, fill, start_ts)
        if isinstance(answers, str):
            if answers == "unknown":
                record.outcome = "unknown" if use_async or mode == "1pc" else "aborted"
            if answers == "conflict":
                self.clients.counts["conflicts"] += 1
            self.owner.spawn(self._rollback(start_ts, keys, record.outcome == "aborted"))
            return None
        one_pc_ts = [body.one_pc_commit_ts for _, body in answers]
        if mode == "1pc" and all(one_pc_ts):
            record.outcome, record.commit_ts = "committed", one_pc_ts[0]
            return None
        if use_async:
            record.outcome = "committed"
            record.commit_ts = max(body.min_commit_ts for _, body in answers)
            if crash is not None:
                raise self.crash(record)
            self.owner.spawn(self._commit_keys(record, keys))
            return None
        # 2PC (or a 1PC the store declined): the primary's commit is the commit point.
        record.commit_ts = yield self.tso()
        ok = yield from self._commit_primary(record, primary)
        if ok and crash is not None:
            raise self.crash(record)
        if ok:
            self.owner.spawn(self._commit_keys(record, [k for k in keys if k != primary]))
        return None

    def prewrite(self, keys: list[bytes], fill: Any, start_ts: int) -> Proc[Any]:
        """Prewrite ``keys``: their answers, or "conflict", "aborted", "locked" (gave up waiting)
        or "unknown"."""
        for _ in range(PREWRITE_ATTEMPTS):
            answers = yield from self.call("prewrite", keys, fill)
            if answers is None:
                return "unknown"
            locks = []
            for _, body in answers:
                for err in body.errors:
                    kind = err.WhichOneof("kind")
                    if kind == "locked":
                        locks.append(err.locked)
                    elif kind in ("conflict", "aborted", "below_safe_point"):
                        return "conflict" if kind == "conflict" else "aborted"
                    else:
                        raise WrongAnswer(f"prewrite of txn {start_ts} answered {err}")
            if not locks:
                return answers
            self.clients.counts["locks_met"] += len(locks)
            for lock in locks:
                if not (yield from self.resolve(lock, start_ts)):
                    return "locked"
        return "locked"

    def _commit_primary(self, record: TxnRecord, primary: bytes) -> Proc[bool]:
        answers = yield from self.call("commit", [primary], self._commit_fill(record))
        if answers is None:
            record.outcome = "unknown"
            return False
        body = answers[0][1]
        if body.HasField("key_error"):
            kind = body.key_error.WhichOneof("kind")
            if kind not in ("aborted", "lock_not_found"):
                raise WrongAnswer(f"commit of txn {record.start_ts} answered {body.key_error}")
            record.outcome = "aborted"  # a resolver rolled it back after its TTL
            return False
        record.outcome = "committed"
        return True

    @staticmethod
    def _commit_fill(record: TxnRecord) -> Any:
        def fill(body: kvrpc_pb2.CommitRequest, ks: list[bytes]) -> None:
            body.start_ts = record.start_ts
            body.commit_ts = record.commit_ts
            body.keys.extend(ks)

        return fill

    def _commit_keys(self, record: TxnRecord, keys: list[bytes]) -> Proc[None]:
        """After the commit point: commit the remaining keys (resolvers finish what this misses)."""
        if not keys:
            return None
        answers = yield from self.call("commit", keys, self._commit_fill(record))
        for ks, body in answers or []:
            if body.HasField("key_error"):
                raise TxnViolation(f"txn {record.start_ts} reached its commit point at {record.commit_ts}, "
                                   f"yet committing {ks} answered {body.key_error}")
        return None

    def _rollback(self, start_ts: int, keys: list[bytes], certain: bool) -> Proc[None]:
        """Roll back every key; ``certain``: the transaction can never commit, so no key may
        answer that it did."""
        def fill(body: kvrpc_pb2.BatchRollbackRequest, ks: list[bytes]) -> None:
            body.start_ts = start_ts
            body.keys.extend(ks)

        answers = yield from self.call("rollback", keys, fill)
        for ks, body in answers or []:
            if body.HasField("key_error") and certain:
                raise TxnViolation(f"txn {start_ts} never reached its commit point, yet rolling back {ks} "
                                   f"answered {body.key_error}")
        return None

"""The transactional client against a fake Percolator store (tests/client/txn_fake.py): which
commit protocol runs, how key errors drive the transaction, and the lock resolver's decisions.

Three ranges: [, g) [g, p) [p, ). Lock expiry is reached by moving the fake PD clock, not sleeping.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

import kvdb
import kvdb.client.aio as client_aio
import kvdb.client.txn as client_txn
from kvdb.client.aio import AsyncClient
from kvdb.client.transport import StoreUnreachable
from kvdb.client.txn import Transaction
from kvdb.errors import (
    InvalidArgumentError,
    KvdbError,
    TransactionAbortedError,
    UncertainResultError,
    WriteConflictError,
)
from kvdb.pb import kvrpc_pb2
from tests.client.test_retries import THREE_RANGES, FakeConnection, desc, run
from tests.client.txn_fake import FakeTxnCluster, MvccCluster

EXPIRED_MS = 60_000
"""Moving the fake PD clock this far expires every lock the tests write."""
@pytest.fixture(params=["model", "mvcc"])
def fake(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeTxnCluster]:
    """Each test runs against the design's model and against the stores' MVCC code."""
    cluster = (FakeTxnCluster if request.param == "model" else MvccCluster)(list(THREE_RANGES))
    monkeypatch.setattr(client_aio, "StoreConnection", lambda address, *_: FakeConnection(cluster, address))
    monkeypatch.setattr(client_aio, "BACKOFF", (0.001, 0.01))
    yield cluster


def sent(fake: FakeTxnCluster, kind: str) -> list[object]:
    return [getattr(r, kind) for r in fake.requests if r.WhichOneof("cmd") == kind]


async def committed_value(client: AsyncClient, key: bytes) -> bytes | None:
    async with client.transaction() as txn:
        return await txn.get(key)


async def settle(client: AsyncClient) -> None:
    """Waits for the client's background commits (bounded by their own deadlines)."""
    await asyncio.gather(*client._background)


def test_reads_see_the_snapshot_and_own_writes(fake: FakeTxnCluster) -> None:

    async def body(client: AsyncClient) -> None:
        async with client.transaction() as setup:
            await setup.put(b"a", b"1")
            await setup.put(b"h", b"2")
        async with client.transaction() as txn:
            assert await txn.get(b"a") == b"1"
            async with client.transaction() as other:  # commits after txn started
                await other.put(b"a", b"changed")
                await other.put(b"q", b"new")
            assert await txn.get(b"a") == b"1"
            assert await txn.batch_get([b"a", b"h", b"q"]) == {b"a": b"1", b"h": b"2"}
            await txn.put(b"b", b"mine")
            await txn.delete(b"h")
            assert await txn.get(b"h") is None and await txn.get(b"b") == b"mine"
            assert await txn.scan(limit=0) == [(b"a", b"1"), (b"b", b"mine")]
        assert await committed_value(client, b"a") == b"changed"
        assert await committed_value(client, b"h") is None

    run(fake, body)


def test_scan_with_a_limit_counts_the_buffered_deletes(fake: FakeTxnCluster) -> None:

    async def body(client: AsyncClient) -> None:
        async with client.transaction() as setup:
            for k in (b"a", b"b", b"c", b"h", b"q"):
                await setup.put(k, k)
        async with client.transaction() as txn:
            await txn.delete(b"a")
            await txn.delete(b"b")
            await txn.put(b"bb", b"new")
            await txn.put(b"z", b"last")
            assert await txn.scan(limit=2) == [(b"bb", b"new"), (b"c", b"c")]
            assert await txn.scan(b"c", b"r", limit=0) == [(b"c", b"c"), (b"h", b"h"), (b"q", b"q")]
            assert [k for k, _ in await txn.scan(limit=10)] == [b"bb", b"c", b"h", b"q", b"z"]

    run(fake, body)


def test_one_range_commits_in_one_prewrite(fake: FakeTxnCluster) -> None:
    async def body(client: AsyncClient) -> None:
        async with client.transaction() as txn:
            await txn.put(b"a", b"1")
            await txn.put(b"b", b"2")
        assert [p.try_one_pc for p in sent(fake, "prewrite")] == [True]
        assert sent(fake, "commit") == [] and fake.locks == {}
        assert fake.visible(b"a", txn.commit_ts) == b"1" and txn.commit_ts > txn.start_ts

    run(fake, body)


def test_async_commit_answers_after_the_prewrites_and_commits_in_the_background(fake: FakeTxnCluster) -> None:
    async def body(client: AsyncClient) -> None:
        async with client.transaction() as txn:
            for k in (b"a", b"h", b"q"):
                await txn.put(k, b"v")
        prewrites = sent(fake, "prewrite")
        assert {p.context.range_id for p in prewrites} == {1, 2, 3}
        assert all(p.use_async_commit and not p.try_one_pc for p in prewrites)
        primary = next(p for p in prewrites if p.mutations[0].key == b"a")
        assert list(primary.secondaries) == [b"h", b"q"]
        assert len(fake.locks) == 3  # not committed yet, and already answered
        assert txn.commit_ts == max(lk.min_commit_ts for lk in fake.locks.values()) > txn.start_ts
        await settle(client)
        assert fake.locks == {} and all(fake.visible(k, txn.commit_ts) == b"v" for k in (b"a", b"h", b"q"))

    run(fake, body)


def test_two_phase_commit_commits_the_primary_first(fake: FakeTxnCluster) -> None:
    async def body(client: AsyncClient) -> None:
        async with client.transaction(async_commit=False) as txn:
            for k in (b"a", b"h", b"q"):
                await txn.put(k, b"v")
        commits = sent(fake, "commit")
        assert list(commits[0].keys) == [b"a"] and commits[0].commit_ts == txn.commit_ts
        await settle(client)
        assert sorted(k for c in sent(fake, "commit")[1:] for k in c.keys) == [b"h", b"q"]
        assert fake.locks == {}

    run(fake, body)


def test_one_pc_falls_back_when_the_range_split_under_it(fake: FakeTxnCluster) -> None:
    async def body(client: AsyncClient) -> None:
        await committed_value(client, b"h")  # caches range 2 = [g, p)
        fake.ranges[2] = desc(2, b"g", b"k", version=2)  # split; PD does not know yet
        fake.ranges[4] = desc(4, b"k", b"p", version=2)
        async with client.transaction() as txn:
            await txn.put(b"h", b"1")
            await txn.put(b"m", b"2")
        flags = [(p.context.range_id, p.try_one_pc, p.use_async_commit) for p in sent(fake, "prewrite")]
        assert sorted(flags) == [(2, False, True), (4, False, True)]  # the 1PC try met epoch_not_match
        assert [r for _, kind, r in fake.log if kind == "prewrite"][0] == 2
        await settle(client)
        assert fake.visible(b"h", txn.commit_ts) == b"1" and fake.visible(b"m", txn.commit_ts) == b"2"

    run(fake, body)


@pytest.mark.parametrize("async_commit", [True, False])
def test_write_conflict_rolls_back_the_locks(fake: FakeTxnCluster, async_commit: bool) -> None:
    async def body(client: AsyncClient) -> None:
        txn = await client.transaction(async_commit=async_commit).begin()
        await txn.put(b"a", b"mine")
        await txn.put(b"q", b"mine")
        async with client.transaction() as other:
            await other.put(b"q", b"theirs")
        with pytest.raises(WriteConflictError, match="q"):
            await txn.commit()
        assert fake.locks == {}
        assert fake.status(b"a", txn.start_ts) == (0, True)  # a late prewrite cannot lock it again
        assert await committed_value(client, b"q") == b"theirs"
        with pytest.raises(KvdbError, match="failed"):
            await txn.put(b"a", b"again")

    run(fake, body)


def test_of_two_conflicting_transactions_exactly_one_commits(fake: FakeTxnCluster) -> None:
    """Both read a, then write a and q (a lost update unless one fails). Without the reads, t1
    may commit at t2's start_ts (async commit: max read ts + 1), inside t2's snapshot: then
    both commit, rightly, one after the other."""
    async def body(client: AsyncClient) -> None:
        t1 = await client.transaction().begin()
        t2 = await client.transaction().begin()
        for txn, value in ((t1, b"1"), (t2, b"2")):
            assert await txn.get(b"a") is None
            await txn.put(b"a", value)
            await txn.put(b"q", value)
        results = await asyncio.gather(t1.commit(), t2.commit(), return_exceptions=True)
        assert sum(isinstance(r, WriteConflictError) for r in results) == 1, results
        winner = b"1" if results[0] is None else b"2"
        await settle(client)
        assert await committed_value(client, b"a") == winner == await committed_value(client, b"q")

    run(fake, body)


def test_write_skew_is_allowed_under_si_and_get_for_update_prevents_it(fake: FakeTxnCluster) -> None:
    """Two doctors on call, each may go off call if the other stays: both read both, each writes
    its own key. Plain reads: both commit (write skew). get_for_update: one conflicts."""

    async def body(client: AsyncClient) -> None:
        async def go_off_call(txn: Transaction, me: bytes, other: bytes, for_update: bool) -> None:
            read = txn.get_for_update if for_update else txn.get
            if await read(other) == b"on":
                await txn.put(me, b"off")

        for for_update in (False, True):
            async with client.transaction() as setup:
                await setup.put(b"alice", b"on")
                await setup.put(b"zed", b"on")
            t1 = await client.transaction().begin()
            t2 = await client.transaction().begin()
            await go_off_call(t1, b"alice", b"zed", for_update)
            await go_off_call(t2, b"zed", b"alice", for_update)
            results = await asyncio.gather(t1.commit(), t2.commit(), return_exceptions=True)
            await settle(client)
            states = [await committed_value(client, k) for k in (b"alice", b"zed")]
            if for_update:
                assert sum(isinstance(r, WriteConflictError) for r in results) == 1, results
                assert b"on" in states
            else:
                assert results == [None, None] and states == [b"off", b"off"]

    run(fake, body)


def test_a_read_waits_for_a_live_lock_and_rolls_back_an_expired_one(fake: FakeTxnCluster) -> None:
    """A 2PC client died after its prewrites: its locks block readers until their TTL expired,
    then the first reader rolls the transaction back."""

    async def body(client: AsyncClient) -> None:
        async with client.transaction() as setup:
            await setup.put(b"h", b"old")
        dead = await client.transaction(async_commit=False, one_pc=False).begin()
        await dead.put(b"a", b"new")
        await dead.put(b"h", b"new")
        await client._run("prewrite", 2.0, lambda op: dead._prewrite(op, [b"a", b"h"], use_async=False))
        reader = await client.transaction(timeout=0.3).begin()
        with pytest.raises(KvdbError, match="locked by transaction"):
            await reader.get(b"h")
        assert fake.locks.keys() == {b"a", b"h"}
        fake.clock_ms += EXPIRED_MS
        assert await committed_value(client, b"h") == b"old"
        assert fake.status(b"a", dead.start_ts) == (0, True)
        assert b"h" not in fake.locks

    run(fake, body)


def test_a_reader_rolls_forward_the_secondaries_of_a_committed_primary(fake: FakeTxnCluster) -> None:
    async def body(client: AsyncClient) -> None:
        fake.script = lambda store, req: (StoreUnreachable(f"store{store}", "down", sent=False)
                                          if req.WhichOneof("cmd") == "commit" and
                                          list(req.commit.keys) != [b"a"] else None)
        async with client.transaction(async_commit=False) as txn:
            await txn.put(b"a", b"new")
            await txn.put(b"h", b"new")
        client._background.pop().cancel()  # the client "dies" before its secondaries commit
        fake.script = lambda store, req: None
        assert b"h" in fake.locks
        assert await committed_value(client, b"h") == b"new"  # the lock is not even expired
        assert fake.status(b"h", txn.start_ts) == (txn.commit_ts, False)

    run(fake, body)


@pytest.mark.parametrize("all_prewritten", [True, False])
def test_async_commit_locks_are_resolved_from_the_secondaries(fake: FakeTxnCluster,
                                                              all_prewritten: bool) -> None:
    """An async-commit client died after its prewrites (all: committed; not all: not committed).
    After the TTL, a reader asks check_secondary_locks (never check_txn_status, which would roll
    back an expired primary of a committed transaction) and finishes every key either way."""
    async def body(client: AsyncClient) -> None:
        dead = await client.transaction(one_pc=False).begin()
        for k in (b"a", b"h", b"q"):
            await dead.put(k, b"new")
        keys = [b"a", b"h", b"q"] if all_prewritten else [b"a", b"h"]
        await client._run("prewrite", 2.0, lambda op: dead._prewrite(op, keys, use_async=True))
        commit_ts = max(lk.min_commit_ts for lk in fake.locks.values())
        if not all_prewritten:  # the dead client's prewrite of q never arrived; h lists it anyway
            assert list(fake.locks[b"a"].secondaries) == [b"h"]
            fake.add_secondary(b"a", b"q")
        fake.clock_ms += EXPIRED_MS
        value = await committed_value(client, b"h")
        assert sent(fake, "check_txn_status") == []
        assert fake.locks == {}
        if all_prewritten:
            assert value == b"new" and all(fake.status(k, dead.start_ts) == (commit_ts, False)
                                           for k in (b"a", b"h", b"q"))
        else:
            assert value is None
            assert all(fake.status(k, dead.start_ts) == (0, True) for k in (b"a", b"h", b"q"))

    run(fake, body)


async def _prewritten_async(client: AsyncClient, keys: list[bytes]) -> Transaction:
    """An async-commit transaction over a, h, q whose prewrites of ``keys`` succeeded, and that
    then stopped (its locks are live: the fake clock has not moved)."""
    dead = await client.transaction(one_pc=False).begin()
    for k in (b"a", b"h", b"q"):
        await dead.put(k, b"new")
    await client._run("prewrite", 2.0, lambda op: dead._prewrite(op, keys, use_async=True))
    return dead


def test_a_live_async_commit_lock_of_a_committed_primary_is_rolled_forward_at_once(
        fake: FakeTxnCluster) -> None:
    """The next transaction of a client meets the previous one's secondary lock while its
    background commit landed only on the primary: the reader asks the primary (side-effect free)
    and rolls the lock forward, rather than backing off until the lock's TTL (3 s) runs out."""
    async def body(client: AsyncClient) -> None:
        dead = await _prewritten_async(client, [b"a", b"h", b"q"])
        commit_ts = max(lk.min_commit_ts for lk in fake.locks.values())
        await client._run("commit", 2.0, lambda op: dead._commit_primary(op, b"a", commit_ts))
        reader = await client.transaction(timeout=0.3).begin()  # far below the TTL
        assert await reader.get(b"h") == b"new"
        [check] = sent(fake, "check_txn_status")
        assert check.primary_key == b"a" and not check.rollback_if_not_exist
        assert sent(fake, "check_secondary_locks") == []
        assert fake.status(b"h", dead.start_ts) == (commit_ts, False)
        assert b"q" in fake.locks  # not met, not touched: its own reader (or the owner) finishes it

    run(fake, body)


def test_a_live_async_commit_lock_of_a_rolled_back_primary_is_rolled_back_at_once(
        fake: FakeTxnCluster) -> None:
    async def body(client: AsyncClient) -> None:
        async with client.transaction() as setup:
            await setup.put(b"h", b"old")
        dead = await _prewritten_async(client, [b"a", b"h", b"q"])
        fake.roll_back(b"a", dead.start_ts)  # e.g. the owner gave way after a conflict
        reader = await client.transaction(timeout=0.3).begin()
        assert await reader.get(b"h") == b"old"
        assert fake.status(b"h", dead.start_ts) == (0, True)

    run(fake, body)


@pytest.mark.parametrize("primary_prewritten", [True, False])
def test_a_live_async_commit_lock_of_an_undecided_primary_is_left_alone(
        fake: FakeTxnCluster, primary_prewritten: bool) -> None:
    """Primary locked (the owner may be prewriting the rest) or not there yet (its prewrite may
    be on the way): the reader backs off and writes nothing, above all no rollback record at
    the primary, which would abort a transaction that may yet reach its commit point."""
    async def body(client: AsyncClient) -> None:
        keys = [b"a", b"h", b"q"] if primary_prewritten else [b"h", b"q"]
        dead = await _prewritten_async(client, keys)
        before = dict(fake.locks)
        reader = await client.transaction(timeout=0.3).begin()
        with pytest.raises(KvdbError, match="locked by transaction"):
            await reader.get(b"h")
        assert sent(fake, "check_txn_status") and not any(
            c.rollback_if_not_exist for c in sent(fake, "check_txn_status"))
        assert fake.locks == before
        assert all(fake.status(k, dead.start_ts) == (0, False) for k in (b"a", b"h", b"q"))

    run(fake, body)


def test_a_reader_waits_for_its_own_clients_background_commit_instead_of_resolving(
        fake: FakeTxnCluster) -> None:
    """The next transaction of a client meets the locks of its previous one, committed, whose
    background commit is landing: it waits for that commit and asks no store about them."""
    async def body(client: AsyncClient) -> None:
        release = asyncio.Event()
        real_commit_keys = Transaction._commit_keys

        async def slow_commit_keys(self: Transaction, *args: object) -> None:
            await release.wait()
            await real_commit_keys(self, *args)

        Transaction._commit_keys = slow_commit_keys  # type: ignore[method-assign]
        try:
            async with client.transaction(one_pc=False) as first:
                await first.put(b"a", b"new")
                await first.put(b"h", b"new")
            assert fake.locks.keys() == {b"a", b"h"}
            reader = await client.transaction().begin()
            read = asyncio.create_task(reader.get(b"h"))
            await asyncio.sleep(0)  # lets the read meet the lock (no clock involved: a yield)
            release.set()
            assert await read == b"new"
        finally:
            Transaction._commit_keys = real_commit_keys  # type: ignore[method-assign]
        for kind in ("check_txn_status", "check_secondary_locks", "resolve_lock"):
            assert sent(fake, kind) == [], kind
        assert fake.status(b"h", first.start_ts) == (first.commit_ts, False)

    run(fake, body)


def test_a_lock_left_by_its_own_clients_failed_background_commit_is_rolled_forward(
        fake: FakeTxnCluster) -> None:
    async def body(client: AsyncClient) -> None:
        fake.script = lambda store, req: (StoreUnreachable(f"store{store}", "down", sent=False)
                                          if req.WhichOneof("cmd") == "commit" else None)
        async with client.transaction(one_pc=False, timeout=0.3) as first:
            await first.put(b"a", b"new")
            await first.put(b"h", b"new")
        await settle(client)  # the background commit gave up
        fake.script = lambda store, req: None
        assert fake.locks.keys() == {b"a", b"h"}
        assert await committed_value(client, b"h") == b"new"  # from the remembered commit_ts
        assert sent(fake, "check_txn_status") == [] and sent(fake, "check_secondary_locks") == []
        assert fake.status(b"h", first.start_ts) == (first.commit_ts, False)

    run(fake, body)


def test_an_older_live_lock_makes_a_prewrite_give_way(fake: FakeTxnCluster) -> None:
    async def body(client: AsyncClient) -> None:
        older = await client.transaction(one_pc=False, async_commit=False).begin()
        await older.put(b"h", b"older")
        await client._run("prewrite", 2.0, lambda op: older._prewrite(op, [b"h"], use_async=False))
        with pytest.raises(WriteConflictError, match="older"):
            async with client.transaction() as younger:
                await younger.put(b"a", b"x")
                await younger.put(b"h", b"younger")
        assert fake.locks.keys() == {b"h"}  # the younger's lock on a was rolled back

    run(fake, body)


def test_primary_commit_aborted_by_a_resolver_raises_transaction_aborted(fake: FakeTxnCluster) -> None:
    def resolver_first(store: int, req: kvrpc_pb2.Request) -> None:
        if req.WhichOneof("cmd") == "commit":  # a reader found the lock expired just before
            fake.roll_back(b"a", req.commit.start_ts)
            fake.script = lambda store, req: None

    async def body(client: AsyncClient) -> None:
        fake.script = resolver_first
        with pytest.raises(TransactionAbortedError, match="aborted"):
            async with client.transaction(async_commit=False) as txn:
                await txn.put(b"a", b"1")
                await txn.put(b"q", b"1")
        assert await committed_value(client, b"a") is None
        assert fake.locks == {}  # the secondary's lock was rolled back too

    run(fake, body)


def test_a_primary_commit_never_answered_is_uncertain(fake: FakeTxnCluster) -> None:
    async def body(client: AsyncClient) -> None:
        fake.lose = lambda store, req: (StoreUnreachable(f"store{store}", "reset", sent=True)
                                        if req.WhichOneof("cmd") == "commit" else None)
        with pytest.raises(UncertainResultError, match="primary"):
            async with client.transaction(async_commit=False, timeout=0.3) as txn:
                await txn.put(b"a", b"1")
                await txn.put(b"q", b"1")
        assert len(sent(fake, "commit")) > 1  # re-sent (idempotent) until the deadline
        assert fake.status(b"a", txn.start_ts)[0] > 0  # it had in fact committed

    run(fake, body)


def test_a_lost_primary_commit_answer_is_retried(fake: FakeTxnCluster) -> None:
    async def body(client: AsyncClient) -> None:
        lost = [StoreUnreachable("store1", "reset", sent=True)]
        fake.lose = lambda store, req: lost.pop() if lost and req.WhichOneof("cmd") == "commit" else None
        async with client.transaction(async_commit=False) as txn:
            await txn.put(b"a", b"1")
            await txn.put(b"q", b"1")
        assert not lost and txn.commit_ts > 0
        await settle(client)
        assert await committed_value(client, b"q") == b"1"

    run(fake, body)


def test_max_ts_not_synced_backs_off_and_retries(fake: FakeTxnCluster) -> None:
    errors = [kvrpc_pb2.Error(max_ts_not_synced=kvrpc_pb2.MaxTimestampNotSynced(backoff_ms=5))]
    fake.script = lambda store, req: errors.pop() if errors and req.WhichOneof("cmd") == "prewrite" else None

    async def body(client: AsyncClient) -> None:
        async with client.transaction() as txn:
            await txn.put(b"a", b"1")
        assert not errors and len(sent(fake, "prewrite")) == 1 and txn.commit_ts > 0

    run(fake, body)


def test_run_transaction_retries_conflicts_only(fake: FakeTxnCluster) -> None:

    async def body(client: AsyncClient) -> None:
        attempts = []

        async def increment(txn: Transaction) -> int:
            value = int(await txn.get(b"n") or b"0")
            if not attempts:  # someone else increments between our read and our commit
                async with client.transaction() as other:
                    await other.put(b"n", b"10")
            attempts.append(txn.start_ts)
            await txn.put(b"n", b"%d" % (value + 1))
            return value + 1

        assert await client.run_transaction(increment) == 11
        assert len(attempts) == 2 and await committed_value(client, b"n") == b"11"

        async def conflicting(txn: Transaction) -> None:
            raise WriteConflictError("always")

        with pytest.raises(WriteConflictError):
            await client.run_transaction(conflicting, max_retries=2)

        calls = []

        async def uncertain(txn: Transaction) -> None:
            calls.append(1)
            raise UncertainResultError("maybe")

        with pytest.raises(UncertainResultError):
            await client.run_transaction(uncertain)
        assert len(calls) == 1
        with pytest.raises(InvalidArgumentError):
            await client.run_transaction(uncertain, max_retries=-1)

    run(fake, body)


def test_heart_beat_keeps_the_primary_alive_while_commit_runs(fake: FakeTxnCluster,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_txn, "HEARTBEAT_INTERVAL", 0.01)
    busy = kvrpc_pb2.Error(server_busy=kvrpc_pb2.ServerBusy(backoff_ms=1))

    def slow_range_3(store: int, req: kvrpc_pb2.Request) -> kvrpc_pb2.Error | None:
        if req.WhichOneof("cmd") == "prewrite" and req.prewrite.context.range_id == 3:
            return busy if len(sent(fake, "txn_heart_beat")) < 3 else None
        return None

    fake.script = slow_range_3

    async def body(client: AsyncClient) -> None:
        async with client.transaction(async_commit=False) as txn:
            await txn.put(b"a", b"1")
            await txn.put(b"q", b"1")
        beats = sent(fake, "txn_heart_beat")
        assert len(beats) >= 3 and all(b.primary_lock == b"a" for b in beats)
        assert beats[-1].advise_lock_ttl_ms >= client_txn.TTL_MS

    run(fake, body)


def test_bad_use_is_refused(fake: FakeTxnCluster) -> None:
    async def body(client: AsyncClient) -> None:
        txn = client.transaction()
        with pytest.raises(KvdbError, match="not begun"):
            await txn.get(b"a")
        async with txn:
            with pytest.raises(InvalidArgumentError):
                await txn.put(b"", b"v")
            with pytest.raises(InvalidArgumentError):
                await txn.put(b"k", "text")
            with pytest.raises(InvalidArgumentError):
                await txn.scan(b"z", b"a")
        with pytest.raises(KvdbError, match="committed"):
            await txn.commit()
        with pytest.raises(KvdbError, match="already"):
            await txn.begin()
        assert sent(fake, "prewrite") == []  # nothing to write: no request

    run(fake, body)


def test_an_exception_in_the_block_rolls_back(fake: FakeTxnCluster) -> None:
    async def body(client: AsyncClient) -> None:
        with pytest.raises(RuntimeError):
            async with client.transaction() as txn:
                await txn.put(b"a", b"1")
                raise RuntimeError("changed my mind")
        assert sent(fake, "prewrite") == [] and await committed_value(client, b"a") is None

    run(fake, body)


def test_close_waits_for_background_commits(fake: FakeTxnCluster) -> None:
    async def body(client: AsyncClient) -> None:
        async with client.transaction() as txn:
            for k in (b"a", b"h", b"q"):
                await txn.put(k, b"v")
        assert client._background

    run(fake, body)
    assert fake.locks == {}  # close() let the background commit finish


def test_the_sync_client_mirrors_the_async_one(fake: FakeTxnCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_aio, "PdClient", lambda endpoints, timeout, tls: fake)
    with kvdb.connect("pd:1", timeout=5.0) as client:
        with client.transaction() as txn:
            txn.put(b"a", b"1")
            txn.put(b"q", b"2")
            assert txn.get(b"a") == b"1" and txn.start_ts > 0
        assert txn.commit_ts > txn.start_ts
        with pytest.raises(ZeroDivisionError), client.transaction() as txn:
            txn.put(b"a", b"lost")
            raise ZeroDivisionError
        attempts = []

        def transfer(txn: kvdb.client.Transaction) -> bytes:
            a, q = int(txn.get_for_update(b"a")), int(txn.get(b"q"))
            if not attempts:  # a concurrent writer: the first attempt conflicts
                with client.transaction() as other:
                    other.put(b"a", b"5")
            attempts.append(1)
            txn.put(b"a", b"%d" % (a - 1))
            txn.put(b"q", b"%d" % (q + 1))
            return txn.scan(limit=0)

        assert client.run_transaction(transfer) == [(b"a", b"4"), (b"q", b"3")]
        assert len(attempts) == 2
    assert fake.locks == {}

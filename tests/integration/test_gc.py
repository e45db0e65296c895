"""MVCC garbage collection on a real cluster (PD and three stores as processes). Versions are
written through ``client.transaction()``, locks left behind through raw prewrites. A GC run
resolves every lock at or below the safe point before PD's moves; every replica's ``write``
column family then loses the versions no read above the safe point can see (read from the
engines themselves); reads at or below it are refused with ``below_safe_point``, reads above it
answer as before. ``kvdb admin gc`` refuses a safe point above now and keeps a higher one."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Callable

import pytest
from rocksdict import AccessType, Options, Rdict

from kvdb.client import gc
from kvdb.client.aio import AsyncClient
from kvdb.client.gc import collect_garbage
from kvdb.errors import KvdbError
from kvdb.mvcc import keys
from kvdb.pb import kvrpc_pb2, mvccpb_pb2
from kvdb.server.raft_host import db_path
from kvdb.storage.engine import ALL_CFS, CF_WRITE
from tests.integration.cluster import Cluster, wait_for
from tests.integration.conftest import MakePdCluster

PUT, DELETE = kvrpc_pb2.PUT, kvrpc_pb2.DELETE


class Txns:
    """Raw Percolator requests through the client's routing (prewrite, commit, reads at a ts)."""

    def __init__(self, client: AsyncClient) -> None:
        self.client = client

    async def call(self, key: bytes, kind: str, make: Callable[[bytes], object]) -> object:
        async def run(op: object) -> object:
            return await self.client._on_key(op, key, kind, lambda ks: make(ks[0]))

        deadline = time.monotonic() + 20
        while True:
            try:
                return await self.client._run(kind, 20, run)
            except KvdbError as exc:
                # A new leader's max ts is not synced yet (the transactional client will retry
                # this routing error itself): retry until it is, within the deadline.
                if "max_ts_not_synced" not in str(exc) or time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)

    async def ts(self) -> int:
        return await self.client._pd.get_ts()

    async def prewrite(self, start_ts: int, mutations: list[tuple[int, bytes, bytes]], ttl_ms: int = 3000,
                       async_commit: bool = False, skip: tuple[bytes, ...] = ()) -> None:
        """One request per key (keys may lie in different ranges), the first key the primary; an
        async-commit primary names the others as secondaries. Keys in ``skip`` are never sent."""
        primary = mutations[0][1]
        secondaries = [key for _, key, _ in mutations[1:]] if async_commit else []
        for op, key, value in mutations:
            if key in skip:
                continue

            def make(k: bytes, op: int = op, value: bytes = value) -> kvrpc_pb2.PrewriteRequest:
                return kvrpc_pb2.PrewriteRequest(
                    mutations=[kvrpc_pb2.TxnMutation(op=op, key=k, value=value)], primary_lock=primary,
                    start_ts=start_ts, lock_ttl_ms=ttl_ms, txn_size=len(mutations),
                    use_async_commit=async_commit, secondaries=secondaries if k == primary else [])

            resp = await self.call(key, "prewrite", make)
            assert not resp.errors, resp.errors

    async def commit(self, start_ts: int, keys_: list[bytes]) -> int:
        commit_ts = await self.ts()
        for key in keys_:  # the primary first
            resp = await self.call(key, "commit", lambda k: kvrpc_pb2.CommitRequest(
                start_ts=start_ts, keys=[k], commit_ts=commit_ts))
            assert not resp.HasField("key_error"), resp.key_error
        return commit_ts

    async def write(self, mutations: list[tuple[int, bytes, bytes]]) -> int:
        """One transaction through the client's transactional API; its commit_ts."""
        async with self.client.transaction() as txn:
            for op, key, value in mutations:
                await (txn.put(key, value) if op == PUT else txn.delete(key))
        return txn.commit_ts

    async def get(self, key: bytes, ts: int) -> kvrpc_pb2.TxnGetResponse:
        return await self.call(key, "txn_get", lambda k: kvrpc_pb2.TxnGetRequest(key=k, version=ts))


def versions(cluster: Cluster, store_id: int) -> dict[bytes, list[tuple[int, int]]]:
    """A store's ``write`` column family, read from its engine opened read-only beside the running
    process: user key -> [(commit_ts, kind)], newest first."""
    db = Rdict(str(db_path(cluster.stores[store_id].data_dir)), Options(raw_mode=True),
               column_families={cf: Options(raw_mode=True) for cf in ALL_CFS},
               access_type=AccessType.read_only())
    family = db.get_column_family(CF_WRITE)
    try:
        out: dict[bytes, list[tuple[int, int]]] = {}
        for vkey, raw in family.items():
            key, ts = keys.split_version_key(vkey)
            out.setdefault(key, []).append((ts, mvccpb_pb2.Write.FromString(raw).kind))
        return out
    finally:
        family.close()
        db.close()


def test_gc_resolves_old_locks_then_drops_old_versions_on_every_replica(
        make_pd_cluster: MakePdCluster) -> None:
    cluster, pd = make_pd_cluster(n_pd=1)
    pd.wait_voters(3)
    W = mvccpb_pb2.Write

    async def scenario() -> None:
        async with AsyncClient(cluster.pd_endpoints, timeout=20) as client:
            await client.connect()
            t = Txns(client)
            a1 = await t.write([(PUT, b"a", b"a1"), (PUT, b"d", b"d1")])
            a2 = await t.write([(PUT, b"a", b"a2")])
            old_read = await t.ts()  # sees a2 and d1
            d_gone = await t.write([(DELETE, b"d", b"")])
            # A transaction that prewrote and vanished: its lock expires at once.
            abandoned = await t.ts()
            await t.prewrite(abandoned, [(PUT, b"l", b"never")], ttl_ms=1)
            safe_point = await t.ts()
            a3 = await t.write([(PUT, b"a", b"a3")])
            latest = await t.ts()

            all_of_a = [(a3, W.PUT), (a2, W.PUT), (a1, W.PUT)]
            for sid in cluster.stores:  # every replica has them all before the run
                wait_for(lambda sid=sid: versions(cluster, sid).get(b"a") == all_of_a, 15,
                         f"store {sid} to apply the writes")

            # The run, in process, with a check at the moment it asks PD to move the safe point:
            # by then no lock at or below it may be left.
            raise_safe_point = client._pd.update_gc_safe_point
            left_at_update: list[int] = []

            async def checked_update(asked: int) -> int:
                scan = await t.call(b"", "scan_lock", lambda k: kvrpc_pb2.ScanLockRequest(
                    start_key=k, max_version=asked, limit=10))
                left_at_update.append(len(scan.locks))
                return await raise_safe_point(asked)

            client._pd.update_gc_safe_point = checked_update
            run = await collect_garbage(client, safe_point=safe_point, timeout=30)
            assert left_at_update == [0]
            assert (run.safe_point, run.locks_resolved, run.transactions) == (safe_point, 1, 1)
            assert await client._pd.get_gc_safe_point() == safe_point

            # The abandoned lock was rolled back before PD moved the safe point.
            lock_scan = await t.call(b"l", "scan_lock", lambda k: kvrpc_pb2.ScanLockRequest(
                start_key=b"", max_version=latest, limit=10))
            assert list(lock_scan.locks) == []

            # Every replica drops a1, d1, the delete at d_gone, the rollback of the abandoned
            # transaction; a2 (the value at the safe point) and a3 stay.
            expected = {b"a": [(a3, W.PUT), (a2, W.PUT)]}
            for sid in cluster.stores:
                wait_for(lambda sid=sid: versions(cluster, sid) == expected, 30,
                         f"store {sid} to drop the versions below the safe point")

            for ts in (old_read, safe_point):  # a read must be above the safe point
                below = await t.get(b"a", ts)
                assert below.key_error.below_safe_point.safe_point == safe_point, below
            just_above = safe_point + 1
            for key, ts, value in [(b"a", just_above, b"a2"), (b"a", latest, b"a3"), (b"d", just_above, None),
                                   (b"d", latest, None), (b"l", latest, None)]:
                got = await t.get(key, ts)
                assert not got.HasField("key_error"), got.key_error
                assert (None if got.not_found else got.value) == value, (key, ts)
            assert d_gone > old_read

    asyncio.run(scenario())


def test_gc_is_refused_above_now_and_keeps_a_higher_safe_point(make_pd_cluster: MakePdCluster) -> None:
    cluster, pd = make_pd_cluster(n_pd=1)
    pd.wait_voters(3)
    now = pd.run(pd.client.get_ts())

    def admin_gc(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "kvdb", "admin", "gc", "--pd", cluster.pd_endpoints,
                               "--timeout", "30", *args], capture_output=True, text=True, timeout=60)

    ahead = admin_gc("--safe-point", str(now + (3_600_000 << 18)))
    assert ahead.returncode == 3 and "must be a timestamp in" in ahead.stderr, ahead.stderr
    first = admin_gc("--safe-point", str(now))
    assert first.returncode == 0, first.stderr
    assert f"GC safe point is {now}" in first.stdout
    lower = admin_gc("--keep", "1h")
    assert lower.returncode == 0, lower.stderr
    assert f"GC safe point is {now}" in lower.stdout and "already higher" in lower.stdout
    assert pd.run(pd.client.get_gc_safe_point()) == now


def test_gc_resolves_locks_as_a_reader_would_across_ranges(make_pd_cluster: MakePdCluster,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Locks in two ranges, read a page of one lock at a time: a committed primary's leftover
    secondary is committed, a complete async-commit transaction is committed at its highest
    min_commit_ts, one missing a secondary is rolled back, an abandoned one is rolled back, and a
    lock above the safe point is left alone."""
    cluster, pd = make_pd_cluster(n_pd=1)
    pd.wait_voters(3)
    pd.run(pd.client.split_ranges([b"m"], 30))
    monkeypatch.setattr(gc, "SCAN_LOCK_PAGE", 1)

    async def scenario() -> None:
        async with AsyncClient(cluster.pd_endpoints, timeout=20) as client:
            await client.connect()
            t = Txns(client)
            x = await t.ts()  # 2PC: the primary committed, the secondary's commit never came
            await t.prewrite(x, [(PUT, b"a-x", b"x"), (PUT, b"n-x", b"x")], ttl_ms=1)
            await t.commit(x, [b"a-x"])
            y = await t.ts()  # async commit, every key prewritten: committed
            await t.prewrite(y, [(PUT, b"b-y", b"y"), (PUT, b"o-y", b"y")], ttl_ms=1, async_commit=True)
            z = await t.ts()  # async commit, a secondary never prewritten: rolled back
            await t.prewrite(z, [(PUT, b"c-z", b"z"), (PUT, b"p-z", b"z")], ttl_ms=1, async_commit=True,
                             skip=(b"p-z",))
            abandoned = await t.ts()
            await t.prewrite(abandoned, [(PUT, b"d-r", b"r")], ttl_ms=1)
            safe_point = await t.ts()
            young = await t.ts()
            await t.prewrite(young, [(PUT, b"e-young", b"young")], ttl_ms=1)

            run = await collect_garbage(client, safe_point=safe_point, timeout=30)
            # Met: b-y, c-z, d-r in the first range, n-x in the second (o-y was resolved with
            # b-y: an async-commit transaction's locks go together).
            assert (run.locks_resolved, run.transactions, run.ranges_scanned) == (4, 4, 2)
            latest = await t.ts()
            for key, value in [(b"a-x", b"x"), (b"n-x", b"x"), (b"b-y", b"y"), (b"o-y", b"y"),
                               (b"c-z", None), (b"p-z", None), (b"d-r", None)]:
                got = await t.get(key, latest)
                assert not got.HasField("key_error"), (key, got.key_error)
                assert (None if got.not_found else got.value) == value, key
            assert (await t.get(b"e-young", latest)).key_error.locked.start_ts == young
            left = []
            for key in (b"", b"m"):
                scan = await t.call(key, "scan_lock", lambda k: kvrpc_pb2.ScanLockRequest(
                    start_key=k, max_version=latest, limit=10))
                left += [(lk.key, lk.start_ts) for lk in scan.locks]
            assert left == [(b"e-young", young)]

    asyncio.run(scenario())

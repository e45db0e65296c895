"""The client library against a real cluster: 3 PD members and 3 stores joined through them.

Every method, sync and async, with its context manager; scans across pages (forward, reverse,
limits); typed errors for bad input (the client's own checks and the store's message); no
thread or task outlives ``close()``; and the failures the client must hide: leadership moving
during a stream of puts, a store's kill -9 and restart, the PD leader's kill -9. Last, with every
store down, calls end with a typed error within their deadline instead of hanging.

The tests share one cluster (module scope); those that kill processes restart them before they
end. Each test writes under a key prefix of its own.
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

import kvdb
import kvdb.aio
import kvdb.client.aio
from kvdb.client import Client
from kvdb.errors import (
    ClientClosedError,
    DeadlineExceededError,
    InvalidArgumentError,
    UnavailableError,
)
from tests.client.conftest import PdCluster, until_only_this_task_runs
from tests.integration.cluster import wait_for


def test_every_method_through_the_sync_client(client: Client) -> None:
    assert client.get(b"sync-k") is None
    client.put(b"sync-k", b"v1")
    assert client.get(b"sync-k") == b"v1"
    client.put(b"sync-k", b"", timeout=5.0)
    assert client.get(b"sync-k") == b""

    client.batch_put({b"sync-a": b"1", b"sync-b": b"2"})
    client.batch_put([(b"sync-c", b"3"), (b"sync-d", b"4")])
    got = client.batch_get([b"sync-a", b"sync-d", b"sync-zz", b"sync-a"])
    assert got == {b"sync-a": b"1", b"sync-d": b"4"}
    assert client.batch_get([]) == {}

    assert client.compare_and_swap(b"sync-cas", None, b"x") == (True, None)
    assert client.compare_and_swap(b"sync-cas", None, b"y") == (False, b"x")
    assert client.compare_and_swap(b"sync-cas", b"wrong", b"y") == (False, b"x")
    assert client.compare_and_swap(b"sync-cas", b"x", b"y") == (True, b"x")
    assert client.get(b"sync-cas") == b"y"

    client.delete(b"sync-k")
    client.delete(b"sync-never-written")
    assert client.get(b"sync-k") is None
    client.delete_range(b"sync-b", b"sync-d")
    assert client.scan(b"sync-", b"sync.", limit=0) == [(b"sync-a", b"1"), (b"sync-d", b"4")]  # sync-cas too

    # An empty end is the end of the key space: "~" sorts after every other test's prefix.
    client.batch_put({b"~end-1": b"1", b"~end-2": b"2"})
    client.delete_range(b"~end-", b"")
    assert client.scan(b"~end-", b"", limit=0) == []


def test_every_method_through_the_async_client(pd_cluster: PdCluster) -> None:
    async def main() -> None:
        async with await kvdb.aio.connect(pd_cluster.endpoints.split(","), timeout=10.0) as client:
            assert isinstance(client, kvdb.aio.AsyncClient)
            await client.put(b"async-k", b"v")
            assert await client.get(b"async-k", timeout=5.0) == b"v"
            await client.batch_put({b"async-%d" % i: b"%d" % i for i in range(5)})
            got = await client.batch_get([b"async-0", b"async-4", b"async-9"])
            assert got == {b"async-0": b"0", b"async-4": b"4"}
            assert await client.compare_and_swap(b"async-k", b"v", b"w") == (True, b"v")
            assert await client.scan(b"async-", b"async.", limit=2, reverse=True) == [
                (b"async-k", b"w"), (b"async-4", b"4")]
            assert await client.scan(b"async-", b"async.", limit=0, key_only=True) == [
                (b"async-%d" % i, b"") for i in range(5)] + [(b"async-k", b"")]
            await client.delete(b"async-k")
            await client.delete_range(b"async-", b"async-3")
            assert [k for k, _ in await client.scan(b"async-", b"async.")] == [b"async-3", b"async-4"]
            await asyncio.gather(*(client.put(b"async-c%d" % i, b"x") for i in range(50)))
            assert len(await client.scan(b"async-c", b"async-d", limit=0)) == 50
        with pytest.raises(ClientClosedError):
            await client.get(b"async-k")
        await until_only_this_task_runs()

    asyncio.run(main())


def test_scans_page_through_more_keys_than_a_page(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    written = {b"page-%05d" % i: b"v%d" % i for i in range(2500)}  # > SCAN_PAGE (1024)
    client.batch_put(written)
    forward = sorted(written.items())
    assert client.scan(b"page-", b"page.", limit=0) == forward
    assert client.scan(b"page-", b"page.", limit=0, reverse=True) == forward[::-1]
    assert client.scan(b"page-", b"page.", limit=1500) == forward[:1500]
    assert client.scan(b"page-", b"page.", limit=1500, reverse=True) == forward[::-1][:1500]

    monkeypatch.setattr(kvdb.client.aio, "SCAN_PAGE", 7)  # page boundaries everywhere
    lo, hi = b"page-00100", b"page-00150"
    middle = [(k, v) for k, v in forward if lo <= k < hi]
    assert client.scan(lo, hi, limit=0) == middle
    assert client.scan(lo, hi, limit=0, reverse=True) == middle[::-1]
    assert client.scan(lo, hi, limit=21) == middle[:21]
    assert client.scan(lo, hi, limit=14, reverse=True) == middle[::-1][:14]
    assert client.scan(lo, hi, limit=0, key_only=True) == [(k, b"") for k, _ in middle]
    assert client.scan(b"page-00002", b"page-00002\x00", limit=0, reverse=True) == [(b"page-00002", b"v2")]
    assert client.scan(b"page-", b"page.") == forward[:100]  # the default limit


def test_bad_input_raises_invalid_argument(client: Client) -> None:
    calls = [
        lambda: client.get(b""),
        lambda: client.put(b"", b"v"),
        lambda: client.delete(b""),
        lambda: client.batch_get([b"ok", b""]),
        lambda: client.batch_put({b"": b"v"}),
        lambda: client.compare_and_swap(b"", None, b"v"),
        lambda: client.get("text"),
        lambda: client.put(b"k", "text"),
        lambda: client.compare_and_swap(b"k", "text", b"v"),
        lambda: client.scan(b"b", b"a"),
        lambda: client.scan(limit=-1),
        lambda: client.delete_range(b"b", b"b"),
        lambda: client.get(b"k", timeout=0),
    ]
    for call in calls:
        with pytest.raises(InvalidArgumentError):
            call()

    with pytest.raises(InvalidArgumentError, match=r"value is \d+ bytes, the limit is \d+"):
        client.put(b"bad-big", b"x" * (8 * 1024 * 1024 + 1))
    with pytest.raises(InvalidArgumentError, match=r"key is \d+ bytes, the limit is \d+"):
        client.put(b"k" * (8 * 1024 + 1), b"v")
    assert client.get(b"bad-big") is None


def test_close_leaves_no_thread_and_is_idempotent(pd_cluster: PdCluster) -> None:
    before = set(threading.enumerate())
    client = kvdb.connect(pd_cluster.endpoints)
    client.put(b"close-k", b"v")
    assert any(t.name == "kvdb-client" for t in threading.enumerate())
    client.close()
    client.close()
    assert set(threading.enumerate()) <= before, "the client left threads behind"
    with pytest.raises(ClientClosedError):
        client.get(b"close-k")


def test_no_pd_reachable_is_unavailable_within_the_timeout() -> None:
    before = set(threading.enumerate())
    started = time.monotonic()
    with pytest.raises(UnavailableError):
        kvdb.connect("127.0.0.1:1", timeout=1.0)
    assert time.monotonic() - started < 3.0
    assert set(threading.enumerate()) <= before


def test_leadership_moving_during_puts_surfaces_no_error(pd_cluster: PdCluster, client: Client) -> None:
    admin = pd_cluster.pd.kv_client()
    acked: list[bytes] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def writer() -> None:
        i = 0
        while not stop.is_set():
            key = b"moving-%06d" % i
            try:
                client.batch_put({key: b"v", key + b"-2": b"w"})
            except BaseException as exc:  # noqa: BLE001 - every error is a failure here
                errors.append(exc)
                return
            acked.append(key)
            i += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        for _ in range(2):
            leader = admin.wait_leader()
            before = len(acked)
            admin.transfer_leader(min(set(pd_cluster.cluster.stores) - {leader}))
            wait_for(lambda n=before: len(acked) > n + 20 or errors, 15, "puts after the transfer")
    finally:
        stop.set()
        thread.join()
        admin.close()
    assert not errors, errors
    expected = {k: b"v" for k in acked} | {k + b"-2": b"w" for k in acked}
    assert client.batch_get(list(expected)) == expected


def test_a_store_killed_and_restarted_does_not_stop_the_client(pd_cluster: PdCluster, client: Client) -> None:
    cluster = pd_cluster.cluster
    admin = pd_cluster.pd.kv_client()
    try:
        for round_ in range(2):
            victim = admin.wait_leader()  # the leader: the client's cached route goes dead
            client.put(b"kill-before-%d" % round_, b"v")
            cluster.kill(victim)
            client.put(b"kill-during-%d" % round_, b"v")
            assert client.get(b"kill-before-%d" % round_) == b"v"
            assert client.scan(b"kill-", b"kill.", limit=0)
            cluster.restart(victim)
            admin.wait_caught_up([victim], timeout=20)
            client.put(b"kill-after-%d" % round_, b"v")
        got = client.batch_get([b"kill-%s-%d" % (when, r) for when in (b"before", b"during", b"after")
                                for r in range(2)])
        assert len(got) == 6
    finally:
        admin.close()


def test_the_pd_leaders_kill_does_not_stop_the_client(pd_cluster: PdCluster, client: Client) -> None:
    cluster, pd = pd_cluster.cluster, pd_cluster.pd
    client.put(b"pdkill-before", b"v")
    old_leader = pd.leader_member()
    cluster.kill_pd(old_leader)
    try:
        client.put(b"pdkill-during", b"v")
        with kvdb.connect(cluster.pd_endpoints, timeout=10.0) as fresh:  # must ask PD for everything
            assert fresh.get(b"pdkill-before") == b"v"
            fresh.put(b"pdkill-fresh", b"v")
        assert client.batch_get([b"pdkill-before", b"pdkill-during", b"pdkill-fresh"]) == {
            b"pdkill-before": b"v", b"pdkill-during": b"v", b"pdkill-fresh": b"v"}
    finally:
        cluster.start_pd(old_leader)


def test_with_every_store_down_calls_fail_within_their_deadline(pd_cluster: PdCluster,
                                                                client: Client) -> None:
    """Runs last: it takes the stores down (and brings them back for nothing after it)."""
    cluster = pd_cluster.cluster
    client.put(b"down-k", b"v")  # the cache now routes to a live leader
    for sid in cluster.running_ids():
        cluster.kill(sid)
    try:
        calls = [
            lambda: client.get(b"down-k", timeout=1.5),
            lambda: client.put(b"down-k", b"w", timeout=1.5),
            lambda: client.scan(b"down-", b"down.", timeout=1.5),
            lambda: client.compare_and_swap(b"down-k", b"v", b"w", timeout=1.5),
        ]
        for call in calls:
            started = time.monotonic()
            # Not even the CAS is uncertain: no store took the call.
            with pytest.raises((DeadlineExceededError, UnavailableError)):
                call()
            assert time.monotonic() - started < 3.0, "a call outlived its deadline"
        with kvdb.connect(cluster.pd_endpoints, timeout=1.5) as fresh:
            started = time.monotonic()
            with pytest.raises((DeadlineExceededError, UnavailableError)):
                fresh.get(b"down-k")
            assert time.monotonic() - started < 3.0
    finally:
        cluster.start()
    assert client.get(b"down-k", timeout=20) == b"v"

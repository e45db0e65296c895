"""The client's reaction to every store error, against fake PD and stores in one process.

The fakes hold the data and the range layout (several ranges, which the real test cluster does
not have yet), check each request's range and epoch as a store does, and answer scripted errors
first: so each routing rule, retry and typed error is pinned without timing luck.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator

import pytest

import kvdb
import kvdb.client.aio as client_aio
from kvdb.client.aio import AsyncClient
from kvdb.client.transport import StoreUnreachable
from kvdb.errors import (
    ClientClosedError,
    ClusterMismatchError,
    DeadlineExceededError,
    InvalidArgumentError,
    UnavailableError,
    UncertainResultError,
)
from kvdb.pb import kvrpc_pb2, metapb_pb2, pdpb_pb2
from tests.integration.cluster import wait_for

CLUSTER_ID = 7
Script = Callable[[int, kvrpc_pb2.Request], kvrpc_pb2.Error | Exception | None]
"""(store id, request) -> an error to answer instead, an exception to raise, or None to serve."""


def desc(range_id: int, start: bytes, end: bytes, version: int = 1) -> metapb_pb2.RangeDescriptor:
    return metapb_pb2.RangeDescriptor(id=range_id, start_key=start, end_key=end,
                                      epoch=metapb_pb2.RangeEpoch(conf_ver=1, version=version),
                                      peers=[metapb_pb2.Peer(id=range_id * 10 + s, store_id=s)
                                             for s in (1, 2, 3)])


class FakeCluster:
    """PD's view (``pd_ranges``: possibly stale) and the stores' truth (``ranges``), one data dict."""

    def __init__(self, descriptors: list[metapb_pb2.RangeDescriptor], leader: int = 1) -> None:
        self.ranges = {d.id: d for d in descriptors}
        self.pd_ranges = dict(self.ranges)
        self.leader = leader
        self.data: dict[bytes, bytes] = {}
        self.log: list[tuple[int, str, int]] = []
        """(store id, command, range id) of every request a store received."""
        self.script: Script = lambda store, req: None
        self.lose: Script = lambda store, req: None
        """Like ``script``, but after the request applied: its answer is lost or superseded."""
        self.requests: list[kvrpc_pb2.Request] = []
        self.results: dict[tuple[int, int, int], kvrpc_pb2.Response] = {}
        """(range, session, seq) -> the answer of an applied write: a store's session table."""
        self.applied = 0
        self.cluster_id = CLUSTER_ID

    # -- the PD client's interface
    async def connect(self) -> None:
        pass

    async def close(self) -> None:
        pass

    def _info(self, d: metapb_pb2.RangeDescriptor) -> pdpb_pb2.RangeInfo:
        return pdpb_pb2.RangeInfo(descriptor=d, leader=metapb_pb2.Peer(id=d.id * 10 + self.leader,
                                                                        store_id=self.leader))

    async def scan_ranges(self, start: bytes, end: bytes = b"", limit: int = 0) -> list[pdpb_pb2.RangeInfo]:
        out = [self._info(d) for d in sorted(self.pd_ranges.values(), key=lambda d: d.start_key)
               if (not d.end_key or start < d.end_key) and (not end or d.start_key < end)]
        return out[:limit] if limit else out

    async def get_range(self, key: bytes) -> pdpb_pb2.RangeInfo | None:
        found = await self.scan_ranges(key, b"", 1)
        return found[0] if found else None

    async def get_store(self, store_id: int) -> pdpb_pb2.StoreInfo:
        return pdpb_pb2.StoreInfo(id=store_id, address=f"store{store_id}")

    # -- a store
    def serve(self, store_id: int, req: kvrpc_pb2.Request) -> kvrpc_pb2.Response:
        kind = req.WhichOneof("cmd")
        inner = getattr(req, kind)
        self.log.append((store_id, kind, inner.context.range_id))
        resp = kvrpc_pb2.Response(id=req.id)
        body = getattr(resp, kind)
        body.SetInParent()
        scripted = self.script(store_id, req)
        if isinstance(scripted, Exception):
            raise scripted
        error = scripted or self._check(store_id, inner)
        if error is not None:
            body.error.CopyFrom(error)
            return resp
        self.requests.append(req)
        session = inner.context.session
        dedup = (inner.context.range_id, session.session_id, session.seq)
        if session.session_id and dedup in self.results:
            resp.CopyFrom(self.results[dedup])
        else:
            self._apply(kind, inner, body, self.ranges[inner.context.range_id])
            self.applied += kind not in ("get", "batch_get", "scan")
            if session.session_id:
                self.results[dedup] = resp
        lost = self.lose(store_id, req)
        if isinstance(lost, Exception):
            raise lost
        if lost is not None:
            failed = kvrpc_pb2.Response(id=req.id)
            getattr(failed, kind).error.CopyFrom(lost)
            return failed
        resp.id = req.id
        return resp

    def _check(self, store_id: int, inner: object) -> kvrpc_pb2.Error | None:
        ctx = inner.context
        d = self.ranges.get(ctx.range_id)
        if d is None:
            return kvrpc_pb2.Error(range_not_found=kvrpc_pb2.RangeNotFound(range_id=ctx.range_id))
        if store_id != self.leader:
            hint = kvrpc_pb2.NotLeader(range_id=d.id, leader=metapb_pb2.Peer(store_id=self.leader),
                                       leader_address=f"store{self.leader}")
            return kvrpc_pb2.Error(not_leader=hint)
        if ctx.epoch.version != d.epoch.version:
            current = kvrpc_pb2.EpochNotMatch(current_ranges=self.ranges.values())
            return kvrpc_pb2.Error(epoch_not_match=current)
        keys = [inner.key] if hasattr(inner, "key") and inner.key else []
        keys += list(getattr(inner, "keys", [])) + [p.key for p in getattr(inner, "pairs", [])]
        for key in keys:
            if key < d.start_key or (d.end_key and key >= d.end_key):
                return kvrpc_pb2.Error(key_not_in_range=kvrpc_pb2.KeyNotInRange(key=key, range_id=d.id))
        return None

    def _apply(self, kind: str, inner: object, body: object, d: metapb_pb2.RangeDescriptor) -> None:
        data = self.data
        if kind == "get":
            body.not_found = inner.key not in data
            body.value = data.get(inner.key, b"")
        elif kind == "put":
            data[inner.key] = inner.value
        elif kind == "batch_put":
            data.update((p.key, p.value) for p in inner.pairs)
        elif kind == "batch_get":
            body.pairs.extend(kvrpc_pb2.KvPair(key=k, value=data[k]) for k in inner.keys if k in data)
        elif kind == "cas":
            previous = data.get(inner.key)
            body.previous_not_exist = previous is None
            body.previous_value = previous or b""
            body.succeed = previous is None if inner.previous_not_exist else previous == inner.previous_value
            if body.succeed:
                data[inner.key] = inner.value
        elif kind in ("scan", "delete_range"):
            lo = max(inner.start_key, d.start_key)
            hi = min(inner.end_key or b"\xff" * 64, d.end_key or b"\xff" * 64)
            keys = sorted((k for k in data if lo <= k < hi), reverse=kind == "scan" and inner.reverse)
            if kind == "delete_range":
                for k in keys:
                    del data[k]
            else:
                body.pairs.extend(kvrpc_pb2.KvPair(key=k, value=data[k]) for k in keys[:inner.limit])


class FakeConnection:
    def __init__(self, cluster: FakeCluster, address: str) -> None:
        self.cluster = cluster
        self.store_id = int(address.removeprefix("store"))

    async def request(self, req: kvrpc_pb2.Request, on_sent: Callable[[], None] | None = None
                      ) -> kvrpc_pb2.Response:
        await asyncio.sleep(0)
        if on_sent is not None:
            on_sent()
        return self.cluster.serve(self.store_id, req)

    async def close(self) -> None:
        pass


THREE_RANGES = [desc(1, b"", b"g"), desc(2, b"g", b"p"), desc(3, b"p", b"")]


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeCluster]:
    cluster = FakeCluster(list(THREE_RANGES))
    monkeypatch.setattr(client_aio, "StoreConnection", lambda address, *_: FakeConnection(cluster, address))
    monkeypatch.setattr(client_aio, "BACKOFF", (0.001, 0.01))
    yield cluster


def run(fake: FakeCluster, body: Callable[[AsyncClient], object], timeout: float = 2.0) -> object:
    async def main() -> object:
        client = AsyncClient("pd:1", timeout=timeout)
        client._pd = fake
        async with client:
            return await body(client)

    return asyncio.run(main())


def test_batches_split_by_range_and_scans_walk_the_ranges(fake: FakeCluster,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    keys = [bytes([c]) + b"%02d" % i for c in b"ahmqz" for i in range(10)]
    monkeypatch.setattr(client_aio, "SCAN_PAGE", 3)

    async def body(client: AsyncClient) -> None:
        await client.batch_put({k: k + b"!" for k in keys})
        assert {r for _, kind, r in fake.log if kind == "batch_put"} == {1, 2, 3}
        assert await client.batch_get(keys + [b"nope"]) == {k: k + b"!" for k in keys}
        everything = [(k, k + b"!") for k in sorted(keys)]
        assert await client.scan(limit=0) == everything
        assert await client.scan(limit=0, reverse=True) == everything[::-1]
        middle = [p for p in everything if b"h05" <= p[0] < b"q03"]
        assert await client.scan(b"h05", b"q03", limit=0) == middle
        assert await client.scan(b"b", b"p", limit=0, reverse=True) == [
            p for p in everything if b"b" <= p[0] < b"p"][::-1]
        assert await client.scan(b"g", limit=12) == [p for p in everything if p[0] >= b"g"][:12]
        await client.delete_range(b"a05", b"q05")
        left = [k for k in sorted(keys) if not b"a05" <= k < b"q05"]
        assert [k for k, _ in await client.scan(limit=0)] == left

    run(fake, body)


def test_not_leader_follows_the_hint(fake: FakeCluster) -> None:
    async def body(client: AsyncClient) -> None:
        await client.get(b"a")  # cache: range 1 led by store 1
        fake.leader = 3
        await client.put(b"a", b"v")
        assert [s for s, kind, _ in fake.log if kind == "put"] == [1, 3]
        await client.put(b"b", b"w")
        assert [s for s, kind, _ in fake.log if kind == "put"][-1] == 3  # the cache learned

    run(fake, body)


def test_epoch_not_match_re_splits_a_batch_by_the_current_ranges(fake: FakeCluster) -> None:
    async def body(client: AsyncClient) -> None:
        await client.put(b"h", b"1")  # caches range 2 = [g, p)
        fake.ranges[2] = desc(2, b"g", b"k", version=2)  # split: PD does not know yet
        fake.ranges[4] = desc(4, b"k", b"p", version=2)
        await client.batch_put({b"h": b"2", b"m": b"3"})
        assert fake.data == {b"h": b"2", b"m": b"3"}
        assert [r for _, kind, r in fake.log if kind == "batch_put"][-2:] in ([2, 4], [4, 2])

    run(fake, body)


def test_range_not_found_and_key_not_in_range_relocate_through_pd(fake: FakeCluster) -> None:
    async def body(client: AsyncClient) -> None:
        await client.put(b"h", b"1")
        merged = desc(5, b"g", b"", version=3)  # ranges 2 and 3 merged into 5
        fake.ranges = {1: fake.ranges[1], 5: merged}
        fake.pd_ranges = dict(fake.ranges)
        assert await client.get(b"h") == b"1"
        assert fake.log[-2][2] == 2 and fake.log[-1][2] == 5

    run(fake, body)


def test_server_busy_waits_at_least_the_backoff_asked_for(fake: FakeCluster) -> None:
    busy = [kvrpc_pb2.Error(server_busy=kvrpc_pb2.ServerBusy(reason="full", backoff_ms=100))]
    fake.script = lambda store, req: busy.pop() if busy else None

    async def body(client: AsyncClient) -> None:
        started = time.monotonic()
        await client.put(b"a", b"v")
        assert time.monotonic() - started >= 0.1
        assert len(fake.log) == 2

    run(fake, body)


STALE = kvrpc_pb2.Error(stale_command=kvrpc_pb2.StaleCommand())
AMBIGUOUS = {
    "stale_command": STALE,
    "timeout": kvrpc_pb2.Error(timeout=kvrpc_pb2.Timeout()),
    "broken_stream": StoreUnreachable("store1", "reset", sent=True),
    "no_answer": TimeoutError(),  # the attempt's timeout, without waiting for it
}


def once(failure: kvrpc_pb2.Error | Exception) -> Script:
    """Fails the first write the store applies with ``failure``, then serves."""
    left = [failure]
    return lambda store, req: left.pop() if left and req.WhichOneof("cmd") != "get" else None


def sessions_of(fake: FakeCluster, kind: str) -> list[tuple[int, int, int, bool]]:
    return [(h.session_id, h.seq, h.first_incomplete_seq, h.retry_after_ambiguous)
            for r in fake.requests if r.WhichOneof("cmd") == kind
            for h in [getattr(r, kind).context.session]]


@pytest.mark.parametrize("failure", list(AMBIGUOUS))
def test_an_ambiguous_write_is_retried_with_its_seq_and_applied_once(fake: FakeCluster, failure: str) -> None:
    """The store applied the put, but its answer was lost (or said "superseded"): the retry carries
    the same seq, flagged, and is answered from the stored result."""
    fake.lose = once(AMBIGUOUS[failure])

    async def body(client: AsyncClient) -> None:
        await client.put(b"a", b"v")
        sid = client.session_id
        assert sessions_of(fake, "put") == [(sid, 1, 1, False), (sid, 1, 1, True)]
        assert fake.applied == 1 and fake.data == {b"a": b"v"}
        assert client.ambiguous_retries >= 1  # (a bounce off a follower on the way counts too)
        await client.put(b"a", b"w")  # the next write: a new seq, and seq 1 is acknowledged
        assert sessions_of(fake, "put")[-1] == (sid, 2, 2, False)

    run(fake, body)


@pytest.mark.parametrize("failure", list(AMBIGUOUS))
def test_a_cas_whose_answer_was_lost_is_retried_and_gets_its_own_result(fake: FakeCluster,
                                                                        failure: str) -> None:
    fake.data[b"a"] = b"v"
    fake.lose = once(AMBIGUOUS[failure])

    async def body(client: AsyncClient) -> None:
        # Repeated blindly, the compare would now fail against its own write.
        assert await client.compare_and_swap(b"a", b"v", b"w") == (True, b"v")
        assert [h[1:] for h in sessions_of(fake, "cas")] == [(1, 1, False), (1, 1, True)]
        assert fake.applied == 1 and fake.data == {b"a": b"w"}

    run(fake, body)


def test_each_part_of_a_batch_has_its_own_seq_and_keeps_it_across_retries(fake: FakeCluster) -> None:
    fake.lose = lambda store, req: STALE if req.batch_put.context.range_id == 2 and len(
        [r for r in fake.requests if r.batch_put.context.range_id == 2]) == 1 else None

    async def body(client: AsyncClient) -> None:
        await client.batch_put({b"a": b"1", b"h": b"2", b"q": b"3"})
        by_range: dict[int, list[tuple[int, bool]]] = {}
        for r in fake.requests:
            h = r.batch_put.context.session
            by_range.setdefault(r.batch_put.context.range_id, []).append((h.seq, h.retry_after_ambiguous))
        assert sorted(seqs[0][0] for seqs in by_range.values()) == [1, 2, 3]
        assert by_range[2] == [(by_range[2][0][0], False), (by_range[2][0][0], True)]
        assert fake.applied == 3

    run(fake, body)


def test_a_retry_the_range_cannot_vouch_for_is_uncertain(fake: FakeCluster) -> None:
    fake.lose = once(STALE)
    fake.script = lambda store, req: kvrpc_pb2.Error(
        message="session unknown", session_expired=kvrpc_pb2.SessionExpired(session_id=7)
    ) if getattr(req, req.WhichOneof("cmd")).context.session.retry_after_ambiguous else None

    async def body(client: AsyncClient) -> None:
        with pytest.raises(UncertainResultError, match=f"{client.session_id:016x}"):
            await client.put(b"a", b"v")
        assert [h[3] for h in sessions_of(fake, "put")] == [False]  # the refused retry applied nothing

    run(fake, body)


def test_a_read_after_a_server_timeout_is_retried(fake: FakeCluster) -> None:
    answers = [kvrpc_pb2.Error(timeout=kvrpc_pb2.Timeout())]
    fake.script = lambda store, req: answers.pop() if answers else None

    async def body(client: AsyncClient) -> None:
        assert await client.get(b"a") is None
        assert not answers

    run(fake, body)


def test_final_errors_are_typed(fake: FakeCluster) -> None:
    answers = {
        b"bad": kvrpc_pb2.Error(message="value is too big", invalid_argument=kvrpc_pb2.InvalidArgument()),
        b"alien": kvrpc_pb2.Error(message="not ours", wrong_cluster=kvrpc_pb2.WrongCluster(cluster_id=9)),
    }
    fake.script = lambda store, req: answers.get(req.put.key)

    async def body(client: AsyncClient) -> None:
        with pytest.raises(InvalidArgumentError, match="value is too big"):
            await client.put(b"bad", b"v")
        with pytest.raises(ClusterMismatchError, match="cluster 9"):
            await client.put(b"alien", b"v")

    run(fake, body)


def test_the_deadline_bounds_endless_retries(fake: FakeCluster) -> None:
    busy = kvrpc_pb2.Error(server_busy=kvrpc_pb2.ServerBusy(backoff_ms=10))
    fake.script = lambda store, req: busy

    async def body(client: AsyncClient) -> None:
        started = time.monotonic()
        with pytest.raises(DeadlineExceededError):
            await client.get(b"a", timeout=0.3)
        assert 0.3 <= time.monotonic() - started < 1.0

    run(fake, body)

    fake.script = lambda store, req: StoreUnreachable(f"store{store}", "refused", sent=False)

    async def unreachable(client: AsyncClient) -> None:
        with pytest.raises(UnavailableError):
            await client.compare_and_swap(b"a", None, b"v", timeout=0.3)

    run(fake, unreachable)


def test_each_call_keeps_its_own_deadline_and_a_callers_cancel_stays_a_cancel(fake: FakeCluster) -> None:
    """Calls share one deadline timer (kvdb/client/deadlines.py): a shorter wait added after a
    longer one still ends first, a call that finished never cancels its task later, and a caller
    that cancels a call gets CancelledError, not a deadline error."""
    busy = kvrpc_pb2.Error(server_busy=kvrpc_pb2.ServerBusy(backoff_ms=10))
    fake.data[b"a"] = b"1"
    fake.script = lambda store, req: busy if req.get.key == b"stuck" else None

    async def timed_get(client: AsyncClient, key: bytes, timeout: float) -> float:
        started = time.monotonic()
        with pytest.raises(DeadlineExceededError):
            await client.get(key, timeout=timeout)
        return time.monotonic() - started

    async def body(client: AsyncClient) -> None:
        long = asyncio.create_task(timed_get(client, b"stuck", 0.6))
        await asyncio.sleep(0)  # its first step adds its deadline
        assert 0.2 <= await timed_get(client, b"stuck", 0.2) < 0.4
        assert await client.get(b"a", timeout=0.1) == b"1"
        await asyncio.sleep(0.2)  # past that get's deadline: this task is not cancelled
        assert 0.6 <= await long < 0.9
        call = asyncio.create_task(client.get(b"stuck", timeout=5.0))
        await asyncio.sleep(0)  # in flight: it waits on its first attempt
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        assert await client.get(b"a", timeout=0.1) == b"1"

    run(fake, body)


def test_closing_the_sync_client_ends_calls_other_threads_wait_on(fake: FakeCluster,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_aio, "PdClient", lambda endpoints, timeout, tls: fake)
    busy = kvrpc_pb2.Error(server_busy=kvrpc_pb2.ServerBusy(backoff_ms=10))
    fake.script = lambda store, req: busy if req.WhichOneof("cmd") == "get" else None
    before = set(threading.enumerate())
    client = kvdb.connect("pd:1", timeout=30.0)
    client.put(b"a", b"v")
    outcome: list[BaseException] = []

    def reader() -> None:
        try:
            client.get(b"a")
        except BaseException as exc:  # noqa: BLE001 - recorded for the assertion
            outcome.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    wait_for(lambda: any(kind == "get" for _, kind, _ in fake.log), 5, "the read to retry")
    started = time.monotonic()
    client.close()
    thread.join(timeout=5)
    assert time.monotonic() - started < 2.0
    assert [type(e) for e in outcome] == [ClientClosedError]
    assert set(threading.enumerate()) <= before
    with pytest.raises(InvalidArgumentError):
        kvdb.connect("pd:1", timeout="soon")


def test_a_hole_in_pds_map_during_a_split_is_retried_without_growing_backoff(
        fake: FakeCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    """While a split's new ranges report in, PD may know no range for a key: the client asks again
    after a short fixed pause, not an exponential backoff (which made writers stall past 1 s in
    the split-under-load benchmark)."""
    monkeypatch.setattr(client_aio, "BACKOFF", (0.01, 0.5))
    hole = fake.pd_ranges.pop(2)
    asked = 0
    scan = fake.scan_ranges

    async def scan_with_hole(start: bytes, end: bytes = b"", limit: int = 0) -> list[pdpb_pb2.RangeInfo]:
        nonlocal asked
        asked += 1
        if asked == 10:
            fake.pd_ranges[2] = hole  # the new range's first report arrives
        return await scan(start, end, limit)

    fake.scan_ranges = scan_with_hole
    pauses: list[float] = []
    real_sleep = asyncio.sleep

    async def sleep(delay: float) -> None:
        pauses.append(delay)
        await real_sleep(0)

    monkeypatch.setattr(client_aio.asyncio, "sleep", sleep)
    run(fake, lambda c: c.put(b"h", b"1"))
    assert fake.data[b"h"] == b"1" and asked >= 10
    assert pauses and max(pauses) <= client_aio.PD_GAP_RETRY

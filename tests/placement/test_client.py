"""PdClient against a fake three-member PD: grpc.aio servers in this process, one of them leading.

The fake's shared state stands in for PD's replicated state; the tests move leadership, crash the
leader's server, or let nobody lead, and check that the client finds its way within its timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import inspect
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import grpc
import pytest

from kvdb.pb import metapb_pb2, pdpb_pb2, pdpb_pb2_grpc
from kvdb.pdclient.client import (
    PdClient,
    PdError,
    PdNotBootstrappedError,
    PdUnavailableError,
    compose_ts,
    split_ts,
)

CLUSTER_ID = 42
NEW_LEADER_TS_JUMP = compose_ts(1000, 0)
"""A new leader starts a window above everything handed out before (PD persists windows ahead)."""


def async_test(test: Callable[[], Coroutine[Any, Any, None]]) -> Callable[[], None]:
    """pytest-asyncio is not a dependency: run each test on a fresh loop, bounded in time.

    Fails the test on anything the loop reports on its own: a task exception nobody retrieved, a
    task destroyed while pending (both only seen when the task is collected, hence gc.collect).
    """

    @functools.wraps(test)
    def run() -> None:
        reports: list[dict[str, Any]] = []

        async def main() -> None:
            asyncio.get_running_loop().set_exception_handler(lambda _loop, context: reports.append(context))
            await asyncio.wait_for(test(), 10)

        asyncio.run(main())
        gc.collect()
        assert not reports, reports

    return run


async def until(condition: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.005)


class FakeMember(pdpb_pb2_grpc.PDServicer):
    """One PD member: serves when it is the fake's leader, else answers not_leader.

    ``strict`` members also refuse GetMembers with not_leader (a server may do either).
    """

    def __init__(self, pd: FakePd, member_id: int, strict: bool) -> None:
        self.pd = pd
        self.id = member_id
        self.strict = strict
        self.server = grpc.aio.server()
        pdpb_pb2_grpc.add_PDServicer_to_server(self, self.server)
        self.address = f"127.0.0.1:{self.server.add_insecure_port('127.0.0.1:0')}"

    def _check(self, method: str, request: Any, *, cluster: bool = True,
               bootstrapped: bool = True) -> pdpb_pb2.ResponseHeader:
        """The header of the answer: with an error, unless this member may serve ``request``."""
        pd = self.pd
        pd.calls[self.id, method] += 1
        header = pdpb_pb2.ResponseHeader(cluster_id=CLUSTER_ID)
        error = header.error
        if pd.leader != self.id:
            error.not_leader.leader_address = pd.address(pd.leader) if pd.leader else ""
        elif pd.unavailable:
            pd.unavailable -= 1
            error.unavailable_backoff_ms = 20
        elif request.header.cluster_id not in ((CLUSTER_ID,) if cluster else (0, CLUSTER_ID)):
            error.wrong_cluster = request.header.cluster_id
        elif bootstrapped and not pd.bootstrapped:
            error.not_bootstrapped = True
        else:
            header.ClearField("error")
        return header

    async def _stall(self, method: str) -> None:
        if method in self.pd.stalled:
            await asyncio.Event().wait()  # until the server stops

    async def GetMembers(self, request: pdpb_pb2.GetMembersRequest,
                         context: grpc.aio.ServicerContext) -> pdpb_pb2.GetMembersResponse:
        pd = self.pd
        pd.calls[self.id, "GetMembers"] += 1
        await self._stall("GetMembers")
        response = pdpb_pb2.GetMembersResponse(header=pdpb_pb2.ResponseHeader(cluster_id=CLUSTER_ID))
        if self.strict and pd.leader != self.id:
            response.header.error.not_leader.leader_address = pd.address(pd.leader) if pd.leader else ""
            return response
        response.members.extend(pdpb_pb2.Member(id=m.id, address=m.address) for m in pd.members)
        if pd.leader:
            response.leader.CopyFrom(pdpb_pb2.Member(id=pd.leader, address=pd.address(pd.leader)))
        return response

    async def IsBootstrapped(self, request: pdpb_pb2.IsBootstrappedRequest,
                             context: grpc.aio.ServicerContext) -> pdpb_pb2.IsBootstrappedResponse:
        header = self._check("IsBootstrapped", request, cluster=False, bootstrapped=False)
        return pdpb_pb2.IsBootstrappedResponse(header=header, bootstrapped=self.pd.bootstrapped)

    async def Bootstrap(self, request: pdpb_pb2.BootstrapRequest,
                        context: grpc.aio.ServicerContext) -> pdpb_pb2.BootstrapResponse:
        header = self._check("Bootstrap", request, cluster=False, bootstrapped=False)
        response = pdpb_pb2.BootstrapResponse(header=header)
        if not header.HasField("error"):
            if self.pd.bootstrapped:
                response.header.error.already_bootstrapped = True
                recorded = self.pd.bootstrapped_with
                response.bootstrap_store_id = recorded.store.id
                response.first_range.CopyFrom(recorded.first_range)
            else:
                self.pd.bootstrapped = True
                self.pd.bootstrapped_with = request
                self.pd.stores[request.store.id] = request.store
                self.pd.ranges.append(pdpb_pb2.RangeInfo(descriptor=request.first_range))
                await self._stall("Bootstrap")  # applied, but the answer may be lost
        return response

    async def PutStore(self, request: pdpb_pb2.PutStoreRequest,
                       context: grpc.aio.ServicerContext) -> pdpb_pb2.PutStoreResponse:
        header = self._check("PutStore", request)
        if not header.HasField("error"):
            self.pd.stores[request.store.id] = request.store
        return pdpb_pb2.PutStoreResponse(header=header)

    async def GetStore(self, request: pdpb_pb2.GetStoreRequest,
                       context: grpc.aio.ServicerContext) -> pdpb_pb2.GetStoreResponse:
        header = self._check("GetStore", request)
        store = None if header.HasField("error") else self.pd.stores.get(request.store_id)
        return pdpb_pb2.GetStoreResponse(header=header, store=store)

    async def GetAllStores(self, request: pdpb_pb2.GetAllStoresRequest,
                           context: grpc.aio.ServicerContext) -> pdpb_pb2.GetAllStoresResponse:
        header = self._check("GetAllStores", request)
        stores = [] if header.HasField("error") else [
            s for s in self.pd.stores.values()
            if not (request.exclude_tombstones and s.state == pdpb_pb2.TOMBSTONE)
        ]
        return pdpb_pb2.GetAllStoresResponse(header=header, stores=stores)

    async def StoreHeartbeat(self, request: pdpb_pb2.StoreHeartbeatRequest,
                             context: grpc.aio.ServicerContext) -> pdpb_pb2.StoreHeartbeatResponse:
        header = self._check("StoreHeartbeat", request)
        if header.HasField("error"):
            return pdpb_pb2.StoreHeartbeatResponse(header=header)
        stored = self.pd.stores[request.store_id]
        stored.stats.CopyFrom(request.stats)
        return pdpb_pb2.StoreHeartbeatResponse(header=header, state=stored.state)

    def _range_answer(self, header: pdpb_pb2.ResponseHeader,
                      match: Callable[[metapb_pb2.RangeDescriptor], bool]) -> pdpb_pb2.GetRangeResponse:
        found = [r for r in self.pd.ranges if match(r.descriptor)] if not header.HasField("error") else []
        return pdpb_pb2.GetRangeResponse(header=header, range=found[0] if found else None)

    async def GetRange(self, request: pdpb_pb2.GetRangeRequest,
                       context: grpc.aio.ServicerContext) -> pdpb_pb2.GetRangeResponse:
        return self._range_answer(self._check("GetRange", request), lambda d: covers(d, request.key))

    async def GetRangeByID(self, request: pdpb_pb2.GetRangeByIDRequest,
                           context: grpc.aio.ServicerContext) -> pdpb_pb2.GetRangeResponse:
        return self._range_answer(self._check("GetRangeByID", request), lambda d: d.id == request.range_id)

    async def ScanRanges(self, request: pdpb_pb2.ScanRangesRequest,
                         context: grpc.aio.ServicerContext) -> pdpb_pb2.ScanRangesResponse:
        header = self._check("ScanRanges", request)
        ranges = [] if header.HasField("error") else [
            r for r in self.pd.ranges
            if (not request.end_key or r.descriptor.start_key < request.end_key)
            and (not r.descriptor.end_key or request.start_key < r.descriptor.end_key)
        ]
        return pdpb_pb2.ScanRangesResponse(header=header, ranges=ranges[: request.limit or None])

    async def AllocID(self, request: pdpb_pb2.AllocIDRequest,
                      context: grpc.aio.ServicerContext) -> pdpb_pb2.AllocIDResponse:
        header = self._check("AllocID", request, bootstrapped=False)
        await self._stall("AllocID")
        if header.HasField("error"):
            return pdpb_pb2.AllocIDResponse(header=header)
        self.pd.next_id += 1
        return pdpb_pb2.AllocIDResponse(header=header, id=self.pd.next_id)

    async def Tso(self, request_iterator: AsyncIterator[pdpb_pb2.TsoRequest],
                  context: grpc.aio.ServicerContext) -> AsyncIterator[pdpb_pb2.TsoResponse]:
        async for request in request_iterator:
            header = self._check("Tso", request, bootstrapped=False)
            if header.HasField("error"):
                yield pdpb_pb2.TsoResponse(header=header)
                if header.error.HasField("not_leader"):
                    return
                continue
            self.pd.ts += request.count
            self.pd.tso_requests.append((self.id, request.count))
            yield pdpb_pb2.TsoResponse(header=header, timestamp=self.pd.ts, count=request.count)

    async def RangeHeartbeat(self, request_iterator: AsyncIterator[pdpb_pb2.RangeHeartbeatRequest],
                             context: grpc.aio.ServicerContext
                             ) -> AsyncIterator[pdpb_pb2.RangeHeartbeatResponse]:
        async for request in request_iterator:
            header = self._check("RangeHeartbeat", request)
            if header.HasField("error"):
                yield pdpb_pb2.RangeHeartbeatResponse(header=header)
                if header.error.HasField("not_leader"):
                    return
                continue
            # The operator names the answering member, so tests see which stream carried it.
            operator = pdpb_pb2.Operator(kind=pdpb_pb2.Operator.TRANSFER_LEADER,
                                         peer=metapb_pb2.Peer(store_id=self.id))
            self.pd.heartbeats.append(request)
            resp = pdpb_pb2.RangeHeartbeatResponse(header=header)
            for info in request.ranges:
                resp.decisions.add(range_id=info.descriptor.id, operator=operator)
            yield resp


def covers(descriptor: metapb_pb2.RangeDescriptor, key: bytes) -> bool:
    return descriptor.start_key <= key and (not descriptor.end_key or key < descriptor.end_key)


class FakePd:
    def __init__(self) -> None:
        self.members: list[FakeMember] = []
        self.leader: int | None = None
        self.unavailable = 0
        """The leader answers this many requests with unavailable_backoff_ms (no lease yet)."""
        self.bootstrapped = False
        self.bootstrapped_with = pdpb_pb2.BootstrapRequest()
        self.stores: dict[int, pdpb_pb2.StoreInfo] = {}
        self.ranges: list[pdpb_pb2.RangeInfo] = []
        self.next_id = 1000
        self.ts = compose_ts(1_700_000_000_000, 0)
        self.tso_requests: list[tuple[int, int]] = []
        """(member id, count) of every TsoRequest served."""
        self.heartbeats: list[pdpb_pb2.RangeHeartbeatRequest] = []
        """Every RangeHeartbeatRequest a leader answered."""
        self.calls: Counter[tuple[int, str]] = Counter()
        self.stalled: set[str] = set()
        """Methods whose calls are counted, then never answered (a hung member)."""

    async def start(self) -> None:
        self.members = [FakeMember(self, member_id, strict=member_id == 3) for member_id in (1, 2, 3)]
        for member in self.members:
            await member.server.start()
        self.leader = 1

    def address(self, member_id: int) -> str:
        return self.members[member_id - 1].address

    def set_leader(self, member_id: int | None) -> None:
        self.leader = member_id
        if member_id is not None:
            self.ts += NEW_LEADER_TS_JUMP

    async def crash(self, member_id: int) -> None:
        await self.members[member_id - 1].server.stop(None)

    async def stop(self) -> None:
        for member in self.members:
            await member.server.stop(None)


@contextlib.asynccontextmanager
async def fake_pd() -> AsyncIterator[FakePd]:
    pd = FakePd()
    await pd.start()
    try:
        yield pd
    finally:
        await pd.stop()


def client_for(endpoints: list[str] | str, timeout: float = 5.0) -> PdClient:
    return PdClient(endpoints, timeout=timeout, backoff=(0.01, 0.1))


def test_compose_and_split_ts() -> None:
    ts = compose_ts(1_700_000_000_123, 5)
    assert split_ts(ts) == (1_700_000_000_123, 5)
    assert ts == 1_700_000_000_123 << 18 | 5
    assert compose_ts(7, (1 << 18) - 1) < compose_ts(8, 0)
    with pytest.raises(ValueError):
        compose_ts(7, 1 << 18)


@async_test
async def test_connect_discovers_the_leader_from_a_follower() -> None:
    async with fake_pd() as pd:
        # Member 2 lists the members; member 3 only answers not_leader; the first endpoint is dead.
        for endpoints in ([pd.address(2)], f"127.0.0.1:1, {pd.address(3)}"):
            async with client_for(endpoints) as client:
                assert client.leader_address == pd.address(1)
                assert client.cluster_id == CLUSTER_ID
                assert await client.alloc_id() == pd.next_id
        async with client_for(pd.address(2)) as client:
            assert [m.address for m in client.members] == [pd.address(i) for i in (1, 2, 3)]


@async_test
async def test_calls() -> None:
    async with fake_pd() as pd, client_for(pd.address(1)) as client:
        assert not await client.is_bootstrapped()
        with pytest.raises(PdNotBootstrappedError) as failure:
            await client.get_store(1)
        assert failure.value.error.not_bootstrapped
        store = pdpb_pb2.StoreInfo(id=1, address="s1:20160")
        first = metapb_pb2.RangeDescriptor(id=2, epoch=metapb_pb2.RangeEpoch(conf_ver=1, version=1),
                                           peers=[metapb_pb2.Peer(id=3, store_id=1)])
        assert await client.bootstrap(store, first)
        # Asking again with the same range is answered "yours"; with another range, "not yours".
        assert await client.bootstrap(store, first)
        other = metapb_pb2.RangeDescriptor(id=9, epoch=first.epoch,
                                           peers=[metapb_pb2.Peer(id=10, store_id=5)])
        assert not await client.bootstrap(pdpb_pb2.StoreInfo(id=5, address="s5:20160"), other)
        assert await client.is_bootstrapped()
        await client.put_store(pdpb_pb2.StoreInfo(id=4, address="s4:20160", state=pdpb_pb2.TOMBSTONE))
        assert (await client.get_store(1)).address == "s1:20160"
        assert await client.get_store(99) is None
        assert [s.id for s in await client.get_all_stores()] == [1]
        assert [s.id for s in await client.get_all_stores(exclude_tombstones=False)] == [1, 4]
        await client.store_heartbeat(1, pdpb_pb2.StoreStats(range_count=3))
        assert (await client.get_store(1)).stats.range_count == 3
        assert (await client.get_range(b"any")).descriptor.id == 2
        assert (await client.get_range_by_id(2)).descriptor == first
        assert await client.get_range_by_id(5) is None
        assert [r.descriptor.id for r in await client.scan_ranges(b"", b"z", limit=10)] == [2]
        ids = [await client.alloc_id() for _ in range(3)]
        assert ids == sorted(set(ids))

        client.cluster_id = 7  # as if the endpoints belonged to another cluster
        with pytest.raises(PdError) as failure:
            await client.alloc_id()
        assert failure.value.error.wrong_cluster == 7
        assert not isinstance(failure.value, PdUnavailableError)


@async_test
async def test_calls_follow_not_leader() -> None:
    async with fake_pd() as pd, client_for(pd.address(1)) as client:
        pd.set_leader(3)
        await client.alloc_id()
        assert client.leader_address == pd.address(3)
        assert pd.calls[1, "AllocID"] == 1 and pd.calls[3, "AllocID"] == 1
        assert sum(pd.calls[m, "GetMembers"] for m in (1, 2, 3)) == 1  # connect(): the hint was enough


@async_test
async def test_unavailable_backoff_is_retried() -> None:
    async with fake_pd() as pd, client_for(pd.address(1)) as client:
        pd.unavailable = 3
        await client.alloc_id()
        assert pd.calls[1, "AllocID"] == 4


@async_test
async def test_failover_recovers_within_the_timeout() -> None:
    async with fake_pd() as pd, client_for(pd.address(1)) as client:
        await pd.crash(1)
        pd.set_leader(None)  # an election is under way
        asked = pd.calls[2, "GetMembers"]
        call = asyncio.create_task(client.alloc_id())
        await until(lambda: pd.calls[2, "GetMembers"] > asked + 1, "the client to look for a leader")
        assert not call.done()
        pd.set_leader(2)
        assert await call == pd.next_id
        assert client.leader_address == pd.address(2)


@async_test
async def test_timeout_when_nobody_serves() -> None:
    async with fake_pd() as pd:
        pd.set_leader(None)
        client = client_for(pd.address(1), timeout=0.3)
        started = time.monotonic()
        with pytest.raises(PdUnavailableError):
            await client.connect()
        assert time.monotonic() - started < 1.5
        for call in (client.alloc_id(), client.get_ts()):
            started = time.monotonic()
            with pytest.raises(PdUnavailableError):
                await call
            assert time.monotonic() - started < 1.5
        await client.close()

        pd.set_leader(1)
        async with client_for(pd.address(1), timeout=0.3) as client:
            await pd.stop()
            with pytest.raises(PdUnavailableError):
                await client.get_range(b"k")
            with pytest.raises(PdUnavailableError):
                await client.get_ts()


@async_test
async def test_tso_batches_concurrent_callers() -> None:
    async with fake_pd() as pd, client_for(pd.address(1)) as client:
        stamps = await asyncio.gather(*(client.get_ts() for _ in range(500)))
        assert len(set(stamps)) == 500
        assert stamps == sorted(stamps)  # callers asked in this order
        assert sum(count for _, count in pd.tso_requests) == 500
        assert len(pd.tso_requests) <= 10, pd.tso_requests


@async_test
async def test_get_ts_batch() -> None:
    async with fake_pd() as pd, client_for(pd.address(1)) as client:
        stamps = await client.get_ts_batch(10)
        assert stamps == list(range(stamps[0], stamps[0] + 10))
        assert pd.tso_requests == [(1, 10)]
        assert await client.get_ts() > stamps[-1]
        with pytest.raises(ValueError):
            await client.get_ts_batch(0)


@async_test
async def test_tso_across_failover_stays_increasing() -> None:
    async with fake_pd() as pd, client_for(pd.address(1)) as client:
        stop = asyncio.Event()
        seen: list[list[int]] = []

        async def caller() -> None:
            mine: list[int] = []
            seen.append(mine)
            while not stop.is_set():
                mine.append(await client.get_ts())

        callers = [asyncio.create_task(caller()) for _ in range(20)]
        await until(lambda: sum(map(len, seen)) >= 300, "stamps from the first leader")
        await pd.crash(1)
        pd.set_leader(None)
        asked = pd.calls[2, "GetMembers"]
        await until(lambda: pd.calls[2, "GetMembers"] > asked, "the client to look for a leader")
        pd.set_leader(2)
        await until(lambda: sum(member == 2 for member, _ in pd.tso_requests) >= 5, "the new leader to serve")
        stop.set()
        await asyncio.gather(*callers)

        stamps = [ts for mine in seen for ts in mine]
        assert len(stamps) == len(set(stamps))
        for mine in seen:
            assert all(a < b for a, b in zip(mine, mine[1:], strict=False))
        assert max(stamps) > NEW_LEADER_TS_JUMP + min(stamps)


def heartbeat(*range_ids: int, term: int = 0) -> pdpb_pb2.RangeHeartbeatRequest:
    return pdpb_pb2.RangeHeartbeatRequest(store_id=4, ranges=[
        pdpb_pb2.RangeInfo(descriptor=metapb_pb2.RangeDescriptor(id=i), term=term) for i in range_ids])


@async_test
async def test_range_heartbeat_stream_follows_the_leader() -> None:
    async with fake_pd() as pd, client_for(pd.address(1)) as client:
        pd.bootstrapped = True
        stream = client.range_heartbeat_stream()
        answers: list[pdpb_pb2.RangeHeartbeatResponse] = []

        async def read() -> None:
            async for response in stream.responses():
                answers.append(response)

        reader = asyncio.create_task(read())

        async def answered_by(member_id: int) -> None:
            # Heartbeats repeat; one lost with a broken stream is sent again.
            deadline = time.monotonic() + 5
            while not any(d.operator.peer.store_id == member_id for a in answers for d in a.decisions):
                assert time.monotonic() < deadline, f"no heartbeat answer from member {member_id}"
                await stream.send(heartbeat(7))
                await asyncio.sleep(0.02)

        await answered_by(1)
        assert answers[0].decisions[0].range_id == 7
        assert pd.calls[1, "RangeHeartbeat"] >= 1

        pd.set_leader(2)  # member 1 answers not_leader on the open stream; the client moves
        await answered_by(2)

        await pd.crash(2)
        pd.set_leader(3)
        await answered_by(3)

        await stream.close()
        await asyncio.wait_for(reader, 1)  # responses() ends with the stream
        with pytest.raises(PdError):
            await stream.send(heartbeat(7))


@async_test
async def test_range_heartbeats_waiting_merge_and_a_new_stream_counts_as_a_loss() -> None:
    """While no leader answers, queued batches merge into one request (a range's newest report
    wins); the stream that finally carries it counts as a loss, so the store reports everything."""
    async with fake_pd() as pd, client_for(pd.address(1)) as client:
        pd.bootstrapped = True
        pd.set_leader(None)
        stream = client.range_heartbeat_stream()
        await stream.send(heartbeat(1, 2, term=1))
        await stream.send(heartbeat(1, 3, term=2))
        losses = stream.losses
        pd.set_leader(1)
        await until(lambda: pd.heartbeats, "the merged heartbeat to arrive")
        assert len(pd.heartbeats) == 1
        got = {info.descriptor.id: info.term for info in pd.heartbeats[0].ranges}
        assert got == {1: 2, 2: 1, 3: 2} and pd.heartbeats[0].store_id == 4
        assert stream.losses > losses
        await stream.close()


def runs_client_code(task: asyncio.Task) -> bool:
    code = getattr(task.get_coro(), "cr_code", None)
    return code is not None and code.co_filename.endswith("kvdb/pdclient/client.py")


@async_test
async def test_close_leaves_nothing_running() -> None:
    baseline = asyncio.all_tasks()
    async with fake_pd() as pd:
        client = client_for(pd.address(2))
        await client.connect()
        await client.get_ts()
        stream = client.range_heartbeat_stream()
        await stream.send(heartbeat(1))
        # In flight at close(): an RPC to a hung leader, and two calls waiting for one hung discovery.
        pd.stalled = {"AllocID", "GetMembers"}
        in_flight = [asyncio.create_task(client.alloc_id())]
        await until(lambda: pd.calls[1, "AllocID"] == 1, "AllocID to reach the leader")
        asked = sum(pd.calls[m, "GetMembers"] for m in (1, 2, 3))
        pd.set_leader(None)
        in_flight.append(asyncio.create_task(client.get_ts()))
        await until(lambda: sum(pd.calls[m, "GetMembers"] for m in (1, 2, 3)) > asked, "a discovery")
        in_flight.append(asyncio.create_task(client.get_range(b"k")))
        await until(lambda: all(inspect.getcoroutinestate(t.get_coro()) == inspect.CORO_SUSPENDED
                                for t in in_flight), "the calls to be under way")
        assert not client.leader_address

        await client.close()
        await client.close()
        for call in in_flight:
            with pytest.raises(PdError) as failure:
                await call
            assert "closed" in str(failure.value)
        assert [t for t in asyncio.all_tasks() if runs_client_code(t)] == []
        with pytest.raises(PdError):
            await client.alloc_id()
        with pytest.raises(PdError):
            await client.get_ts()
    # With the servers gone too, their handlers of the client's streams have ended as well.
    await until(lambda: asyncio.all_tasks() <= baseline, "all tasks to end")

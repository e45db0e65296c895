"""The PD client: finds the PD leader, retries through leader changes, batches timestamp requests.

Only the PD leader serves. The client remembers the leader's address; a member that is not the
leader names the one it believes in (``not_leader``) and the client goes there at once, a few
hops at most. When no member is named, or the named one does not answer, the client asks every
known member and endpoint for the membership (``GetMembers``) and backs off exponentially, with
jitter so clients that lost the same leader do not come back in lockstep. Each call gives up
after ``timeout`` with ``PdUnavailableError``. A client in use re-reads the membership every
``MEMBERS_REFRESH_S``, so it still finds PD after the members it was given were replaced.

Measured grpc.aio costs (docs: ~4k unary calls/s) make one RPC per timestamp too expensive, so
``get_ts`` callers that wait at the same time share one ``TsoRequest(count=N)`` on one
long-lived stream. Heartbeats of range leaders also use one long-lived stream.

Retries may repeat an RPC whose first try took effect but lost its answer: harmless for reads,
heartbeats, ``put_store`` and timestamps (the skipped stamps are simply never used), and wastes an
id for ``alloc_id``. ``bootstrap`` compares PD's record with its request, so a retry that finds
its own earlier try applied still reports success.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import grpc

from kvdb.errors import PermissionDeniedError
from kvdb.net import grpc_factory
from kvdb.net.tls import TlsFiles
from kvdb.pb import metapb_pb2, pdpb_pb2, pdpb_pb2_grpc

log = logging.getLogger(__name__)

LOGICAL_BITS = 18
ATTEMPT_TIMEOUT = 3.0
"""Seconds one RPC may take before the member counts as unreachable (a hung or cut-off leader)."""
MAX_REDIRECTS = 3
"""Consecutive not_leader hints followed without a pause; members disagreeing mid-election
would otherwise bounce a call between them."""
BACKOFF = (0.05, 0.1)
"""Seconds between attempts while no PD member knows a leader: the first pause, and the most it
doubles to (each drawn from half to all of it). A PD election ends 0.5-1.0 s after its leader
died, and callers wait for TSO meanwhile: polling at most every 0.1 s finds the new leader within
0.1 s of its election (at 0.3 s the wait after an election was up to 0.3 s, and TSO gaps reached
0.995 s against a 1 s goal). The polls are GetMembers calls a member answers from memory."""
MAX_TSO_BATCH = 1 << 16
"""Stamps per TsoRequest: a request's stamps share one millisecond, whose logical space is 18 bits."""
MAX_QUEUED_RESPONSES = 4096
MEMBERS_REFRESH_S = 5.0
"""How often a client in use re-reads the membership from the leader: after PD members are
replaced, the members it knows must include live ones for when the leader it knew goes away."""
RETRYABLE_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                             grpc.StatusCode.CANCELLED})
STREAM_ERRORS = (grpc.aio.AioRpcError, asyncio.InvalidStateError, TimeoutError, ConnectionError)
"""A stream is lost (InvalidStateError: written after it ended; TimeoutError: no answer in time)."""


def compose_ts(physical_ms: int, logical: int) -> int:
    if not 0 <= logical < 1 << LOGICAL_BITS:
        raise ValueError(f"logical part {logical} does not fit in {LOGICAL_BITS} bits")
    return physical_ms << LOGICAL_BITS | logical


def split_ts(ts: int) -> tuple[int, int]:
    return ts >> LOGICAL_BITS, ts & ((1 << LOGICAL_BITS) - 1)


def tls_hint(details: str, with_tls: bool) -> str:
    """A hint for an unreachable PD whose last error looks like a TLS mismatch, else ''. gRPC says
    "handshake failed" when we refuse the server's certificate, "Hostname Verification Check
    failed" when it does not name the address, and only "Socket closed" when the server refuses
    ours or a plaintext client dials a TLS server."""
    files = "--ca/--cert/--key (or KVDB_CA/KVDB_CERT/KVDB_KEY)"
    if "hostname verification" in details.lower():
        return ("; TLS: the server's certificate does not name the address dialled (its node certificate "
                "needs it in --hosts)")
    if "handshake" in details.lower() or (with_tls and "socket closed" in details.lower()):
        return f"; TLS handshake failed? check that {files} come from the cluster's CA"
    if "socket closed" in details.lower():
        return f"; does the cluster require TLS? give {files}"
    return ""


class PdError(Exception):
    """A PD call failed; ``error`` is the server's answer when there was one."""

    def __init__(self, message: str, error: pdpb_pb2.Error | None = None) -> None:
        super().__init__(message)
        self.error = error


class PdUnavailableError(PdError):
    """No PD leader answered before the deadline: worth retrying later, unlike other errors."""


class PdPermissionDeniedError(PdError, PermissionDeniedError):
    """PD refused the call: the certificate's role may not make it (``kvdb.net.auth``). Never
    retried; a client sees it as ``kvdb.errors.PermissionDeniedError``."""


def _denied(exc: BaseException) -> bool:
    return isinstance(exc, grpc.aio.AioRpcError) and exc.code() == grpc.StatusCode.PERMISSION_DENIED


def _fail(batch: list[tuple[int, asyncio.Future[int]]], exc: PdError) -> None:
    for _, waiter in batch:
        if not waiter.done():
            waiter.set_exception(exc)


def _refused(what: str, exc: grpc.aio.AioRpcError) -> PdError:
    """A final gRPC failure (not one of ``RETRYABLE_CODES``) as a PdError."""
    if _denied(exc):
        return PdPermissionDeniedError(f"{what}: permission denied: {exc.details()}")
    return PdError(f"{what}: {exc.code().name} {exc.details()}")


class PdNotBootstrappedError(PdError):
    """The cluster has no first store and range yet; a store reacts by bootstrapping it."""


def _server_error(what: str, error: pdpb_pb2.Error) -> PdError:
    kind = error.WhichOneof("kind")
    cls = PdNotBootstrappedError if kind == "not_bootstrapped" else PdError
    return cls(f"{what}: {kind}: {error.message}", error)


class _Retry:
    """When to try again: at once at a leader some member named (a few hops: members disagreeing
    mid-election would bounce a call between them), else after exponential backoff with jitter."""

    def __init__(self, bounds: tuple[float, float]) -> None:
        self._low, self._high = bounds
        self._next = self._low
        self._hops = 0
        self.last = "no PD member answered"
        """Why the latest attempt failed, for the error a caller gets at its deadline."""

    def succeeded(self) -> None:
        self._next = self._low
        self._hops = 0

    def hop(self) -> bool:
        """Whether following a hint without a pause is still allowed."""
        self._hops += 1
        return self._hops <= MAX_REDIRECTS

    async def backoff(self, why: str) -> None:
        self.last = why
        self._hops = 0
        delay = self._next * random.uniform(0.5, 1.0)
        self._next = min(self._next * 2, self._high)
        await asyncio.sleep(delay)


class PdClient:
    def __init__(self, endpoints: list[str] | str, *, timeout: float = 10.0,
                 backoff: tuple[float, float] = BACKOFF, tls: TlsFiles | None = None) -> None:
        self.tls = tls
        self._last_member_error = ""
        """Why the last GetMembers failed: a refused TLS handshake shows only there."""
        if isinstance(endpoints, str):
            endpoints = endpoints.split(",")
        self.endpoints = [e.strip() for e in endpoints if e.strip()]
        if not self.endpoints:
            raise ValueError("no PD endpoints given")
        self.timeout = timeout
        self.backoff = backoff
        self.cluster_id = 0
        self.leader_address = ""
        self.members: list[pdpb_pb2.Member] = []
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._stubs: dict[str, pdpb_pb2_grpc.PDStub] = {}
        self._discovery: asyncio.Task[str] | None = None
        self._refresh: asyncio.Task[str] | None = None
        self._members_due = 0.0
        self._tso: _TsoDispatcher | None = None
        self._streams: set[RangeHeartbeatStream] = set()
        self._closed = False

    async def __aenter__(self) -> PdClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def connect(self) -> None:
        self._check_open()
        retry = _Retry(self.backoff)
        try:
            async with asyncio.timeout(self.timeout):
                while not await self._discover():
                    await retry.backoff("no member knows a leader")
        except TimeoutError:
            raise PdUnavailableError(f"no PD leader at {self.endpoints} within {self.timeout}s"
                                     + tls_hint(self._last_member_error, self.tls is not None)) from None

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for stream in list(self._streams):
            await stream.close()
        tasks = [t for t in (self._discovery, self._refresh, self._tso and self._tso.task) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()
        self._stubs.clear()

    # ------------------------------------------------------------------------------ calls

    async def is_bootstrapped(self) -> bool:
        response = await self._call("IsBootstrapped", pdpb_pb2.IsBootstrappedRequest())
        return response.bootstrapped

    async def bootstrap(self, store: pdpb_pb2.StoreInfo, first_range: metapb_pb2.RangeDescriptor) -> bool:
        """Whether the cluster is bootstrapped with ``first_range`` by ``store``: by this call, or by
        an earlier try of it whose answer was lost (PD then answers already_bootstrapped naming
        the range it recorded). False if another store's bootstrap won."""
        request = pdpb_pb2.BootstrapRequest(store=store, first_range=first_range)
        response = await self._call("Bootstrap", request, accept=("already_bootstrapped",))
        if not response.header.HasField("error"):
            return True
        # Range ids come from PD's allocator, so nobody else can have recorded this id.
        return response.bootstrap_store_id == store.id and response.first_range.id == first_range.id

    async def put_store(self, store: pdpb_pb2.StoreInfo) -> None:
        await self._call("PutStore", pdpb_pb2.PutStoreRequest(store=store))

    async def get_store(self, store_id: int) -> pdpb_pb2.StoreInfo | None:
        response = await self._call("GetStore", pdpb_pb2.GetStoreRequest(store_id=store_id))
        return response.store if response.HasField("store") else None

    async def get_all_stores(self, exclude_tombstones: bool = True) -> list[pdpb_pb2.StoreInfo]:
        request = pdpb_pb2.GetAllStoresRequest(exclude_tombstones=exclude_tombstones)
        return list((await self._call("GetAllStores", request)).stores)

    async def store_heartbeat(self, store_id: int, stats: pdpb_pb2.StoreStats
                              ) -> pdpb_pb2.StoreHeartbeatResponse:
        """Reports the store's stats; the answer has the cluster's schedule config (e.g.
        max_range_size) and the store's state as PD acts on it (e.g. TOMBSTONE)."""
        request = pdpb_pb2.StoreHeartbeatRequest(store_id=store_id, stats=stats)
        return await self._call("StoreHeartbeat", request)

    async def get_range(self, key: bytes) -> pdpb_pb2.RangeInfo | None:
        response = await self._call("GetRange", pdpb_pb2.GetRangeRequest(key=key))
        return response.range if response.HasField("range") else None

    async def get_range_by_id(self, range_id: int) -> pdpb_pb2.RangeInfo | None:
        response = await self._call("GetRangeByID", pdpb_pb2.GetRangeByIDRequest(range_id=range_id))
        return response.range if response.HasField("range") else None

    async def scan_ranges(self, start: bytes, end: bytes = b"", limit: int = 0) -> list[pdpb_pb2.RangeInfo]:
        request = pdpb_pb2.ScanRangesRequest(start_key=start, end_key=end, limit=limit)
        return list((await self._call("ScanRanges", request)).ranges)

    async def ask_batch_split(self, desc: metapb_pb2.RangeDescriptor, count: int) -> list[pdpb_pb2.SplitID]:
        """New ids for ``count`` ranges split off ``desc`` (a range id and one peer id per replica each).
        A retry after a lost answer wastes the ids of the first try, nothing else."""
        request = pdpb_pb2.AskBatchSplitRequest(range=desc, split_count=count)
        return list((await self._call("AskBatchSplit", request)).ids)

    async def split_ranges(self, keys: list[bytes], timeout: float) -> list[pdpb_pb2.RangeInfo]:
        """Split the ranges holding ``keys`` so that each key starts a range; returns the ranges
        starting at the keys, in key order, once PD saw every split applied. PD waits up to
        ``timeout`` seconds (then PdError, kind timed_out); retries are harmless (PD skips keys
        that already start a range)."""
        if timeout <= 0:
            raise ValueError(f"the split timeout must be positive, got {timeout}")
        request = pdpb_pb2.SplitRangesRequest(split_keys=keys, timeout_ms=max(1, int(timeout * 1000)))
        # PD answers after up to ``timeout``: the attempt gets that plus the usual margin.
        response = await self._call("SplitRanges", request, attempt_timeout=timeout + ATTEMPT_TIMEOUT,
                                    total_timeout=max(self.timeout, timeout + ATTEMPT_TIMEOUT))
        return list(response.ranges)

    async def get_members(self) -> pdpb_pb2.GetMembersResponse:
        """The members and leader as the PD leader's replica of the metadata has them."""
        response = await self._call("GetMembers", pdpb_pb2.GetMembersRequest())
        self.members = list(response.members)
        return response

    async def add_member(self, address: str) -> pdpb_pb2.AddMemberResponse:
        """Add a PD member that will listen at ``address``, as a learner (PD promotes it once it
        caught up); the answer names its id, which ``kvdb pd --member-id ID --join ...`` needs.
        Refused (PdError, invalid_argument) if the address is bad or a member's already."""
        response = await self._call("AddMember", pdpb_pb2.AddMemberRequest(address=address))
        self.members = list(response.members)
        return response

    async def remove_member(self, member_id: int) -> list[pdpb_pb2.Member]:
        """Remove a PD member (the leader too: it hands leadership on first); returns the members
        left. Refused for an unknown id or the last voter."""
        response = await self._call("RemoveMember", pdpb_pb2.RemoveMemberRequest(member_id=member_id))
        self.members = list(response.members)
        return self.members

    # ------------------------------------------------------------------------- admin calls
    # Mutations retried after a lost answer: setting a store's state, labels or a config value
    # again is harmless; a repeated AddOperator is refused (the range has its operator already)
    # and a repeated CancelOperator reports the operator as it ended.

    async def add_operator(self, range_id: int, *, move_replica: tuple[int, int] | None = None,
                           transfer_leader: int | None = None) -> pdpb_pb2.OperatorInfo:
        """Ask PD to move the range's replica (``(from_store, to_store)``) or its leadership (to a
        store); exactly one of the two. Returns the operator PD started."""
        if (move_replica is None) == (transfer_leader is None):
            raise ValueError("give exactly one of move_replica and transfer_leader")
        request = pdpb_pb2.AddOperatorRequest(range_id=range_id)
        if move_replica is not None:
            request.move_replica.from_store, request.move_replica.to_store = move_replica
        else:
            request.transfer_leader.to_store = transfer_leader
        return (await self._call("AddOperator", request)).operator

    async def list_operators(self, include_finished: bool = False) -> list[pdpb_pb2.OperatorInfo]:
        request = pdpb_pb2.ListOperatorsRequest(include_finished=include_finished)
        return list((await self._call("ListOperators", request)).operators)

    async def cancel_operator(self, operator_id: int) -> pdpb_pb2.OperatorInfo:
        """Cancel a running operator; the operator as it stands after (already finished: as it ended)."""
        request = pdpb_pb2.CancelOperatorRequest(operator_id=operator_id)
        return (await self._call("CancelOperator", request)).operator

    async def set_store_state(self, store_id: int, state: int) -> pdpb_pb2.StoreInfo:
        """OFFLINE decommissions the store, UP cancels a decommission; the store's record after."""
        request = pdpb_pb2.SetStoreStateRequest(store_id=store_id, state=state)
        return (await self._call("SetStoreState", request)).store

    async def set_store_labels(self, store_id: int, labels: dict[str, str]) -> pdpb_pb2.StoreInfo:
        """Replace the store's labels with ``labels``; the store's record after."""
        request = pdpb_pb2.SetStoreLabelsRequest(
            store_id=store_id, labels=[pdpb_pb2.StoreLabel(key=k, value=v) for k, v in labels.items()])
        return (await self._call("SetStoreLabels", request)).store

    async def get_config(self) -> pdpb_pb2.ScheduleConfig:
        return (await self._call("GetConfig", pdpb_pb2.GetConfigRequest())).config

    async def set_config(self, key: str, value: str) -> pdpb_pb2.ScheduleConfig:
        """Set one schedule setting by name (value as text, lists comma-separated); the config after."""
        return (await self._call("SetConfig", pdpb_pb2.SetConfigRequest(key=key, value=value))).config

    async def list_schedulers(self) -> list[pdpb_pb2.SchedulerInfo]:
        return list((await self._call("ListSchedulers", pdpb_pb2.ListSchedulersRequest())).schedulers)

    async def pause_scheduler(self, name: str, resume: bool = False) -> pdpb_pb2.SchedulerInfo:
        request = pdpb_pb2.PauseSchedulerRequest(name=name, resume=resume)
        return (await self._call("PauseScheduler", request)).scheduler

    async def cluster_status(self) -> pdpb_pb2.GetClusterStatusResponse:
        return await self._call("GetClusterStatus", pdpb_pb2.GetClusterStatusRequest())

    async def get_gc_safe_point(self) -> int:
        """The MVCC GC safe point in force (0: never set): no read below it is served."""
        return (await self._call("GetGcSafePoint", pdpb_pb2.GetGcSafePointRequest())).safe_point

    async def update_gc_safe_point(self, safe_point: int) -> int:
        """Raise the GC safe point to ``safe_point`` once every lock below it is resolved; returns
        the one now in force (the higher of the old and the asked: it never goes down). Refused
        (PdError, invalid_argument) above PD's current timestamp. A retry is harmless."""
        request = pdpb_pb2.UpdateGcSafePointRequest(safe_point=safe_point)
        return (await self._call("UpdateGcSafePoint", request)).new_safe_point

    async def alloc_id(self) -> int:
        return (await self._call("AllocID", pdpb_pb2.AllocIDRequest())).id

    async def get_ts(self) -> int:
        return (await self.get_ts_batch(1))[0]

    async def get_ts_batch(self, n: int) -> list[int]:
        """``n`` consecutive stamps, from one TsoRequest shared with whoever asks at the same time."""
        if not 0 < n <= MAX_TSO_BATCH:
            raise ValueError(f"n must be in 1..{MAX_TSO_BATCH}, got {n}")
        self._check_open()
        if self._tso is None or self._tso.task.done():  # done: only if it crashed on a bug
            self._tso = _TsoDispatcher(self)
        waiter = asyncio.get_running_loop().create_future()
        self._tso.submit(n, waiter)
        try:
            async with asyncio.timeout(self.timeout):
                first = await waiter
        except TimeoutError:
            why = self._tso.retry.last
            raise PdUnavailableError(f"no timestamp within {self.timeout}s ({why})") from None
        return list(range(first, first + n))

    def range_heartbeat_stream(self) -> RangeHeartbeatStream:
        self._check_open()
        return RangeHeartbeatStream(self)

    # ------------------------------------------------------------------------------ internals

    def _check_open(self) -> None:
        if self._closed:
            raise PdError("PD client is closed")

    def _closed_under_us(self) -> None:
        """Called on CancelledError: grpc.aio ends the calls of a closing channel with one, also in
        tasks nobody cancelled; those get a PdError instead."""
        task = asyncio.current_task()
        if self._closed and task is not None and not task.cancelling():
            raise PdError("PD client is closed") from None

    def _stub(self, address: str) -> pdpb_pb2_grpc.PDStub:
        self._check_open()  # a call retrying through close() must not open channels again
        stub = self._stubs.get(address)
        if stub is None:
            channel = self._channels[address] = grpc_factory.channel(address, self.tls)
            stub = self._stubs[address] = pdpb_pb2_grpc.PDStub(channel)
        return stub

    def _learn_cluster_id(self, header: pdpb_pb2.ResponseHeader) -> None:
        # PD may assign the id only at bootstrap, so the first non-zero one seen is it.
        if not self.cluster_id and header.cluster_id:
            self.cluster_id = header.cluster_id

    def _forget_leader(self, address: str) -> None:
        # Only if nobody learned of a newer leader in the meantime.
        if self.leader_address == address:
            self.leader_address = ""

    def _redirect(self, address: str, error: pdpb_pb2.Error) -> bool:
        """Follows a not_leader hint; True when it names another member worth trying at once."""
        self._forget_leader(address)
        hint = error.not_leader.leader_address
        if hint and hint != address:
            self.leader_address = hint
            return True
        return False

    def _server_pause(self, error: pdpb_pb2.Error) -> float:
        """The pause a leader asked for; at least the shortest backoff, so a 0 cannot make us spin."""
        return max(error.unavailable_backoff_ms / 1000, self.backoff[0])

    async def _leader(self) -> str:
        """The leader's address, or "" when a round of discovery found none."""
        if self.leader_address:
            self._maybe_refresh_members()
            return self.leader_address
        return await self._discover()

    def _maybe_refresh_members(self) -> None:
        """Re-read the membership in the background once per ``MEMBERS_REFRESH_S``."""
        loop = asyncio.get_running_loop()
        if loop.time() < self._members_due or (self._refresh is not None and not self._refresh.done()):
            return
        self._members_due = loop.time() + MEMBERS_REFRESH_S
        self._refresh = loop.create_task(self._ask_members(self._stub(self.leader_address)))
        # A failure here shows on the next call; retrieving it keeps asyncio from logging it.
        self._refresh.add_done_callback(lambda task: task.cancelled() or task.exception())

    async def _discover(self) -> str:
        """One round of asking every known member; concurrent callers share the round."""
        self._check_open()
        if self._discovery is None or self._discovery.done():
            self._discovery = asyncio.get_running_loop().create_task(self._discover_round())
        try:
            return await asyncio.shield(self._discovery)
        except asyncio.CancelledError:
            self._closed_under_us()
            raise

    async def _discover_round(self) -> str:
        candidates = dict.fromkeys([m.address for m in self.members if m.address] + self.endpoints)
        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(self._ask_members(self._stub(address))) for address in candidates]
        pending = set(tasks)
        try:
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    leader = task.result()
                    if leader:
                        self.leader_address = leader
                        return leader
            return ""
        finally:
            for task in pending:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _ask_members(self, stub: pdpb_pb2_grpc.PDStub) -> str:
        try:
            response = await stub.GetMembers(pdpb_pb2.GetMembersRequest(), timeout=ATTEMPT_TIMEOUT)
        except grpc.aio.AioRpcError as exc:
            if _denied(exc):  # asking other members will not help
                raise _refused("GetMembers", exc) from exc
            log.debug("GetMembers failed: %s %s", exc.code().name, exc.details())
            self._last_member_error = exc.details() or ""
            return ""
        return self._absorb_members(response)

    def _absorb_members(self, response: pdpb_pb2.GetMembersResponse) -> str:
        """Learns membership and cluster id from a GetMembers answer; returns the leader it names."""
        self._learn_cluster_id(response.header)
        if response.header.HasField("error"):
            error = response.header.error
            return error.not_leader.leader_address if error.WhichOneof("kind") == "not_leader" else ""
        if response.members:
            self.members = list(response.members)
            self._members_due = asyncio.get_running_loop().time() + MEMBERS_REFRESH_S
        return response.leader.address if response.HasField("leader") else ""

    async def _call(self, method: str, request: Any, accept: tuple[str, ...] = (),
                    attempt_timeout: float = ATTEMPT_TIMEOUT, total_timeout: float | None = None) -> Any:
        """Sends ``request`` to the leader until it answers; error kinds in ``accept`` are answers too."""
        self._check_open()
        retry = _Retry(self.backoff)
        total = self.timeout if total_timeout is None else total_timeout
        try:
            async with asyncio.timeout(total):
                while (response := await self._attempt(method, request, accept, retry,
                                                       attempt_timeout)) is None:
                    pass
                return response
        except TimeoutError:
            raise PdUnavailableError(f"{method}: no answer within {total}s ({retry.last})") from None

    async def _attempt(self, method: str, request: Any, accept: tuple[str, ...], retry: _Retry,
                       attempt_timeout: float) -> Any:
        """One try; None after a failure, once it is time for the next try."""
        address = await self._leader()
        if not address:
            await retry.backoff("no member knows a leader")
            return None
        request.header.cluster_id = self.cluster_id
        try:
            response = await getattr(self._stub(address), method)(request, timeout=attempt_timeout)
        except asyncio.CancelledError:
            self._closed_under_us()
            raise
        except grpc.aio.AioRpcError as exc:
            if exc.code() not in RETRYABLE_CODES:
                raise _refused(f"{method} at {address}", exc) from exc
            self._forget_leader(address)
            await retry.backoff(f"{address}: {exc.code().name}")
            return None
        self._learn_cluster_id(response.header)
        error = response.header.error
        kind = error.WhichOneof("kind") if response.header.HasField("error") else None
        if kind is None or kind in accept:
            return response
        if kind == "not_leader":
            if not (self._redirect(address, error) and retry.hop()):
                await retry.backoff(f"{address}: not leader")
        elif kind == "unavailable_backoff_ms":
            retry.last = f"{address}: unavailable ({error.message})"
            await asyncio.sleep(self._server_pause(error))
        else:
            raise _server_error(f"{method} at {address}", error)
        return None


class _TsoDispatcher:
    """Sends the stamps asked for meanwhile as one request, one request at a time, on one stream.

    Waiters are served in the order they asked, so one caller's stamps increase in its own
    order. On a broken stream or a leader change the batch goes back to the front of the queue
    and is asked again of the (new) leader: callers just wait, up to their own timeout.
    """

    def __init__(self, client: PdClient) -> None:
        self._client = client
        self._waiting: deque[tuple[int, asyncio.Future[int]]] = deque()
        self._wakeup = asyncio.Event()
        self._call: grpc.aio.StreamStreamCall | None = None
        self._address = ""
        self.retry = _Retry(client.backoff)
        self.task = asyncio.get_running_loop().create_task(self._run())

    def submit(self, count: int, waiter: asyncio.Future[int]) -> None:
        self._waiting.append((count, waiter))
        self._wakeup.set()

    def _take_batch(self) -> list[tuple[int, asyncio.Future[int]]]:
        batch: list[tuple[int, asyncio.Future[int]]] = []
        total = 0
        while self._waiting:
            count, waiter = self._waiting[0]
            if waiter.done():  # the caller timed out or was cancelled
                self._waiting.popleft()
                continue
            if total + count > MAX_TSO_BATCH:
                break
            batch.append(self._waiting.popleft())
            total += count
        return batch

    def _drop_stream(self) -> None:
        if self._call is not None:
            self._call.cancel()
            self._call = None

    async def _run(self) -> None:
        batch: list[tuple[int, asyncio.Future[int]]] = []
        try:
            while True:
                batch = self._take_batch()
                if not batch:
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                try:
                    response = await self._exchange(sum(count for count, _ in batch))
                except STREAM_ERRORS as exc:
                    if _denied(exc):  # the certificate's role: no retry will help
                        self._drop_stream()
                        _fail(batch, _refused(f"Tso at {self._address}", exc))
                        continue
                    self._client._forget_leader(self._address)
                    self._drop_stream()
                    self._waiting.extendleft(reversed(batch))
                    await self.retry.backoff(f"{self._address or 'no leader'}: {exc!r:.200}")
                    continue
                except PdError as exc:
                    _fail(batch, exc)
                    continue
                if response is None:
                    self._waiting.extendleft(reversed(batch))
                    continue
                self.retry.succeeded()
                self._deliver(batch, response)
        finally:
            self._drop_stream()
            stopped = PdError("PD client is closed" if self._client._closed else "TSO dispatcher failed")
            for _, waiter in [*batch, *self._waiting]:
                if not waiter.done():
                    waiter.set_exception(stopped)

    async def _exchange(self, total: int) -> pdpb_pb2.TsoResponse | None:
        """One request and its answer, or None to ask again now (elsewhere, or after a pause PD asked
        for); raises PdError for a final answer and transport errors for a lost leader."""
        client = self._client
        if self._call is None:
            self._address = await client._leader()
            if not self._address:
                raise ConnectionError("no member knows a leader")
            self._call = client._stub(self._address).Tso()
        else:
            client._maybe_refresh_members()
        request = pdpb_pb2.TsoRequest(count=total)
        request.header.cluster_id = client.cluster_id
        async with asyncio.timeout(ATTEMPT_TIMEOUT):
            await self._call.write(request)
            response = await self._call.read()
        if response is grpc.aio.EOF:
            raise ConnectionError("TSO stream ended")
        client._learn_cluster_id(response.header)
        if not response.header.HasField("error"):
            return response
        error = response.header.error
        kind = error.WhichOneof("kind")
        if kind == "not_leader":
            self._drop_stream()
            if client._redirect(self._address, error) and self.retry.hop():
                return None
            raise ConnectionError("not the leader")
        if kind == "unavailable_backoff_ms":
            self.retry.last = f"{self._address}: unavailable ({error.message})"
            await asyncio.sleep(client._server_pause(error))
            return None
        raise _server_error(f"Tso at {self._address}", error)

    def _deliver(self, batch: list[tuple[int, asyncio.Future[int]]], response: pdpb_pb2.TsoResponse) -> None:
        """Hands out [T-N+1, T] in waiting order; waiters a short answer does not cover ask again."""
        next_ts = response.timestamp - response.count + 1
        remaining = response.count
        for i, (count, waiter) in enumerate(batch):
            if count > remaining:
                self._waiting.extendleft(reversed(batch[i:]))
                self._wakeup.set()
                return
            if not waiter.done():
                waiter.set_result(next_ts)
            next_ts += count
            remaining -= count


class RangeHeartbeatStream:
    """A store's batched range heartbeats to PD and PD's answers (operators), over one long-lived
    stream.

    A range's report is its whole state, so requests waiting to go out are merged into one, a
    newer report of a range replacing an older one: while PD is unreachable, the backlog stays one
    report per range. Whatever was in flight when a stream broke is lost, and a request PD answered
    with an error did nothing; ``losses`` counts both, so the sender knows to report everything
    again rather than only what changed.
    """

    def __init__(self, client: PdClient) -> None:
        self._client = client
        self._unsent: dict[int, pdpb_pb2.RangeInfo] = {}
        self._unsent_store = 0
        self._has_unsent = asyncio.Event()
        self.losses = 0
        self._responses: asyncio.Queue[pdpb_pb2.RangeHeartbeatResponse | None] = asyncio.Queue()
        self._closed = False
        self._retry = _Retry(client.backoff)
        client._streams.add(self)
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def send(self, req: pdpb_pb2.RangeHeartbeatRequest) -> None:
        """Queues ``req`` (merged with what is still waiting); its header.cluster_id is filled in
        when it goes out."""
        if self._closed:
            raise PdError("range heartbeat stream is closed")
        self._unsent_store = req.store_id
        for info in req.ranges:
            self._unsent.pop(info.descriptor.id, None)
            self._unsent[info.descriptor.id] = info
        self._has_unsent.set()

    async def responses(self) -> AsyncIterator[pdpb_pb2.RangeHeartbeatResponse]:
        """PD's answers, over however many streams it takes; ends when the stream is closed."""
        while True:
            response = await self._responses.get()
            if response is None:
                self._responses.put_nowait(None)  # for any other reader
                return
            yield response

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._client._streams.discard(self)
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._responses.put_nowait(None)

    async def _run(self) -> None:
        client = self._client
        while True:
            address = await client._leader()
            if address:
                self.losses += 1  # whatever the last stream had not delivered
                call = client._stub(address).RangeHeartbeat()
                writer = asyncio.get_running_loop().create_task(self._write(call))
                try:
                    redirected = await self._read(address, call)
                except grpc.aio.AioRpcError as exc:
                    # Denied: this node's certificate is not a node certificate; say so loudly.
                    log.log(logging.WARNING if _denied(exc) else logging.DEBUG,
                            "range heartbeat stream to %s ended: %s %s", address, exc.code().name,
                            exc.details())
                    redirected = False
                finally:
                    writer.cancel()
                    call.cancel()
                    await asyncio.gather(writer, return_exceptions=True)
                if redirected and self._retry.hop():
                    continue
                client._forget_leader(address)
            await self._retry.backoff(f"heartbeat stream to {address}" if address else "no leader known")

    async def _write(self, call: grpc.aio.StreamStreamCall) -> None:
        while True:
            await self._has_unsent.wait()
            self._has_unsent.clear()
            ranges, self._unsent = list(self._unsent.values()), {}
            request = pdpb_pb2.RangeHeartbeatRequest(store_id=self._unsent_store, ranges=ranges)
            request.header.cluster_id = self._client.cluster_id
            await call.write(request)

    async def _read(self, address: str, call: grpc.aio.StreamStreamCall) -> bool:
        """Passes answers on until the stream ends; True if it ended naming another leader."""
        client = self._client
        while True:
            response = await call.read()
            if response is grpc.aio.EOF:
                return False
            client._learn_cluster_id(response.header)
            if not response.header.HasField("error"):
                if self._responses.qsize() >= MAX_QUEUED_RESPONSES:
                    self._responses.get_nowait()  # nobody reads: PD repeats operators anyway
                self._responses.put_nowait(response)
                self._retry.succeeded()
                continue
            self.losses += 1
            error = response.header.error
            kind = error.WhichOneof("kind")
            if kind == "not_leader":
                return client._redirect(address, error)
            if kind != "unavailable_backoff_ms":  # that one: the next heartbeat is the retry
                log.warning("range heartbeat at %s: %s: %s", address, kind, error.message)

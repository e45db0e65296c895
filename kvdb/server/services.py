"""gRPC servicers of a store: KV (unary and the batched stream), Raft transport (the Raft
listener's port and snapshots; messages travel over ``kvdb.server.raft_listener``), admin."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

import grpc

from kvdb.net.auth import KV_UNARY_KINDS, allowed_kinds, identity_of, kv_request_role, refusal
from kvdb.pb import (
    adminpb_pb2,
    adminpb_pb2_grpc,
    kvrpc_pb2,
    kvrpc_pb2_grpc,
    raft_serverpb_pb2,
    raft_serverpb_pb2_grpc,
)
from kvdb.raft import ConfChangeType
from kvdb.store.errors import (
    DeadlineError,
    InvalidArgumentError,
    PermissionDeniedError,
    RangeNotFoundError,
    StoreError,
)
from kvdb.store.membership import UnsafeConfChangeError
from kvdb.store.peer import ROLE_NAMES
from kvdb.store.snapshot import Incoming, SnapshotCorruptError

if TYPE_CHECKING:
    from kvdb.server.node import StoreNode

log = logging.getLogger(__name__)


def _permission_check(context: grpc.aio.ServicerContext) -> Callable[[kvrpc_pb2.Request], StoreError | None]:
    """What a ``Batch`` stream asks of each request: the caller's identity is read once, when the
    stream opens, and each request then costs a set lookup (``kvdb.net.auth``)."""
    identity = identity_of(context)
    if identity is None:  # plaintext: nobody is checked
        return lambda req: None
    allowed = allowed_kinds(identity.role)

    def check(req: kvrpc_pb2.Request) -> StoreError | None:
        kind = req.WhichOneof("cmd")
        if kind in allowed:
            return None
        needed = kv_request_role(req)
        why = refusal(identity, f"send {kind} requests", needed)
        held = identity.role.label if identity.role is not None else ""
        return PermissionDeniedError(why, identity.name, held, needed.label)

    return check


def _error_response(req: kvrpc_pb2.Request, err: StoreError) -> kvrpc_pb2.Response:
    resp = kvrpc_pb2.Response(id=req.id)
    getattr(resp, req.WhichOneof("cmd") or "put").error.CopyFrom(err.to_pb())
    return resp


def _timeout_response(req: kvrpc_pb2.Request) -> kvrpc_pb2.Response:
    return _error_response(req, DeadlineError(f"{req.WhichOneof('cmd')} request {req.id}"))


class KvService(kvrpc_pb2_grpc.KvServicer):
    def __init__(self, node: StoreNode) -> None:
        self.node = node  # its kv_handler exists once it has loaded (StartupGate holds calls until then)
        for method, kind in KV_UNARY_KINDS.items():
            setattr(self, method, self._unary_method(kind))

    def _unary_method(self, kind: str) -> Callable:
        async def call(request: object, context: grpc.aio.ServicerContext) -> object:
            req = kvrpc_pb2.Request()
            getattr(req, kind).CopyFrom(request)
            loop = asyncio.get_running_loop()
            fut: asyncio.Future[kvrpc_pb2.Response] = loop.create_future()
            self.node.kv_handler.handle(req, lambda resp: fut.done() or fut.set_result(resp))
            self.node.wake()
            remaining = context.time_remaining()
            timeout = self.node.config.request_timeout if remaining is None else remaining
            try:
                resp = await asyncio.wait_for(fut, timeout)
            except TimeoutError:
                resp = _timeout_response(req)
            return getattr(resp, kind)

        return call

    async def Batch(
        self, request_iterator: AsyncIterator[kvrpc_pb2.BatchRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[kvrpc_pb2.BatchResponse]:
        """Pipelined requests: answers leave in batches, in completion order.

        Every request gets exactly one answer: its result, or a timeout once it has waited
        ``request_timeout`` (a sweep answers those, cheaper than a timer per request).
        """
        loop = asyncio.get_running_loop()
        out: list[kvrpc_pb2.Response] = []
        wakeup = asyncio.Event()
        # id -> (deadline, request); insertion order is deadline order, so the sweep stops early.
        pending: dict[int, tuple[float, kvrpc_pb2.Request]] = {}
        timeout = self.node.config.request_timeout
        denied = _permission_check(context)

        def responder(req_id: int) -> Callable[[kvrpc_pb2.Response], None]:
            def respond(resp: kvrpc_pb2.Response) -> None:
                if pending.pop(req_id, None) is not None:  # else: already answered by the sweep
                    out.append(resp)
                    wakeup.set()

            return respond

        async def read_requests() -> None:
            try:
                async for batch in request_iterator:
                    deadline = loop.time() + timeout
                    for req in batch.requests:
                        if req.id in pending:
                            err = InvalidArgumentError(f"request id {req.id} is already in flight")
                            out.append(_error_response(req, err))
                            continue
                        if (err := denied(req)) is not None:
                            out.append(_error_response(req, err))
                            continue
                        pending[req.id] = (deadline, req)
                        self.node.kv_handler.handle(req, responder(req.id))
                    self.node.wake()
                    wakeup.set()
            finally:
                wakeup.set()

        async def sweep() -> None:
            while True:
                await asyncio.sleep(min(1.0, timeout / 4))
                now = loop.time()
                expired = []
                for deadline, req in pending.values():
                    if deadline > now:
                        break
                    expired.append(req)
                for req in expired:
                    del pending[req.id]
                    out.append(_timeout_response(req))
                if expired:
                    wakeup.set()

        reader = loop.create_task(read_requests())
        sweeper = loop.create_task(sweep())
        try:
            while True:
                await wakeup.wait()
                wakeup.clear()
                if out:
                    batch, out[:] = list(out), []
                    yield kvrpc_pb2.BatchResponse(responses=batch)
                if reader.done() and not pending and not out:
                    reader.result()
                    return
        finally:
            reader.cancel()
            sweeper.cancel()


class RaftService(raft_serverpb_pb2_grpc.RaftTransportServicer):
    def __init__(self, node: StoreNode) -> None:
        self.node = node

    async def RaftPort(self, request: raft_serverpb_pb2.RaftPortRequest,
                       context: grpc.aio.ServicerContext) -> raft_serverpb_pb2.RaftPortResponse:
        """Where Raft messages go: the port of this process's ``RaftListener`` (on our host)."""
        store = self.node.store
        if request.cluster_id != store.cluster_id:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                                f"cluster {request.cluster_id} is not this store's ({store.cluster_id})")
        return raft_serverpb_pb2.RaftPortResponse(port=self.node.host.listener.port)

    async def Snapshot(self, request_iterator: AsyncIterator[raft_serverpb_pb2.SnapshotChunk],
                       context: grpc.aio.ServicerContext) -> raft_serverpb_pb2.Done:
        """Chunks go to a file as they come (``Incoming``): never the whole snapshot in memory."""
        store = self.node.store
        incoming: Incoming | None = None
        message: raft_serverpb_pb2.RaftMessage | None = None
        try:
            async for chunk in request_iterator:
                if message is None:
                    if chunk.cluster_id != store.cluster_id:
                        await context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                                            "snapshot from another cluster")
                    message = chunk.message
                    incoming = store.receive_snapshot(message)
                else:
                    incoming.write(chunk.data)
            if message is None:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "empty snapshot stream")
            handed, incoming = incoming, None  # on_snapshot keeps or deletes the file
            accepted = store.on_snapshot(message, handed)
        except SnapshotCorruptError as exc:
            await context.abort(grpc.StatusCode.DATA_LOSS, str(exc))
        finally:
            if incoming is not None:  # the stream failed midway
                incoming.discard()
        self.node.wake()
        if not accepted:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "no replica accepts this snapshot")
        return raft_serverpb_pb2.Done()


_CHANGE_TYPES = {
    adminpb_pb2.ChangePeerRequest.ADD_LEARNER: ConfChangeType.ADD_LEARNER,
    adminpb_pb2.ChangePeerRequest.ADD_VOTER: ConfChangeType.ADD_NODE,
    adminpb_pb2.ChangePeerRequest.REMOVE: ConfChangeType.REMOVE_NODE,
}


class AdminService(adminpb_pb2_grpc.AdminServicer):
    def __init__(self, node: StoreNode) -> None:
        self.node = node

    async def RangeStatus(self, request: adminpb_pb2.RangeStatusRequest,
                          context: grpc.aio.ServicerContext) -> adminpb_pb2.RangeStatusResponse:
        store = self.node.store
        resp = adminpb_pb2.RangeStatusResponse(store_id=store.store_id)
        now = store.clock.now()
        for range_id, peer in sorted(store.peers.items()):
            if request.range_id and range_id != request.range_id:
                continue
            raft = peer.raw.raft
            st = resp.ranges.add(
                peer_id=peer.peer_id, role=ROLE_NAMES[raft.role], term=raft.term, leader_id=raft.lead,
                commit_index=raft.raft_log.committed, applied_index=peer.applied,
                first_index=peer.storage.first_index(), last_index=raft.raft_log.last_index(),
                lease_valid=peer.lease_valid(now),
                lease_remaining_ms=peer.lease.remaining(raft.term, now) * 1000,
                hibernated=store.hibernation.is_asleep(peer),
                **peer.counters,
            )
            st.descriptor.CopyFrom(peer.desc)
        if request.range_id and not resp.ranges:
            resp.error.CopyFrom(RangeNotFoundError(request.range_id).to_pb())
        return resp

    async def ChangePeer(self, request: adminpb_pb2.ChangePeerRequest,
                         context: grpc.aio.ServicerContext) -> adminpb_pb2.ChangePeerResponse:
        store = self.node.store
        resp = adminpb_pb2.ChangePeerResponse()
        fut: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        try:
            store.check_cluster(request.cluster_id)
            store.change_peer(request.range_id, _CHANGE_TYPES[request.change_type], request.peer,
                              lambda result: fut.done() or fut.set_result(result))
            self.node.wake()
            result = await asyncio.wait_for(fut, self.node.config.request_timeout)
        except StoreError as exc:
            result = exc
        except TimeoutError:
            result = DeadlineError("conf change")
        if isinstance(result, StoreError):
            resp.error.CopyFrom(result.to_pb())
            if isinstance(result, UnsafeConfChangeError):
                resp.unsafe.CopyFrom(result.detail())
        else:
            resp.descriptor.CopyFrom(result)
        return resp

    async def TransferLeader(self, request: adminpb_pb2.TransferLeaderRequest,
                             context: grpc.aio.ServicerContext) -> adminpb_pb2.TransferLeaderResponse:
        resp = adminpb_pb2.TransferLeaderResponse()
        try:
            self.node.store.check_cluster(request.cluster_id)
            self.node.store.transfer_leader(request.range_id, request.to_peer_id)
            self.node.wake()
        except StoreError as exc:
            resp.error.CopyFrom(exc.to_pb())
        return resp

    async def SetFailpoint(self, request: adminpb_pb2.SetFailpointRequest,
                           context: grpc.aio.ServicerContext) -> adminpb_pb2.SetFailpointResponse:
        resp = adminpb_pb2.SetFailpointResponse()
        try:
            self.node.set_failpoint(request.kind, request.store_id, request.value)
        except StoreError as exc:
            resp.error.CopyFrom(exc.to_pb())
        return resp

    async def CompactLog(self, request: adminpb_pb2.CompactLogRequest,
                         context: grpc.aio.ServicerContext) -> adminpb_pb2.CompactLogResponse:
        resp = adminpb_pb2.CompactLogResponse()
        try:
            resp.first_index = self.node.store.compact_log(request.range_id)
        except StoreError as exc:
            resp.error.CopyFrom(exc.to_pb())
        return resp


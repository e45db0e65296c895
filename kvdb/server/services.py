"""gRPC servicers of a store: KV (unary, the batched stream and the raw stream's port), Raft
transport (the Raft listener's port and snapshots; messages travel over
``kvdb.server.raft_listener``), admin."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

import grpc

from kvdb.net.auth import KV_UNARY_KINDS, identity_of
from kvdb.pb import (
    adminpb_pb2,
    adminpb_pb2_grpc,
    kvrpc_pb2,
    kvrpc_pb2_grpc,
    raft_serverpb_pb2,
    raft_serverpb_pb2_grpc,
)
from kvdb.raft import ConfChangeType
from kvdb.server.kv_session import KvSession, timeout_response
from kvdb.store.errors import DeadlineError, RangeNotFoundError, StoreError, WrongClusterError
from kvdb.store.membership import UnsafeConfChangeError
from kvdb.store.peer import ROLE_NAMES
from kvdb.store.snapshot import Incoming, SnapshotCorruptError

if TYPE_CHECKING:
    from kvdb.server.node import StoreNode

log = logging.getLogger(__name__)


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
                resp = timeout_response(req)
            return getattr(resp, kind)

        return call

    async def Batch(
        self, request_iterator: AsyncIterator[kvrpc_pb2.BatchRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[kvrpc_pb2.BatchResponse]:
        """Pipelined requests (``KvSession``): answers leave in batches, in completion order."""
        wakeup = asyncio.Event()
        session = KvSession(self.node, identity_of(context), wakeup.set)

        async def read_requests() -> None:
            try:
                async for batch in request_iterator:
                    session.submit(batch.requests)
            finally:
                wakeup.set()

        reader = asyncio.get_running_loop().create_task(read_requests())
        try:
            while True:
                await wakeup.wait()
                wakeup.clear()
                if responses := session.take():
                    yield kvrpc_pb2.BatchResponse(responses=responses)
                if reader.done() and session.idle:
                    reader.result()
                    return
        finally:
            reader.cancel()
            session.close()

    async def KvPort(self, request: kvrpc_pb2.KvPortRequest,
                     context: grpc.aio.ServicerContext) -> kvrpc_pb2.KvPortResponse:
        """Where the raw KV stream is served: the port of this store's ``KvListener`` (on our host)."""
        try:
            self.node.store.check_cluster(request.cluster_id)
        except WrongClusterError as exc:
            return kvrpc_pb2.KvPortResponse(error=exc.to_pb())
        return kvrpc_pb2.KvPortResponse(port=self.node.kv_listener.port)


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


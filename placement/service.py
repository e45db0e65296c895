"""The PD gRPC service: only the leader (holding its lease) serves; others name the leader."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

import grpc

from kvdb.pb import metapb_pb2, pdpb_pb2, pdpb_pb2_grpc
from placement import metadata as md
from placement.checker import check_replicas, store_state
from placement.state import NotServingError, Update

if TYPE_CHECKING:
    from placement.server import PdMember

log = logging.getLogger(__name__)


class RequestError(Exception):
    """The request itself is wrong (or the cluster is in the wrong state for it)."""

    def __init__(self, message: str, **kind: object) -> None:
        super().__init__(message)
        self.kind = kind


def now_ms() -> int:
    return int(time.time() * 1000)


def _epoch_older(a: metapb_pb2.RangeEpoch, b: metapb_pb2.RangeEpoch) -> bool:
    return a.conf_ver < b.conf_ver or a.version < b.version


def range_report_stale(new: pdpb_pb2.RangeInfo, recorded: pdpb_pb2.RangeInfo) -> bool:
    """Whether a range heartbeat says less than PD's record: an epoch older in either part, or a
    leader of an older term (a deposed leader that has not heard yet reports the same epoch)."""
    if _epoch_older(new.descriptor.epoch, recorded.descriptor.epoch):
        return True
    return 0 < new.term < recorded.term


class PdService(pdpb_pb2_grpc.PDServicer):
    def __init__(self, member: PdMember) -> None:
        self.member = member
        self.state = member.state

    # --------------------------------------------------------------------------- plumbing
    async def _serve(self, request: object, response: object, handler: Callable[[], Awaitable[None]],
                     needs_cluster: bool = True) -> object:
        """Run ``handler`` as the leader, turning failures into the response header's error."""
        header = response.header
        try:
            await self.member.ensure_leader_ready()
            header.cluster_id = self.member.cluster_id
            got = request.header.cluster_id
            if needs_cluster and got and got != self.member.cluster_id:
                raise RequestError(f"request for cluster {got}, this is {self.member.cluster_id}",
                                   wrong_cluster=self.member.cluster_id)
            await handler()
        except NotServingError as exc:
            header.error.CopyFrom(self._not_serving(exc))
        except RequestError as exc:
            header.error.CopyFrom(pdpb_pb2.Error(message=str(exc), **exc.kind))
        return response

    def _not_serving(self, exc: NotServingError) -> pdpb_pb2.Error:
        if exc.backoff_ms:
            return pdpb_pb2.Error(message=str(exc), unavailable_backoff_ms=exc.backoff_ms)
        err = pdpb_pb2.Error(message=str(exc))
        err.not_leader.leader_id = exc.leader_id
        err.not_leader.leader_address = self.member.members.get(exc.leader_id, "")
        return err

    async def _require_bootstrapped(self) -> None:
        if await self.state.get(md.BOOTSTRAPPED) is None:
            raise RequestError("the cluster is not bootstrapped", not_bootstrapped=True)

    async def _store(self, store_id: int) -> pdpb_pb2.StoreInfo | None:
        raw = await self.state.get(md.store_key(store_id))
        return None if raw is None else pdpb_pb2.StoreInfo.FromString(raw)

    def _with_state(self, info: pdpb_pb2.StoreInfo) -> pdpb_pb2.StoreInfo:
        cfg = self.member.config
        info.state = store_state(info, now_ms(), cfg.store_disconnect_ms, self.member.schedule.store_down_ms,
                                 self.member.serving_since_ms)
        return info

    async def _all_stores(self) -> list[pdpb_pb2.StoreInfo]:
        pairs = await self.state.scan(md.STORE_PREFIX, md.prefix_end(md.STORE_PREFIX))
        return [self._with_state(pdpb_pb2.StoreInfo.FromString(v)) for _, v in pairs]

    async def _range_by_id(self, range_id: int) -> pdpb_pb2.RangeInfo | None:
        raw = await self.state.get(md.range_key(range_id))
        return None if raw is None else pdpb_pb2.RangeInfo.FromString(raw)

    # ------------------------------------------------------------------------------- RPCs
    async def GetMembers(self, request: pdpb_pb2.GetMembersRequest,
                         context: grpc.aio.ServicerContext) -> pdpb_pb2.GetMembersResponse:
        """Any member answers: the member list and who it thinks leads."""
        m = self.member
        if not m.cluster_id:
            m.refresh_cluster_id()
        resp = pdpb_pb2.GetMembersResponse()
        resp.header.cluster_id = m.cluster_id
        for member_id, address in sorted(m.members.items()):
            resp.members.add(id=member_id, address=address)
        lead = m.state.peer.raw.raft.lead
        if lead:
            resp.leader.id, resp.leader.address = lead, m.members.get(lead, "")
        return resp

    async def Bootstrap(self, request: pdpb_pb2.BootstrapRequest,
                        context: grpc.aio.ServicerContext) -> pdpb_pb2.BootstrapResponse:
        resp = pdpb_pb2.BootstrapResponse()

        async def handle() -> None:
            store, rng = request.store, request.first_range
            if not store.id or not store.address or not rng.id or not rng.peers:
                raise RequestError("bootstrap needs a store (id, address) and a first range with peers",
                                   invalid_argument=True)
            if rng.start_key or rng.end_key or [p.store_id for p in rng.peers] != [store.id]:
                raise RequestError("the first range must cover all keys with one peer, on the "
                                   "bootstrapping store", invalid_argument=True)
            info = pdpb_pb2.RangeInfo(descriptor=rng, leader=rng.peers[0])
            stored = pdpb_pb2.StoreInfo(id=store.id, address=store.address, labels=store.labels,
                                        last_heartbeat_ms=now_ms())
            puts = {md.store_key(store.id): stored.SerializeToString(),
                    md.range_key(rng.id): info.SerializeToString(),
                    md.end_index_key(rng.end_key): rng.id.to_bytes(8, "big")}
            if not await self.state.write(puts, expect=(md.BOOTSTRAPPED, None),
                                          new_value=request.SerializeToString()):
                # Say with what: the caller may be retrying its own bootstrap whose answer was lost.
                recorded = pdpb_pb2.BootstrapRequest.FromString(await self.state.get(md.BOOTSTRAPPED))
                resp.bootstrap_store_id = recorded.store.id
                resp.first_range.CopyFrom(recorded.first_range)
                raise RequestError("the cluster is already bootstrapped", already_bootstrapped=True)
            log.info("cluster %d bootstrapped by store %d (range %d)", self.member.cluster_id, store.id,
                     rng.id)

        return await self._serve(request, resp, handle)

    async def IsBootstrapped(self, request: pdpb_pb2.IsBootstrappedRequest,
                             context: grpc.aio.ServicerContext) -> pdpb_pb2.IsBootstrappedResponse:
        resp = pdpb_pb2.IsBootstrappedResponse()

        async def handle() -> None:
            resp.bootstrapped = await self.state.get(md.BOOTSTRAPPED) is not None

        return await self._serve(request, resp, handle)

    async def PutStore(self, request: pdpb_pb2.PutStoreRequest,
                       context: grpc.aio.ServicerContext) -> pdpb_pb2.PutStoreResponse:
        async def handle() -> None:
            await self._require_bootstrapped()
            new = request.store
            if not new.id or not new.address:
                raise RequestError("a store needs an id and an address", invalid_argument=True)
            for other in await self._all_stores():
                if other.address == new.address and other.id != new.id and other.state != pdpb_pb2.TOMBSTONE:
                    raise RequestError(f"address {new.address} belongs to store {other.id}",
                                       invalid_argument=True)

            async def register(raw: bytes | None) -> Update:
                info = pdpb_pb2.StoreInfo(id=new.id) if raw is None else pdpb_pb2.StoreInfo.FromString(raw)
                if info.state == pdpb_pb2.TOMBSTONE:
                    raise RequestError(f"store {new.id} is a tombstone", invalid_argument=True)
                info.address = new.address
                del info.labels[:]
                info.labels.extend(new.labels)
                info.last_heartbeat_ms = now_ms()
                return info.SerializeToString(), {}, []

            await self.state.update(md.store_key(new.id), register)

        return await self._serve(request, pdpb_pb2.PutStoreResponse(), handle)

    async def GetStore(self, request: pdpb_pb2.GetStoreRequest,
                       context: grpc.aio.ServicerContext) -> pdpb_pb2.GetStoreResponse:
        resp = pdpb_pb2.GetStoreResponse()

        async def handle() -> None:
            info = await self._store(request.store_id)
            if info is None:
                raise RequestError(f"store {request.store_id} is unknown", invalid_argument=True)
            resp.store.CopyFrom(self._with_state(info))

        return await self._serve(request, resp, handle)

    async def GetAllStores(self, request: pdpb_pb2.GetAllStoresRequest,
                           context: grpc.aio.ServicerContext) -> pdpb_pb2.GetAllStoresResponse:
        resp = pdpb_pb2.GetAllStoresResponse()

        async def handle() -> None:
            for info in await self._all_stores():
                if not (request.exclude_tombstones and info.state == pdpb_pb2.TOMBSTONE):
                    resp.stores.append(info)

        return await self._serve(request, resp, handle)

    async def StoreHeartbeat(self, request: pdpb_pb2.StoreHeartbeatRequest,
                             context: grpc.aio.ServicerContext) -> pdpb_pb2.StoreHeartbeatResponse:
        async def beat(raw: bytes | None) -> Update:
            if raw is None:
                raise RequestError(f"store {request.store_id} is unknown: PutStore first",
                                   invalid_argument=True)
            info = pdpb_pb2.StoreInfo.FromString(raw)  # as stored: a PutStore's address is kept
            info.stats.CopyFrom(request.stats)
            info.last_heartbeat_ms = now_ms()
            return info.SerializeToString(), {}, []

        async def handle() -> None:
            await self.state.update(md.store_key(request.store_id), beat)

        return await self._serve(request, pdpb_pb2.StoreHeartbeatResponse(), handle)

    async def RangeHeartbeat(self, request_iterator: AsyncIterator[pdpb_pb2.RangeHeartbeatRequest],
                             context: grpc.aio.ServicerContext,
                             ) -> AsyncIterator[pdpb_pb2.RangeHeartbeatResponse]:
        async for request in request_iterator:
            resp = pdpb_pb2.RangeHeartbeatResponse(range_id=request.range.descriptor.id)
            yield await self._serve(request, resp, lambda r=request, s=resp: self._range_heartbeat(r, s))

    async def _range_heartbeat(self, request: pdpb_pb2.RangeHeartbeatRequest,
                               resp: pdpb_pb2.RangeHeartbeatResponse) -> None:
        await self._require_bootstrapped()
        info = request.range
        desc = info.descriptor
        if not desc.id:
            raise RequestError("range heartbeat without a range id", invalid_argument=True)
        range_id = desc.id.to_bytes(8, "big")
        index_key = md.end_index_key(desc.end_key)
        stale = False

        async def record(raw: bytes | None) -> Update | None:
            nonlocal stale
            old = None if raw is None else pdpb_pb2.RangeInfo.FromString(raw)
            stale = old is not None and range_report_stale(info, old)
            if stale:
                resp.epoch.CopyFrom(old.descriptor.epoch)  # PD trusts the higher epoch and term
                return None
            resp.epoch.CopyFrom(desc.epoch)
            # The index entry is checked too: a split's halves race for the old end's entry.
            if old == info and await self.state.get(index_key) == range_id:
                return None
            deletes = []
            if old is not None and old.descriptor.end_key != desc.end_key:
                # The old end may belong to another range by now (a split's right half).
                old_index = md.end_index_key(old.descriptor.end_key)
                if await self.state.get(old_index) == range_id:
                    deletes.append(old_index)
            return info.SerializeToString(), {index_key: range_id}, deletes

        await self.state.update(md.range_key(desc.id), record)
        if stale:
            return
        stores = {s.id: s for s in await self._all_stores()}
        await self.member.ensure_spare_ids()
        schedule = self.member.schedule
        op = self.member.operators.next_operator(
            info, now_ms(), lambda: check_replicas(info, stores, schedule, self.member.take_spare_id))
        if op is not None:
            resp.operator.CopyFrom(op)

    async def GetRange(self, request: pdpb_pb2.GetRangeRequest,
                       context: grpc.aio.ServicerContext) -> pdpb_pb2.GetRangeResponse:
        resp = pdpb_pb2.GetRangeResponse()

        async def handle() -> None:
            await self._require_bootstrapped()
            found = await self._scan_ranges(request.key, b"", 1)
            if found and found[0].descriptor.start_key <= request.key:
                resp.range.CopyFrom(found[0])

        return await self._serve(request, resp, handle)

    async def GetRangeByID(self, request: pdpb_pb2.GetRangeByIDRequest,
                           context: grpc.aio.ServicerContext) -> pdpb_pb2.GetRangeResponse:
        resp = pdpb_pb2.GetRangeResponse()

        async def handle() -> None:
            info = await self._range_by_id(request.range_id)
            if info is not None:
                resp.range.CopyFrom(info)

        return await self._serve(request, resp, handle)

    async def ScanRanges(self, request: pdpb_pb2.ScanRangesRequest,
                         context: grpc.aio.ServicerContext) -> pdpb_pb2.ScanRangesResponse:
        resp = pdpb_pb2.ScanRangesResponse()

        async def handle() -> None:
            await self._require_bootstrapped()
            resp.ranges.extend(await self._scan_ranges(request.start_key, request.end_key, request.limit))

        return await self._serve(request, resp, handle)

    async def _scan_ranges(self, start: bytes, end: bytes, limit: int) -> list[pdpb_pb2.RangeInfo]:
        """Ranges overlapping [start, end), from the end-key index (the first end above ``start``)."""
        index = await self.state.scan(md.lookup_start(start), md.END_INDEX_END, limit)
        out = []
        for _, value in index:
            info = await self._range_by_id(int.from_bytes(value, "big"))
            if info is None:
                continue
            if end and info.descriptor.start_key >= end:
                break
            out.append(info)
        return out

    async def AllocID(self, request: pdpb_pb2.AllocIDRequest,
                      context: grpc.aio.ServicerContext) -> pdpb_pb2.AllocIDResponse:
        resp = pdpb_pb2.AllocIDResponse()

        async def handle() -> None:
            resp.id = await self.member.ids.alloc()

        return await self._serve(request, resp, handle)

    async def Tso(self, request_iterator: AsyncIterator[pdpb_pb2.TsoRequest],
                  context: grpc.aio.ServicerContext) -> AsyncIterator[pdpb_pb2.TsoResponse]:
        async for request in request_iterator:
            resp = pdpb_pb2.TsoResponse()

            async def handle(req: pdpb_pb2.TsoRequest = request, out: pdpb_pb2.TsoResponse = resp) -> None:
                count = req.count or 1
                try:
                    ts = await self.member.tso.get(count)
                except ValueError as exc:
                    raise RequestError(str(exc), invalid_argument=True) from exc
                # Checked again with no await before the answer leaves: a deposed leader whose lease
                # ran out meanwhile must not answer after the new leader's first stamp.
                self.state.check_serving()
                out.timestamp, out.count = ts, count

            yield await self._serve(request, resp, handle)


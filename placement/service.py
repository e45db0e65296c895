"""The PD gRPC service: only the leader (holding its lease) serves; others name the leader."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

import grpc

from kvdb.pb import pdpb_pb2, pdpb_pb2_grpc
from placement import metadata as md
from placement.admin_rpcs import AdminRpcs
from placement.gc_rpcs import GcRpcs
from placement.member_rpcs import MemberRpcs
from placement.range_tree import RangeTree
from placement.rpc import RequestError, now_ms
from placement.schedule import operator as ops
from placement.schedule.runner import update_store
from placement.state import NotServingError, Update

if TYPE_CHECKING:
    from placement.server import PdMember

log = logging.getLogger(__name__)

MAX_RANGES_PER_WRITE = 1000
"""Range records per metadata write: a first report of many ranges goes out as a few commands of
bounded size, not one huge one."""
MAX_SPLITS = 1000
"""Most new ranges one AskBatchSplit or SplitRanges asks for."""
DEFAULT_SPLIT_TIMEOUT_MS = 30_000
SPLIT_RECHECK_S = 1.0
"""How often a waiting SplitRanges looks again even if no range changed (an operator timed out)."""


class PdService(AdminRpcs, GcRpcs, MemberRpcs, pdpb_pb2_grpc.PDServicer):
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

    def _require_bootstrapped(self) -> None:
        if not self.member.bootstrapped:
            raise RequestError("the cluster is not bootstrapped", not_bootstrapped=True)

    @property
    def _tree(self) -> RangeTree:
        return self.member.cluster.ranges

    def _all_stores(self) -> list[pdpb_pb2.StoreInfo]:
        """Every store's record with its state now and its counts from the ranges PD holds."""
        cluster, now = self.member.cluster, now_ms()
        return [cluster.store_with_state(store_id, now) for store_id in sorted(cluster.stores)]

    # ------------------------------------------------------------------------------- RPCs
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
                    md.range_key(rng.id): info.SerializeToString()}
            try:
                won = await self.state.write(puts, expect=(md.BOOTSTRAPPED, None),
                                             new_value=request.SerializeToString())
            finally:
                self.member.views_stale()  # reloaded with the outcome, whichever it was
            if not won:
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
            resp.bootstrapped = self.member.bootstrapped

        return await self._serve(request, resp, handle)

    async def PutStore(self, request: pdpb_pb2.PutStoreRequest,
                       context: grpc.aio.ServicerContext) -> pdpb_pb2.PutStoreResponse:
        async def handle() -> None:
            self._require_bootstrapped()
            new = request.store
            if not new.id or not new.address:
                raise RequestError("a store needs an id and an address", invalid_argument=True)
            for other in self._all_stores():
                if other.address == new.address and other.id != new.id and other.state != pdpb_pb2.TOMBSTONE:
                    raise RequestError(f"address {new.address} belongs to store {other.id}",
                                       invalid_argument=True)

            async def register(raw: bytes | None) -> Update:
                info = pdpb_pb2.StoreInfo(id=new.id) if raw is None else pdpb_pb2.StoreInfo.FromString(raw)
                if info.state == pdpb_pb2.TOMBSTONE:
                    raise RequestError(f"store {new.id} is a tombstone", invalid_argument=True)
                info.address = new.address
                if new.labels:  # none given: keep those set with `kvdb admin store-labels`
                    del info.labels[:]
                    info.labels.extend(new.labels)
                info.last_heartbeat_ms = now_ms()
                return info.SerializeToString(), {}, []

            await update_store(self.member, new.id, register)

        return await self._serve(request, pdpb_pb2.PutStoreResponse(), handle)

    async def GetStore(self, request: pdpb_pb2.GetStoreRequest,
                       context: grpc.aio.ServicerContext) -> pdpb_pb2.GetStoreResponse:
        resp = pdpb_pb2.GetStoreResponse()

        async def handle() -> None:
            if request.store_id not in self.member.cluster.stores:
                raise RequestError(f"store {request.store_id} is unknown", invalid_argument=True)
            resp.store.CopyFrom(self.member.cluster.store_with_state(request.store_id, now_ms()))

        return await self._serve(request, resp, handle)

    async def GetAllStores(self, request: pdpb_pb2.GetAllStoresRequest,
                           context: grpc.aio.ServicerContext) -> pdpb_pb2.GetAllStoresResponse:
        resp = pdpb_pb2.GetAllStoresResponse()

        async def handle() -> None:
            for info in self._all_stores():
                if not (request.exclude_tombstones and info.state == pdpb_pb2.TOMBSTONE):
                    resp.stores.append(info)

        return await self._serve(request, resp, handle)

    async def StoreHeartbeat(self, request: pdpb_pb2.StoreHeartbeatRequest,
                             context: grpc.aio.ServicerContext) -> pdpb_pb2.StoreHeartbeatResponse:
        """In memory only (no Raft read or write): liveness and stats go to the cluster model."""
        resp = pdpb_pb2.StoreHeartbeatResponse()

        async def handle() -> None:
            cluster, now = self.member.cluster, now_ms()
            if not cluster.store_heartbeat(request.store_id, request.stats, now):
                raise RequestError(f"store {request.store_id} is unknown: PutStore first",
                                   invalid_argument=True)
            self.member.stats.heartbeats["store"] += 1
            resp.config.CopyFrom(cluster.config)  # e.g. max_range_size for the split checker
            resp.state = cluster.state(request.store_id, now)
            resp.gc_safe_point = self.member.gc_safe_point

        return await self._serve(request, resp, handle)

    async def RangeHeartbeat(self, request_iterator: AsyncIterator[pdpb_pb2.RangeHeartbeatRequest],
                             context: grpc.aio.ServicerContext,
                             ) -> AsyncIterator[pdpb_pb2.RangeHeartbeatResponse]:
        async for request in request_iterator:
            resp = pdpb_pb2.RangeHeartbeatResponse()
            yield await self._serve(request, resp, lambda r=request, s=resp: self._range_heartbeat(r, s))

    async def _range_heartbeat(self, request: pdpb_pb2.RangeHeartbeatRequest,
                               resp: pdpb_pb2.RangeHeartbeatResponse) -> None:
        """Record what changed, then hand out operator steps: for each reported range, and for
        the operators in flight of ranges this store leads that it did not report this time (an
        unchanged range is reported only now and then, and its operator must not wait for that).
        A reported range without an operator goes to the coordinator's next run."""
        self._require_bootstrapped()
        if any(not info.descriptor.id for info in request.ranges):
            raise RequestError("range heartbeat without a range id", invalid_argument=True)
        fresh = await self._record_ranges(request.ranges)
        member, now = self.member, now_ms()
        member.stats.heartbeats["range"] += 1
        controller = member.controller
        for info in fresh:
            self._decide(resp, info, now)
        reported = {info.descriptor.id for info in request.ranges}
        for op in controller.running():
            info = self._tree.get_by_id(op.range_id)
            if op.range_id not in reported and info is not None and info.leader.store_id == request.store_id:
                self._decide(resp, info, now)

    def _decide(self, resp: pdpb_pb2.RangeHeartbeatResponse, info: pdpb_pb2.RangeInfo, now: int) -> None:
        member = self.member
        step = member.controller.step_for(info, now)
        if step is not None:
            resp.decisions.add(range_id=info.descriptor.id, epoch=info.descriptor.epoch, operator=step)
        elif member.controller.get(info.descriptor.id) is None:
            member.coordinator.mark_dirty(info.descriptor.id)

    async def _record_ranges(self, infos: list[pdpb_pb2.RangeInfo]) -> list[pdpb_pb2.RangeInfo]:
        """Write the reports that change PD's view (a few batched writes); returns the reports
        that are not stale. An unchanged report costs a lookup and a comparison, no I/O.

        Decisions and writes happen under ``range_lock`` in one order, so no conditional write is
        needed: only the leader writes range records, and its proposals apply in the order made.
        A write that fails may or may not have applied, so the views are reloaded before the
        next request is served.
        """
        member = self.member
        fresh = []
        async with member.range_lock:
            cluster = member.cluster
            tree = cluster.ranges
            changes: dict[int, pdpb_pb2.RangeInfo | None] = {}
            for info in infos:
                if tree.is_stale(info):
                    continue
                fresh.append(info)
                known = tree.get_by_id(info.descriptor.id)
                if known == info:
                    continue
                for replaced in cluster.put_range(info):
                    changes[replaced] = None
                    log.info("range %d replaces range %d's older record", info.descriptor.id, replaced)
                if known is None or not rates_only(known, info):
                    changes[info.descriptor.id] = info
            if changes:
                try:
                    await self._write_ranges(changes)
                except BaseException:
                    member.views_stale()
                    raise
                member.ranges_changed()
        return fresh

    async def _write_ranges(self, changes: dict[int, pdpb_pb2.RangeInfo | None]) -> None:
        items = list(changes.items())
        for at in range(0, len(items), MAX_RANGES_PER_WRITE):
            chunk = items[at:at + MAX_RANGES_PER_WRITE]
            puts = {md.range_key(rid): info.SerializeToString() for rid, info in chunk if info is not None}
            await self.state.write(puts, [md.range_key(rid) for rid, info in chunk if info is None])

    async def GetRange(self, request: pdpb_pb2.GetRangeRequest,
                       context: grpc.aio.ServicerContext) -> pdpb_pb2.GetRangeResponse:
        resp = pdpb_pb2.GetRangeResponse()

        async def handle() -> None:
            self._require_bootstrapped()
            found = self._tree.find(request.key)
            if found is not None:
                resp.range.CopyFrom(found)

        return await self._serve(request, resp, handle)

    async def GetRangeByID(self, request: pdpb_pb2.GetRangeByIDRequest,
                           context: grpc.aio.ServicerContext) -> pdpb_pb2.GetRangeResponse:
        resp = pdpb_pb2.GetRangeResponse()

        async def handle() -> None:
            info = self._tree.get_by_id(request.range_id)
            if info is not None:
                resp.range.CopyFrom(info)

        return await self._serve(request, resp, handle)

    async def ScanRanges(self, request: pdpb_pb2.ScanRangesRequest,
                         context: grpc.aio.ServicerContext) -> pdpb_pb2.ScanRangesResponse:
        resp = pdpb_pb2.ScanRangesResponse()

        async def handle() -> None:
            self._require_bootstrapped()
            resp.ranges.extend(self._tree.scan(request.start_key, request.end_key, request.limit))

        return await self._serve(request, resp, handle)

    # ---------------------------------------------------------------------------------- splits
    async def _split_id(self, replicas: int) -> pdpb_pb2.SplitID:
        """Ids for one new range: its own, and one peer id per replica of the parent."""
        ids = self.member.ids
        split = pdpb_pb2.SplitID(new_range_id=await ids.alloc())
        for _ in range(replicas):
            split.new_peer_ids.append(await ids.alloc())
        return split

    async def AskBatchSplit(self, request: pdpb_pb2.AskBatchSplitRequest,
                            context: grpc.aio.ServicerContext) -> pdpb_pb2.AskBatchSplitResponse:
        resp = pdpb_pb2.AskBatchSplitResponse()

        async def handle() -> None:
            self._require_bootstrapped()
            desc, count = request.range, request.split_count
            if not 1 <= count <= MAX_SPLITS:
                raise RequestError(f"split_count must be in 1..{MAX_SPLITS}, got {count}",
                                   invalid_argument=True)
            known = self._tree.get_by_id(desc.id)
            if known is None:
                raise RequestError(f"range {desc.id} is unknown to PD", invalid_argument=True)
            if not desc.peers:
                raise RequestError(f"range {desc.id}: the descriptor lists no peers", invalid_argument=True)
            theirs, ours = desc.epoch, known.descriptor.epoch
            if theirs.conf_ver < ours.conf_ver or theirs.version < ours.version:
                raise RequestError(f"range {desc.id}: epoch {theirs.conf_ver}/{theirs.version} is older than "
                                   f"PD's {ours.conf_ver}/{ours.version}", invalid_argument=True)
            for _ in range(count):
                resp.ids.append(await self._split_id(len(desc.peers)))

        return await self._serve(request, resp, handle)

    async def SplitRanges(self, request: pdpb_pb2.SplitRangesRequest,
                          context: grpc.aio.ServicerContext) -> pdpb_pb2.SplitRangesResponse:
        """Hand each range holding split keys a SPLIT operator and wait until heartbeats show every
        key as a range start. Idempotent: keys that already start a range are left alone, so a
        client retrying after a lost answer waits for the same splits."""
        resp = pdpb_pb2.SplitRangesResponse()

        async def handle() -> None:
            self._require_bootstrapped()
            keys = sorted(set(request.split_keys))
            if not 1 <= len(keys) <= MAX_SPLITS:
                raise RequestError(f"give 1..{MAX_SPLITS} split keys, got {len(keys)}", invalid_argument=True)
            timeout_ms = request.timeout_ms or DEFAULT_SPLIT_TIMEOUT_MS
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout_ms / 1000
            while pending := [k for k in keys if (found := self._tree.find(k)) is None
                              or found.descriptor.start_key != k]:
                await self._hand_out_splits(pending)
                remaining = deadline - loop.time()
                if remaining <= 0:
                    shown = ", ".join(repr(k) for k in pending[:5]) + (" ..." if len(pending) > 5 else "")
                    raise RequestError(f"{len(pending)} of {len(keys)} split keys do not start a range after "
                                       f"{timeout_ms} ms: {shown}", timed_out=True)
                changed = self.member.ranges_change_event()
                try:
                    async with asyncio.timeout(min(remaining, SPLIT_RECHECK_S)):
                        await changed.wait()
                except TimeoutError:
                    pass
                await self.member.ensure_leader_ready()  # a deposed leader's tree is not kept up
            resp.ranges.extend(self._tree.find(k) for k in keys)

        return await self._serve(request, resp, handle)

    async def _hand_out_splits(self, keys: list[bytes]) -> None:
        """A SPLIT operator for each range holding some of ``keys`` and none in flight (a range busy
        with another operator gets its split once that one is done)."""
        groups: dict[int, list[bytes]] = {}
        for key in keys:
            info = self._tree.find(key)
            if info is not None:  # None: mid-split, the range of the key has not reported yet
                groups.setdefault(info.descriptor.id, []).append(key)
        for range_id, split_keys in groups.items():
            info = self._tree.get_by_id(range_id)
            if self.member.controller.get(range_id) is not None:
                continue
            ids = [await self._split_id(len(info.descriptor.peers)) for _ in split_keys]
            controller = self.member.controller  # rebuilt if the views were reloaded meanwhile
            # Only if unchanged meanwhile: the ids were made for this descriptor's replicas.
            if self._tree.get_by_id(range_id) is info and controller.get(range_id) is None:
                op = ops.split(info, split_keys, ids, "admin")
                if controller.add(op, now_ms()):
                    log.info("range %d: split at %d keys handed to its leader (operator %d)",
                             range_id, len(split_keys), op.id)

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
                self.member.stats.tso_requests += 1
                self.member.stats.tso_stamps += count

            yield await self._serve(request, resp, handle)


_RATES = ("written_bytes_per_sec", "read_bytes_per_sec", "written_keys_per_sec", "read_keys_per_sec")


def rates_only(old: pdpb_pb2.RangeInfo, new: pdpb_pb2.RangeInfo) -> bool:
    """Whether two reports of a range differ in traffic rates alone. Those change with every
    heartbeat of a busy range and matter only to the hot-region scheduler, so PD keeps them in
    its model and writes no record for them (a new PD leader learns them with the next reports)."""
    bare_old, bare_new = pdpb_pb2.RangeInfo(), pdpb_pb2.RangeInfo()
    bare_old.CopyFrom(old)
    bare_new.CopyFrom(new)
    for stats in (bare_old.stats, bare_new.stats):
        for name in _RATES:
            stats.ClearField(name)
    return bare_old == bare_new

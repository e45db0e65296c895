"""The MVCC GC safe point: kept in ``ClusterMeta.gc_safe_point``, raised only, handed to stores.

The safe point is a promise to readers: no transaction reads below it, so a store may drop every
version only a reader below it could see (``GcCommand``). Whoever raises it (``kvdb admin gc``,
``kvdb.client.gc``) has first resolved every lock with a start_ts at or below it, so no
transaction still running depends on what is dropped. PD only keeps the number: it never goes
down (a lower or equal request is answered with the one in force) and never above a timestamp PD
has not handed out yet (that would promise away reads of transactions still to start). Stores
learn it from the store heartbeat's answer.

A mixin of ``PdService``. The leader keeps the number in memory (``PdMember.gc_safe_point``)
for the heartbeats: loaded when it starts to serve, raised after each write that applied.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import grpc

from kvdb.pb import pdpb_pb2
from placement import metadata as md
from placement.rpc import invalid
from placement.state import NotServingError, Update

if TYPE_CHECKING:
    from placement.server import PdMember


class GcRpcs:
    """Mixin of ``PdService`` (which provides ``member`` and ``_serve``)."""

    member: PdMember
    _serve: Callable[..., Awaitable[object]]

    async def GetGcSafePoint(self, request: pdpb_pb2.GetGcSafePointRequest,
                             context: grpc.aio.ServicerContext) -> pdpb_pb2.GetGcSafePointResponse:
        resp = pdpb_pb2.GetGcSafePointResponse()

        async def handle() -> None:
            raw = await self.member.state.get(md.CLUSTER_META)
            resp.safe_point = pdpb_pb2.ClusterMeta.FromString(raw).gc_safe_point if raw else 0

        return await self._serve(request, resp, handle)

    async def UpdateGcSafePoint(self, request: pdpb_pb2.UpdateGcSafePointRequest,
                                context: grpc.aio.ServicerContext) -> pdpb_pb2.UpdateGcSafePointResponse:
        resp = pdpb_pb2.UpdateGcSafePointResponse()

        async def handle() -> None:
            asked = request.safe_point
            if asked <= 0:
                raise invalid("the GC safe point must be a positive timestamp")
            now = await self.member.tso.get(1)
            if asked > now:
                raise invalid(f"GC safe point {asked} is above PD's current timestamp {now}: "
                              "transactions still to start would read below it")
            resp.new_safe_point = await self.member.raise_gc_safe_point(asked)

        return await self._serve(request, resp, handle)


async def raise_safe_point(member: PdMember, asked: int) -> int:
    """Raise the replicated safe point to ``asked`` unless it is there already (a conditional
    update of the cluster meta, so a concurrent config change keeps both); the one in force."""
    in_force = 0

    async def change(raw: bytes | None) -> Update | None:
        nonlocal in_force
        if raw is None:
            raise NotServingError("the cluster meta is missing", backoff_ms=50)
        meta = pdpb_pb2.ClusterMeta.FromString(raw)
        in_force = meta.gc_safe_point
        if asked <= meta.gc_safe_point:
            return None
        meta.gc_safe_point = in_force = asked
        return meta.SerializeToString(), {}, []

    await member.state.update(md.CLUSTER_META, change)
    return in_force

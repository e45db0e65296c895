"""The PD service's membership RPCs (GetMembers, AddMember, RemoveMember): a mixin of PdService.

The work is ``placement.members.Membership``'s; these turn requests into its calls and its
refusals into the response header's error.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import grpc

from kvdb.pb import pdpb_pb2
from kvdb.store.errors import InvalidArgumentError
from placement.members import MembershipError
from placement.rpc import RequestError
from placement.state import NotServingError

if TYPE_CHECKING:
    from placement.server import PdMember


class MemberRpcs:
    member: PdMember
    _serve: Callable[..., Awaitable[object]]
    _not_serving: Callable[[NotServingError], pdpb_pb2.Error]

    async def GetMembers(self, request: pdpb_pb2.GetMembersRequest,
                         context: grpc.aio.ServicerContext) -> pdpb_pb2.GetMembersResponse:
        """Any member answers from its replica of the metadata: the members, who it thinks leads,
        and the Raft group's id (which a joining member needs)."""
        m = self.member
        if not m.cluster_id:
            m.refresh_cluster_id()
        resp = pdpb_pb2.GetMembersResponse(raft_group_id=m.group_id)
        resp.header.cluster_id = m.cluster_id
        try:
            resp.members.extend(m.membership.listing())
        except NotServingError as exc:  # no replica here (yet, or any more): ask another member
            resp.header.error.CopyFrom(self._not_serving(exc))
            return resp
        lead = m.state.peer.raw.raft.lead
        if lead:
            resp.leader.id, resp.leader.address = lead, m.members.get(lead, "")
        return resp

    async def AddMember(self, request: pdpb_pb2.AddMemberRequest,
                        context: grpc.aio.ServicerContext) -> pdpb_pb2.AddMemberResponse:
        resp = pdpb_pb2.AddMemberResponse()

        async def handle() -> None:
            resp.member.CopyFrom(await self.member.membership.add(request.address))
            resp.members.extend(self.member.membership.listing())

        return await self._serve(request, resp, lambda: _refusals(handle))

    async def RemoveMember(self, request: pdpb_pb2.RemoveMemberRequest,
                           context: grpc.aio.ServicerContext) -> pdpb_pb2.RemoveMemberResponse:
        resp = pdpb_pb2.RemoveMemberResponse()

        async def handle() -> None:
            await self.member.membership.remove(request.member_id)
            resp.members.extend(self.member.membership.listing())

        return await self._serve(request, resp, lambda: _refusals(handle))


async def _refusals(handle: Callable[[], Awaitable[None]]) -> None:
    """A refused change is the request's error (invalid_argument), not a reason to retry."""
    try:
        await handle()
    except (MembershipError, InvalidArgumentError) as exc:
        raise RequestError(str(exc), invalid_argument=True) from exc

"""PD membership: who the PD members are, where they listen, and changing them (learner first).

Who votes is the metadata range's own Raft membership (its descriptor); a member's address is a
record in the metadata (``m/<id>``, a ``pdpb.Member``) written before the member joins the
range, so every member that applied it can resolve the newcomer for Raft messages. A new member
joins as a learner: it receives the metadata by snapshot and catches up without counting towards
any quorum, so adding a member that is slow, unreachable or mistyped never makes PD lose a
quorum. The leader promotes it once its log is close to the leader's (``learners_to_promote``).
Removing a member is one REMOVE_NODE; a leader that is asked to remove itself hands leadership
to a caught-up voter first (Raft would otherwise leave the survivors to time out).

The Raft group's peer id of a member is its member id, which is also the store id of its Raft
host; new member ids come from PD's id allocator, whose window starts above every founding
member's id (``ensure_records``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import grpc

from kvdb.net import grpc_factory
from kvdb.net.tls import TlsFiles
from kvdb.pb import metapb_pb2, pdpb_pb2, pdpb_pb2_grpc
from kvdb.raft import ConfChangeType
from kvdb.raft.progress import Progress, ProgressState
from kvdb.server.supervisor import spawn
from kvdb.storage.engine import CF_DEFAULT
from kvdb.store.errors import InvalidArgumentError
from placement import metadata as md
from placement.state import NotServingError

if TYPE_CHECKING:
    from placement.server import PdMember

log = logging.getLogger(__name__)

PROMOTE_MAX_LAG = 64
"""A learner this many entries or fewer behind the leader's last index is caught up: promoting it
cannot stall commits for long (it acks the next append at once)."""
PROMOTE_INTERVAL_S = 0.2
"""How often the PD leader looks for learners to promote and records to reconcile."""
JOIN_TIMEOUT_S = 30.0
GROUP_FILE = "pd-group"
"""A joined member's data dir keeps the PD Raft group's id here, so it restarts without --join."""


class MembershipError(Exception):
    """A membership request that is wrong: refused before anything changed."""


def check_address(address: str) -> str:
    """``address`` if it is HOST:PORT that other machines can dial; raises MembershipError."""
    host, sep, port = address.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise MembershipError(f"'{address}' is not HOST:PORT")
    try:
        wildcard = ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        wildcard = False  # a host name
    if wildcard:
        raise MembershipError(f"'{address}' is a wildcard address: give one the other members can dial")
    return address.strip()


def members_of(desc: metapb_pb2.RangeDescriptor, addresses: Mapping[int, str]) -> list[pdpb_pb2.Member]:
    """The members as the metadata range's descriptor has them (learner = not voting yet)."""
    return [pdpb_pb2.Member(id=p.id, address=addresses.get(p.id, ""), learner=p.role == metapb_pb2.LEARNER)
            for p in sorted(desc.peers, key=lambda p: p.id)]


def learners_to_promote(learners: set[int], progress: Mapping[int, Progress], last_index: int) -> list[int]:
    """The learners the leader may promote now: replicating (not probing, not waiting for a
    snapshot) and at most ``PROMOTE_MAX_LAG`` entries behind. A learner promoted before it caught
    up would count towards the quorum while unable to ack, so a single failure more would stall PD.
    """
    return sorted(i for i in learners if (pr := progress.get(i)) is not None
                  and pr.state == ProgressState.REPLICATE and last_index - pr.match <= PROMOTE_MAX_LAG)


def transfer_target(voters: set[int], progress: Mapping[int, Progress], leader_id: int) -> int | None:
    """The voter to hand leadership to before the leader removes itself: the most caught-up one
    among those replicating (None if there is no such voter: the removal must wait)."""
    candidates = [(pr.match, i) for i in voters if i != leader_id and (pr := progress.get(i)) is not None
                  and pr.state == ProgressState.REPLICATE]
    return max(candidates)[1] if candidates else None


async def fetch_group(endpoints: list[str], member_id: int, tls: TlsFiles | None,
                      timeout: float = JOIN_TIMEOUT_S) -> tuple[int, dict[int, str]]:
    """Ask the existing members for the PD Raft group's id and the members' addresses; waits until
    one lists ``member_id`` (added by AddMember: a follower may apply that a moment later)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last = "no answer yet"
    while loop.time() < deadline:
        for address in endpoints:
            async with grpc_factory.channel(address, tls) as channel:
                try:
                    stub = pdpb_pb2_grpc.PDStub(channel)
                    resp = await stub.GetMembers(pdpb_pb2.GetMembersRequest(), timeout=2)
                except grpc.aio.AioRpcError as exc:
                    last = f"{address}: {exc.code().name}"
                    continue
            members = {m.id: m.address for m in resp.members}
            if resp.raft_group_id and member_id in members:
                return resp.raft_group_id, members
            last = f"{address} does not list member {member_id} (kvdb admin members add ADDRESS first)"
        await asyncio.sleep(0.2)
    raise ValueError(f"cannot join PD through {','.join(endpoints)}: {last}")


class Membership:
    """A member's view of the PD membership, and (on the leader) the membership changes."""

    def __init__(self, member: PdMember) -> None:
        self.member = member
        self.addresses = member.members
        """Member id -> address; the very dict the Raft transport resolves with (updated in place)."""
        self.lock = asyncio.Lock()
        """One membership change at a time (Raft refuses a second one while one is pending)."""
        self._task: asyncio.Task | None = None

    # ------------------------------------------------------------------------------ views
    def resolve(self, member_id: int) -> str:
        """The transport's resolver: a member unknown so far may have been added meanwhile."""
        address = self.addresses.get(member_id)
        if address is None:
            self.refresh()
            address = self.addresses.get(member_id, "")
        return address

    def refresh(self) -> None:
        """Learn addresses from the member records this member has applied (followers too)."""
        engine = self.member.store.engine
        for _, raw in engine.scan(CF_DEFAULT, md.MEMBER_PREFIX, md.prefix_end(md.MEMBER_PREFIX), 0):
            record = pdpb_pb2.Member.FromString(raw)
            self.addresses[record.id] = record.address

    def listing(self) -> list[pdpb_pb2.Member]:
        """The members as this member's replica of the metadata range knows them."""
        self.refresh()
        return members_of(self.member.state.peer.desc, self.addresses)

    async def _records(self) -> dict[int, pdpb_pb2.Member]:
        rows = await self.member.state.scan(md.MEMBER_PREFIX, md.prefix_end(md.MEMBER_PREFIX))
        return {m.id: m for m in (pdpb_pb2.Member.FromString(v) for _, v in rows)}

    async def ensure_records(self) -> None:
        """On a new leader: write the founding members' records if there are none (a new
        cluster, or one from before member records), with the id window moved above their ids."""
        if await self._records():
            return
        desc = self.member.state.peer.desc
        puts = {md.member_key(m.id): m.SerializeToString() for m in members_of(desc, self.addresses)}
        raw = await self.member.state.get(md.ALLOC_WINDOW)
        upper = pdpb_pb2.Window.FromString(raw).upper if raw else 0
        floor = max(p.id for p in desc.peers) + 1
        if upper < floor:
            puts[md.ALLOC_WINDOW] = pdpb_pb2.Window(upper=floor).SerializeToString()
        await self.member.state.write(puts)

    # ---------------------------------------------------------------------------- changes
    async def add(self, address: str) -> pdpb_pb2.Member:
        """Record a new member as a learner and add it to the metadata range; returns it."""
        address = check_address(address)
        state = self.member.state
        async with self.lock:
            records = await self._records()
            for record in records.values():
                if record.address == address:
                    raise MembershipError(f"address {address} belongs to member {record.id} already"
                                          + ("" if self._in_group(record.id) else
                                             " (not in the PD group: an earlier change did not finish; "
                                             f"remove member {record.id} first)"))
            member_id = await self.member.ids.alloc()
            if member_id in records or self._in_group(member_id):
                raise MembershipError(f"id {member_id} from the allocator is a member's already")
            record = pdpb_pb2.Member(id=member_id, address=address, learner=True)
            await state.write({md.member_key(member_id): record.SerializeToString()})
            self.addresses[member_id] = address
            await state.change_peer(ConfChangeType.ADD_LEARNER, _pd_peer(member_id, metapb_pb2.LEARNER))
        log.info("PD member %d (%s) added as a learner", member_id, address)
        return record

    async def remove(self, member_id: int) -> None:
        """Take a member out of the metadata range, then delete its record."""
        state = self.member.state
        async with self.lock:
            records = await self._records()
            peer = state.peer
            if not self._in_group(member_id):
                if member_id not in records:
                    raise MembershipError(f"member {member_id} is unknown")
                await state.write({}, [md.member_key(member_id)])  # a removal that did not finish
                return
            voters = set(peer.conf_state.voters)
            if voters == {member_id}:
                raise MembershipError(f"member {member_id} is the last voter of PD")
            if member_id == peer.peer_id:
                raft = peer.raw.raft
                target = transfer_target(voters, raft.trk.progress, member_id)
                if target is not None:
                    state.transfer_leader(target)
                    log.info("PD member %d hands leadership to %d before its removal", member_id, target)
                raise NotServingError(f"member {member_id} leads PD: moving leadership off it first",
                                      backoff_ms=100)
            await state.change_peer(ConfChangeType.REMOVE_NODE, _pd_peer(member_id, metapb_pb2.VOTER))
            await state.write({}, [md.member_key(member_id)])
        log.info("PD member %d removed", member_id)

    def _in_group(self, member_id: int) -> bool:
        return any(p.id == member_id for p in self.member.state.peer.desc.peers)

    # ------------------------------------------------------------------------- leader loop
    async def promote_caught_up(self) -> None:
        """One round on the leader: promote caught-up learners, and make the records follow the
        range's membership (a promotion whose record update was lost)."""
        state = self.member.state
        state.check_serving()
        async with self.lock:
            peer = state.peer
            raft = peer.raw.raft
            for learner in learners_to_promote(set(peer.conf_state.learners), raft.trk.progress,
                                               raft.raft_log.last_index()):
                await state.change_peer(ConfChangeType.ADD_NODE, _pd_peer(learner, metapb_pb2.VOTER))
                log.info("PD member %d caught up: promoted to voter", learner)
            voters = set(state.peer.conf_state.voters)
            stale = [r for r in (await self._records()).values() if r.learner and r.id in voters]
            if stale:
                for record in stale:
                    record.learner = False
                await state.write({md.member_key(r.id): r.SerializeToString() for r in stale})

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(PROMOTE_INTERVAL_S)
            try:
                await self.promote_caught_up()
            except NotServingError:
                pass  # not the leader (or not ready): the leader does it
            except InvalidArgumentError as exc:  # e.g. a promotion refused as unsafe now: next round
                log.info("PD membership: %s", exc)

    def start(self) -> None:
        self._task = spawn(self._run(), "PD membership loop")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


def _pd_peer(member_id: int, role: int) -> metapb_pb2.Peer:
    """A member's peer in the metadata range: peer id = member id = its Raft host's store id."""
    return metapb_pb2.Peer(id=member_id, store_id=member_id, role=role)


def read_group_file(data_dir: Path) -> int:
    """The group id a joined member kept (0 if this data dir never joined a PD)."""
    path = data_dir / GROUP_FILE
    return int(path.read_text()) if path.exists() else 0


def write_group_file(data_dir: Path, group_id: int) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp = data_dir / (GROUP_FILE + ".tmp")
    tmp.write_text(str(group_id))
    tmp.replace(data_dir / GROUP_FILE)


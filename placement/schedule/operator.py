"""Operators: what PD wants done to one range, as a sequence of steps for its leader.

A step is the wire message a range's leader carries out (``pdpb_pb2.Operator``: add a learner,
promote it, replace a voter through a joint change, remove a peer, transfer leadership, split).
The only proof PD gets that a step is done is the range's descriptor (or leader) in a later
heartbeat, so each step has its completion check against a ``RangeInfo``. The leader is re-sent
the current step on every heartbeat until it shows done: a lost reply or a leader change is
harmless because every step is idempotent on the store side.

An operator is **stale** when the range's membership moved on without its current step being
done: something else changed the range (an older operator that committed late, an admin), and
the step would be carried out against a membership it was not planned for. It then ends, and a
checker decides afresh from the range as it is.

Moving a voter goes through a learner and a joint change (add learner → replace voter, which
promotes the learner and demotes the old voter at once → remove the demoted learner), so the
range never runs with a voter that cannot vote yet, nor one voter short. A leader is never
demoted: if the replica to move leads, leadership moves first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

from kvdb.pb import metapb_pb2, pdpb_pb2
from placement.cluster import peer_on

Step = pdpb_pb2.Operator
Kind = pdpb_pb2.Operator

RUNNING, SUCCESS, TIMEOUT, CANCELLED, STALE, REPLACED = (
    "running", "success", "timeout", "cancelled", "stale", "replaced")


class Priority(IntEnum):
    """Of two operators for one range, the higher priority replaces the lower (never the reverse)."""

    SCHEDULE = 1
    """Schedulers: the cluster would be better balanced."""
    REPAIR = 2
    """Checkers: the range lacks a replica or breaks a placement rule."""
    ADMIN = 3
    """An operator asked for it by hand."""


@dataclass
class Operator:
    range_id: int
    kind: str
    """What it does: "move-replica", "transfer-leader", "add-replica", "remove-replica", ..."""
    origin: str
    """Who made it: "admin", a checker's or a scheduler's name."""
    description: str
    steps: list[Step]
    priority: Priority = Priority.SCHEDULE
    id: int = 0
    """Set by the controller when it accepts the operator."""
    created_ms: int = 0
    step: int = 0
    step_started_ms: int = 0
    status: str = RUNNING
    finished_ms: int = 0
    _conf_ver: int = field(default=0, repr=False)
    _version: int = field(default=0, repr=False)

    def start(self, info: pdpb_pb2.RangeInfo, now_ms: int) -> None:
        self.created_ms = now_ms
        self._begin_step(info, now_ms)

    def _begin_step(self, info: pdpb_pb2.RangeInfo, now_ms: int) -> None:
        self.step_started_ms = now_ms
        epoch = info.descriptor.epoch
        self._conf_ver, self._version = epoch.conf_ver, epoch.version

    @property
    def finished(self) -> bool:
        return self.status != RUNNING

    @property
    def current(self) -> Step | None:
        return None if self.finished else self.steps[self.step]

    def check(self, info: pdpb_pb2.RangeInfo, now_ms: int, step_timeout_ms: int) -> Step | None:
        """Advance past the steps ``info`` shows done; the step to send now, or None once the
        operator has finished (``status`` says how)."""
        while not self.finished:
            step = self.steps[self.step]
            if step_done(step, info, self._version):
                self.step += 1
                if self.step == len(self.steps):
                    self.finish(SUCCESS, now_ms)
                    return None
                self._begin_step(info, now_ms)
                continue
            if step_stale(step, info, self._conf_ver):
                self.finish(STALE, now_ms)
            elif now_ms - self.step_started_ms >= step_timeout_ms:
                self.finish(TIMEOUT, now_ms)
            else:
                return step
        return None

    def timed_out(self, now_ms: int, step_timeout_ms: int) -> bool:
        """Whether the current step has run out of time (for ranges whose heartbeats stopped)."""
        return not self.finished and now_ms - self.step_started_ms >= step_timeout_ms

    def finish(self, status: str, now_ms: int) -> None:
        if not self.finished:
            self.status, self.finished_ms = status, now_ms

    def stores_moved(self) -> set[int]:
        """Stores that gain or lose a replica by this operator (a snapshot goes to each store that
        gains one): what per-store limits count. Leader transfers and splits move no data."""
        stores = set()
        for step in self.steps:
            if step.kind in (Kind.ADD_LEARNER, Kind.REMOVE_PEER):
                stores.add(step.peer.store_id)
        return stores

    def to_info(self) -> pdpb_pb2.OperatorInfo:
        info = pdpb_pb2.OperatorInfo(
            id=self.id, range_id=self.range_id, kind=self.kind, origin=self.origin,
            description=self.description, step=self.step, steps=len(self.steps), status=self.status,
            created_ms=self.created_ms, finished_ms=self.finished_ms)
        if (current := self.current) is not None:
            info.current.CopyFrom(current)
        return info


def step_done(step: Step, info: pdpb_pb2.RangeInfo, version_at_start: int) -> bool:
    """Whether the heartbeat's descriptor (or leader) already reflects the step."""
    roles = {p.id: p.role for p in info.descriptor.peers}
    kind = step.kind
    if kind == Kind.ADD_LEARNER:
        return step.peer.id in roles
    if kind == Kind.PROMOTE_LEARNER:
        return roles.get(step.peer.id) == metapb_pb2.VOTER
    if kind == Kind.REPLACE_VOTER:
        return (not info.joint and roles.get(step.peer.id) == metapb_pb2.VOTER
                and roles.get(step.demote_peer.id) != metapb_pb2.VOTER)
    if kind == Kind.REMOVE_PEER:
        return step.peer.id not in roles
    if kind == Kind.TRANSFER_LEADER:
        return info.leader.id == step.peer.id
    return info.descriptor.epoch.version > version_at_start  # SPLIT


def step_stale(step: Step, info: pdpb_pb2.RangeInfo, conf_ver_at_start: int) -> bool:
    """Whether the range's membership moved on without the step (a split does not care; a
    replacement's own joint configuration is its half-way point, not someone else's change)."""
    if step.kind == Kind.SPLIT:
        return False
    if step.kind == Kind.REPLACE_VOTER and info.joint:
        return False
    return info.descriptor.epoch.conf_ver != conf_ver_at_start


# ------------------------------------------------------------------------------- builders
def learner(peer_id: int, store_id: int) -> metapb_pb2.Peer:
    return metapb_pb2.Peer(id=peer_id, store_id=store_id, role=metapb_pb2.LEARNER)


def transfer_leader(info: pdpb_pb2.RangeInfo, to: metapb_pb2.Peer, origin: str,
                    priority: Priority = Priority.SCHEDULE) -> Operator:
    range_id = info.descriptor.id
    text = f"transfer range {range_id}'s leader from store {info.leader.store_id} to store {to.store_id}"
    steps = [Step(kind=Kind.TRANSFER_LEADER, peer=to)]
    return Operator(range_id, "transfer-leader", origin, text, steps, priority)


def add_replica(info: pdpb_pb2.RangeInfo, store_id: int, peer_id: int, origin: str,
                priority: Priority = Priority.REPAIR) -> Operator:
    """A new voter on the store, through a learner that catches up first."""
    new = learner(peer_id, store_id)
    range_id = info.descriptor.id
    steps = [Step(kind=Kind.ADD_LEARNER, peer=new), Step(kind=Kind.PROMOTE_LEARNER, peer=new)]
    return Operator(range_id, "add-replica", origin, f"add a replica of range {range_id} on store {store_id}",
                    steps, priority)


def remove_replica(info: pdpb_pb2.RangeInfo, store_id: int, origin: str, priority: Priority = Priority.REPAIR,
                   leader_to: metapb_pb2.Peer | None = None) -> Operator:
    """Remove the range's replica on the store; if it leads, leadership goes to ``leader_to``
    first (required then)."""
    peer = _replica(info, store_id)
    steps = _leader_away(info, peer, leader_to) + [Step(kind=Kind.REMOVE_PEER, peer=peer)]
    range_id = info.descriptor.id
    return Operator(range_id, "remove-replica", origin,
                    f"remove range {range_id}'s replica on store {store_id}", steps, priority)


def move_replica(info: pdpb_pb2.RangeInfo, from_store: int, to_store: int, peer_id: int, origin: str,
                 priority: Priority = Priority.SCHEDULE,
                 leader_to: metapb_pb2.Peer | None = None) -> Operator:
    """Move the range's replica from one store to another (``peer_id``: the new replica's id).
    A voter moves through a learner and a joint replacement; if the moved replica leads,
    leadership goes to ``leader_to`` first (required then)."""
    old = _replica(info, from_store)
    new = learner(peer_id, to_store)
    steps = _leader_away(info, old, leader_to) + [Step(kind=Kind.ADD_LEARNER, peer=new)]
    if old.role == metapb_pb2.VOTER:
        steps.append(Step(kind=Kind.REPLACE_VOTER, peer=new, demote_peer=old))
    steps.append(Step(kind=Kind.REMOVE_PEER, peer=old))
    range_id = info.descriptor.id
    text = f"move range {range_id}'s replica from store {from_store} to store {to_store}"
    return Operator(range_id, "move-replica", origin, text, steps, priority)


def split(info: pdpb_pb2.RangeInfo, keys: list[bytes], ids: list[pdpb_pb2.SplitID], origin: str,
          priority: Priority = Priority.ADMIN) -> Operator:
    range_id = info.descriptor.id
    step = Step(kind=Kind.SPLIT, split_keys=keys, split_ids=ids)
    text = f"split range {range_id} at {len(keys)} keys"
    return Operator(range_id, "split", origin, text, [step], priority)


def _replica(info: pdpb_pb2.RangeInfo, store_id: int) -> metapb_pb2.Peer:
    peer = peer_on(info, store_id)
    if peer is None:
        raise ValueError(f"range {info.descriptor.id} has no replica on store {store_id}")
    return peer


def _leader_away(info: pdpb_pb2.RangeInfo, peer: metapb_pb2.Peer,
                 leader_to: metapb_pb2.Peer | None) -> list[Step]:
    if info.leader.id != peer.id:
        return []
    if leader_to is None or leader_to.id == peer.id or leader_to.role != metapb_pb2.VOTER:
        raise ValueError(f"range {info.descriptor.id}: the replica on store {peer.store_id} leads; "
                         "name another voter to take over")
    return [Step(kind=Kind.TRANSFER_LEADER, peer=leader_to)]

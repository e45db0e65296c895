"""The replica checker: which single membership step a range needs next, and tracking it.

Pure logic over PD's current view (store infos, one range heartbeat, the schedule config): no
clocks, no I/O, so the PD server, the simulator and the tests get identical decisions. Repair goes
through a learner (add learner, let it catch up, then promote it) so a range never gains a voter
that cannot vote yet, and it never removes a replica while that would leave too few live voters
to reach a quorum. A failed voter is replaced in one joint-consensus step (promote the learner and
demote the failed voter at once), so the range never runs with four voters of which three must
answer, nor with two of which both must; the demoted voter is then removed as a learner.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kvdb.pb import metapb_pb2, pdpb_pb2

# A DISCONNECTED store has only missed a few heartbeats: replacing it would move a whole replica
# for what is usually a short blip, so it still counts as holding a live replica.
_HEALTHY = (pdpb_pb2.UP, pdpb_pb2.DISCONNECTED)


def store_state(info: pdpb_pb2.StoreInfo, now_ms: int, disconnect_ms: int, down_ms: int,
                listening_since_ms: int = 0) -> int:
    """The store's state as PD should act on it now.

    OFFLINE and TOMBSTONE are operator decisions that a heartbeat must not undo; the other states
    follow from how long the store has been silent, so a store that comes back is UP again
    without anyone having to reset it. Silence counts only from ``listening_since_ms``, when the
    current PD leader began to serve: while no leader served, a heartbeat had nowhere to go.
    """
    if info.state in (pdpb_pb2.OFFLINE, pdpb_pb2.TOMBSTONE):
        return info.state
    silent_ms = now_ms - max(info.last_heartbeat_ms, listening_since_ms)
    if silent_ms < disconnect_ms:
        return pdpb_pb2.UP
    if silent_ms < down_ms:
        return pdpb_pb2.DISCONNECTED
    return pdpb_pb2.DOWN


def check_replicas(
    rng: pdpb_pb2.RangeInfo,
    stores: dict[int, pdpb_pb2.StoreInfo],
    config: pdpb_pb2.ScheduleConfig,
    new_peer_id: Callable[[], int],
) -> pdpb_pb2.Operator | None:
    """The next membership step for `rng`, or None when it needs none (or must wait).

    One step per call, re-evaluated on every heartbeat, so each decision sees the effect of the
    previous one. Growing comes before shrinking: a replacement is added (as a learner, then
    promoted) before a failed replica is removed, so the range is never smaller than necessary.
    `new_peer_id` allocates a cluster-wide id, so it is called only when a peer is really added.
    """
    if config.replica_count == 0:
        return None  # an unset config must never shrink a range down to its leader

    def state(peer: metapb_pb2.Peer) -> int:
        info = stores.get(peer.store_id)
        return pdpb_pb2.TOMBSTONE if info is None else info.state  # unknown store: gone for good

    if rng.joint:
        return None  # mid-way through a joint change, which the leader finishes by itself

    peers = rng.descriptor.peers
    pending = set(rng.pending_peer_ids)
    learners = [p for p in peers if p.role == metapb_pb2.LEARNER]
    voters = [p for p in peers if p.role == metapb_pb2.VOTER]
    failed = [p for p in voters if state(p) not in _HEALTHY]

    for learner in learners:
        if learner.id not in pending and state(learner) == pdpb_pb2.UP:
            replaceable = [p for p in failed if p.id != rng.leader.id]  # a leader is never demoted
            if replaceable:
                op = _operator(pdpb_pb2.Operator.REPLACE_VOTER, learner)
                op.demote_peer.CopyFrom(replaceable[0])
                return op
            if failed or len(voters) < config.replica_count:
                return _operator(pdpb_pb2.Operator.PROMOTE_LEARNER, learner)
            # Nothing to replace any more (e.g. the failed voter's store came back, or this is
            # a voter demoted by a replacement whose store returned): the learner is surplus.
            return _operator(pdpb_pb2.Operator.REMOVE_PEER, learner)
    # A learner on a failed store will never catch up and would block repair forever; removing
    # one never touches the quorum.
    for learner in learners:
        if state(learner) not in _HEALTHY:
            return _operator(pdpb_pb2.Operator.REMOVE_PEER, learner)
    if learners:
        return None  # one learner at a time: wait for it to catch up or for its store to return

    healthy = [p for p in voters if state(p) in _HEALTHY]
    if len(healthy) < config.replica_count:
        store = _emptiest_spare_store(rng, stores)
        if store is not None:
            peer = metapb_pb2.Peer(id=new_peer_id(), store_id=store.id, role=metapb_pb2.LEARNER)
            return _operator(pdpb_pb2.Operator.ADD_LEARNER, peer)

    if failed:
        if len(healthy) < config.replica_count // 2 + 1:
            return None  # too few live voters: removing one now could cost the range its quorum
        for peer in failed:
            if peer.id != rng.leader.id:
                return _operator(pdpb_pb2.Operator.REMOVE_PEER, peer)
        # Only the leader is left to remove, and a leader cannot remove itself: hand over first.
        return _transfer_leader(rng, voters, stores)

    if len(voters) > config.replica_count:
        # A silent (DISCONNECTED) voter goes first: removing a live one while others are silent
        # can leave fewer live voters than the smaller range needs (5 voters, 2 silent, remove a
        # live one: 2 of 4 alive).
        victim = max(
            (p for p in voters if p.id != rng.leader.id),
            key=lambda p: (state(p) != pdpb_pb2.UP, stores[p.store_id].stats.range_count, p.store_id),
        )
        rest = [p for p in voters if p.id != victim.id]
        if sum(state(p) == pdpb_pb2.UP for p in rest) < len(rest) // 2 + 1:
            return None  # no victim keeps a live quorum: wait for the silent stores
        return _operator(pdpb_pb2.Operator.REMOVE_PEER, victim)
    return None


def _operator(kind: int, peer: metapb_pb2.Peer) -> pdpb_pb2.Operator:
    return pdpb_pb2.Operator(kind=kind, peer=peer)


def _emptiest_spare_store(
    rng: pdpb_pb2.RangeInfo, stores: dict[int, pdpb_pb2.StoreInfo]
) -> pdpb_pb2.StoreInfo | None:
    """An UP store without a replica of `rng`, the least loaded one to even out range counts."""
    occupied = {p.store_id for p in rng.descriptor.peers}
    spare = [s for s in stores.values() if s.state == pdpb_pb2.UP and s.id not in occupied]
    return min(spare, key=lambda s: (s.stats.range_count, s.id), default=None)


def _transfer_leader(
    rng: pdpb_pb2.RangeInfo, voters: list[metapb_pb2.Peer], stores: dict[int, pdpb_pb2.StoreInfo]
) -> pdpb_pb2.Operator | None:
    """Leadership to the UP voter leading the fewest ranges: a DISCONNECTED one may not answer."""
    targets = [
        p
        for p in voters
        if p.id != rng.leader.id and p.store_id in stores and stores[p.store_id].state == pdpb_pb2.UP
    ]
    if not targets:
        return None
    target = min(targets, key=lambda p: (stores[p.store_id].stats.leader_count, p.id))
    return _operator(pdpb_pb2.Operator.TRANSFER_LEADER, target)


@dataclass
class _InFlight:
    op: pdpb_pb2.Operator
    started_ms: int
    # The range's epoch when the operator was issued: a split shows up only as a version bump; a
    # membership change that is not this operator's means it was planned for a membership gone.
    version: int
    conf_ver: int


class OperatorTracker:
    """At most one operator per range in flight; re-sends it on every heartbeat until the range's
    descriptor shows it done, or it times out (then a fresh check may choose again).

    Re-sending makes a lost reply or a leader change harmless (the step is idempotent on the
    store side), and holding back new checks keeps two conflicting steps from racing. An operator
    whose range changed membership without it being done is dropped as stale: something else
    changed the range (e.g. an earlier operator that timed out here but committed late), and the
    step, re-sent with the new epoch, would be carried out against a membership it was not
    planned for (a promotion of a learner removed meanwhile adds a voter whose store has
    tombstoned that peer id, so it never exists).
    """

    def __init__(self, timeout_ms: int) -> None:
        self.timeout_ms = timeout_ms
        self.timed_out = 0
        self.stale = 0
        self._in_flight: dict[int, _InFlight] = {}

    def next_operator(
        self, rng: pdpb_pb2.RangeInfo, now_ms: int, check: Callable[[], pdpb_pb2.Operator | None]
    ) -> pdpb_pb2.Operator | None:
        """The operator to send with this heartbeat's reply; `check` runs only when none is owed."""
        range_id = rng.descriptor.id
        tracked = self._in_flight.get(range_id)
        if tracked is not None:
            if _is_done(tracked, rng):
                del self._in_flight[range_id]
            elif _is_stale(tracked, rng):
                del self._in_flight[range_id]
                self.stale += 1
            elif now_ms - tracked.started_ms >= self.timeout_ms:
                del self._in_flight[range_id]
                self.timed_out += 1
            else:
                return tracked.op
        op = check()
        if op is not None:
            self.start(rng, op, now_ms)
        return op

    def busy(self, range_id: int) -> bool:
        """Whether an operator is in flight for the range (it may be done by now: a heartbeat tells)."""
        return range_id in self._in_flight

    def start(self, rng: pdpb_pb2.RangeInfo, op: pdpb_pb2.Operator, now_ms: int) -> None:
        """Track ``op``, decided outside the checker (a split asked for by an operator), for the
        range's next heartbeats to carry; the caller checked that the range is not ``busy``."""
        epoch = rng.descriptor.epoch
        self._in_flight[rng.descriptor.id] = _InFlight(op, now_ms, epoch.version, epoch.conf_ver)

    def pending(self) -> dict[int, pdpb_pb2.Operator]:
        """Range id to its operator in flight (a copy: callers may not disturb the tracking)."""
        return {range_id: tracked.op for range_id, tracked in self._in_flight.items()}


def _is_stale(tracked: _InFlight, rng: pdpb_pb2.RangeInfo) -> bool:
    """Whether the range's membership moved on without the operator (a split does not care; a
    replacement's own joint configuration is its half-way point, not someone else's change)."""
    if tracked.op.kind == pdpb_pb2.Operator.SPLIT:
        return False
    if tracked.op.kind == pdpb_pb2.Operator.REPLACE_VOTER and rng.joint:
        return False
    return rng.descriptor.epoch.conf_ver != tracked.conf_ver


def _is_done(tracked: _InFlight, rng: pdpb_pb2.RangeInfo) -> bool:
    """Whether the heartbeat's descriptor already reflects the operator: the only proof PD gets."""
    op = tracked.op
    roles = {p.id: p.role for p in rng.descriptor.peers}
    if op.kind == pdpb_pb2.Operator.ADD_LEARNER:
        return op.peer.id in roles
    if op.kind == pdpb_pb2.Operator.PROMOTE_LEARNER:
        return roles.get(op.peer.id) == metapb_pb2.VOTER
    if op.kind == pdpb_pb2.Operator.REPLACE_VOTER:
        return (not rng.joint and roles.get(op.peer.id) == metapb_pb2.VOTER
                and roles.get(op.demote_peer.id) != metapb_pb2.VOTER)
    if op.kind == pdpb_pb2.Operator.REMOVE_PEER:
        return op.peer.id not in roles
    if op.kind == pdpb_pb2.Operator.TRANSFER_LEADER:
        return rng.leader.id == op.peer.id
    return rng.descriptor.epoch.version > tracked.version  # SPLIT

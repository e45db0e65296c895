"""The replica checker: a range keeps ``replica_count`` voters on live stores.

Rules, in order (each quorum rule below fixed a bug that has a test in
tests/placement/test_replica_checker.py):

- Nothing while the range is in a joint configuration: its leader finishes that by itself.
- A learner left over (by an operator that timed out or a PD failover): on a failed store it is
  removed (it never catches up and would block repair); once caught up on an UP store it replaces
  a failed voter, or is promoted if the range lacks voters, else removed as surplus; otherwise
  the checker waits for it (one learner at a time).
- Too few healthy voters: a failed voter (DOWN, TOMBSTONE, unknown store, or OFFLINE: being
  decommissioned) moves to a new store through a learner and a joint replacement
  ("replace-replica"), so the range never has four voters of which three must answer nor two of
  which both must; with no failed voter to replace, a replica is added ("add-replica").
  A leader is never demoted: if only the leader is failed, leadership moves first.
- No store to move to: a voter on a DOWN store stays (a DOWN store may come back and catch up
  from the log; removing its voter buys no availability, since two voters need both as three
  with one down do, and costs a snapshot to re-add it). A voter on a store that is gone
  (TOMBSTONE, unknown) or being decommissioned (OFFLINE), or one beyond the replica count, is
  removed, only while a majority of the replica count stays healthy (removing one then could
  cost the range its quorum).
- Too many voters: one goes, a silent (DISCONNECTED) one first, and only if the rest keep a live
  quorum (5 voters, 2 silent, remove a live one: 2 of 4 alive).

A DISCONNECTED store has only missed a few heartbeats: it still counts as holding a live replica.
Targets always come from ``filters.pick_target``. Given the controller, the checker leaves out
stores at their store limit and waits (rather than shrinking the range, or taking an id for an
operator the controller would refuse) while the store to move a replica off is at its limit: so
many ranges to repair spread over every store that can take them, not all onto the emptiest.
"""

from __future__ import annotations

from collections.abc import Callable

from kvdb.pb import metapb_pb2, pdpb_pb2
from placement.cluster import HEALTHY, ClusterModel
from placement.schedule import operator as ops
from placement.schedule.controller import OperatorController
from placement.schedule.filters import pick_target
from placement.schedule.operator import Kind, Operator, Priority, Step

NAME = "replica-checker"
VOTER, LEARNER = metapb_pb2.VOTER, metapb_pb2.LEARNER
_WAIT = object()
"""``_grow``'s answer when the range must wait for a store's limit (``check`` answers None)."""


class ReplicaChecker:
    name = NAME

    def __init__(self, model: ClusterModel, new_id: Callable[[], int],
                 controller: OperatorController | None = None) -> None:
        self.model = model
        self.new_id = new_id
        self.controller = controller

    def check(self, info: pdpb_pb2.RangeInfo, now_ms: int) -> Operator | None:
        replicas = self.model.config.replica_count
        if replicas == 0 or info.joint:
            return None  # an unset config must never shrink a range down to its leader

        def state(peer: metapb_pb2.Peer) -> int:
            return self.model.state(peer.store_id, now_ms)

        peers = info.descriptor.peers
        learners = [p for p in peers if p.role == LEARNER]
        voters = [p for p in peers if p.role == VOTER]
        failed = [p for p in voters if state(p) not in HEALTHY]
        healthy = [p for p in voters if state(p) in HEALTHY]
        if learners:
            return self._leftover_learner(info, learners, voters, failed, state)

        if len(healthy) < replicas:
            op = self._grow(info, failed, now_ms)
            if op is _WAIT:
                return None  # not a shrink instead: the range gets its replica once a slot frees
            if op is not None:
                return op
        if len(voters) <= replicas:
            failed = [p for p in failed if state(p) != pdpb_pb2.DOWN]  # it may come back: keep it
        if failed:
            if len(healthy) < replicas // 2 + 1:
                return None  # too few live voters: removing one now could cost the range its quorum
            for peer in failed:
                if peer.id != info.leader.id:
                    return self._remove(info, peer)
            # Only the leader is left to remove, and a leader cannot remove itself: hand over first.
            to = self._leader_target(info, voters, now_ms)
            return None if to is None else ops.transfer_leader(info, to, NAME, Priority.REPAIR)
        if len(voters) > replicas:
            return self._shrink(info, voters, state)
        return None

    def _leftover_learner(self, info: pdpb_pb2.RangeInfo, learners: list[metapb_pb2.Peer],
                          voters: list[metapb_pb2.Peer], failed: list[metapb_pb2.Peer],
                          state: Callable[[metapb_pb2.Peer], int]) -> Operator | None:
        for learner in learners:
            # On a failed store it never catches up and would block repair forever; removing a
            # learner never touches the quorum, even while it is pending.
            if state(learner) not in HEALTHY:
                return self._remove(info, learner)
        for learner in learners:
            if learner.id in info.pending_peer_ids or state(learner) != pdpb_pb2.UP:
                continue
            replaceable = [p for p in failed if p.id != info.leader.id]  # a leader is never demoted
            if replaceable:
                old = replaceable[0]
                steps = [Step(kind=Kind.REPLACE_VOTER, peer=learner, demote_peer=old),
                         Step(kind=Kind.REMOVE_PEER, peer=old)]
                return Operator(info.descriptor.id, "replace-replica", NAME,
                                f"replace range {info.descriptor.id}'s replica on store {old.store_id} "
                                f"with its learner on store {learner.store_id}", steps, Priority.REPAIR)
            if failed or len(voters) < self.model.config.replica_count:
                return Operator(info.descriptor.id, "add-replica", NAME,
                                f"promote range {info.descriptor.id}'s learner on store {learner.store_id}",
                                [Step(kind=Kind.PROMOTE_LEARNER, peer=learner)], Priority.REPAIR)
            # Nothing to replace any more (the failed voter's store came back, or this is a voter
            # demoted by a replacement whose store returned): the learner is surplus.
            return self._remove(info, learner)
        return None  # one learner at a time: wait for it to catch up or for its store to return

    def _grow(self, info: pdpb_pb2.RangeInfo, failed: list[metapb_pb2.Peer],
              now_ms: int) -> Operator | object | None:
        """Move a failed voter to a new store, or add a replica; None if no store can take one,
        ``_WAIT`` if one could but is at its limit, or so is every failed voter's store."""
        busy = self._busy(now_ms)
        target = pick_target(self.model, info, now_ms, busy)
        if target is None:
            return _WAIT if busy and pick_target(self.model, info, now_ms) is not None else None
        voters = [p for p in info.descriptor.peers if p.role == VOTER]
        free = [p for p in failed if p.store_id not in busy]
        if failed and not free:
            return _WAIT
        failed = free
        others = [p for p in failed if p.id != info.leader.id]
        if others:
            old, leader_to = others[0], None
        elif failed:
            old, leader_to = failed[0], self._leader_target(info, voters, now_ms)
        else:
            old = leader_to = None
        if old is not None and (old.id != info.leader.id or leader_to is not None):
            op = ops.move_replica(info, old.store_id, target, self.new_id(), NAME, Priority.REPAIR, leader_to)
            op.kind = "replace-replica"
            op.description = (f"replace range {info.descriptor.id}'s replica on store {old.store_id} "
                              f"with one on store {target}")
            return op
        # No failed voter, or only a leader with no one to hand over to: grow first.
        return ops.add_replica(info, target, self.new_id(), NAME, Priority.REPAIR)

    def _busy(self, now_ms: int) -> set[int]:
        """Stores at their store limit (none without a controller)."""
        if self.controller is None:
            return set()
        return {sid for sid in self.model.stores if self.controller.at_limit(sid, now_ms)}

    def _shrink(self, info: pdpb_pb2.RangeInfo, voters: list[metapb_pb2.Peer],
                state: Callable[[metapb_pb2.Peer], int]) -> Operator | None:
        victim = max(
            (p for p in voters if p.id != info.leader.id),
            key=lambda p: (state(p) != pdpb_pb2.UP, self.model.range_count(p.store_id), p.store_id),
        )
        rest = [p for p in voters if p.id != victim.id]
        if sum(state(p) == pdpb_pb2.UP for p in rest) < len(rest) // 2 + 1:
            return None  # no victim keeps a live quorum: wait for the silent stores
        return self._remove(info, victim)

    def _remove(self, info: pdpb_pb2.RangeInfo, peer: metapb_pb2.Peer) -> Operator:
        return ops.remove_replica(info, peer.store_id, NAME, Priority.REPAIR)

    def _leader_target(self, info: pdpb_pb2.RangeInfo, voters: list[metapb_pb2.Peer],
                       now_ms: int) -> metapb_pb2.Peer | None:
        """The UP voter leading the fewest ranges: a DISCONNECTED one may not answer."""
        targets = [p for p in voters
                   if p.id != info.leader.id and self.model.state(p.store_id, now_ms) == pdpb_pb2.UP]
        return min(targets, key=lambda p: (self.model.leader_count(p.store_id), p.id), default=None)

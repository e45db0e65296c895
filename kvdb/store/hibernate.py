"""Hibernation: idle ranges stop ticking and heartbeating, so they cost (almost) nothing.

Without it every replica is ticked every tick and every leader heartbeats every range, so CPU
grows with the number of ranges even when none is used (TiKV's "hibernate regions",
CockroachDB's quiescence solve the same problem). The Raft core is unchanged: the store simply
stops calling ``tick`` on a hibernated replica, which only makes its timers slower.

- A **leader** hibernates after ``hibernate_idle_ticks`` ticks with nothing to do: no proposal,
  read or conf change pending, no transfer, not joint, every replica's log matching its own
  (match == last == committed == applied). It drops its lease (a read on it waits for a new
  quorum-acknowledged round) and sends each replica a *hibernate notice* (``RaftMessage.hibernate``).
- A **follower** hibernates on that notice only if its log matches the leader's exactly (same
  term, leader, last index and term, commit); a stale or unmatched notice is ignored and the
  follower keeps ticking (it then campaigns, which wakes everyone: a slow but safe fallback).
- **Waking**: anything that gives a replica work wakes it (``Store._mark``: a client request, any
  Raft message other than the notice, an admin or PD operation, a split). A woken leader
  broadcasts a heartbeat round at once; a woken follower just resumes ticking.
- **Store liveness**: a hibernated follower never times out on its own, so a dead leader would go
  unnoticed. Stores that share a hibernated range send each other one liveness beat
  (``RaftMessage.store_heartbeat``) per ``heartbeat_tick`` ticks, not one per range; any message
  from a store counts as hearing from it. When the store of a hibernated follower's leader has
  been silent for more than ``election_tick`` ticks, the follower wakes and campaigns normally.
  The same record (``silent_ticks``) tells a leader which of its replicas to report down to PD
  (``kvdb.server.pd_worker.down_peer_ids``); it is kept with hibernation off too.

Why the lease argument survives (docs/store.md, "Hibernation"): a hibernated follower does not
tick, so its promise (``leader_contact_elapsed``) cannot run out early, only late; and a
hibernated leader holds no lease at all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kvdb.pb import raft_serverpb_pb2
from kvdb.raft import Message, MessageType, Role
from kvdb.raft.codec import message_to_pb
from kvdb.raft.types import NONE

if TYPE_CHECKING:
    from kvdb.store.peer import Peer
    from kvdb.store.store import Store


class Hibernation:
    """Which replicas of a store are ticked, and the store liveness that guards the others."""

    def __init__(self, store: Store) -> None:
        self.store = store
        cfg = store.config
        self.enabled = cfg.hibernate
        self.idle_ticks = cfg.hibernate_idle_ticks
        self.election_tick = cfg.election_tick
        self.beat_ticks = cfg.heartbeat_tick
        self.awake: set[Peer] = set()
        """Replicas ticked every tick: a tick costs O(awake replicas), not O(all)."""
        self.asleep: set[Peer] = set()
        self._idle: dict[Peer, tuple[int, int]] = {}  # awake leader -> (idle ticks, activity seen)
        self._sleepers: dict[int, set[Peer]] = {}  # leader's store -> its hibernated followers here
        self._heard: dict[int, int] = {}  # store id -> our tick count when we last heard from it
        self._partners: set[int] = set()  # stores sharing a hibernated range with us: get beats
        self.ticks = 0
        self.counters = {"hibernated": 0, "woken": 0, "woken_by_liveness": 0, "notices_ignored": 0}

    # ------------------------------------------------------------------------------ ticking
    def tick(self) -> list[Peer]:
        """Advance one tick: hibernate idle leaders, wake followers of silent stores, send the
        liveness beats; returns the replicas to tick."""
        store = self.store
        self.ticks += 1  # counts with hibernation off too: silent_ticks() serves PD reports
        if not self.enabled:
            return list(store.peers.values())
        self._check_liveness()
        if self._partners and self.ticks % self.beat_ticks == 0:
            self._send_beats()
        to_tick = []
        for peer in list(self.awake):
            if peer.destroyed or store.peers.get(peer.range_id) is not peer:
                self.awake.discard(peer)
                self._idle.pop(peer, None)
            elif self._leader_may_sleep(peer):
                self._sleep_leader(peer)
            else:
                to_tick.append(peer)
        return to_tick

    def is_asleep(self, peer: Peer) -> bool:
        return peer in self.asleep

    def wake(self, peer: Peer) -> None:
        """``peer`` has work (``Store._mark``): tick it again; a leader heartbeats at once."""
        if not self.enabled:
            return
        self.awake.add(peer)
        if peer not in self.asleep:
            return
        self.asleep.discard(peer)
        self.counters["woken"] += 1
        if peer.is_leader:
            peer.raw.beat()

    # ------------------------------------------------------------------------------- leaders
    def _leader_may_sleep(self, peer: Peer) -> bool:
        """Count the ticks an awake leader has been idle; True once it has been for long enough."""
        if not peer.is_leader:
            self._idle.pop(peer, None)
            return False
        c = peer.counters
        activity = c["proposals"] + c["lease_reads"] + c["read_index_reads"]
        idle, seen = self._idle.get(peer, (0, activity))
        idle = idle + 1 if seen == activity and self._quiet(peer) else 0
        self._idle[peer] = (idle, activity)
        return idle >= self.idle_ticks

    def _quiet(self, peer: Peer) -> bool:
        """Nothing pending, and every replica's log is the leader's, all of it committed and applied."""
        raft = peer.raw.raft
        log = raft.raft_log
        last = log.last_index()
        return (
            not (peer.to_propose or peer.proposals or peer.to_read or peer.reading or peer.read_ready)
            and raft.lead_transferee == NONE
            and not raft.read_requests
            and not raft.pending_read_index_messages
            and not raft.trk.config.voters.is_joint()
            and raft.pending_conf_index <= peer.applied
            and log.committed == last
            and peer.applied == last
            and all(pr.match == last for pr in raft.trk.progress.values())
            and not self.store.is_dirty(peer)
            and not peer.raw.has_ready()
        )

    def _sleep_leader(self, peer: Peer) -> None:
        self.awake.discard(peer)
        self._idle.pop(peer, None)
        self.asleep.add(peer)
        peer.naps += 1
        self.counters["hibernated"] += 1
        # No lease while hibernated: a read after waking waits for a new acknowledged round.
        peer.lease.expire()
        raft = peer.raw.raft
        log = raft.raft_log
        last = log.last_index()
        for peer_id in raft.trk.progress:
            to = peer.peer_cache.get(peer_id)
            if peer_id == peer.peer_id or to is None:
                continue
            notice = Message(MessageType.HEARTBEAT, to=peer_id, frm=peer.peer_id, term=raft.term, index=last,
                             log_term=log.term_or_zero(last), commit=log.committed)
            msg = raft_serverpb_pb2.RaftMessage(range_id=peer.range_id, message=message_to_pb(notice),
                                                hibernate=True)
            msg.from_peer.id = peer.peer_id
            msg.from_peer.store_id = self.store.store_id
            msg.to_peer.CopyFrom(to)
            msg.epoch.CopyFrom(peer.desc.epoch)
            self.store.post(to.store_id, msg)
            self._partners.add(to.store_id)

    # ----------------------------------------------------------------------------- followers
    def on_notice(self, msg: raft_serverpb_pb2.RaftMessage) -> None:
        """A leader hibernated: follow it if our log matches its own exactly."""
        if not self.enabled:
            return
        peer = self.store.peers.get(msg.range_id)
        if peer is None or peer.peer_id != msg.to_peer.id or peer in self.asleep or peer.destroyed:
            return
        raft = peer.raw.raft
        log = raft.raft_log
        m = msg.message
        if (
            raft.role != Role.FOLLOWER
            or raft.term != m.term
            or raft.lead != msg.from_peer.id
            or log.last_index() != m.index
            or log.term_or_zero(m.index) != m.log_term
            or log.committed != m.commit
            or self.store.is_dirty(peer)
            or peer.raw.has_ready()
        ):
            self.counters["notices_ignored"] += 1
            return
        leader_store = msg.from_peer.store_id
        self.awake.discard(peer)
        self.asleep.add(peer)
        peer.naps += 1
        self.counters["hibernated"] += 1
        self._sleepers.setdefault(leader_store, set()).add(peer)
        self._partners.add(leader_store)

    # ----------------------------------------------------------------------------- liveness
    def heard_from(self, store_id: int) -> None:
        """Any message from ``store_id`` (a Raft message, a notice or a beat) shows it is alive."""
        self._heard[store_id] = self.ticks

    def silent_ticks(self, store_id: int) -> int:
        """Ticks since anything came from ``store_id`` (since this store started, if nothing did)."""
        return self.ticks - self._heard.get(store_id, 0)

    def _send_beats(self) -> None:
        for store_id in self._partners:
            beat = raft_serverpb_pb2.RaftMessage(store_heartbeat=True)
            beat.from_peer.store_id = self.store.store_id
            beat.to_peer.store_id = store_id
            self.store.post(store_id, beat)

    def _check_liveness(self) -> None:
        """Wake the hibernated followers whose leader's store was silent for an election timeout."""
        silent = [s for s in self._sleepers if self.silent_ticks(s) > self.election_tick]
        for store_id in silent:
            for peer in self._sleepers.pop(store_id):
                if peer in self.asleep and not peer.destroyed:
                    self.counters["woken_by_liveness"] += 1
                    self.wake(peer)

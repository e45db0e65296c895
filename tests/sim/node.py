"""One simulated replica: a durable disk that survives crashes, and volatile everything else.

The ``MemoryStorage`` *is* the disk: whatever reached it survives a crash, and nothing else does.
Ready handling is split in two events to model a disk with latency, in the order the core's
contract (docs/raft-api.md) prescribes:

1. when the node has a Ready and no write in flight: take it, send ``messages`` at once and start
   the write;
2. when the write completes: make snapshot, entries and hard state durable, send
   ``messages_after_persist``, apply committed entries, answer reads, ``advance``.

Between the two the node keeps ticking and receiving messages, and a crash loses the write.

A node may be given a :class:`SlowDisk` (``tests/sim/slow_disk.py``): its writes then take time
in proportion to their bytes, and it answers heartbeats without waiting for them.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from kvdb.raft import Config, MemoryStorage, RawNode, Ready
from kvdb.raft.codec import decode_conf_change
from kvdb.raft.errors import StepError
from kvdb.raft.types import ConfChange, ConfState, Entry, EntryType, Message, ReadState, Role, Snapshot
from tests.sim.checker import InvariantViolation
from tests.sim.statemachine import GENESIS, StateMachine
from tests.sim.world import TICK_US

if TYPE_CHECKING:
    from tests.sim.cluster import Simulation
    from tests.sim.slow_disk import SlowDisk

TICK_JITTER_US = 500
"""Each tick of each node comes up to this much early or late, so nodes never tick in lockstep
(``Simulation.jitter_us``: the promise profile uses a fifth of it)."""


def max_clock_drift_us(jitter_us: int) -> int:
    """How much shorter an election timeout (10 ticks) can be on a follower than on the leader.

    A node's clock may also run fast (swarm profiles with skew): each tick then comes ``fast_us``
    early on average and jitters by ``jitter_us - fast_us``, so that ten ticks never take less
    than ``10 * TICK_US - max_clock_drift_us(jitter_us)``: the bound the lease is built for,
    reached but not exceeded."""
    return 10 * jitter_us


class SimNode:
    def __init__(self, sim: Simulation, node_id: int, storage: MemoryStorage) -> None:
        self.sim = sim
        self.world = sim.world
        self.checker = sim.checker
        self.id = node_id
        self.storage = storage
        self.raw: RawNode | None = None
        self.sm: StateMachine | None = None
        self.conf_state = ConfState()
        self.writing: Ready | None = None  # the Ready whose write is in flight
        self.read_waits: list[ReadState] = []
        # Leader lease, as the store keeps it: (term, round, time the round began) for rounds
        # reported by Readys, and (term, expiry) once a quorum acknowledged one of them.
        self.round_times: list[tuple[int, int, int]] = []
        self.lease: tuple[int, int] | None = None
        # Bumped on every crash: events scheduled by an earlier life carry a stale number and
        # are ignored, which is how a crash cancels the in-flight write and the tick chain.
        self.incarnation = 0
        self.retired = False
        self.fast_us = sim.draw_fast_clock()
        self.slow_disk: SlowDisk | None = None

    @property
    def alive(self) -> bool:
        return self.raw is not None

    def __repr__(self) -> str:
        return f"node {self.id}"

    # -- life cycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Boot (or reboot) from the disk alone: applied = the durable snapshot's index."""
        snap = self.storage.snapshot()
        meta = snap.metadata
        if snap.data:
            self.sm = StateMachine.from_snapshot_data(snap.data)
            self.checker.on_restore(self.id, meta.index, self.sm.digest, applied=None)
        else:
            self.sm = StateMachine(meta.index, GENESIS)  # a brand-new replica: nothing applied yet
        self.conf_state = meta.conf_state
        cfg = Config(id=self.id, storage=self.storage, rng=self.world.child_rng(), applied=meta.index,
                     **self.sim.raft_params)
        self.raw = RawNode(cfg)
        hs = self.storage.hard_state
        self.world.trace("%r start: snapshot %d, %r, last index %d", self, meta.index, hs,
                         self.storage.last_index())
        self.world.after(self.sim.rng.randint(0, TICK_US), self._tick, self.incarnation)
        self._settle()  # a reboot re-applies the committed log at once, not at the first tick

    def crash(self) -> None:
        """Lose everything that is not on the disk, including a write in flight."""
        self.world.trace("%r crash (write in flight: %s)", self, self.writing is not None)
        self.raw = None
        self.sm = None
        self.writing = None
        self.read_waits = []
        self.round_times = []
        self.lease = None
        self.incarnation += 1

    # -- inputs -------------------------------------------------------------------------------

    def _tick(self, incarnation: int) -> None:
        if incarnation != self.incarnation:
            return
        self.raw.tick()
        self._settle()
        spread = self.sim.jitter_us - self.fast_us
        jitter = self.sim.rng.randint(-spread, spread)
        self.world.after(TICK_US - self.fast_us + jitter, self._tick, incarnation)

    def receive(self, msg: Message) -> None:
        self.world.trace("deliver %r", msg)
        try:
            self.raw.step(msg)
        except StepError as exc:
            # e.g. a response from a peer removed meanwhile: a real transport drops it too.
            self.world.trace("%r step refused %r: %s", self, msg, exc)
        if self.slow_disk is not None and self.writing is not None:
            self.slow_disk.answer_heartbeats(self)
        self._settle()

    def propose(self, data: bytes) -> None:
        """Propose ``data``; raises ``ProposalDroppedError`` like the core."""
        self.world.trace("%r propose %r", self, data)
        try:
            self.raw.propose(data)
        finally:
            self._settle()

    def propose_conf_change(self, cc: ConfChange) -> None:
        try:
            self.raw.propose_conf_change(cc)
        finally:
            self._settle()

    def read_index(self, ctx: bytes) -> None:
        self.world.trace("%r read_index %r", self, ctx)
        try:
            self.raw.read_index(ctx)
        finally:
            self._settle()

    def transfer_leader(self, to: int) -> None:
        self.raw.transfer_leader(to)
        self._settle()

    def report_snapshot(self, to: int, failed: bool) -> None:
        self.raw.report_snapshot(to, failed)
        self._settle()

    def report_unreachable(self, to: int) -> None:
        self.raw.report_unreachable(to)
        self._settle()

    def lease_read(self) -> int | None:
        """The applied index a lease read would be served at now, or None if it must not be.

        The store's rule: a leader that may hold a lease, whose lease has not expired, that has
        committed an entry of its term and applied everything it knows to be committed.
        """
        raft = self.raw.raft
        if raft.role != Role.LEADER or not raft.lease_allowed() or self.lease is None:
            return None
        term, expiry = self.lease
        if term != raft.term or self.world.now >= expiry:
            return None
        if not raft.committed_entry_in_current_term() or self.sm.index < raft.raft_log.committed:
            return None
        return self.sm.index

    def check_lease(self) -> None:
        """If a lease read could be served now, it must see every acknowledged write.

        Checked whenever this node or the set of acknowledged writes changes, i.e. at every
        moment a read could happen, because a stale lease only shows in a narrow window.
        """
        index = self.lease_read()
        if index is not None:
            self.sim.stats.lease_read_checks += 1
            self.checker.on_lease_read(self.id, index)

    def _track_lease(self, rd: Ready) -> None:
        """Time the leader's heartbeat rounds; a quorum-acknowledged round starts a lease."""
        term = self.raw.raft.term
        if rd.lease_round_started:
            self.round_times.append((term, rd.lease_round_started, self.world.now))
        if rd.lease_round_acked:
            # The latest reported round at or below the acknowledged one began no later than it.
            began = [x for x in self.round_times if x[0] == term and x[1] <= rd.lease_round_acked]
            if began:
                _, round_, t0 = began[-1]
                drift = max_clock_drift_us(self.sim.jitter_us)
                self.lease = (term, t0 + self.raw.raft.election_timeout * TICK_US - drift)
                self.round_times = [x for x in self.round_times if x[0] == term and x[1] >= round_]

    def durable_tip(self) -> tuple[int, int]:
        """(last term, last index) of the log on disk: what a voter compares a candidate's with."""
        last = self.storage.last_index()
        return self.storage.term(last), last

    def durably_has(self, index: int, term: int) -> bool:
        """Whether the disk holds entry ``(index, term)``, or a snapshot past it."""
        storage = self.storage
        if index < storage.first_index():
            return True
        return index <= storage.last_index() and storage.term(index) == term

    def compact(self, rng: random.Random) -> None:
        """Snapshot the state machine at its applied index, then drop a random part of the log."""
        sm, storage = self.sm, self.storage
        if sm.index > storage.snapshot().metadata.index:
            storage.create_snapshot(sm.index, self.conf_state, sm.snapshot_data())
        target = sm.index - rng.randint(0, 20)
        if target >= storage.first_index():
            storage.compact(target)
            self.world.trace("%r compacted to %d (snapshot %d)", self, target, sm.index)

    # -- ready handling -----------------------------------------------------------------------

    def _settle(self) -> None:
        """After any input: check the node, and start a write if one is due and none in flight."""
        raft = self.raw.raft
        log = raft.raft_log
        if self.checker.observe(self.id, self.incarnation, raft.term, raft.role, log.committed, log):
            self.sim.on_new_leader(self, raft.term)
        if self.lease is not None:
            self.check_lease()
        if self.writing is None and self.raw.has_ready():
            self._begin_write()

    def _begin_write(self) -> None:
        rd = self.raw.ready()
        self.writing = rd
        if rd.lease_round_started or rd.lease_round_acked:
            self._track_lease(rd)
        for msg in rd.messages:
            self.sim.send(msg)
        snap = rd.snapshot
        durable = bool(rd.entries) or rd.hard_state is not None or (snap is not None and not snap.is_empty())
        if not durable:
            latency = 0
        elif self.slow_disk is not None:
            latency = self.slow_disk.latency(rd)
        else:
            latency = self.sim.disk_latency()
        self.world.trace("%r write begins (%d entries, hs %r, snapshot %s, %d to apply), %dus", self,
                         len(rd.entries), rd.hard_state, snap is not None and not snap.is_empty(),
                         len(rd.committed_entries), latency)
        self.world.after(latency, self._finish_write, self.incarnation)
        self.sim.on_write_started(self, latency)

    def _finish_write(self, incarnation: int) -> None:
        if incarnation != self.incarnation:
            return
        rd, self.writing = self.writing, None
        storage = self.storage
        snap = rd.snapshot
        if snap is not None and not snap.is_empty():
            self._install_snapshot(snap)
        if rd.entries:
            storage.append(rd.entries)
            first = storage.first_index()
            kept = [e for e in rd.entries if e.index >= first]
            if kept:
                self.checker.on_persist(self.id, kept, storage.term(kept[0].index - 1))
        if rd.hard_state is not None:
            self.checker.on_hard_state(self.id, storage.hard_state, rd.hard_state)
            storage.set_hard_state(rd.hard_state)
        for msg in rd.messages_after_persist:
            self.sim.send(msg)
        for entry in rd.committed_entries:
            self._apply(entry)
        for rs in rd.read_states:
            self.world.trace("%r got %r", self, rs)
            self.checker.on_read_state(self.id, rs)
            self.read_waits.append(rs)
        if self.read_waits:
            self._answer_reads()
        self.raw.advance(rd)
        self._settle()

    def _install_snapshot(self, snap: Snapshot) -> None:
        meta = snap.metadata
        self.storage.apply_snapshot(snap)
        restored = StateMachine.from_snapshot_data(snap.data)
        self.checker.on_restore(self.id, meta.index, restored.digest, applied=self.sm.index)
        self.sm = restored
        self.conf_state = meta.conf_state
        self.sim.stats.snapshots_applied += 1
        self.world.trace("%r installed snapshot %d", self, meta.index)

    def _apply(self, entry: Entry) -> None:
        sm = self.sm
        if entry.index != sm.index + 1:
            raise InvariantViolation(f"{self!r} applies index {entry.index} right after {sm.index}")
        sm.apply(entry.data)
        first = self.checker.on_apply(self.id, entry, sm.digest)
        if entry.type == EntryType.CONF_CHANGE:
            cc = decode_conf_change(entry.data)
            self.conf_state = self.raw.apply_conf_change(cc)
            self.world.trace("%r applied %r at %d -> %r", self, cc, entry.index, self.conf_state)
            self.sim.on_conf_applied(entry.index, cc, self.conf_state, first)
        else:
            self.sim.on_entry_applied(self, entry)

    def _answer_reads(self) -> None:
        applied = self.sm.index
        waiting = []
        for rs in self.read_waits:
            if rs.index <= applied:
                self.sim.on_read_answered(rs.request_ctx)
            else:
                waiting.append(rs)
        self.read_waits = waiting

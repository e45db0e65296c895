"""One replica of one range on this store: its Raft node, pending requests, lease and apply.

The store (``kvdb.store.store``) batches the I/O of all its peers; a peer decides what goes
into those batches and answers its own requests. Requests are answered only after what they
depend on is written: writes after their entry is applied, reads once the applied state covers
everything acknowledged before they arrived (by lease or by ReadIndex).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import TYPE_CHECKING

from kvdb.pb import metapb_pb2, raft_serverpb_pb2
from kvdb.raft import ConfChange, Config, ConfState, Entry, EntryType, RawNode, Ready, Role, Snapshot
from kvdb.raft.codec import conf_state_to_pb, decode_conf_change
from kvdb.raft.errors import (
    ProposalDroppedError,
    SnapshotTemporarilyUnavailableError,
    StorageError,
)
from kvdb.raft.progress import ProgressState
from kvdb.raft.types import SnapshotMetadata
from kvdb.storage.engine import CF_META, WriteBatch
from kvdb.storage.keys import apply_state_key, range_state_key, snapshot_ingest_key
from kvdb.storage.raft_log import RaftLogStorage
from kvdb.store import keyspace, snapshot
from kvdb.store.errors import (
    EpochNotMatchError,
    NotLeaderError,
    ServerBusyError,
    StaleCommandError,
    StoreError,
)
from kvdb.store.lease import Lease
from kvdb.store.sessions import Sessions

if TYPE_CHECKING:
    from kvdb.store.store import Store

log = logging.getLogger(__name__)

Callback = Callable[[object], None]
"""Receives a result, or a ``StoreError`` instance when the request failed."""

Read = Callable[[], object]
"""Runs against the engine once the read may be served; returns the result."""

_READ_CTX_BYTES = 8

ROLE_NAMES = {Role.FOLLOWER: "follower", Role.CANDIDATE: "candidate", Role.LEADER: "leader",
              Role.PRE_CANDIDATE: "pre_candidate"}


class Proposal:
    __slots__ = ("term", "index", "callback")

    def __init__(self, term: int, index: int, callback: Callback) -> None:
        self.term = term
        self.index = index
        self.callback = callback


class Peer:
    def __init__(
        self,
        store: Store,
        desc: metapb_pb2.RangeDescriptor,
        peer_id: int,
        applied: int,
        conf_state: ConfState,
        rng: random.Random,
    ) -> None:
        self.store = store
        self.range_id = desc.id
        self.peer_id = peer_id
        self.desc = desc
        self.applied = applied
        self.applied_term = 0
        self.conf_state = conf_state
        cfg = store.config
        self.storage = RaftLogStorage(
            store.engine, desc.id, conf_state, self._build_snapshot, cfg.entry_cache_entries
        )
        self.raw = RawNode(
            Config(
                id=peer_id,
                storage=self.storage,
                rng=rng,
                election_tick=cfg.election_tick,
                heartbeat_tick=cfg.heartbeat_tick,
                election_bands=True,  # split votes after a leader dies cost a second election
                broadcast_commit=False,  # one write at a time: ~0.2 ms less per write (docs/raft.md)
                applied=applied,
                max_size_per_msg=cfg.max_size_per_msg,
                max_inflight_msgs=cfg.max_inflight_msgs,
                max_inflight_bytes=cfg.max_inflight_bytes,
                max_uncommitted_entries_size=cfg.max_uncommitted_entries_size,
                disable_proposal_forwarding=True,
            )
        )
        # Peer id -> Peer (with its store), from the descriptor and from messages received.
        self.peer_cache: dict[int, metapb_pb2.Peer] = {p.id: p for p in desc.peers}
        self.lease = Lease(cfg.lease_span)
        self.proposals: list[Proposal] = []
        self.to_propose: list[tuple[bytes, Callback]] = []
        self.to_read: list[tuple[Read, Callback]] = []  # waiting for the next ReadIndex request
        self.reading: dict[bytes, list[tuple[Read, Callback]]] = {}  # ReadIndex in flight, by ctx
        self.read_ready: list[tuple[int, list[tuple[Read, Callback]]]] = []  # (index, reads)
        self._read_seq = 0
        self.received_snapshots: dict[int, snapshot.Incoming] = {}  # verified, by snapshot index
        self.ingest_after_write: str | None = None  # the applied snapshot's file (``_apply_snapshot``)
        self.outgoing: snapshot.Built | None = None  # the snapshot built to send, if any
        self.building = False  # a snapshot build is running in the background
        self.build_started_at = 0
        self.removed = False  # applied its own removal: applies nothing more, destroyed this pass
        self.naps = 0  # times this replica hibernated (kvdb.store.hibernate): a nap changes nothing
        self.max_ts_synced = False
        """Leader only: the store's max ts is above every read an earlier leader may have served
        (a TSO stamp fetched since this replica became leader; ``Store.sync_max_ts``)."""
        self.splits_in_flight = 0  # proposed here, not answered yet: no lease reads, commits told at once
        self.split_family: list[int] = []  # the ranges this one's last split produced (error hints)
        self.destroyed = False
        self.counters = {"lease_reads": 0, "read_index_reads": 0, "proposals": 0,
                         "snapshots_sent": 0, "snapshots_applied": 0, "duplicates_answered": 0,
                         "duplicates_rejected": 0, "sessions_expired": 0}
        self.sessions = Sessions(desc.id, cfg.session_ttl_ms)  # the store loads a restarted one's
        self.gc_safe_point = 0
        """The highest GC safe point this range's data was collected at (``ApplyState``), the
        same on every replica at the same index: apply refuses prewrites at or below it."""

    # --------------------------------------------------------------------------- state queries
    @property
    def initialized(self) -> bool:
        """A replica created by a leader's message has no data until its first snapshot."""
        return self.applied > 0

    @property
    def is_leader(self) -> bool:
        return self.raw.raft.role == Role.LEADER

    def leader_peer(self) -> metapb_pb2.Peer | None:
        return self.peer_cache.get(self.raw.raft.lead)

    def not_leader(self) -> NotLeaderError:
        leader = self.leader_peer()
        address = self.store.address_of(leader.store_id) if leader is not None else ""
        return NotLeaderError(self.range_id, leader, address)

    def lease_valid(self, now: float) -> bool:
        """The architecture guide's three conditions for serving a read locally."""
        raft = self.raw.raft
        return (
            raft.role == Role.LEADER
            and self.applied_term == raft.term  # applied an entry of its own term
            and raft.lease_allowed()  # no transfer in flight
            and not self.splits_in_flight  # keys may be leaving for ranges led elsewhere
            and self.lease.valid(raft.term, now)
        )

    def check_epoch(self, epoch: metapb_pb2.RangeEpoch, conf_change: bool = False) -> None:
        """Writes and reads need the range's key span unchanged; conf changes its membership too."""
        ours = self.desc.epoch
        if epoch.version != ours.version or (conf_change and epoch.conf_ver != ours.conf_ver):
            raise EpochNotMatchError(
                f"range {self.range_id}: epoch {epoch.conf_ver}/{epoch.version} is stale, "
                f"current {ours.conf_ver}/{ours.version}",
                self.current_descs(),
            )

    def current_descs(self) -> list[metapb_pb2.RangeDescriptor]:
        """This range's descriptor and those of the ranges its last split made, as this store knows
        them: what a client routed with an older epoch needs to route again without asking PD."""
        out = [self.desc]
        for range_id in self.split_family:
            other = self.store.peers.get(range_id)
            if other is not None and other.initialized and other is not self:
                out.append(other.desc)
        return out

    # --------------------------------------------------------------------------------- requests
    def propose(self, data: bytes, callback: Callback) -> None:
        """Queue a command; the store proposes the queue as one batch per iteration."""
        self.to_propose.append((data, callback))

    def flush_proposals(self) -> None:
        batch, self.to_propose = self.to_propose, []
        raft = self.raw.raft
        if raft.role != Role.LEADER:
            err = self.not_leader()
            for _, cb in batch:
                cb(err)
            return
        first = raft.raft_log.last_index() + 1
        try:
            self.raw.propose_batch([data for data, _ in batch])
            if self.splits_in_flight:  # followers create the new ranges' replicas by applying it
                raft.broadcast_commit_of(raft.raft_log.last_index())
        except ProposalDroppedError as exc:
            # Nothing reached the log, so nothing will apply: "busy, retry later" (a transfer in
            # flight, too many uncommitted bytes), not "stale", which would tell the client the
            # write may have applied.
            err = self.not_leader() if raft.role != Role.LEADER else ServerBusyError(
                f"range {self.range_id}: proposal dropped ({exc})", self.store.config.busy_backoff_ms)
            for _, cb in batch:
                cb(err)
            return
        term = raft.term
        for i, (_, cb) in enumerate(batch):
            self.proposals.append(Proposal(term, first + i, cb))
        self.counters["proposals"] += len(batch)

    def propose_conf_change(self, cc: ConfChange, callback: Callback) -> None:
        raft = self.raw.raft
        if raft.role != Role.LEADER:
            raise self.not_leader()
        index = raft.raft_log.last_index() + 1
        try:
            self.raw.propose_conf_change(cc)
        except ProposalDroppedError as exc:
            raise StaleCommandError(self.range_id) from exc
        if raft.raft_log.last_index() != index or raft.pending_conf_index != index:
            # The core refused it quietly (another change is still pending): it appended a no-op
            # in its place, whose apply must not be answered as if the change had applied. It
            # certainly did not apply, so the answer is "retry later".
            raise ServerBusyError(f"range {self.range_id}: another membership change is pending",
                                  self.store.config.busy_backoff_ms)
        self.proposals.append(Proposal(raft.term, index, callback))

    def read(self, fn: Read, callback: Callback, now: float) -> None:
        """Serve at once under a valid lease; otherwise queue for the next ReadIndex round."""
        if self.lease_valid(now):
            self.counters["lease_reads"] += 1
            callback(fn())
            return
        if not self.is_leader:
            raise self.not_leader()
        self.to_read.append((self._fenced(fn), callback))

    def _fenced(self, fn: Read) -> Read:
        """``fn``, unless the range's bounds changed (a split applied) before the read could be
        served: its keys may belong to another range by then, whose writes this one never sees."""
        version = self.desc.epoch.version

        def read() -> object:
            if self.desc.epoch.version != version:
                return EpochNotMatchError(
                    f"range {self.range_id}: split while the read waited", self.current_descs())
            return fn()

        return read

    def flush_reads(self) -> None:
        """One ReadIndex request covers every read that queued since the last one."""
        batch, self.to_read = self.to_read, []
        self._read_seq += 1
        ctx = self._read_seq.to_bytes(_READ_CTX_BYTES, "big")
        try:
            self.raw.read_index(ctx)
        except ProposalDroppedError:
            err = self.not_leader()
            for _, cb in batch:
                cb(err)
            return
        self.reading[ctx] = batch
        self.counters["read_index_reads"] += len(batch)

    def serve_reads(self) -> None:
        waiting = []
        for index, batch in self.read_ready:
            if index > self.applied:
                waiting.append((index, batch))
                continue
            for fn, cb in batch:
                cb(fn())
        self.read_ready = waiting

    def fail_reads(self, err: StoreError) -> None:
        """Leadership was lost: ReadIndex requests in flight will never be answered here."""
        pending = [batch for batch in self.reading.values()] + [b for _, b in self.read_ready]
        pending.append(self.to_read)
        self.reading, self.read_ready, self.to_read = {}, [], []
        for batch in pending:
            for _, cb in batch:
                cb(err)

    def fail_all(self, err: StoreError) -> None:
        """The replica is going away: nothing pending will ever be answered by it.

        Proposals already in the log may still commit through the remaining replicas (a leader
        that removes itself has replicated entries after its removal), so their outcome is
        unknown: they get StaleCommand, never ``err``, which would tell the client they did not run.
        """
        self.fail_reads(err)
        proposals, self.proposals = self.proposals, []
        queued, self.to_propose = self.to_propose, []
        stale = StaleCommandError(self.range_id)
        for p in proposals:
            p.callback(stale)
        for _, cb in queued:
            cb(err)

    # ------------------------------------------------------------------------- ready, 1st half
    def on_ready_begin(self, rd: Ready, batch: WriteBatch, now: float) -> None:
        """Lease bookkeeping and everything that must be durable before acks go out."""
        raft = self.raw.raft
        if rd.soft_state is not None:
            log.info("range %d: peer %d is %s in term %d (leader %d)", self.range_id, self.peer_id,
                     ROLE_NAMES[rd.soft_state.role], raft.term, rd.soft_state.leader_id)
            self.max_ts_synced = False
            if rd.soft_state.role == Role.CANDIDATE:
                self.store.stats.elections += 1
            if rd.soft_state.role != Role.LEADER:
                self.lease.expire()
                self.fail_reads(self.not_leader())
            else:
                self.store.stats.leader_changes += 1
                self.store.sync_max_ts()
                self.store.on_leader(self)
        if rd.lease_round_started:
            self.lease.round_started(raft.term, rd.lease_round_started, now)
        if rd.lease_round_acked:
            self.lease.round_acked(raft.term, rd.lease_round_acked)
        if rd.snapshot is not None and not rd.snapshot.is_empty():
            self._apply_snapshot(rd.snapshot, batch)
        if rd.entries:
            self.storage.append(batch, rd.entries)
        if rd.hard_state is not None:
            self.storage.set_hard_state(batch, rd.hard_state)

    def _apply_snapshot(self, snap: Snapshot, batch: WriteBatch) -> None:
        """First half of applying a snapshot, in the Ready's synced batch: everything but the
        data, which ``ingest_snapshot`` adds once this batch is written (``kvdb.store.snapshot``)."""
        meta = snap.metadata
        received = self.received_snapshots.pop(meta.index)
        desc = received.header.descriptor
        if self.initialized:
            keyspace.delete_data(batch, self.desc)
        keyspace.delete_data(batch, desc)
        if received.name is not None:
            batch.put(CF_META, snapshot_ingest_key(self.range_id), received.name.encode())
            self.ingest_after_write = received.name
        self.sessions.replace(received.header.sessions, batch)
        self.gc_safe_point = received.header.gc_safe_point
        self.store.raise_gc_safe_point(received.header.gc_safe_point, batch)
        self.storage.apply_snapshot(batch, meta.index, meta.term, meta.conf_state)
        self.conf_state = meta.conf_state
        self.applied = meta.index
        self.applied_term = meta.term
        self.set_desc(desc, batch)
        self.write_apply_state(batch)
        for index in [i for i in self.received_snapshots if i <= meta.index]:
            self.received_snapshots.pop(index).discard()
        self.counters["snapshots_applied"] += 1
        log.info("range %d: peer %d applies a snapshot at index %d (%d keys)", self.range_id, self.peer_id,
                 meta.index, received.header.key_count)

    def ingest_snapshot(self) -> None:
        """Second half: the batch of ``_apply_snapshot`` is written, so the data may go in."""
        name, self.ingest_after_write = self.ingest_after_write, None
        if name is not None:
            snapshot.ingest(self.store.engine, self.range_id, name)

    def _build_snapshot(self) -> Snapshot:
        """Called by the core when a follower needs a snapshot: the one built, if still of use,
        or else start building one in the background (the core asks again on the follower's
        next response)."""
        out = self.outgoing
        if out is not None:
            try:
                if out.index >= self.storage.truncated[0]:  # else: the log moved past it
                    return Snapshot(SnapshotMetadata(out.index, self.storage.term(out.index), out.conf_state),
                                    out.header_bytes)
            except StorageError:
                pass  # compacted since: build again
            self._drop_outgoing()
        if not self.building:
            self.building = True
            self.build_started_at = self.applied  # the build's index will be at least this
            store = self.store
            name = store.snapshot_file_name("send", self.range_id)
            ttl = store.config.session_ttl_ms
            store.background(lambda: snapshot.build(store.engine, self.range_id, name, ttl), self._built)
            if self.outgoing is not None:  # built inline (tests, the simulator)
                return self._build_snapshot()
        raise SnapshotTemporarilyUnavailableError()

    def _built(self, result: snapshot.Built | BaseException) -> None:
        self.building = False
        if isinstance(result, BaseException):
            log.warning("range %d: building a snapshot failed: %r", self.range_id, result)
            return
        if self.destroyed:
            result.remove()
            return
        self._drop_outgoing()
        self.outgoing = result
        log.info("range %d: built a snapshot at index %d (%d keys, %d bytes)", self.range_id, result.index,
                 result.header.key_count, result.size)

    def snapshot_sent(self, built: snapshot.Built) -> None:
        """A stream of ``built`` ended: the last one deletes it (a later need builds afresh)."""
        built.users -= 1
        if built.users == 0:
            built.remove()
            if self.outgoing is built:
                self.outgoing = None

    def _drop_outgoing(self) -> None:
        out, self.outgoing = self.outgoing, None
        if out is not None and out.users == 0:
            out.remove()  # else the last stream's ``snapshot_sent`` does

    def release_snapshots(self) -> None:
        """The replica is destroyed: delete its snapshot files (a send in flight deletes its own)."""
        self._drop_outgoing()
        for received in self.received_snapshots.values():
            received.discard()
        self.received_snapshots.clear()

    # ------------------------------------------------------------------------- ready, 2nd half
    def apply(self, entries: list[Entry], answers: list[tuple[Callback, object]]) -> None:
        """Apply committed entries into the store's apply batch; queue each proposer's answer."""
        store = self.store
        for entry in entries:
            if self.removed:
                break  # the remaining replicas apply the rest; this one is going away
            if entry.index <= self.applied:
                continue
            if entry.type == EntryType.CONF_CHANGE:
                result = self._apply_conf_change(entry, store.apply_batch)
            elif entry.data:
                result = store.apply_command(self, entry.data)
            else:
                result = None  # a new leader's no-op
            self.applied = entry.index
            self.applied_term = entry.term
            self._answer(entry, result, answers)
        if entries:
            self.write_apply_state(store.apply_batch)

    def _answer(self, entry: Entry, result: object, answers: list[tuple[Callback, object]]) -> None:
        proposals = self.proposals
        n = 0
        while n < len(proposals) and proposals[n].index <= entry.index:
            p = proposals[n]
            if p.index == entry.index and p.term == entry.term:
                answers.append((p.callback, result))
            else:
                answers.append((p.callback, StaleCommandError(self.range_id)))
            n += 1
        if n:
            del proposals[:n]

    def _apply_conf_change(self, entry: Entry, batch: WriteBatch) -> object:
        cc = decode_conf_change(entry.data)
        context = raft_serverpb_pb2.ChangePeerContext.FromString(cc.context)
        if not cc.leave_joint() and context.epoch.conf_ver != self.desc.epoch.conf_ver:
            # Proposed against an older membership: rejected, the core never hears of it.
            return EpochNotMatchError(f"range {self.range_id}: conf change on a stale epoch", [self.desc])
        self.conf_state = self.raw.apply_conf_change(cc)
        self.storage.set_conf_state(self.conf_state)
        for p in context.peers:
            self.peer_cache[p.id] = p
        desc = metapb_pb2.RangeDescriptor()
        desc.CopyFrom(self.desc)
        desc.epoch.conf_ver += 1
        del desc.peers[:]
        cs = self.conf_state
        voters = set(cs.voters) | set(cs.voters_outgoing)
        for peer_id in sorted(voters | set(cs.learners) | set(cs.learners_next)):
            known = self.peer_cache.get(peer_id)
            if known is None:
                log.error("range %d: conf change names unknown peer %d", self.range_id, peer_id)
                continue
            role = metapb_pb2.VOTER if peer_id in voters else metapb_pb2.LEARNER
            desc.peers.add(id=peer_id, store_id=known.store_id, role=role)
        self.removed = self.peer_id not in voters | set(cs.learners) | set(cs.learners_next)
        old_peers = list(self.desc.peers)
        self.set_desc(desc, batch)
        if self.removed:
            self.store.schedule_destroy(self)
        elif self.is_leader:
            self.store.on_conf_change(self)
            kept = {p.id for p in desc.peers}
            removed = [p for p in old_peers if p.id not in kept]
            if removed:
                self.store.send_tombstones(self, removed)
        return desc

    def set_desc(self, desc: metapb_pb2.RangeDescriptor, batch: WriteBatch) -> None:
        """Adopt ``desc`` (applied: a conf change, a split, a snapshot) and stage it in ``batch``."""
        self.desc = desc
        for p in desc.peers:
            self.peer_cache[p.id] = p
        if self.removed:
            self.store.range_index.remove(self.range_id)
            # A descriptor without this store's replica is written only as a tombstone, in the
            # same batch: an apply pass may be written in several batches (a CAS flushes), and a
            # crash between them must not leave a live range that names no replica here.
            self.write_tombstone(batch)
            return
        self.store.range_index.put(desc)
        state = raft_serverpb_pb2.RangeLocalState(descriptor=desc)
        batch.put(CF_META, range_state_key(self.range_id), state.SerializeToString())

    def write_tombstone(self, batch: WriteBatch) -> None:
        """Mark this replica removed for good, keeping its peer id so it never comes back."""
        # The applied descriptor no longer names the removed replica; ``Store._load`` finds the
        # tombstone's peer id by this store, so keep it there, or after a restart a message to
        # that id would bring it back to life with its votes forgotten.
        tomb = metapb_pb2.RangeDescriptor()
        tomb.CopyFrom(self.desc)
        if not any(p.id == self.peer_id for p in tomb.peers):
            tomb.peers.add(id=self.peer_id, store_id=self.store.store_id)
        state = raft_serverpb_pb2.RangeLocalState(state=raft_serverpb_pb2.RangeLocalState.TOMBSTONE,
                                                  descriptor=tomb)
        batch.put(CF_META, range_state_key(self.range_id), state.SerializeToString())

    def write_apply_state(self, batch: WriteBatch) -> None:
        self.sessions.stage(batch)
        stage_apply_state(batch, self.range_id, self.applied, self.conf_state, self.gc_safe_point)

    def on_read_states(self, rd: Ready) -> None:
        for rs in rd.read_states:
            batch = self.reading.pop(rs.request_ctx, None)
            if batch is not None:
                self.read_ready.append((rs.index, batch))

    def _snapshot_floor(self) -> int:
        """The highest index the log may be truncated to without outdating a snapshot being
        built, built for a follower or being sent. Without it, under steady writes each build
        was outdated by log GC before it could be sent, so the next was built, and the follower
        never caught up (bench/snapshot_rss.py with 1,000-entry GC: 114 builds in 2 minutes)."""
        floors = [self.applied]
        if self.building:
            floors.append(self.build_started_at)
        if self.is_leader:
            progress = [pr for pid, pr in self.raw.raft.trk.progress.items() if pid != self.peer_id]
            floors += [pr.pending_snapshot for pr in progress if pr.state == ProgressState.SNAPSHOT]
            if self.outgoing is not None and any(pr.state != ProgressState.REPLICATE for pr in progress):
                floors.append(self.outgoing.index)
        return min(floors)

    def maybe_compact_log(self, batch: WriteBatch, force: bool = False) -> bool:
        """Truncate the log by count or size, keeping a tail so slow followers avoid snapshots."""
        cfg = self.store.config
        first = self.storage.first_index()
        count = self.applied - first + 1
        if not force and count <= cfg.raft_log_gc_count_limit and (
            self.storage.log_size_bytes() <= cfg.raft_log_gc_size_limit
        ):
            return False
        target = self.applied if force else min(self.applied - cfg.raft_log_gc_keep, self._snapshot_floor())
        if target < first:
            return False
        self.storage.compact(batch, target)
        return True


def stage_apply_state(batch: WriteBatch, range_id: int, applied: int, conf_state: ConfState,
                      gc_safe_point: int = 0) -> None:
    """The range's applied index, configuration and GC safe point, written with the data they cover."""
    state = raft_serverpb_pb2.ApplyState(applied_index=applied, gc_safe_point=gc_safe_point)
    state.conf_state.CopyFrom(conf_state_to_pb(conf_state))
    batch.put(CF_META, apply_state_key(range_id), state.SerializeToString())

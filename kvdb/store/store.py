"""The multi-Raft host: every replica on this store, driven by one loop with group commit.

Sans-I/O: the store takes its engine, transport and clock as arguments and is driven by calls.
A driver (``kvdb.server.raft_host`` for real processes, ``tests/storesim`` in the simulator) feeds
it inputs (``tick``, ``on_raft_messages``, requests) and runs iterations through
``kvdb.store.loop.RaftLoop``, the one place that decides what is synced and when acks go:

    it = store.begin()          # gather every peer's Ready, send messages, stage ONE batch
    (the batch is written: fsynced if it.must_sync; inputs keep arriving meanwhile)
    store.finish(it)            # send acks, apply committed entries, answer requests

Only one iteration is in flight at a time, so whatever arrives during a write is batched into
the next one: that is the group commit.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import Protocol

from kvdb.mvcc.reader import MvccReader
from kvdb.mvcc.writer import MvccWriter
from kvdb.pb import metapb_pb2, raft_serverpb_pb2
from kvdb.raft import ConfChange, ConfChangeSingle, ConfChangeType, ConfState, Message, MessageType, Ready
from kvdb.raft.codec import conf_state_from_pb, message_from_pb, message_to_pb
from kvdb.raft.errors import StepError
from kvdb.raft.storage import BOOTSTRAP_INDEX
from kvdb.raft.types import HardState
from kvdb.storage.engine import CF_DEFAULT, CF_META, Engine, WriteBatch
from kvdb.storage.keys import (
    GC_SAFE_POINT_KEY,
    RANGE_STATE_PREFIX,
    STORE_IDENT_KEY,
    apply_state_key,
    range_id_from_state_key,
    range_state_key,
)
from kvdb.storage.raft_log import RaftLogStorage
from kvdb.store import keyspace, snapshot, split
from kvdb.store.clock import Clock
from kvdb.store.config import StoreConfig
from kvdb.store.errors import (
    DamagedStateError,
    DuplicateRequestError,
    EpochNotMatchError,
    InvalidArgumentError,
    RangeNotFoundError,
    ServerBusyError,
    SessionExpiredError,
    WrongClusterError,
)
from kvdb.store.hibernate import Hibernation
from kvdb.store.loop import RaftLoop
from kvdb.store.membership import check_conf_change, check_transfer
from kvdb.store.peer import Callback, Peer, Read, stage_apply_state
from kvdb.store.range_index import RangeIndex
from kvdb.store.sessions import Result, Sessions
from kvdb.store.stats import StoreStats
from kvdb.txn import actions
from kvdb.txn.concurrency import ConcurrencyManager, TsLimit
from kvdb.txn.latches import Latches

log = logging.getLogger(__name__)

_REPLAY_COUNTERS = {DuplicateRequestError: "duplicates_rejected", SessionExpiredError: "sessions_expired"}
"""Peer counter of each refusal of a re-sent write; an answer from a stored result is a duplicate answered."""

MT = MessageType
_LEADER_ONLY = frozenset({MT.APP, MT.HEARTBEAT, MT.SNAP})
"""Messages only a leader sends: one addressed to a newer peer id than ours here means ours was
removed."""
_CAMPAIGN = frozenset({MT.VOTE, MT.PRE_VOTE})
"""A candidate's requests. For a range this store's parent range has not split off yet they are
kept and stepped once the split creates it here, so a new range elects its leader without
waiting out an election timeout."""
MAX_HELD_MESSAGES = 1024
TS_FETCH_TIMEOUT = 0.5
"""Seconds after which a TSO fetch for the max ts sync counts as lost and the next tick sends
another (a reply that comes after all is still used: any TSO stamp fetched after the election
will do). PD answers within milliseconds, or after its own failover (under a second): a new
leader refuses async-commit and 1PC prewrites until then, so a lost fetch must not cost more."""
_CREATES_REPLICA = _LEADER_ONLY | _CAMPAIGN
"""Messages that start an empty replica of a range the receiving store lacks (a leader added it,
or a candidate counts on its vote), so they carry the sender's bounds to check against the ranges
it holds (``_peer_for_message``); answers to them need no bounds, and most traffic is answers."""


class Transport(Protocol):
    def send(self, store_id: int, messages: list[raft_serverpb_pb2.RaftMessage]) -> None:
        """Deliver in order, best effort; a lost message is like one the network dropped."""
        ...

    def send_snapshot(
        self, store_id: int, message: raft_serverpb_pb2.RaftMessage, data: snapshot.Built,
        done: Callable[[bool], None]
    ) -> None:
        """Stream a MSG_SNAP, then ``data.chunks(...)``; the receiver hands them to an ``Incoming``
        (``Store.receive_snapshot``) and then to ``Store.on_snapshot``. ``done(ok)`` is called
        once, from the store's thread."""
        ...


Background = Callable[[Callable[[], object], Callable[[object], None]], None]
"""Runs ``work`` away from the loop and then ``done(result or exception)`` on the store's thread."""


def run_inline(work: Callable[[], object], done: Callable[[object], None]) -> None:
    """The ``Background`` of tests and the simulator: at once, deterministically."""
    try:
        result = work()
    except Exception as exc:  # handed to ``done``, as a thread's failure would be
        result = exc
    done(result)


class NewRange:
    """A range a split applied here: staged in the apply batch, started once that is written."""

    __slots__ = ("parent", "desc", "peer_id", "conf_state", "sessions")

    def __init__(self, parent: Peer, desc: metapb_pb2.RangeDescriptor, peer_id: int,
                 conf_state: ConfState, sessions: Sessions) -> None:
        self.parent = parent
        self.desc = desc
        self.peer_id = peer_id
        self.conf_state = conf_state
        self.sessions = sessions


class Iteration:
    __slots__ = ("readies", "batch", "must_sync")

    def __init__(self, readies: list[tuple[Peer, Ready]], batch: WriteBatch) -> None:
        self.readies = readies
        self.batch = batch
        # Only new entries, a snapshot or a term/vote change need the fsync; a batch that only
        # moves commit indexes may be lost in a crash (the commit index is learned again).
        self.must_sync = any(rd.must_sync for _, rd in readies)


class Store:
    def __init__(
        self,
        cluster_id: int,
        store_id: int,
        engine: Engine,
        transport: Transport,
        clock: Clock,
        config: StoreConfig | None = None,
        rng: random.Random | None = None,
        addresses: dict[int, str] | None = None,
    ) -> None:
        self.cluster_id = cluster_id
        self.store_id = store_id
        self.engine = engine
        self.transport = transport
        self.clock = clock
        self.config = config or StoreConfig()
        self.config.validate()
        self.rng = rng or random.Random()
        self.addresses = addresses if addresses is not None else {}  # shared with the transport
        self.peers: dict[int, Peer] = {}
        self.range_index = RangeIndex()
        """The initialized replicas by key (kept by ``Peer.set_desc``, start-up and removal)."""
        self._new_ranges: list[NewRange] = []
        self._splits_applied: list[list[metapb_pb2.RangeDescriptor]] = []
        self._held: dict[int, raft_serverpb_pb2.RaftMessage] = {}  # by range id (``_CAMPAIGN``)
        self._snapshots_stepped: dict[int, metapb_pb2.RangeDescriptor] = {}
        """Snapshots handed to their replicas since the last ``begin``, which applies or drops them."""
        self.on_split: Callable[[list[metapb_pb2.RangeDescriptor]], None] = lambda descs: None
        """Set by the driver: a split applied here and is written (the parent first)."""
        self.on_leader: Callable[[Peer], None] = lambda peer: None
        """Set by the driver: a replica here became its range's leader (PD should hear of it soon:
        clients route by PD's view, and a range split off here has no other leader yet)."""
        self.on_conf_change: Callable[[Peer], None] = lambda peer: None
        """Set by the driver: a membership change applied on the range's leader here (PD hands
        out an operator's next step only once a heartbeat shows this one done)."""
        self.tombstones: dict[int, int] = {}  # range id -> the removed peer's id
        self._dirty: set[Peer] = set()
        self._to_destroy: list[Peer] = []
        self._outbox: dict[int, list[raft_serverpb_pb2.RaftMessage]] = {}
        self.apply_batch: WriteBatch = engine.batch()
        self.wake: Callable[[], None] = lambda: None
        """Set by the driver: called whenever an iteration is due."""
        self.hibernation = Hibernation(self)
        self.stats = StoreStats()
        self.background: Background = run_inline
        """Set by the driver: where snapshots are built (a thread in a real store)."""
        self._snapshot_seq = 0
        self.cm = ConcurrencyManager()
        self.ts_limit = TsLimit()
        """The highest timestamp a transactional request may carry (``kvdb.txn.concurrency``)."""
        self.latches = Latches()
        self.request_ts: Callable[[Callable[[int], None]], None] | None = None
        """Set by the driver: fetch a TSO timestamp and call back with it (0: the fetch failed),
        on the store's thread (``sync_max_ts``)."""
        self._ts_fetch_since: float | None = None  # when the fetch in flight was sent
        self._ts_again = False
        self._ts_retry = False  # the last fetch failed: the next tick asks again
        self.gc_safe_point = 0
        """The cluster's GC safe point as PD last said (raised only): no read or prewrite at or
        below it is served, as GC may have dropped the versions it would need."""
        self._gc_safe_point_persisted = 0
        self._txn_staged: tuple[WriteBatch, set[bytes] | None] = (self.apply_batch, set())
        """(batch, user keys whose lock/write records txn commands staged in it; None: unknown).
        See ``_apply_txn``; a batch other than ``apply_batch`` was written: nothing is staged."""
        self._check_ident()
        snapshot.recover(engine)
        self._load()

    # ------------------------------------------------------------------------------- start-up
    def _check_ident(self) -> None:
        raw = self.engine.get(CF_META, STORE_IDENT_KEY)
        if raw is None:
            ident = raft_serverpb_pb2.StoreIdent(cluster_id=self.cluster_id, store_id=self.store_id)
            batch = self.engine.batch()
            batch.put(CF_META, STORE_IDENT_KEY, ident.SerializeToString())
            self.engine.write(batch, sync=True)
            return
        ident = raft_serverpb_pb2.StoreIdent.FromString(raw)
        if ident.cluster_id != self.cluster_id:
            raise WrongClusterError(self.cluster_id, ident.cluster_id)
        if ident.store_id != self.store_id:
            raise ValueError(f"the data dir belongs to store {ident.store_id}, not {self.store_id}")

    def _load(self) -> None:
        """Resume every replica from its persisted descriptor, apply state and Raft log."""
        raw = self.engine.get(CF_META, GC_SAFE_POINT_KEY)
        self.gc_safe_point = self._gc_safe_point_persisted = int.from_bytes(raw or b"", "big")
        start = RANGE_STATE_PREFIX
        end = RANGE_STATE_PREFIX[:-1] + bytes([RANGE_STATE_PREFIX[-1] + 1])
        for key, value in self.engine.scan(CF_META, start, end, 0):
            range_id = range_id_from_state_key(key)
            state = raft_serverpb_pb2.RangeLocalState.FromString(value)
            mine = [p for p in state.descriptor.peers if p.store_id == self.store_id]
            if state.state == raft_serverpb_pb2.RangeLocalState.TOMBSTONE:
                self.tombstones[range_id] = max((p.id for p in mine), default=0)
                continue
            if len(mine) != 1:
                raise DamagedStateError(
                    f"store {self.store_id}: range {range_id}'s persisted descriptor names "
                    f"{len(mine)} replicas on this store (peers {[p.id for p in mine]}); the "
                    "store's state is damaged and it will not start on it"
                )
            apply_raw = self.engine.get(CF_META, apply_state_key(range_id))
            apply = raft_serverpb_pb2.ApplyState.FromString(apply_raw or b"")
            peer = Peer(self, state.descriptor, mine[0].id, apply.applied_index,
                        conf_state_from_pb(apply.conf_state), self._peer_rng())
            peer.sessions = Sessions.load(self.engine, range_id, self.config.session_ttl_ms)
            peer.gc_safe_point = apply.gc_safe_point
            self.peers[range_id] = peer
            self.range_index.put(state.descriptor)
            self._mark(peer)
        log.info("store %d: loaded %d ranges (%d tombstones)", self.store_id, len(self.peers),
                 len(self.tombstones))

    def _peer_rng(self) -> random.Random:
        return random.Random(self.rng.getrandbits(64))

    def bootstrap_range(self, desc: metapb_pb2.RangeDescriptor) -> None:
        """Create a founding replica of ``desc`` (every store in it does the same, with no PD)."""
        if desc.id in self.peers or desc.id in self.tombstones:
            return
        mine = [p for p in desc.peers if p.store_id == self.store_id]
        if not mine:
            raise ValueError(f"range {desc.id} has no replica on store {self.store_id}")
        conf_state = _conf_state_of(desc)
        batch = self.engine.batch()
        RaftLogStorage.bootstrap(batch, desc.id)
        batch.put(CF_META, range_state_key(desc.id), raft_serverpb_pb2.RangeLocalState(descriptor=desc)
                  .SerializeToString())
        peer = Peer(self, desc, mine[0].id, 0, conf_state, self._peer_rng())
        peer.applied = 1
        peer.write_apply_state(batch)
        self.engine.write(batch, sync=True)
        # Re-create it from disk so the Raft node starts from exactly what a restart would see.
        self.peers[desc.id] = peer = Peer(self, desc, mine[0].id, 1, conf_state, self._peer_rng())
        self.range_index.put(desc)
        self._mark(peer)

    def discard_range(self, range_id: int) -> None:
        """Forget a replica that never served (a first range another store's bootstrap beat)."""
        peer = self.peers.pop(range_id)
        peer.destroyed = True
        self.stats.retire(peer.counters)
        self._dirty.discard(peer)
        self.range_index.remove(range_id)
        batch = self.engine.batch()
        peer.storage.destroy(batch)
        peer.sessions.delete(batch)
        batch.delete(CF_META, range_state_key(range_id))
        batch.delete(CF_META, apply_state_key(range_id))
        self.engine.write(batch, sync=True)

    def address_of(self, store_id: int) -> str:
        return self.addresses.get(store_id, "")

    # ---------------------------------------------------------------------------------- inputs
    def tick(self) -> None:
        """Tick every replica that is not hibernated (``kvdb.store.hibernate``), ask again for a
        max ts sync whose fetch failed or was lost, and refresh the timestamp limit."""
        for peer in self.hibernation.tick():
            peer.raw.tick()
            self._mark(peer)
        now = self.clock.now()
        fetch_lost = self._ts_fetch_since is not None and now - self._ts_fetch_since >= TS_FETCH_TIMEOUT
        if self._ts_retry or fetch_lost:
            self._ts_retry = False
            self.sync_max_ts()
        elif (self._ts_fetch_since is None and self.request_ts is not None and self.ts_limit.stale(now)
              and any(p.is_leader for p in self.peers.values())):
            self._ts_fetch_since = now
            self.request_ts(lambda ts: self._on_ts({}, ts))

    def on_raft_messages(self, messages: list[raft_serverpb_pb2.RaftMessage]) -> None:
        hibernation = self.hibernation
        sender = None
        for msg in messages:
            if msg.from_peer.store_id != sender:  # a batch comes from one store: note it once
                sender = msg.from_peer.store_id
                hibernation.heard_from(sender)
            if msg.store_heartbeat:
                continue
            if msg.hibernate:
                hibernation.on_notice(msg)
                continue
            if msg.tombstone:
                self._on_tombstone(msg)
                continue
            peer = self._peer_for_message(msg)
            if peer is None:
                continue
            if msg.message.type == MT.SNAP:
                log.warning("range %d: MSG_SNAP outside the snapshot stream dropped", msg.range_id)
                continue
            self._step(peer, msg)

    def snapshot_file_name(self, kind: str, range_id: int) -> str:
        """A name no other snapshot file of this store's life has (start-up deletes older ones)."""
        self._snapshot_seq += 1
        return f"{kind}-{range_id}-{self._snapshot_seq}"

    def receive_snapshot(self, msg: raft_serverpb_pb2.RaftMessage) -> snapshot.Incoming:
        """Where a snapshot stream that starts with ``msg`` writes its chunks."""
        return snapshot.Incoming(self.engine.files, self.snapshot_file_name("recv", msg.range_id), msg)

    def on_snapshot(self, msg: raft_serverpb_pb2.RaftMessage, incoming: snapshot.Incoming) -> bool:
        """A snapshot stream completed; returns whether it was handed to the replica. Raises
        ``SnapshotCorruptError`` if the data is not what the header says. The file is deleted
        unless the replica keeps it to apply."""
        peer = self._peer_for_message(msg)
        try:
            incoming.finish()
        except snapshot.SnapshotCorruptError:
            incoming.discard()
            raise
        if peer is None:
            incoming.discard()
            return False
        if self._overlaps_others(peer.range_id, incoming.header.descriptor):
            incoming.discard()
            return False
        self._snapshots_stepped[peer.range_id] = incoming.header.descriptor
        index = msg.message.snapshot.metadata.index
        if index <= peer.raw.raft.raft_log.committed:
            incoming.discard()  # the core ignores it (but answers); a copy may be about to apply
        else:
            old = peer.received_snapshots.pop(index, None)
            if old is not None:
                old.discard()
            peer.received_snapshots[index] = incoming
        self._step(peer, msg)
        return True

    def _overlaps_others(self, range_id: int, desc: metapb_pb2.RangeDescriptor) -> bool:
        """Whether another replica here holds keys of ``desc``: a snapshot of it must wait (the
        other replica is a parent yet to apply its split, or a range yet to learn it was removed)."""
        others = [r for r in self.range_index.overlapping(desc.start_key, desc.end_key) if r != range_id]
        others += [r for r, d in self._snapshots_stepped.items()
                   if r != range_id and keyspace.clip(d, desc.start_key, desc.end_key) is not None]
        if others:
            log.info("range %d: snapshot refused, it overlaps ranges %s on store %d", range_id, others,
                     self.store_id)
        return bool(others)

    def _step(self, peer: Peer, msg: raft_serverpb_pb2.RaftMessage) -> None:
        peer.peer_cache.setdefault(msg.from_peer.id, msg.from_peer)
        try:
            peer.raw.step(message_from_pb(msg.message))
        except StepError as exc:
            log.debug("range %d: step refused: %s", peer.range_id, exc)
        self._mark(peer)

    def _peer_for_message(self, msg: raft_serverpb_pb2.RaftMessage) -> Peer | None:
        if msg.to_peer.store_id != self.store_id:
            log.warning("message for store %d reached store %d", msg.to_peer.store_id, self.store_id)
            return None
        peer = self.peers.get(msg.range_id)
        if peer is not None:
            if peer.peer_id == msg.to_peer.id:
                if msg.epoch.conf_ver < peer.desc.epoch.conf_ver and self._removed_sender(peer, msg):
                    return None
                return peer
            if peer.peer_id < msg.to_peer.id and msg.message.type in _LEADER_ONLY:
                # Peer ids only grow: a leader talking to a newer replica on this store means ours
                # was removed (while it was down or cut off, so it never applied its removal).
                # Remove it; the leader's next message creates the new replica.
                log.info("range %d: replica %d is stale (the leader talks to %d here); removing it",
                         msg.range_id, peer.peer_id, msg.to_peer.id)
                self.schedule_destroy(peer)
                self.wake()
            return None
        if self.tombstones.get(msg.range_id, 0) >= msg.to_peer.id:
            return None
        if self.range_index.overlapping(msg.start_key, msg.end_key):
            # A range made by a split whose parent here has not applied it yet: the parent's split
            # creates this replica with its data; an empty one now would hold the same keys twice.
            if msg.message.type in _CAMPAIGN:
                self._hold(msg)
            return None
        if msg.message.type not in _CREATES_REPLICA:
            return None
        # A leader added us, or a candidate counts on our vote: start an empty replica; its data
        # comes by snapshot from whoever leads. A vote must be able to create one: a store that
        # skipped a split (its parent caught up by a later snapshot, or was removed before it
        # applied the split) has no replica of the new ranges, and they elect no leader to create
        # it without its vote (TiKV's raft-rs does the same: is_initial_msg).
        desc = metapb_pb2.RangeDescriptor(id=msg.range_id)
        desc.peers.add().CopyFrom(msg.to_peer)
        peer = Peer(self, desc, msg.to_peer.id, 0, ConfState(), self._peer_rng())
        self.peers[msg.range_id] = peer
        log.info("range %d: created replica %d on a %s", msg.range_id, msg.to_peer.id,
                 "candidate's request" if msg.message.type in _CAMPAIGN else "leader's message")
        return peer

    def _hold(self, msg: raft_serverpb_pb2.RaftMessage) -> None:
        held = self._held
        held.pop(msg.range_id, None)  # the latest request per range is the one worth answering
        if len(held) >= MAX_HELD_MESSAGES:
            del held[next(iter(held))]
        held[msg.range_id] = msg

    def peer(self, range_id: int) -> Peer:
        peer = self.peers.get(range_id)
        if peer is None or not peer.initialized:
            raise RangeNotFoundError(range_id)
        return peer

    def check_cluster(self, cluster_id: int) -> None:
        if cluster_id != self.cluster_id:
            raise WrongClusterError(cluster_id, self.cluster_id)

    def propose(self, range_id: int, epoch: metapb_pb2.RangeEpoch, cmd: raft_serverpb_pb2.RaftCommand,
                callback: Callback) -> None:
        """Replicate ``cmd`` (raises for requests that cannot even be proposed)."""
        peer = self.peer(range_id)
        if not peer.is_leader:
            raise peer.not_leader()
        peer.check_epoch(epoch)
        if len(peer.proposals) + len(peer.to_propose) >= self.config.max_pending_proposals:
            raise ServerBusyError(f"range {range_id}: too many writes in flight", self.config.busy_backoff_ms)
        cmd.range_id = range_id
        cmd.epoch.CopyFrom(epoch)
        peer.propose(cmd.SerializeToString(), callback)
        self._mark(peer)

    def split(self, range_id: int, epoch: metapb_pb2.RangeEpoch,
              requests: list[raft_serverpb_pb2.SplitRequest], callback: Callback) -> None:
        """Propose splitting the range at each request's key (``kvdb.store.split``); ``callback``
        gets the shrunk parent's and the new ranges' descriptors once it applied here.

        Until it is answered the leader serves no lease read: once the split commits, the new
        ranges may elect leaders elsewhere and take writes to keys this lease still covers.
        """
        peer = self.peer(range_id)
        if not peer.is_leader:
            raise peer.not_leader()
        peer.check_epoch(epoch, conf_change=True)
        if peer.conf_state.voters_outgoing:
            raise ServerBusyError(f"range {range_id}: membership change in progress",
                                  self.config.busy_backoff_ms)
        split.check(peer.desc, requests)
        cmd = raft_serverpb_pb2.RaftCommand()
        cmd.split.requests.extend(requests)

        def done(result: object) -> None:
            peer.splits_in_flight -= 1
            callback(result)

        self.propose(range_id, epoch, cmd, done)
        peer.splits_in_flight += 1

    def read(self, range_id: int, epoch: metapb_pb2.RangeEpoch, fn: Read, callback: Callback) -> None:
        """Run ``fn`` once it is linearizable to (lease or ReadIndex), then ``callback(result)``."""
        self.stats.reads += 1
        peer = self.peer(range_id)
        peer.check_epoch(epoch)
        if len(peer.to_read) + len(peer.reading) >= self.config.max_pending_reads:
            raise ServerBusyError(f"range {range_id}: too many reads in flight", self.config.busy_backoff_ms)
        peer.read(fn, callback, self.clock.now())
        if peer.to_read:
            self._mark(peer)

    def change_peer(self, range_id: int, change: int, target: metapb_pb2.Peer, callback: Callback) -> None:
        """Propose one membership change; ``change`` is a ``ConfChangeType``."""
        self.change_peers(range_id, [(change, target)], callback)

    def change_peers(self, range_id: int, changes: list[tuple[int, metapb_pb2.Peer]],
                     callback: Callback) -> None:
        """Propose membership changes as one; several go through joint consensus, which the leader
        leaves by itself once applied (e.g. promote a learner and demote a dead voter at once).

        Refused before anything is proposed if it would remove the leader or leave the live
        voters short of a quorum (``kvdb.store.membership``).
        """
        peer = self.peer(range_id)
        if not peer.is_leader:
            raise peer.not_leader()
        for change, target in changes:
            if change != ConfChangeType.REMOVE_NODE:
                if target.store_id == 0:
                    raise InvalidArgumentError("the new peer needs a store id")
                if any(p.store_id == target.store_id and p.id != target.id for p in peer.desc.peers):
                    raise InvalidArgumentError(f"store {target.store_id} already hosts range {range_id}")
        singles = [ConfChangeSingle(change, target.id) for change, target in changes]
        check_conf_change(peer, singles, joint=len(singles) > 1)
        context = raft_serverpb_pb2.ChangePeerContext(epoch=peer.desc.epoch)
        for _, target in changes:
            context.peers.add().CopyFrom(target)
        cc = ConfChange(singles, context=context.SerializeToString())
        peer.propose_conf_change(cc, callback)
        self._mark(peer)

    def transfer_leader(self, range_id: int, to_peer_id: int) -> None:
        peer = self.peer(range_id)
        if not peer.is_leader:
            raise peer.not_leader()
        if to_peer_id not in peer.conf_state.voters:
            raise InvalidArgumentError(f"peer {to_peer_id} is not a voter of range {range_id}")
        if to_peer_id != peer.peer_id:
            check_transfer(peer, to_peer_id)
        peer.raw.transfer_leader(to_peer_id)
        self._mark(peer)

    def compact_log(self, range_id: int) -> int:
        peer = self.peer(range_id)
        batch = self.engine.batch()
        peer.maybe_compact_log(batch, force=True)
        self.engine.write(batch, sync=False)
        return peer.storage.first_index()

    def _removed_sender(self, peer: Peer, msg: raft_serverpb_pb2.RaftMessage) -> bool:
        """Whether ``msg`` comes from a replica our newer membership no longer has; if so, tell it
        with a tombstone (TiKV's stale-peer GC message). A replica removed while it was down or
        cut off missed the leader's tombstone; it campaigns once it is back, and this answer to its
        first message removes it instead of leaving it to campaign until it asks PD."""
        if any(p.id == msg.from_peer.id for p in peer.desc.peers):
            return False
        self.send_tombstones(peer, [msg.from_peer])
        return True

    def _on_tombstone(self, msg: raft_serverpb_pb2.RaftMessage) -> None:
        """The range's leader says replica ``to_peer`` is not in membership ``epoch.conf_ver``."""
        peer = self.peers.get(msg.range_id)
        if peer is not None and peer.peer_id == msg.to_peer.id:
            current = metapb_pb2.RangeDescriptor(id=msg.range_id, epoch=msg.epoch)
            self.destroy_if_removed(msg.range_id, current)

    def send_tombstones(self, peer: Peer, removed: list[metapb_pb2.Peer]) -> None:
        """Tell each replica ``peer``'s membership no longer has that it was removed: one message,
        no retry (a replica that misses it is told again when it next sends us a message, or asks
        PD once it has known no leader for a while, see ``destroy_if_removed``)."""
        desc = peer.desc
        me = peer.peer_cache.get(peer.peer_id)
        for gone in removed:
            self.post(gone.store_id, raft_serverpb_pb2.RaftMessage(
                range_id=peer.range_id, from_peer=me, to_peer=gone, epoch=desc.epoch,
                start_key=desc.start_key, end_key=desc.end_key, tombstone=True))

    def destroy_if_removed(self, range_id: int, current: metapb_pb2.RangeDescriptor) -> bool:
        """Destroy this store's replica of the range if ``current`` (PD's descriptor, or the
        leader's in a tombstone message) shows it was removed: a newer membership without its
        peer id. A replica
        removed while cut off never applies its removal and nobody tells it; kept, it campaigns
        forever and (as a parent that never applied a split) keeps the replicas of the ranges
        split off it from starting here. Peer ids are never reused, so the decision is final."""
        peer = self.peers.get(range_id)
        if peer is None or not peer.initialized or peer.destroyed or current.id != range_id:
            return False
        if current.epoch.conf_ver <= peer.desc.epoch.conf_ver:
            return False
        if any(p.id == peer.peer_id for p in current.peers):
            return False
        log.info("range %d: replica %d was removed (membership %d has no such peer); removing it",
                 range_id, peer.peer_id, current.epoch.conf_ver)
        self.schedule_destroy(peer)
        self.wake()
        return True

    def schedule_destroy(self, peer: Peer) -> None:
        """Destroy ``peer`` in the next ``finish``, after any write that holds its log is done."""
        if peer not in self._to_destroy:
            self._to_destroy.append(peer)

    # ------------------------------------------------------------------------------- the loop
    def _mark(self, peer: Peer) -> None:
        """``peer`` may have a Ready now: make sure the driver runs an iteration (and that the
        replica is ticked: work wakes a hibernated one)."""
        self._dirty.add(peer)
        self.hibernation.wake(peer)
        self.wake()

    def is_dirty(self, peer: Peer) -> bool:
        return peer in self._dirty

    def post(self, store_id: int, msg: raft_serverpb_pb2.RaftMessage) -> None:
        """Send a store-level message (not from a Ready) with the next iteration's messages."""
        self._outbox.setdefault(store_id, []).append(msg)
        self.wake()

    def has_work(self) -> bool:
        return bool(self._dirty) or bool(self._to_destroy) or bool(self._outbox)

    def begin(self) -> Iteration:
        """Collect every Ready; send what may go before the write; stage the synced batch."""
        dirty, self._dirty = self._dirty, set()
        now = self.clock.now()
        batch = self.engine.batch()
        readies: list[tuple[Peer, Ready]] = []
        for peer in sorted(dirty, key=lambda p: p.range_id):
            if peer.destroyed:
                continue
            if peer.to_propose:
                peer.flush_proposals()
            if peer.to_read:
                peer.flush_reads()
            if not peer.raw.has_ready():
                continue
            rd = peer.raw.ready()
            peer.on_ready_begin(rd, batch, now)
            self._queue(peer, rd.messages)
            readies.append((peer, rd))
        self._snapshots_stepped.clear()  # each is in this batch (and the range index) or was refused
        self._flush_outbox()
        return Iteration(readies, batch)

    def finish(self, it: Iteration) -> None:
        """The batch is durable: release acks, apply, answer, advance."""
        for peer, rd in it.readies:
            self._queue(peer, rd.messages_after_persist)
        self._flush_outbox()
        for peer, _ in it.readies:
            if peer.ingest_after_write is not None:
                peer.ingest_snapshot()
        self.apply_batch = self.engine.batch()
        answers: list[tuple[Callback, object]] = []
        for peer, rd in it.readies:
            if rd.committed_entries:
                self.stats.committed_entries += len(rd.committed_entries)
                peer.apply(rd.committed_entries, answers)
            if rd.read_states:
                peer.on_read_states(rd)
            peer.maybe_compact_log(self.apply_batch)
        destroyed = self._destroy_scheduled(self.apply_batch)
        self.flush_apply(sync=bool(destroyed))
        self._start_new_ranges()
        for callback, result in answers:
            callback(result)
        for peer, rd in it.readies:
            if peer.destroyed:
                continue
            peer.raw.advance(rd)
            if peer.read_ready:
                peer.serve_reads()
            if peer.raw.has_ready():  # advance may have made more ready (e.g. the next entries)
                self._mark(peer)
            else:  # no iteration for nothing (one after every busy one cost ~20 us)
                self.hibernation.wake(peer)

    def _destroy_scheduled(self, batch: WriteBatch) -> list[Peer]:
        """Remove replicas whose removal was applied: tombstone, log and data go in ``batch``."""
        destroyed, self._to_destroy = self._to_destroy, []
        for peer in destroyed:
            peer.destroyed = True
            del self.peers[peer.range_id]
            self.stats.retire(peer.counters)
            self.tombstones[peer.range_id] = peer.peer_id
            peer.storage.destroy(batch)
            peer.sessions.delete(batch)
            if peer.initialized:  # an uninitialized replica's descriptor has no bounds: no data
                self.range_index.remove(peer.range_id)
                keyspace.delete_data(batch, peer.desc)
            peer.write_tombstone(batch)
            peer.fail_all(RangeNotFoundError(peer.range_id))
            peer.release_snapshots()
            log.info("range %d: replica %d removed from store %d", peer.range_id, peer.peer_id, self.store_id)
        return destroyed

    def flush_apply(self, sync: bool = False) -> None:
        """Write what apply staged so far (unsynced: the log can replay it) and start afresh."""
        if len(self.apply_batch):
            self.engine.write(self.apply_batch, sync=sync)
            self.apply_batch = self.engine.batch()

    def run_once(self) -> bool:
        """Run the production loop (``kvdb.store.loop``) until idle, every write inline (tests and
        tools); returns whether there was anything to do."""
        if not self.has_work():
            return False
        RaftLoop(self).drain()
        return True

    # ----------------------------------------------------------------------------- messaging
    def _queue(self, peer: Peer, messages: list[Message]) -> None:
        for m in messages:
            to = peer.peer_cache.get(m.to)
            if to is None:
                log.warning("range %d: no store known for peer %d; message dropped", peer.range_id, m.to)
                continue
            msg = raft_serverpb_pb2.RaftMessage(range_id=peer.range_id, message=message_to_pb(m))
            msg.from_peer.id = peer.peer_id
            msg.from_peer.store_id = self.store_id
            msg.to_peer.CopyFrom(to)
            msg.epoch.CopyFrom(peer.desc.epoch)
            if m.type in _CREATES_REPLICA:
                msg.start_key = peer.desc.start_key
                msg.end_key = peer.desc.end_key
            if m.type == MT.SNAP:
                self._send_snapshot(peer, msg, m)
            else:
                self._outbox.setdefault(to.store_id, []).append(msg)

    def _send_snapshot(self, peer: Peer, msg: raft_serverpb_pb2.RaftMessage, m: Message) -> None:
        built = peer.outgoing
        to = m.to
        if built is None or built.index != m.snapshot.metadata.index:
            peer.raw.report_snapshot(to, failed=True)
            return
        peer.counters["snapshots_sent"] += 1
        built.users += 1

        def done(ok: bool) -> None:
            peer.snapshot_sent(built)
            if not peer.destroyed:
                peer.raw.report_snapshot(to, failed=not ok)
                self._mark(peer)

        self.transport.send_snapshot(msg.to_peer.store_id, msg, built, done)

    def _flush_outbox(self) -> None:
        if not self._outbox:
            return
        outbox, self._outbox = self._outbox, {}
        for store_id, messages in outbox.items():
            self.transport.send(store_id, messages)

    # --------------------------------------------------------------------------------- apply
    def apply_command(self, peer: Peer, data: bytes) -> object:
        """Apply one replicated command into ``apply_batch``; the result goes to its proposer.

        A command with a client session is applied at most once: a re-sent copy is answered from
        the session's stored result (``kvdb.store.sessions``)."""
        cmd = raft_serverpb_pb2.RaftCommand.FromString(data)
        if cmd.epoch.version != peer.desc.epoch.version:
            return EpochNotMatchError(f"range {peer.range_id}: command on a stale epoch",
                                      peer.current_descs())
        if cmd.HasField("split"):
            self._txn_staged = (self.apply_batch, None)  # may stage deletes of lock/write data
            return self._apply_split(peer, cmd)
        sessions = peer.sessions
        sessions.advance(cmd.log_time_ms, self.apply_batch)
        if cmd.HasField("txn"):
            return self._apply_txn(peer, cmd.txn)
        if not cmd.session.session_id:
            return self._apply_mutations(peer, cmd)
        replayed = sessions.replay(cmd.session)
        if replayed is not None:
            peer.counters[_REPLAY_COUNTERS.get(type(replayed.answer), "duplicates_answered")] += 1
            return replayed.answer
        result = self._apply_mutations(peer, cmd)
        sessions.record(cmd.session, result)
        return result

    def _apply_mutations(self, peer: Peer, cmd: raft_serverpb_pb2.RaftCommand) -> Result:
        result = None
        if cmd.HasField("cas"):
            # A compare must see every earlier entry: write them, with the index they reach, so
            # a crash never leaves data ahead of its applied index.
            peer.write_apply_state(self.apply_batch)
            self.flush_apply()
            cas = cmd.cas
            current = self.engine.get(CF_DEFAULT, cas.key)
            expected = None if cas.previous_not_exist else cas.previous_value
            if current != expected:
                return False, current  # the mutations are conditional on the compare
            self.apply_batch.put(CF_DEFAULT, cas.key, cas.value)
            result = True, current
        batch = self.apply_batch
        put, delete = batch.put, batch.delete
        for m in cmd.mutations:
            if m.kind == raft_serverpb_pb2.Mutation.PUT:
                put(CF_DEFAULT, m.key, m.value)
            elif m.kind == raft_serverpb_pb2.Mutation.DELETE:
                delete(CF_DEFAULT, m.key)
            else:
                bounds = keyspace.clip(peer.desc, m.key, m.value)
                if bounds is not None:
                    batch.delete_range(CF_DEFAULT, *bounds)
        return result

    def _apply_txn(self, peer: Peer, txn: raft_serverpb_pb2.TxnCommand) -> object:
        """Evaluate a Percolator command (``kvdb.txn.actions``) against the data as of every
        earlier entry. The engine does not see the apply batch, so when the batch holds lock or
        write records of a key the command reads (or may: a range walk, a split's deletes), the
        earlier entries are written first, like a CAS (with the applied index they reach).
        Otherwise they stay staged: a write per txn command was the apply loop's main cost, and
        raw writes (``default``) are never read by a txn command. Txn commands carry no session:
        each is idempotent by its start_ts."""
        keys = actions.command_keys(txn)
        batch, staged = self._txn_staged
        if batch is not self.apply_batch:
            staged = set()
        if len(self.apply_batch) and (keys is None or staged is None or not staged.isdisjoint(keys)):
            peer.write_apply_state(self.apply_batch)
            self.flush_apply()
            staged = set()
        if txn.HasField("gc"):
            # Every replica that dropped versions below the safe point refuses reads below it from
            # now on, even before its own heartbeat tells it: it may lead the range next.
            self.raise_gc_safe_point(txn.gc.safe_point, self.apply_batch)
            peer.gc_safe_point = max(peer.gc_safe_point, txn.gc.safe_point)  # in the apply state
        result = actions.apply_txn(txn, MvccReader(self.engine), MvccWriter(self.apply_batch), peer.desc,
                                   peer.gc_safe_point)
        if staged is not None:
            if keys is None:
                staged = None
            else:
                staged.update(keys)
        self._txn_staged = (self.apply_batch, staged)
        return result

    def raise_gc_safe_point(self, safe_point: int, batch: WriteBatch) -> None:
        """The store's data lacks versions at or below ``safe_point`` once ``batch`` is written (a
        GC applied, a snapshot of collected data): refuse reads there from now on, and persist
        it in the same batch, so a restart (before the first heartbeat brings PD's) does too."""
        if safe_point > self._gc_safe_point_persisted:
            self._gc_safe_point_persisted = safe_point
            batch.put(CF_META, GC_SAFE_POINT_KEY, safe_point.to_bytes(8, "big"))
        self.gc_safe_point = max(self.gc_safe_point, safe_point)

    # ------------------------------------------------------------------------------ max ts sync
    def sync_max_ts(self) -> None:
        """Fetch a TSO timestamp for every replica leading here whose max ts is not synced: a
        timestamp fetched after a replica became leader is above every read any earlier leader
        served (their timestamps came from the TSO before), so with ``cm.max_ts`` raised to it
        the replica may stamp async-commit and 1PC prewrites. One fetch at a time; a replica
        that became leader meanwhile gets the next one."""
        if self.request_ts is None:
            return
        now = self.clock.now()
        if self._ts_fetch_since is not None and now - self._ts_fetch_since < TS_FETCH_TIMEOUT:
            self._ts_again = True
            return
        asked = {p.range_id: p.raw.raft.term for p in self.peers.values()
                 if p.is_leader and not p.max_ts_synced}
        self._ts_fetch_since = now if asked else None
        if asked:
            self.request_ts(lambda ts: self._on_ts(asked, ts))

    def _on_ts(self, asked: dict[int, int], ts: int) -> None:
        """The fetch for the leaders ``asked`` (range id -> term) answered ``ts`` (0: failed)."""
        self._ts_fetch_since = None
        again, self._ts_again = self._ts_again, False
        if ts <= 0:
            self._ts_retry = True
            return
        self.ts_limit.learn(ts, self.clock.now())
        self.cm.update(ts)
        for range_id, term in asked.items():
            peer = self.peers.get(range_id)
            if peer is not None and peer.is_leader and peer.raw.raft.term == term:
                peer.max_ts_synced = True
        if again:
            self.sync_max_ts()

    # --------------------------------------------------------------------------------- splits
    def _apply_split(self, peer: Peer, cmd: raft_serverpb_pb2.RaftCommand) -> object:
        """Shrink the parent and stage every new range's state, all in the apply batch (with the
        parent's applied index, written at the end of the pass). The new replicas start once the
        batch is written (``_start_new_ranges``)."""
        desc = peer.desc
        if cmd.epoch.conf_ver != desc.epoch.conf_ver:
            return EpochNotMatchError(f"range {peer.range_id}: split on a stale membership", [desc])
        if peer.conf_state.voters_outgoing:
            return ServerBusyError(f"range {peer.range_id}: split during a membership change",
                                   self.config.busy_backoff_ms)
        requests = cmd.split.requests
        try:
            split.check(desc, requests)
        except InvalidArgumentError as exc:
            return exc
        descs = split.derive(desc, requests)
        for child in descs[1:]:
            self._stage_new_range(peer, child)
        peer.set_desc(descs[0], self.apply_batch)
        peer.split_family = [d.id for d in descs[1:]]
        self._splits_applied.append(descs)
        log.info("range %d: split at %d keys into ranges %s on store %d", peer.range_id, len(requests),
                 [d.id for d in descs], self.store_id)
        return descs

    def _stage_new_range(self, parent: Peer, desc: metapb_pb2.RangeDescriptor) -> None:
        batch = self.apply_batch
        me = next(p for p in desc.peers if p.store_id == self.store_id)
        existing = self.peers.get(desc.id)
        if self.tombstones.get(desc.id, 0) >= me.id or (existing is not None and existing.initialized):
            # This store's replica of the new range was removed before the parent got here (or a
            # newer one already holds the range): the keys it would have taken belong to nobody here.
            if existing is None or not existing.initialized:
                keyspace.delete_data(batch, desc)
            log.info("range %d: not created by the split on store %d (removed here already)", desc.id,
                     self.store_id)
            return
        # An uninitialized replica (created by the new range's leader, before the overlap check
        # existed or after the parent was removed) may have voted: keep its term and vote.
        hard_state = existing.storage.hard_state if existing is not None else HardState()
        RaftLogStorage.bootstrap(batch, desc.id, hard_state)
        batch.put(CF_META, range_state_key(desc.id),
                  raft_serverpb_pb2.RangeLocalState(descriptor=desc).SerializeToString())
        conf_state = _conf_state_of(desc)
        stage_apply_state(batch, desc.id, BOOTSTRAP_INDEX, conf_state, parent.gc_safe_point)
        sessions = parent.sessions.copy_to(desc.id, batch)
        self._new_ranges.append(NewRange(parent, desc, me.id, conf_state, sessions))

    def _start_new_ranges(self) -> None:
        """Start the replicas the pass's splits created, now that their state is written."""
        new, self._new_ranges = self._new_ranges, []
        for item in new:
            old = self.peers.pop(item.desc.id, None)
            if old is not None:  # the uninitialized replica a message created: this one replaces it
                old.destroyed = True
                self._dirty.discard(old)
                old.fail_all(RangeNotFoundError(item.desc.id))
                old.release_snapshots()
            peer = Peer(self, item.desc, item.peer_id, BOOTSTRAP_INDEX, item.conf_state, self._peer_rng())
            peer.sessions = item.sessions
            peer.gc_safe_point = item.parent.gc_safe_point  # the data it took was collected so
            self.peers[item.desc.id] = peer
            self.range_index.put(item.desc)
            if item.parent.is_leader:
                peer.raw.campaign()  # its peers just applied the same split, or are about to
            self._mark(peer)
            held = self._held.pop(item.desc.id, None)
            if held is not None and held.to_peer.id == peer.peer_id:
                self._step(peer, held)
        applied, self._splits_applied = self._splits_applied, []
        for descs in applied:
            self.on_split(descs)


def _conf_state_of(desc: metapb_pb2.RangeDescriptor) -> ConfState:
    """The Raft configuration a descriptor names (a new range's: never joint)."""
    return ConfState(voters=[p.id for p in desc.peers if p.role == metapb_pb2.VOTER],
                     learners=[p.id for p in desc.peers if p.role == metapb_pb2.LEARNER])

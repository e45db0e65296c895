"""The application's handle on a Raft node: requests in, ``Ready`` batches out.

The application loop is: call ``ready()`` when ``has_ready()``, persist and send and apply what
it holds (in the order docs/raft-api.md gives), then ``advance(ready)``. Between ``ready`` and
``advance`` the node may still be ticked and stepped; the next ``ready`` only hands out what is
new.
"""

from __future__ import annotations

from kvdb.raft import codec
from kvdb.raft.config import Config
from kvdb.raft.errors import ProposalDroppedError, StepError
from kvdb.raft.progress import PROGRESS_STATE_NAMES
from kvdb.raft.raft import Raft
from kvdb.raft.types import (
    ConfChange,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    ReadState,
    Role,
    Snapshot,
    SoftState,
)

MT = MessageType
_LOCAL_ONLY = frozenset({MT.HUP, MT.BEAT, MT.UNREACHABLE, MT.SNAP_STATUS, MT.CHECK_QUORUM})
_RESPONSES = frozenset({MT.APP_RESP, MT.VOTE_RESP, MT.HEARTBEAT_RESP, MT.PRE_VOTE_RESP})


class Ready:
    """What the application must do now: persist, send, apply, answer. See docs/raft-api.md."""

    __slots__ = (
        "soft_state",
        "hard_state",
        "entries",
        "snapshot",
        "committed_entries",
        "messages",
        "messages_after_persist",
        "read_states",
        "lease_round_started",
        "lease_round_acked",
        "must_sync",
    )

    def __init__(self) -> None:
        self.soft_state: SoftState | None = None
        self.hard_state: HardState | None = None
        self.entries: list[Entry] = []
        self.snapshot: Snapshot | None = None
        self.committed_entries: list[Entry] = []
        self.messages: list[Message] = []
        self.messages_after_persist: list[Message] = []
        self.read_states: list[ReadState] = []
        # Nonzero when the leader began this heartbeat round since the last Ready: the
        # application notes the current time as the round's send time (before sending).
        self.lease_round_started = 0
        # Nonzero when a quorum newly acknowledged this round (of the current leadership).
        self.lease_round_acked = 0
        # Whether the write must be synced (a term/vote change or new entries).
        self.must_sync = False

    def __repr__(self) -> str:
        fields = [f"{name}={getattr(self, name)!r}" for name in self.__slots__ if getattr(self, name)]
        return "Ready(" + ", ".join(fields) + ")"


class Status:
    """A snapshot of the node's state for admin and debug output."""

    def __init__(self, raft: Raft) -> None:
        self.id = raft.id
        self.term = raft.term
        self.vote = raft.vote
        self.commit = raft.raft_log.committed
        self.applied = raft.raft_log.applied
        self.role = raft.role
        self.leader_id = raft.lead
        self.lead_transferee = raft.lead_transferee
        self.conf_state = raft.trk.conf_state()
        # Per member: (match, next, progress state); only a leader knows it.
        self.progress: dict[int, tuple[int, int, str]] = {}
        if raft.role == Role.LEADER:
            for node_id, pr in raft.trk.progress.items():
                self.progress[node_id] = (pr.match, pr.next, PROGRESS_STATE_NAMES[pr.state])

    def __repr__(self) -> str:
        return (
            f"Status(id={self.id}, term={self.term}, vote={self.vote}, commit={self.commit}, "
            f"applied={self.applied}, role={self.role}, leader={self.leader_id})"
        )


class RawNode:
    def __init__(self, config: Config) -> None:
        self.raft = Raft(config)
        self._prev_soft = self.raft.soft_state()
        self._prev_hard = self.raft.hard_state()
        self._reported_round = self.raft.round
        self._reported_acked = (self.raft.term, 0)

    # ----------------------------------------------------------------------------- input
    def tick(self) -> None:
        self.raft.tick()

    def campaign(self) -> None:
        self.raft.step(Message(MT.HUP, frm=self.raft.id))

    def propose(self, data: bytes) -> None:
        self.raft.step(Message(MT.PROP, frm=self.raft.id, entries=[Entry(0, 0, data)]))

    def propose_batch(self, datas: list[bytes]) -> None:
        """Propose several commands in one step: one append per follower carries them all."""
        self.raft.step(Message(MT.PROP, frm=self.raft.id, entries=[Entry(0, 0, d) for d in datas]))

    def propose_conf_change(self, cc: ConfChange) -> None:
        entry = Entry(0, 0, codec.encode_conf_change(cc), EntryType.CONF_CHANGE)
        self.raft.step(Message(MT.PROP, frm=self.raft.id, entries=[entry]))

    def apply_conf_change(self, cc: ConfChange) -> ConfState:
        return self.raft.apply_conf_change(cc)

    def transfer_leader(self, transferee: int) -> None:
        self.raft.step(Message(MT.TRANSFER_LEADER, frm=transferee))

    def beat(self) -> None:
        """A leader broadcasts a heartbeat round now, as its heartbeat timer would (a host that
        stopped ticking an idle group calls it when the group wakes up)."""
        self.raft.step(Message(MT.BEAT, frm=self.raft.id))

    def read_index(self, ctx: bytes) -> None:
        self.raft.step(Message(MT.READ_INDEX, context=ctx))

    def step(self, m: Message) -> None:
        """Step a message received from a peer."""
        if m.type in _LOCAL_ONLY:
            raise StepError(f"cannot step local message {m!r}")
        if m.type in _RESPONSES and m.frm not in self.raft.trk.progress:
            raise StepError(f"response from unknown peer {m.frm}")
        try:
            self.raft.step(m)
        except ProposalDroppedError:
            # A forwarded proposal or read that cannot be served here is dropped, as the
            # network might have dropped it; the requester times out and retries.
            pass

    def report_unreachable(self, node_id: int) -> None:
        self.raft.step(Message(MT.UNREACHABLE, frm=node_id))

    def report_snapshot(self, node_id: int, failed: bool) -> None:
        self.raft.step(Message(MT.SNAP_STATUS, frm=node_id, reject=failed))

    # ----------------------------------------------------------------------------- output
    def has_ready(self) -> bool:
        # Called once per event by every driver loop: compares fields instead of building
        # SoftState/HardState objects.
        r = self.raft
        if r.msgs or r.msgs_after_persist or r.read_states:
            return True
        log = r.raft_log
        unstable = log.unstable
        if unstable.entries and unstable.entries[-1].index >= unstable.offset_in_progress:
            return True
        if unstable.snapshot is not None:
            if not unstable.snapshot_in_progress:
                return True
        elif log.committed > log.applying:
            return True
        soft = self._prev_soft
        if r.lead != soft.leader_id or r.role != soft.role:
            return True
        hard = self._prev_hard
        if r.term != hard.term or r.vote != hard.vote or log.committed != hard.commit:
            return True
        return self._round_started() != 0 or self._round_acked() != 0

    def _round_started(self) -> int:
        r = self.raft
        if r.role == Role.LEADER and r.round != self._reported_round:
            return r.round
        return 0

    def _round_acked(self) -> int:
        r = self.raft
        if r.acked_round and (r.term, r.acked_round) != self._reported_acked:
            return r.acked_round
        return 0

    def ready(self) -> Ready:
        r = self.raft
        log = r.raft_log
        rd = Ready()
        rd.entries = log.unstable.next_entries()
        rd.snapshot = log.unstable.next_snapshot()
        rd.committed_entries = log.next_committed_entries()
        rd.messages, r.msgs = r.msgs, []
        rd.messages_after_persist, r.msgs_after_persist = r.msgs_after_persist, []
        rd.read_states, r.read_states = r.read_states, []
        soft = r.soft_state()
        if soft != self._prev_soft:
            rd.soft_state = self._prev_soft = soft
        hs = r.hard_state()
        if hs != self._prev_hard:
            rd.must_sync = hs.term != self._prev_hard.term or hs.vote != self._prev_hard.vote
            rd.hard_state = self._prev_hard = hs
        rd.must_sync = rd.must_sync or bool(rd.entries) or rd.snapshot is not None
        rd.lease_round_started = self._round_started()
        if rd.lease_round_started:
            self._reported_round = rd.lease_round_started
        rd.lease_round_acked = self._round_acked()
        if rd.lease_round_acked:
            self._reported_acked = (r.term, rd.lease_round_acked)
        # Mark what was handed out so the next Ready does not repeat it.
        log.unstable.accept_in_progress()
        if rd.committed_entries:
            log.accept_applying(rd.committed_entries[-1].index)
        return rd

    def advance(self, rd: Ready) -> None:
        """Everything in ``rd`` was persisted, sent and applied."""
        r = self.raft
        if rd.snapshot is not None:
            index = rd.snapshot.metadata.index
            r.raft_log.stable_snap_to(index)
            r.on_applied(index)
        if rd.entries:
            last = rd.entries[-1]
            r.on_persisted(last.index, last.term)
        if rd.committed_entries:
            r.reduce_uncommitted_size(rd.committed_entries)
            r.on_applied(rd.committed_entries[-1].index)

    def status(self) -> Status:
        return Status(self.raft)

"""The Raft state machine: elections, replication, membership, leader transfer and reads.

It is driven only by ``step`` and ``tick`` and performs no I/O: outgoing messages collect in
``msgs`` (may be sent at once) and ``msgs_after_persist`` (may only be sent once the entries and
hard state produced alongside them are durable). ``RawNode`` packages these into a ``Ready``.

Leader rounds: every heartbeat broadcast (and every ReadIndex request) starts a new *round*. The
leader stamps the current round on appends and heartbeats, followers echo it, and
``acked_round`` is the highest round a quorum has echoed. A follower that echoed round r heard
from the leader after r began, so it will refuse votes for an election timeout after that: the
store starts a lease at the time round r began, and ReadIndex requests wait for their round.
"""

from __future__ import annotations

from collections import deque

from kvdb.raft import codec
from kvdb.raft.confchange import Changer, restore
from kvdb.raft.config import Config, promise_intervals
from kvdb.raft.errors import (
    ConfChangeError,
    ProposalDroppedError,
    SnapshotTemporarilyUnavailableError,
    StorageError,
)
from kvdb.raft.log import RaftLog
from kvdb.raft.progress import Progress, ProgressState, ProgressTracker, TrackerConfig
from kvdb.raft.quorum import VoteResult
from kvdb.raft.storage import BOOTSTRAP_TERM
from kvdb.raft.types import (
    NONE,
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
CAMPAIGN_TRANSFER = b"CampaignTransfer"
"""Vote context of an election started by a leader transfer: voters must not refuse it."""

# Messages that claim something about the sender's durable state (or ask others to rely on
# its persisted term and vote) and so may only leave after the Ready they came with is durable.
# HEARTBEAT_RESP is among them because it echoes a lease round: a node that acknowledged a round
# of term t must restart knowing term t, or it would restart outside its promise (see
# ``leader_contact_elapsed``) and could help elect another leader while that lease runs.
_AFTER_PERSIST = frozenset({MT.APP_RESP, MT.HEARTBEAT_RESP, MT.VOTE, MT.VOTE_RESP, MT.PRE_VOTE_RESP})
_UNTERMED = frozenset({MT.PROP, MT.READ_INDEX})


class _CampaignType:
    PRE_ELECTION = 0
    ELECTION = 1
    TRANSFER = 2


class _ReadRequest:
    __slots__ = ("round", "index", "message")

    def __init__(self, round: int, index: int, message: Message) -> None:
        self.round = round
        self.index = index
        self.message = message


class Raft:
    def __init__(self, config: Config) -> None:
        config.validate()
        self.id = config.id
        self.config = config
        self.rng = config.rng
        self.raft_log = RaftLog(config.storage, config.max_committed_size_per_ready)
        self.trk = ProgressTracker(config.max_inflight_msgs, config.max_inflight_bytes)
        self.max_msg_size = config.max_size_per_msg
        self.max_uncommitted_size = config.max_uncommitted_entries_size
        self.election_timeout = config.election_tick
        self.heartbeat_timeout = config.heartbeat_tick
        self.check_quorum = config.check_quorum
        self.pre_vote = config.pre_vote

        self.term = 0
        self.vote = NONE
        self.lead = NONE
        self.role = Role.FOLLOWER
        self.is_learner = False
        self.msgs: list[Message] = []
        self.msgs_after_persist: list[Message] = []
        self.read_states: list[ReadState] = []
        self.lead_transferee = NONE
        self.pending_conf_index = 0
        self.uncommitted_size = 0
        self.urgent_commit = 0
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_election_timeout = 0
        self.pending_read_index_messages: list[Message] = []
        self.read_requests: deque[_ReadRequest] = deque()
        # Leader rounds (see module docstring). ``round`` only grows over the node's life.
        self.round = 0
        self.acked_round = 0

        hard_state, conf_state = config.storage.initial_state()
        cfg, prs = restore(self.trk, conf_state, self.raft_log.last_index())
        self._switch_to_config(cfg, prs)
        if not hard_state.is_empty():
            self._load_state(hard_state)
        if config.applied:
            self.raft_log.applied_to(config.applied)
        self.become_follower(self.term, NONE)
        # Ticks since this node last heard from a leader (or was one). While it is below the
        # election timeout the node refuses votes and pre-votes: a leader may be counting on our
        # acknowledgement for its lease. It is kept apart from ``lead`` and ``election_elapsed``
        # because those also change when we campaign or vote, which must not end the promise.
        # A restarted node may have acknowledged a round just before it went down, so it starts
        # inside the promise; term 1 is the bootstrap term, in which no leader ever existed. An
        # acknowledgement leaves only once the term it was sent in is durable (_AFTER_PERSIST), so
        # a node that acknowledged anything restarts with term > 1.
        restarted = self.term > BOOTSTRAP_TERM
        self.leader_contact_elapsed = 0 if restarted else self.election_timeout + 1
        # The last term in which this node, as leader, sent TIMEOUT_NOW (see lease_allowed).
        self.timeout_now_term = 0

    # ----------------------------------------------------------------------------- state
    def soft_state(self) -> SoftState:
        return SoftState(self.lead, self.role)

    def hard_state(self) -> HardState:
        return HardState(self.term, self.vote, self.raft_log.committed)

    def _load_state(self, hs: HardState) -> None:
        if hs.commit < self.raft_log.committed or hs.commit > self.raft_log.last_index():
            raise ValueError(
                f"hard state commit {hs.commit} out of range [{self.raft_log.committed}, "
                f"{self.raft_log.last_index()}]"
            )
        self.raft_log.committed = hs.commit
        self.term = hs.term
        self.vote = hs.vote

    def promotable(self) -> bool:
        pr = self.trk.progress.get(self.id)
        return pr is not None and not pr.is_learner and not self.raft_log.has_pending_snapshot()

    def committed_entry_in_current_term(self) -> bool:
        return self.raft_log.term_or_zero(self.raft_log.committed) == self.term

    # ----------------------------------------------------------------------------- sending
    def send(self, m: Message) -> None:
        if m.frm == NONE:
            # Forwarded requests keep their origin: the proposer, reader or transferee.
            m.frm = self.id
        t = m.type
        if t in (MT.VOTE, MT.VOTE_RESP, MT.PRE_VOTE, MT.PRE_VOTE_RESP):
            if m.term == 0:
                raise ValueError(f"term must be set for {m!r}")
        elif t in _UNTERMED:
            # Forwarded proposals and reads are local requests of the leader, not term-bound.
            m.term = 0
        else:
            m.term = self.term
        if t in _AFTER_PERSIST:
            self.msgs_after_persist.append(m)
        else:
            self.msgs.append(m)

    def send_append(self, to: int) -> None:
        self.maybe_send_append(to, True)

    def maybe_send_append(self, to: int, send_if_empty: bool) -> bool:
        """Send what ``to`` is missing; a snapshot if its next entry was compacted away.

        A peer in REPLICATE whose in-flight window is full gets no entries, only (when
        ``send_if_empty``) an empty append carrying the commit index: a heartbeat response
        un-pauses it so that it keeps answering, which frees the window if the appends in flight
        were lost (the answer is a rejection) or merely slow (an acknowledgement).
        """
        pr = self.trk.progress[to]
        if pr.is_paused():
            return False
        prev_index = pr.next - 1
        try:
            prev_term = self.raft_log.term(prev_index)
            entries = self.raft_log.entries(pr.next, self.max_msg_size) if pr.can_send_entries() else []
        except StorageError:
            return self._maybe_send_snapshot(to, pr)
        if not entries and not send_if_empty:
            return False
        self.send(
            Message(
                MT.APP,
                to=to,
                index=prev_index,
                log_term=prev_term,
                entries=entries,
                commit=self.raft_log.committed,
                round=self.round,
            )
        )
        pr.sent_entries(len(entries), sum(e.size() for e in entries) if entries else 0)
        pr.sent_commit = self.raft_log.committed
        return True

    def _maybe_send_snapshot(self, to: int, pr: Progress) -> bool:
        if not pr.recent_active:
            return False
        try:
            snapshot = self.raft_log.snapshot()
        except SnapshotTemporarilyUnavailableError:
            return False
        if snapshot.is_empty():
            raise StorageError("need a non-empty snapshot to send")
        self.send(Message(MT.SNAP, to=to, snapshot=snapshot, round=self.round))
        pr.become_snapshot(snapshot.metadata.index)
        return True

    def send_heartbeat(self, to: int) -> None:
        # Never tell a follower to commit beyond what it is known to have.
        pr = self.trk.progress[to]
        commit = min(pr.match, self.raft_log.committed)
        self.send(Message(MT.HEARTBEAT, to=to, commit=commit, round=self.round))
        pr.sent_commit = commit

    def bcast_append(self) -> None:
        for node_id in self.trk.progress:
            if node_id != self.id:
                self.send_append(node_id)

    def bcast_heartbeat(self) -> None:
        self.start_round()
        for node_id in self.trk.progress:
            if node_id != self.id:
                self.send_heartbeat(node_id)

    def start_round(self) -> None:
        self.round += 1
        own = self.trk.progress.get(self.id)
        if own is not None:
            own.acked_round = self.round
        self._maybe_advance_acked_round()

    # ----------------------------------------------------------------------------- role changes
    def reset(self, term: int) -> None:
        if self.term != term:
            self.term = term
            self.vote = NONE
        self.lead = NONE
        self.urgent_commit = 0
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.reset_randomized_election_timeout()
        self.abort_leader_transfer()
        self.trk.reset_votes()
        last = self.raft_log.last_index()
        for node_id, pr in list(self.trk.progress.items()):
            fresh = self.trk.new_progress(last + 1, pr.is_learner)
            if node_id == self.id:
                fresh.match = self.raft_log.last_stable_index()
            self.trk.progress[node_id] = fresh
        self.pending_conf_index = 0
        self.uncommitted_size = 0
        self.pending_read_index_messages = []
        self.read_requests.clear()
        self.acked_round = 0

    def reset_randomized_election_timeout(self) -> None:
        """A timeout in [election_timeout, 2 * election_timeout) ticks.

        Uniform, followers that heard the same last heartbeat time out in the same tick one time
        in ``election_timeout``; when their tick phases are closer than a pre-vote round trip,
        both win their pre-votes and split the vote, and the range waits another timeout (a
        1.5 s failover measured that way, against ~0.7 s usually). With ``election_bands`` each
        voter draws from its own band, ranked by id, with an unused tick between bands: two
        voters' timeouts then differ by at least two ticks, more than one tick of phase
        difference and a round trip. The lowest-ranked live voter wins first; the bands cover the
        same span, so neither the minimum (which leases rely on) nor the maximum changes.
        """
        band = self._election_band()
        if band is not None:
            first, width = band
            self.randomized_election_timeout = first + self.rng.randrange(width - 1)
        else:
            n = self.election_timeout
            self.randomized_election_timeout = n + self.rng.randrange(n)

    def _election_band(self) -> tuple[int, int] | None:
        """(first tick, width) of this voter's band; None: the uniform draw."""
        n = self.election_timeout
        voters = self.trk.config.voters.incoming
        if self.config.election_bands and self.id in voters and len(voters) > 1:
            width = n // len(voters)
            if width >= 2:
                return n + sorted(voters).index(self.id) * width, width
        return None

    def become_follower(self, term: int, lead: int) -> None:
        self.reset(term)
        self.lead = lead
        self.role = Role.FOLLOWER

    def become_candidate(self) -> None:
        if self.role == Role.LEADER:
            raise RuntimeError("invalid transition [leader -> candidate]")
        self.reset(self.term + 1)
        self.vote = self.id
        self.role = Role.CANDIDATE

    def become_pre_candidate(self) -> None:
        if self.role == Role.LEADER:
            raise RuntimeError("invalid transition [leader -> pre-candidate]")
        # A pre-candidate changes neither term nor vote: that is the point of PreVote.
        self.trk.reset_votes()
        self.lead = NONE
        self.role = Role.PRE_CANDIDATE

    def become_leader(self) -> None:
        if self.role == Role.FOLLOWER:
            raise RuntimeError("invalid transition [follower -> leader]")
        self.reset(self.term)
        self.lead = self.id
        self.role = Role.LEADER
        self.leader_contact_elapsed = 0
        own = self.trk.progress[self.id]
        own.become_replicate()
        own.recent_active = True
        # A fresh round, so that acknowledgements from earlier leaderships never count.
        self.start_round()
        # Uncommitted entries from earlier terms may hold a conf change: refuse new ones until
        # everything up to here is applied.
        self.pending_conf_index = self.raft_log.last_index()
        if not self.append_entry([Entry(0, 0)]):
            raise RuntimeError("empty entry was dropped")
        # The no-op does not count against the uncommitted size limit.
        self.uncommitted_size = 0

    # ----------------------------------------------------------------------------- ticks
    def tick(self) -> None:
        if self.role == Role.LEADER:
            self.leader_contact_elapsed = 0
        else:
            self.leader_contact_elapsed += 1
        if self.role == Role.LEADER:
            self._tick_heartbeat()
        else:
            self._tick_election()

    def _tick_election(self) -> None:
        self.election_elapsed += 1
        if self.promotable() and self.election_elapsed >= self.randomized_election_timeout:
            if self._promise_forbids_campaign(_CampaignType.ELECTION):
                return  # the timer stays expired: campaign on the first tick the promise allows
            self.election_elapsed = 0
            self.step(Message(MT.HUP, frm=self.id))

    def _tick_heartbeat(self) -> None:
        self.heartbeat_elapsed += 1
        self.election_elapsed += 1
        if self.election_elapsed >= self.election_timeout:
            self.election_elapsed = 0
            if self.check_quorum:
                self.step(Message(MT.CHECK_QUORUM, frm=self.id))
            # A transfer that did not finish within an election timeout is abandoned.
            if self.role == Role.LEADER and self.lead_transferee != NONE:
                self.abort_leader_transfer()
        if self.role != Role.LEADER:
            return
        if self.heartbeat_elapsed >= self.heartbeat_timeout:
            self.heartbeat_elapsed = 0
            self.step(Message(MT.BEAT, frm=self.id))

    # ----------------------------------------------------------------------------- elections
    def hup(self, campaign_type: int) -> None:
        if self.role == Role.LEADER or not self.promotable():
            return
        if self._has_unapplied_conf_changes():
            return
        if self._promise_forbids_campaign(campaign_type):
            return
        self.campaign(campaign_type)

    def _promise_forbids_campaign(self, campaign_type: int) -> bool:
        """Whether campaigning now would break our promise to a leader whose lease may run.

        A node that refuses others' votes must not vote for itself either: its own election timer
        can fire ``election_timeout - 1`` intervals and a bit after the last contact (a contact just
        before a tick has that tick count as a whole interval), one interval before the promise
        ends. A transfer is the
        exception: the leader asked for it and gave up its lease first (``lease_allowed``).
        """
        return campaign_type != _CampaignType.TRANSFER and self._in_lease()

    def _has_unapplied_conf_changes(self) -> bool:
        log = self.raft_log
        if log.applied >= log.committed:
            return False
        for entry in log.slice(log.applied + 1, log.committed + 1):
            if entry.type == EntryType.CONF_CHANGE:
                return True
        return False

    def campaign(self, campaign_type: int) -> None:
        if not self.promotable():
            return
        if campaign_type == _CampaignType.PRE_ELECTION:
            self.become_pre_candidate()
            vote_type, term = MT.PRE_VOTE, self.term + 1
        else:
            self.become_candidate()
            vote_type, term = MT.VOTE, self.term
        if self._poll(self.id, True) == VoteResult.WON:
            # A single-voter group wins outright.
            if campaign_type == _CampaignType.PRE_ELECTION:
                self.campaign(_CampaignType.ELECTION)
            else:
                self.become_leader()
            return
        context = CAMPAIGN_TRANSFER if campaign_type == _CampaignType.TRANSFER else b""
        last_index = self.raft_log.last_index()
        last_term = self.raft_log.last_term()
        for node_id in self.trk.voter_ids():
            if node_id != self.id:
                self.send(
                    Message(
                        vote_type,
                        to=node_id,
                        term=term,
                        index=last_index,
                        log_term=last_term,
                        context=context,
                    )
                )

    def _poll(self, node_id: int, granted: bool) -> int:
        self.trk.record_vote(node_id, granted)
        return self.trk.vote_result()

    # ----------------------------------------------------------------------------- step
    def step(self, m: Message) -> None:
        if m.term == 0:
            pass  # local message
        elif m.term > self.term:
            if m.type in (MT.VOTE, MT.PRE_VOTE):
                force = m.context == CAMPAIGN_TRANSFER
                if not force and self._in_lease():
                    # We heard from a leader within the election timeout: its lease may be in
                    # force, so neither change term nor grant a (pre-)vote.
                    return
            if m.type == MT.PRE_VOTE or (m.type == MT.PRE_VOTE_RESP and not m.reject):
                # A pre-vote does not change terms; a granted pre-vote response carries the
                # future term of our own election, which begins only with a quorum.
                pass
            elif m.type in (MT.APP, MT.HEARTBEAT, MT.SNAP):
                self.become_follower(m.term, m.frm)
            else:
                self.become_follower(m.term, NONE)
        elif m.term < self.term:
            if (self.check_quorum or self.pre_vote) and m.type in (MT.HEARTBEAT, MT.APP):
                # A stale leader (e.g. after a partition) learns about our term from this and
                # steps down; without it a node that missed elections could be stuck.
                self.send(Message(MT.APP_RESP, to=m.frm))
            elif m.type == MT.PRE_VOTE:
                self.send(Message(MT.PRE_VOTE_RESP, to=m.frm, term=self.term, reject=True))
            return

        t = m.type
        if t == MT.HUP:
            self.hup(_CampaignType.PRE_ELECTION if self.pre_vote else _CampaignType.ELECTION)
        elif t in (MT.VOTE, MT.PRE_VOTE):
            self._handle_vote_request(m)
        elif self.role == Role.LEADER:
            self._step_leader(m)
        elif self.role == Role.FOLLOWER:
            self._step_follower(m)
        else:
            self._step_candidate(m)

    def _in_lease(self) -> bool:
        """Whether we promised a leader (possibly ourselves) not to help elect another yet."""
        # "<=": the promise must cover election_timeout whole tick intervals. Contact just before
        # a tick would otherwise end it after election_timeout - 1 intervals and a bit.
        return self.check_quorum and self.leader_contact_elapsed <= promise_intervals(self.election_timeout)

    def _handle_vote_request(self, m: Message) -> None:
        can_vote = (
            self.vote == m.frm
            or (
                self.vote == NONE
                and self.lead == NONE
                and (m.context == CAMPAIGN_TRANSFER or not self._in_lease())
            )
            or (m.type == MT.PRE_VOTE and m.term > self.term)
        )
        resp_type = MT.VOTE_RESP if m.type == MT.VOTE else MT.PRE_VOTE_RESP
        if can_vote and self.raft_log.is_up_to_date(m.index, m.log_term):
            # Grants carry the candidate's term so that a pre-vote grant is recognised.
            self.send(Message(resp_type, to=m.frm, term=m.term))
            if m.type == MT.VOTE:
                self.election_elapsed = 0
                self.vote = m.frm
        else:
            # A rejection carries our commit index (see _learn_commit).
            committed = self.raft_log.committed
            self.send(
                Message(
                    resp_type,
                    to=m.frm,
                    term=self.term,
                    reject=True,
                    commit=committed,
                    log_term=self.raft_log.term_or_zero(committed),
                )
            )

    # ----------------------------------------------------------------------------- leader
    def _step_leader(self, m: Message) -> None:
        t = m.type
        if t == MT.BEAT:
            self.bcast_heartbeat()
            return
        if t == MT.CHECK_QUORUM:
            if not self.trk.quorum_active():
                self.become_follower(self.term, NONE)
            for node_id, pr in self.trk.progress.items():
                if node_id != self.id:
                    pr.recent_active = False
            return
        if t == MT.PROP:
            self._propose(m)
            return
        if t == MT.READ_INDEX:
            self._leader_read_index(m)
            return

        pr = self.trk.progress.get(m.frm)
        if pr is None:
            return
        if t == MT.APP_RESP:
            self._handle_append_response(m, pr)
        elif t == MT.HEARTBEAT_RESP:
            pr.recent_active = True
            pr.paused = False
            self._ack_round(pr, m.round)
            # A lagging peer gets one append: entries if its window has room, else an empty one
            # (maybe_send_append); a probing one gets its probe again.
            if pr.match < self.raft_log.last_index() or pr.state == ProgressState.PROBE:
                self.send_append(m.frm)
        elif t == MT.SNAP_STATUS:
            if pr.state != ProgressState.SNAPSHOT:
                return
            if m.reject:
                pr.pending_snapshot = 0
            pr.become_probe()
            # Wait for a heartbeat response before probing again, so a failing snapshot is not
            # retried in a tight loop.
            pr.paused = True
        elif t == MT.UNREACHABLE:
            if pr.state == ProgressState.REPLICATE:
                pr.become_probe()
        elif t == MT.TRANSFER_LEADER:
            self._handle_transfer_leader(m.frm, pr)

    def _propose(self, m: Message) -> None:
        if not m.entries:
            raise ProposalDroppedError("empty proposal")
        if self.id not in self.trk.progress:
            raise ProposalDroppedError("this leader is no longer a member")
        if self.lead_transferee != NONE:
            raise ProposalDroppedError(f"leadership is being transferred to {self.lead_transferee}")
        entries = m.entries
        for i, entry in enumerate(m.entries):
            if entry.type != EntryType.CONF_CHANGE:
                continue
            if self._conf_change_refused(codec.decode_conf_change(entry.data)):
                # Keep the batch's indexes: the refused change becomes a no-op entry.
                entries = entries[:i] + [Entry(0, 0)] + entries[i + 1 :]
            else:
                self.pending_conf_index = self.raft_log.last_index() + i + 1
                self.broadcast_commit_of(self.pending_conf_index)  # members learn their config
        if not self.append_entry(entries):
            raise ProposalDroppedError("too many uncommitted bytes")
        self.bcast_append()

    def _conf_change_refused(self, cc: ConfChange) -> bool:
        if self.pending_conf_index > self.raft_log.applied:
            return True
        joint = self.trk.config.voters.is_joint()
        if joint != cc.leave_joint():
            return True
        # Validate on copies now, so that a change that would break the config never commits.
        try:
            self._changed_config(cc)
        except ConfChangeError:
            return True
        return False

    def append_entry(self, entries: list[Entry]) -> bool:
        # New objects: the proposed ones may be shared (e.g. a message delivered twice).
        last = self.raft_log.last_index()
        term = self.term
        entries = [Entry(term, last + 1 + i, e.data, e.type) for i, e in enumerate(entries)]
        if not self._increase_uncommitted_size(entries):
            return False
        self.raft_log.append(entries)
        # The leader acknowledges its own entries only once they are durable (see on_persisted).
        return True

    def _increase_uncommitted_size(self, entries: list[Entry]) -> bool:
        if not self.max_uncommitted_size:
            return True
        size = sum(len(e.data) for e in entries)
        if (
            self.uncommitted_size > 0
            and size > 0
            and self.uncommitted_size + size > self.max_uncommitted_size
        ):
            return False
        self.uncommitted_size += size
        return True

    def reduce_uncommitted_size(self, entries: list[Entry]) -> None:
        if self.uncommitted_size:
            self.uncommitted_size = max(0, self.uncommitted_size - sum(len(e.data) for e in entries))

    def maybe_commit(self) -> bool:
        """Advance the commit index to what a quorum holds; True if it moved.

        With ``broadcast_commit`` the callers then send every follower an append carrying the new
        index, as etcd does: at one write at a time that doubled the messages per write (an empty
        append to each follower and its answer) and put two sends between the commit and the
        client's answer. Without it, followers learn the index with the next append (at load) or
        heartbeat (at most ``heartbeat_tick`` ticks later); only their apply waits for it, and
        nothing a client sees is served from a follower's apply.
        """
        if not self.raft_log.maybe_commit(self.trk.committed(), self.term):
            return False
        if self.pending_read_index_messages and self.committed_entry_in_current_term():
            pending, self.pending_read_index_messages = self.pending_read_index_messages, []
            for m in pending:
                self._leader_read_index(m)
        return True

    def broadcast_commit_of(self, index: int) -> None:
        """Tell the followers at once when the commit index reaches ``index``, whatever
        ``broadcast_commit`` says: the application needs them to apply that entry soon (a split,
        whose new ranges elect their leaders among replicas the followers create by applying it)."""
        self.urgent_commit = max(self.urgent_commit, index)

    def _commit_news(self) -> bool:
        """Whether the commit index that just moved goes to the followers now."""
        if self.config.broadcast_commit:
            return True
        if self.urgent_commit and self.raft_log.committed >= self.urgent_commit:
            self.urgent_commit = 0
            return True
        return False

    def on_persisted(self, index: int, term: int) -> None:
        """Entries up to (term, index) are durable: the leader may now count itself for them."""
        self.raft_log.stable_to(index, term)
        if self.role != Role.LEADER:
            return
        own = self.trk.progress.get(self.id)
        if own is None or self.raft_log.term_or_zero(index) != term:
            return
        if own.maybe_update(index) and self.maybe_commit() and self._commit_news():
            self.bcast_append()

    def _handle_append_response(self, m: Message, pr: Progress) -> None:
        pr.recent_active = True
        self._ack_round(pr, m.round)
        if m.reject:
            next_probe = m.reject_hint
            if m.log_term > 0:
                # Skip past every entry of ours whose term is above the follower's term there.
                next_probe = self.raft_log.find_conflict_by_term(m.reject_hint, m.log_term)[0]
            if pr.maybe_decrease_to(m.index, next_probe):
                if pr.state == ProgressState.REPLICATE:
                    pr.become_probe()
                self.send_append(m.frm)
            return
        if not (pr.maybe_update(m.index) or (pr.match == m.index and pr.state == ProgressState.PROBE)):
            return
        if pr.state == ProgressState.PROBE:
            pr.become_replicate()
        elif pr.state == ProgressState.SNAPSHOT and pr.match + 1 >= self.raft_log.first_index():
            pr.become_probe()
            pr.become_replicate()
        elif pr.state == ProgressState.REPLICATE:
            pr.inflights.free_le(m.index)
        if self.maybe_commit():
            if self._commit_news():
                self.bcast_append()
        elif pr.can_bump_commit(self.raft_log.committed) and self.config.broadcast_commit:
            # The peer may lack the commit index; an append tells it before the next heartbeat.
            self.send_append(m.frm)
        while self.maybe_send_append(m.frm, False):
            pass
        if m.frm == self.lead_transferee and pr.match == self.raft_log.last_index():
            self.send_timeout_now(m.frm)

    def _ack_round(self, pr: Progress, round: int) -> None:
        if round > pr.acked_round:
            pr.acked_round = round
            self._maybe_advance_acked_round()

    def _maybe_advance_acked_round(self) -> None:
        if self.role != Role.LEADER:
            return
        acked = self.trk.quorum_acked_round()
        if acked <= self.acked_round:
            return
        self.acked_round = acked
        requests = self.read_requests
        while requests and requests[0].round <= acked:
            request = requests.popleft()
            self._answer_read(request.message, request.index)

    def _leader_read_index(self, m: Message) -> None:
        if not self.committed_entry_in_current_term():
            # Our commit index may lag the true one until an entry of our own term commits.
            self.pending_read_index_messages.append(m)
            return
        index = self.raft_log.committed
        if self.trk.is_singleton():
            self._answer_read(m, index)
            return
        self.read_requests.append(_ReadRequest(self.round + 1, index, m))
        self.bcast_heartbeat()

    def _answer_read(self, m: Message, index: int) -> None:
        if m.frm in (NONE, self.id):
            self.read_states.append(ReadState(index, m.context))
        else:
            self.send(Message(MT.READ_INDEX_RESP, to=m.frm, index=index, context=m.context))

    def _handle_transfer_leader(self, transferee: int, pr: Progress) -> None:
        if pr.is_learner:
            return
        if self.lead_transferee != NONE:
            if self.lead_transferee == transferee:
                return
            self.abort_leader_transfer()
        if transferee == self.id:
            return
        # The transfer must finish within an election timeout (see _tick_heartbeat).
        self.election_elapsed = 0
        self.lead_transferee = transferee
        if pr.match == self.raft_log.last_index():
            self.send_timeout_now(transferee)
        else:
            self.send_append(transferee)

    def send_timeout_now(self, to: int) -> None:
        self.timeout_now_term = self.term
        self.send(Message(MT.TIMEOUT_NOW, to=to))

    def lease_allowed(self) -> bool:
        """Whether this leader may hold a lease at all (the store still times it).

        Not while a transfer is in flight, and not for the rest of a term in which we sent
        TIMEOUT_NOW: the transferee's election overrides the followers' vote refusal, and the
        message may arrive long after the transfer was abandoned. And never without CheckQuorum:
        only then do followers refuse votes while a leader's lease may be running.
        """
        return (
            self.check_quorum
            and self.role == Role.LEADER
            and self.lead_transferee == NONE
            and self.timeout_now_term != self.term
        )

    def abort_leader_transfer(self) -> None:
        self.lead_transferee = NONE

    # ----------------------------------------------------------------------------- candidate
    def _step_candidate(self, m: Message) -> None:
        t = m.type
        vote_resp = MT.PRE_VOTE_RESP if self.role == Role.PRE_CANDIDATE else MT.VOTE_RESP
        if t == MT.PROP:
            raise ProposalDroppedError("no leader")
        if t == MT.APP:
            self.become_follower(m.term, m.frm)
            self._handle_append_entries(m)
        elif t == MT.HEARTBEAT:
            self.become_follower(m.term, m.frm)
            self._handle_heartbeat(m)
        elif t == MT.SNAP:
            self.become_follower(m.term, m.frm)
            self._handle_snapshot(m)
        elif t == vote_resp:
            if m.reject:
                self._learn_commit(m.commit, m.log_term)
            result = self._poll(m.frm, not m.reject)
            if result == VoteResult.WON:
                if self.role == Role.PRE_CANDIDATE:
                    self.campaign(_CampaignType.ELECTION)
                else:
                    self.become_leader()
                    self.bcast_append()
            elif result == VoteResult.LOST:
                # A pre-candidate's term was never bumped, so this keeps the term it had.
                self.become_follower(self.term, NONE)
        elif t in (MT.READ_INDEX, MT.TRANSFER_LEADER):
            raise ProposalDroppedError("no leader")

    def _learn_commit(self, index: int, term: int) -> None:
        """Adopt a peer's commit index if our log holds the same entry there.

        Configurations take effect when applied, so a member of a new configuration that has not
        learnt that the config change committed still counts the old members' votes. If the
        leader is gone and the removed members hold longer (uncommitted) logs, they refuse every
        candidate and never campaign themselves: no leader is ever elected. Their rejections carry
        what they know is committed; a matching (index, term) means our log is identical up to
        there (log matching), so committing it is safe, and applying the change lets the new
        configuration elect on its own.
        """
        if index > self.raft_log.committed and self.raft_log.match_term(index, term):
            self.raft_log.commit_to(index)

    # ----------------------------------------------------------------------------- follower
    def _step_follower(self, m: Message) -> None:
        t = m.type
        if t == MT.PROP:
            if self.lead == NONE:
                raise ProposalDroppedError("no leader")
            if self.config.disable_proposal_forwarding:
                raise ProposalDroppedError("not the leader and forwarding is disabled")
            self._forward_to_leader(m)
        elif t == MT.APP:
            self.election_elapsed = 0
            self.lead = m.frm
            self._handle_append_entries(m)
        elif t == MT.HEARTBEAT:
            self.election_elapsed = 0
            self.lead = m.frm
            self._handle_heartbeat(m)
        elif t == MT.SNAP:
            self.election_elapsed = 0
            self.lead = m.frm
            self._handle_snapshot(m)
        elif t in (MT.TRANSFER_LEADER, MT.READ_INDEX):
            if self.lead == NONE:
                raise ProposalDroppedError("no leader")
            self._forward_to_leader(m)
        elif t == MT.TIMEOUT_NOW:
            # Campaign at once, even if our election timer has not run out.
            self.hup(_CampaignType.TRANSFER)
        elif t == MT.READ_INDEX_RESP:
            self.read_states.append(ReadState(m.index, m.context))

    def _forward_to_leader(self, m: Message) -> None:
        # A copy: the original may be shared (a duplicated delivery, the caller's object).
        self.send(Message(m.type, to=self.lead, frm=m.frm, entries=m.entries, context=m.context))

    def _handle_append_entries(self, m: Message) -> None:
        self.leader_contact_elapsed = 0
        log = self.raft_log
        if m.index < log.committed:
            self.send(Message(MT.APP_RESP, to=m.frm, index=log.committed, round=m.round))
            return
        last_new = log.maybe_append(m.index, m.log_term, m.commit, m.entries)
        if last_new is not None:
            self.send(Message(MT.APP_RESP, to=m.frm, index=last_new, round=m.round))
            return
        # Tell the leader where our log could match: the last entry at or below its probe
        # whose term is <= the probe's term.
        hint_index, hint_term = log.find_conflict_by_term(min(m.index, log.last_index()), m.log_term)
        self.send(
            Message(
                MT.APP_RESP,
                to=m.frm,
                index=m.index,
                reject=True,
                reject_hint=hint_index,
                log_term=hint_term,
                round=m.round,
            )
        )

    def _handle_heartbeat(self, m: Message) -> None:
        self.leader_contact_elapsed = 0
        self.raft_log.commit_to(m.commit)
        self.send(Message(MT.HEARTBEAT_RESP, to=m.frm, round=m.round))

    def _handle_snapshot(self, m: Message) -> None:
        self.leader_contact_elapsed = 0
        if self._restore(m.snapshot):
            index = self.raft_log.last_index()
        else:
            index = self.raft_log.committed
        self.send(Message(MT.APP_RESP, to=m.frm, index=index, round=m.round))

    def _restore(self, snapshot: Snapshot) -> bool:
        meta = snapshot.metadata
        if meta.index <= self.raft_log.committed:
            return False
        if self.raft_log.applying > self.raft_log.applied:
            # Committed entries handed out for applying would land on top of the snapshot's
            # state (and its membership). Refuse for now; the leader sends it again.
            return False
        if self.raft_log.match_term(meta.index, meta.term):
            # We already have the snapshot's last entry: just fast-forward the commit index.
            self.raft_log.commit_to(meta.index)
            return False
        self.raft_log.restore(snapshot)
        self.trk = ProgressTracker(self.trk.max_inflight, self.trk.max_inflight_bytes)
        cfg, prs = restore(self.trk, meta.conf_state, self.raft_log.last_index())
        self._switch_to_config(cfg, prs)
        return True

    # ----------------------------------------------------------------------------- membership
    def _changed_config(self, cc: ConfChange) -> tuple[TrackerConfig, dict[int, Progress]]:
        changer = Changer(self.trk, self.raft_log.last_index())
        if cc.leave_joint():
            return changer.leave_joint()
        joint, auto_leave = cc.enter_joint()
        if joint:
            return changer.enter_joint(auto_leave, cc.changes)
        return changer.simple(cc.changes)

    def apply_conf_change(self, cc: ConfChange) -> ConfState:
        """Make a committed conf change take effect. Raises ``ConfChangeError`` if invalid,
        in which case nothing changed (and every replica reaches the same verdict)."""
        cfg, prs = self._changed_config(cc)
        return self._switch_to_config(cfg, prs)

    def _switch_to_config(self, cfg: TrackerConfig, prs: dict[int, Progress]) -> ConfState:
        band = self._election_band()
        self.trk.config = cfg
        self.trk.progress = prs
        if self._election_band() != band:
            # The voters changed our band (or we learnt them: a replica created empty on a
            # leader's message drew uniformly, and then split votes with a survivor's band).
            self.reset_randomized_election_timeout()
        cs = self.trk.conf_state()
        own = prs.get(self.id)
        self.is_learner = own is not None and own.is_learner
        if self.role in (Role.CANDIDATE, Role.PRE_CANDIDATE):
            # Votes were asked for under the old configuration (which may not even hold us any
            # more, e.g. after a commit learnt from a rejection applied our removal): give the
            # election up and let the timer start a fresh one.
            self.become_follower(self.term, NONE)
            return cs
        if (own is None or self.is_learner) and self.role == Role.LEADER:
            if self.config.step_down_on_removal:
                self.become_follower(self.term, NONE)
            return cs
        if self.role != Role.LEADER or not cs.voters:
            return cs
        if self.maybe_commit():
            self.bcast_append()
        else:
            for node_id in self.trk.progress:
                if node_id != self.id:
                    self.maybe_send_append(node_id, False)
        self._maybe_advance_acked_round()
        if self.lead_transferee != NONE and self.lead_transferee not in self.trk.config.voters.ids():
            self.abort_leader_transfer()
        return cs

    def on_applied(self, index: int) -> None:
        """Entries up to ``index`` were applied; leave an auto-leave joint config if due."""
        self.raft_log.applied_to(index)
        if self.trk.config.auto_leave and index >= self.pending_conf_index and self.role == Role.LEADER:
            # An empty conf change means "leave the joint config". It can only be refused while
            # a transfer is in flight; then we try again at the next apply.
            try:
                self.step(
                    Message(
                        MT.PROP,
                        frm=self.id,
                        entries=[Entry(0, 0, codec.encode_conf_change(ConfChange()), EntryType.CONF_CHANGE)],
                    )
                )
            except ProposalDroppedError:
                pass

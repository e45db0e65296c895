"""What the leader knows about each peer's log, and the configuration it counts quorums over."""

from __future__ import annotations

from collections import deque

from kvdb.raft.errors import FlowControlError
from kvdb.raft.quorum import JointConfig, VoteResult
from kvdb.raft.types import ConfState


class ProgressState:
    """PROBE: one append at a time until the match point is found. REPLICATE: optimistic
    pipelining. SNAPSHOT: waiting for a snapshot to land; nothing else is sent."""

    PROBE = 0
    REPLICATE = 1
    SNAPSHOT = 2


PROGRESS_STATE_NAMES = ("probe", "replicate", "snapshot")


class Inflights:
    """Appends sent but not yet acknowledged, bounded by count and bytes (flow control).

    The window is full at ``capacity`` appends or at ``max_bytes`` bytes of entries (0: no byte
    limit). The byte limit is soft, as etcd's: an append is admitted while the window is below
    it, so the bytes in flight stay below ``max_bytes`` plus one append (``max_size_per_msg``, or
    one entry larger than that). Callers check ``full()`` first; ``add`` on a full window raises.
    """

    __slots__ = ("capacity", "max_bytes", "_queue", "bytes")

    def __init__(self, capacity: int, max_bytes: int = 0) -> None:
        self.capacity = capacity
        self.max_bytes = max_bytes
        self._queue: deque[tuple[int, int]] = deque()
        self.bytes = 0

    def add(self, last_index: int, size: int) -> None:
        if self.full():
            raise FlowControlError(f"in-flight window full ({len(self._queue)} appends, {self.bytes} bytes): "
                                   f"cannot add {last_index}")
        self._queue.append((last_index, size))
        self.bytes += size

    def free_le(self, index: int) -> None:
        """Forget every in-flight append whose last index is <= ``index`` (they were acked)."""
        queue = self._queue
        while queue and queue[0][0] <= index:
            self.bytes -= queue.popleft()[1]

    def full(self) -> bool:
        return len(self._queue) >= self.capacity or (0 < self.max_bytes <= self.bytes)

    def count(self) -> int:
        return len(self._queue)

    def reset(self) -> None:
        self._queue.clear()
        self.bytes = 0


class Progress:
    __slots__ = (
        "match",
        "next",
        "state",
        "pending_snapshot",
        "recent_active",
        "paused",
        "inflights",
        "is_learner",
        "acked_round",
        "sent_commit",
    )

    def __init__(self, next_index: int, inflights: Inflights, is_learner: bool = False) -> None:
        self.match = 0
        self.next = next_index
        self.state = ProgressState.PROBE
        self.pending_snapshot = 0
        # Set when the peer answered during the current CheckQuorum period.
        self.recent_active = False
        # In PROBE: an append is outstanding. In REPLICATE: the in-flight window is full.
        self.paused = False
        self.inflights = inflights
        self.is_learner = is_learner
        # The highest leader round this peer has echoed back (leases and ReadIndex).
        self.acked_round = 0
        # The highest commit index sent to the peer (in an append or heartbeat) that may not have
        # reached it yet: an empty append only to tell it a newer one is sent if it can bump it.
        self.sent_commit = 0

    def _reset_state(self, state: int) -> None:
        self.paused = False
        self.pending_snapshot = 0
        self.state = state
        self.inflights.reset()

    def become_probe(self) -> None:
        if self.state == ProgressState.SNAPSHOT:
            pending = self.pending_snapshot
            self._reset_state(ProgressState.PROBE)
            self.next = max(self.match + 1, pending + 1)
        else:
            self._reset_state(ProgressState.PROBE)
            self.next = self.match + 1
        self.sent_commit = min(self.sent_commit, self.next - 1)

    def become_replicate(self) -> None:
        self._reset_state(ProgressState.REPLICATE)
        self.next = self.match + 1

    def become_snapshot(self, snapshot_index: int) -> None:
        self._reset_state(ProgressState.SNAPSHOT)
        self.pending_snapshot = snapshot_index
        self.sent_commit = snapshot_index

    def sent_entries(self, count: int, size: int) -> None:
        """Account for an append of ``count`` entries ending before ``self.next + count``.

        In REPLICATE the append is paused once the window is full; an empty append (sent on a
        full window to keep the peer answering) takes no slot. In PROBE every append is the probe:
        nothing more until it is answered or a heartbeat response shows the peer is alive.
        """
        if self.state == ProgressState.REPLICATE:
            if count:
                self.next += count
                self.inflights.add(self.next - 1, size)
            self.paused = self.inflights.full()
        elif self.state == ProgressState.PROBE:
            self.paused = True

    def can_send_entries(self) -> bool:
        """Whether an append may carry entries: not while a REPLICATE window is full."""
        return self.state != ProgressState.REPLICATE or not self.inflights.full()

    def can_bump_commit(self, commit: int) -> bool:
        """Whether sending ``commit`` may advance the peer's commit index: it is newer than the
        last one sent, and that one did not already cover everything sent (up to ``next - 1``)."""
        return commit > self.sent_commit and self.sent_commit < self.next - 1

    def maybe_update(self, index: int) -> bool:
        """The peer acknowledged its log up to ``index``. False if that was old news."""
        if index > self.match:
            self.match = index
            self.paused = False
            if index >= self.next:
                self.next = index + 1
            return True
        if index >= self.next:
            self.next = index + 1
        return False

    def maybe_decrease_to(self, rejected: int, match_hint: int) -> bool:
        """The peer rejected an append at ``rejected``; back ``next`` off. False if stale."""
        if self.state == ProgressState.REPLICATE:
            if rejected <= self.match:
                return False
            self.next = self.match + 1
        else:
            if self.next - 1 != rejected:
                return False
            self.next = max(min(rejected, match_hint + 1), self.match + 1)
            self.paused = False
        # The peer did not take what was sent past its log's end, commit index included.
        self.sent_commit = min(self.sent_commit, self.next - 1)
        return True

    def is_paused(self) -> bool:
        if self.state == ProgressState.SNAPSHOT:
            return True
        return self.paused

    def __repr__(self) -> str:
        text = f"{PROGRESS_STATE_NAMES[self.state]} match={self.match} next={self.next}"
        if self.is_learner:
            text += " learner"
        if self.state == ProgressState.SNAPSHOT:
            text += f" pending_snap={self.pending_snapshot}"
        if self.inflights.count():
            text += f" inflight={self.inflights.count()}"
            if self.inflights.full():
                text += "[full]"
        return text


class TrackerConfig:
    """A membership configuration. ``learners_next`` are voters of the outgoing config that
    become learners when the joint config is left (a learner may not also be a voter)."""

    __slots__ = ("voters", "learners", "learners_next", "auto_leave")

    def __init__(
        self,
        voters: JointConfig | None = None,
        learners: set[int] | None = None,
        learners_next: set[int] | None = None,
        auto_leave: bool = False,
    ) -> None:
        self.voters = voters if voters is not None else JointConfig()
        self.learners = set(learners or ())
        self.learners_next = set(learners_next or ())
        self.auto_leave = auto_leave

    def copy(self) -> TrackerConfig:
        return TrackerConfig(self.voters.copy(), self.learners, self.learners_next, self.auto_leave)

    def conf_state(self) -> ConfState:
        return ConfState(
            voters=list(self.voters.incoming),
            learners=list(self.learners),
            voters_outgoing=list(self.voters.outgoing),
            learners_next=list(self.learners_next),
            auto_leave=self.auto_leave,
        )

    def __repr__(self) -> str:
        text = f"voters={self.voters!r}"
        if self.learners:
            text += f" learners={sorted(self.learners)}"
        if self.learners_next:
            text += f" learners_next={sorted(self.learners_next)}"
        if self.auto_leave:
            text += " autoleave"
        return text


class ProgressTracker:
    """The configuration plus one ``Progress`` per member (voters and learners) and the votes."""

    def __init__(self, max_inflight: int, max_inflight_bytes: int = 0) -> None:
        self.config = TrackerConfig()
        self.progress: dict[int, Progress] = {}
        self.votes: dict[int, bool] = {}
        self.max_inflight = max_inflight
        self.max_inflight_bytes = max_inflight_bytes

    def new_progress(self, next_index: int, is_learner: bool) -> Progress:
        return Progress(next_index, Inflights(self.max_inflight, self.max_inflight_bytes), is_learner)

    def conf_state(self) -> ConfState:
        return self.config.conf_state()

    def is_singleton(self) -> bool:
        return self.config.voters.is_singleton()

    def committed(self) -> int:
        progress = self.progress
        return self.config.voters.committed(lambda i: progress[i].match if i in progress else 0)

    def quorum_acked_round(self) -> int:
        progress = self.progress
        return self.config.voters.committed(lambda i: progress[i].acked_round if i in progress else 0)

    def quorum_active(self) -> bool:
        votes = {i: pr.recent_active for i, pr in self.progress.items() if not pr.is_learner}
        return self.config.voters.vote_result(votes) == VoteResult.WON

    def voter_ids(self) -> list[int]:
        return sorted(self.config.voters.ids())

    def reset_votes(self) -> None:
        self.votes = {}

    def record_vote(self, node_id: int, granted: bool) -> None:
        self.votes.setdefault(node_id, granted)

    def vote_result(self) -> int:
        return self.config.voters.vote_result(self.votes)

"""Safety invariants of Raft, checked as the simulation runs.

The checker sees every durable write, every apply, every leader and every ReadIndex answer, and
raises ``InvariantViolation`` the moment something breaks, so the event trace that precedes the
failure is the one that caused it. It keeps only global summaries (one record per log position
and term, one per committed index), which keeps each check proportional to what just changed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from kvdb.raft.types import NONE, Entry, HardState, ReadState, Role


class InvariantViolation(AssertionError):
    """A Raft safety property does not hold."""


class LogView(Protocol):
    """The part of a node's (in-memory) Raft log the leader-completeness check reads."""

    def first_index(self) -> int: ...

    def last_index(self) -> int: ...

    def term(self, index: int) -> int: ...


LeaderLogs = Callable[[], Iterable[tuple[int, int, LogView]]]
"""Yields ``(node id, term, log)`` for every node that currently thinks it leads."""


class Leaseholder(Protocol):
    def check_lease(self) -> None:
        """Check the read this node would serve by lease now, if any (``Checker.on_lease_read``)."""


Leaseholders = Callable[[], Iterable[Leaseholder]]
"""Yields every node that may hold a lease now."""

Electable = Callable[[int, int], list[int]]
"""``(index, term)`` -> voters whose durable log lacks that entry but could still win an election:
a quorum of the current voters has durable logs no more up to date than theirs."""


class Checker:
    def __init__(
        self,
        leader_logs: LeaderLogs,
        leaseholders: Leaseholders = lambda: (),
        electable: Electable = lambda index, term: [],
    ) -> None:
        self.leader_logs = leader_logs
        self.leaseholders = leaseholders
        self.electable = electable
        # Election safety: term -> the one leader of that term.
        self.leaders: dict[int, int] = {}
        # Log matching: (index, term) -> (type, data, term at index - 1), over every durable log.
        self.log_entries: dict[tuple[int, int], tuple[int, bytes, int]] = {}
        # Leader completeness: index -> (term in which it was committed, term of the entry),
        # recorded when a leader first moves the commit index past it (only leaders do that:
        # everyone else learns the commit index from a leader).
        self.commits: dict[int, tuple[int, int]] = {}
        self.commit_frontier = 0
        # State machine safety: index -> (term, type, data, digest after it), once applied anywhere.
        self.applied: dict[int, tuple[int, int, bytes, bytes]] = {}
        self.max_applied = 0
        # ReadIndex: ctx -> the highest acknowledged write index when the read was issued.
        self.max_acked_index = 0
        self.reads: dict[bytes, int] = {}
        # Per node: (incarnation, term, commit) last seen, for the monotonicity checks.
        self.seen: dict[int, tuple[int, int, int]] = {}

    # -- bootstrap ---------------------------------------------------------------------------

    def record_genesis(self, index: int, term: int, digest: bytes) -> None:
        """The state every initial member starts from (the bootstrap snapshot)."""
        self.applied[index] = (term, 0, b"", digest)
        self.max_applied = self.commit_frontier = index

    # -- election safety and volatile monotonicity --------------------------------------------

    def observe(
        self, node_id: int, incarnation: int, term: int, role: int, commit: int, log: LogView
    ) -> bool:
        """Check one node after an event touched it; True if it just became the leader of a new term."""
        life, seen_term, seen_commit = self.seen.get(node_id, (incarnation, 0, 0))
        if life == incarnation:
            if term < seen_term:
                raise InvariantViolation(f"node {node_id}: term went back from {seen_term} to {term}")
            if commit < seen_commit:
                raise InvariantViolation(f"node {node_id}: commit went back from {seen_commit} to {commit}")
        self.seen[node_id] = (incarnation, term, commit)
        if commit > self.commit_frontier:
            self._on_commit(term, commit, log)
        if role != Role.LEADER:
            return False
        leader = self.leaders.get(term)
        if leader == node_id:
            return False
        if leader is not None:
            raise InvariantViolation(f"two leaders in term {term}: {leader} and {node_id}")
        self.leaders[term] = node_id
        self._check_leader_log(node_id, term, log, range(log.first_index(), self.commit_frontier + 1))
        return True

    def _on_commit(self, term: int, commit: int, log: LogView) -> None:
        """A node (a leader of ``term``) committed past every earlier commit index."""
        new = range(self.commit_frontier + 1, commit + 1)
        for index in new:
            self.commits[index] = (term, log.term(index))
        self.commit_frontier = commit
        for leader_id, leader_term, leader_log in self.leader_logs():
            self._check_leader_log(leader_id, leader_term, leader_log, new)
        # Leader completeness, ahead of time: a node that lacks a committed entry must never be
        # able to win an election. Checked on the newest committed entry (having it means having
        # every earlier one, by log matching), so a commit that only a later election would undo
        # (Figure 8's shape) is caught the moment it happens, not only if that election comes.
        lacking = self.electable(commit, self.commits[commit][1])
        if lacking:
            raise InvariantViolation(
                f"index {commit} (entry term {self.commits[commit][1]}) was committed in term {term}, "
                f"but voters {lacking} lack it and could still be elected by a quorum of no more "
                "up-to-date logs"
            )
        # A commit anywhere (e.g. by a new leader) is the moment an old lease turns stale.
        for node in self.leaseholders():
            node.check_lease()

    def _check_leader_log(self, node_id: int, term: int, log: LogView, indexes: range) -> None:
        """Leader completeness: entries committed in earlier terms are in the leader's log.

        (Not entries merely *of* earlier terms: an old entry may get committed by a later leader
        after a leader that lacks it was elected.) Indexes below ``log.first_index()`` are covered
        by the leader's snapshot, which was checked against the applied history when installed.
        """
        first, last = log.first_index(), log.last_index()
        for index in indexes:
            if index < first:
                continue
            committed_in, entry_term = self.commits[index]
            if committed_in >= term:
                continue
            have = log.term(index) if index <= last else None
            if have != entry_term:
                raise InvariantViolation(
                    f"leader completeness: leader {node_id} of term {term} has term {have} at index "
                    f"{index}, where an entry of term {entry_term} was committed in term {committed_in}"
                )

    # -- durable state ------------------------------------------------------------------------

    def on_hard_state(self, node_id: int, old: HardState, new: HardState) -> None:
        """A hard state is being made durable over ``old``."""
        if new.term < old.term:
            raise InvariantViolation(f"node {node_id}: durable term went back: {old} -> {new}")
        if new.term == old.term and old.vote != NONE and new.vote != old.vote:
            raise InvariantViolation(f"node {node_id}: voted twice in term {old.term}: {old} -> {new}")
        if new.commit < old.commit:
            raise InvariantViolation(f"node {node_id}: durable commit went back: {old} -> {new}")

    def on_persist(self, node_id: int, entries: list[Entry], prev_term: int) -> None:
        """Log matching, checked on ``entries`` just made durable after an entry of ``prev_term``.

        If every (index, term) pair always names the same entry *and* the same term just before
        it, then by induction two logs that share an (index, term) share everything before it.
        """
        log_entries = self.log_entries
        for e in entries:
            key = (e.index, e.term)
            record = (e.type, e.data, prev_term)
            known = log_entries.setdefault(key, record)
            if known != record:
                raise InvariantViolation(
                    f"log matching: node {node_id} persisted {e!r} after term {prev_term}, but another log "
                    f"has (type, data, previous term) = {known} at index {e.index} term {e.term}"
                )
            prev_term = e.term

    # -- state machines -----------------------------------------------------------------------

    def on_apply(self, node_id: int, entry: Entry, digest: bytes) -> bool:
        """State machine safety for one applied entry; True if it is the first apply of its index."""
        index = entry.index
        record = (entry.term, entry.type, entry.data, digest)
        known = self.applied.get(index)
        if known is None:
            commit = self.commits.get(index)
            if commit is None or commit[1] != entry.term:
                raise InvariantViolation(
                    f"node {node_id} applied {entry!r}, but what was committed there is {commit} "
                    "(term committed in, entry term)"
                )
            self.applied[index] = record
            if index > self.max_applied:
                self.max_applied = index
            return True
        if known != record:
            raise InvariantViolation(
                f"state machine safety: node {node_id} applied {entry!r} (digest {digest.hex()}) at index "
                f"{index}, another node applied term {known[0]} data {known[2]!r} (digest {known[3].hex()})"
            )
        return False

    def on_restore(self, node_id: int, index: int, digest: bytes, applied: int | None) -> None:
        """A state machine is restored from a snapshot: it must be what was applied there.

        ``applied`` is what the live state machine had applied before (None on a reboot): a
        snapshot must never take a running state machine back in time.
        """
        if applied is not None and index < applied:
            raise InvariantViolation(
                f"node {node_id}: snapshot at {index} would take applied back from {applied}"
            )
        known = self.applied.get(index)
        if known is None or known[3] != digest:
            raise InvariantViolation(
                f"node {node_id}: snapshot at {index} has digest {digest.hex()}, but the applied history "
                f"has {known[3].hex() if known else 'nothing'} there"
            )

    # -- clients ------------------------------------------------------------------------------

    def write_acked(self, index: int) -> None:
        """A proposal at ``index`` was acknowledged to its client."""
        if index > self.max_acked_index:
            self.max_acked_index = index

    def on_lease_read(self, node_id: int, index: int) -> None:
        """A lease read served locally at applied ``index`` sees every write committed anywhere.

        Not only what the reading leader knows: the commit frontier is the highest index any
        leader of any term has committed so far, and a valid lease means no other leader can
        have committed past what this one applied (a new leader's first commit, its no-op, lies
        beyond the old leader's whole log).
        """
        if index < self.max_acked_index:
            raise InvariantViolation(
                f"stale lease read: leader {node_id} served a read at applied index {index}, but index "
                f"{self.max_acked_index} was acknowledged before"
            )
        if index < self.commit_frontier:
            raise InvariantViolation(
                f"stale lease read: leader {node_id} served a read at applied index {index}, but a "
                f"leader committed index {self.commit_frontier} before"
            )

    def read_issued(self, ctx: bytes) -> None:
        self.reads[ctx] = self.max_acked_index

    def on_read_state(self, node_id: int, rs: ReadState) -> None:
        """Linearizability of ReadIndex: the read sees every write acknowledged before it began."""
        need = self.reads.get(rs.request_ctx)
        if need is None:
            raise InvariantViolation(f"node {node_id}: {rs!r} answers a read nobody issued")
        if rs.index < need:
            raise InvariantViolation(
                f"stale read: node {node_id} got {rs!r}, but index {need} was acknowledged before the read"
            )

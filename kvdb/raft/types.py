"""Plain data types the Raft core works on.

The core uses small ``__slots__`` classes instead of protobuf messages: attribute access and
construction are several times cheaper than on upb messages (see docs/raft.md for the numbers),
and the core builds and inspects many of these per step. ``kvdb.raft.codec`` converts them to and
from the wire types of ``proto/raft.proto`` at the transport and storage edge.
"""

from __future__ import annotations

NONE = 0
"""Node id meaning "no node" (no leader, no vote)."""


class MessageType:
    """Message kinds. Local ones (HUP, BEAT, CHECK_QUORUM, UNREACHABLE, SNAP_STATUS) never cross the wire."""

    HUP = 0
    BEAT = 1
    PROP = 2
    APP = 3
    APP_RESP = 4
    VOTE = 5
    VOTE_RESP = 6
    SNAP = 7
    HEARTBEAT = 8
    HEARTBEAT_RESP = 9
    UNREACHABLE = 10
    SNAP_STATUS = 11
    CHECK_QUORUM = 12
    TRANSFER_LEADER = 13
    TIMEOUT_NOW = 14
    READ_INDEX = 15
    READ_INDEX_RESP = 16
    PRE_VOTE = 17
    PRE_VOTE_RESP = 18


MESSAGE_TYPE_NAMES = {value: name for name, value in vars(MessageType).items() if not name.startswith("_")}


class EntryType:
    NORMAL = 0
    CONF_CHANGE = 1


class Entry:
    __slots__ = ("term", "index", "type", "data")

    def __init__(self, term: int, index: int, data: bytes = b"", type: int = EntryType.NORMAL) -> None:
        self.term = term
        self.index = index
        self.type = type
        self.data = data

    def size(self) -> int:
        """Approximate encoded size, used for flow control and size limits."""
        return len(self.data) + 12

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Entry)
            and self.term == other.term
            and self.index == other.index
            and self.type == other.type
            and self.data == other.data
        )

    def __repr__(self) -> str:
        kind = "" if self.type == EntryType.NORMAL else " conf"
        return f"{self.term}/{self.index}{kind} {self.data!r}"


class HardState:
    """What a node must persist before it answers anyone: term, vote and commit index."""

    __slots__ = ("term", "vote", "commit")

    def __init__(self, term: int = 0, vote: int = NONE, commit: int = 0) -> None:
        self.term = term
        self.vote = vote
        self.commit = commit

    def is_empty(self) -> bool:
        return self.term == 0 and self.vote == NONE and self.commit == 0

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, HardState)
            and self.term == other.term
            and self.vote == other.vote
            and self.commit == other.commit
        )

    def __repr__(self) -> str:
        return f"HardState(term={self.term}, vote={self.vote}, commit={self.commit})"


class ConfState:
    """Membership as of some log index. ``voters_outgoing`` is non-empty only in a joint config."""

    __slots__ = ("voters", "learners", "voters_outgoing", "learners_next", "auto_leave")

    def __init__(
        self,
        voters: list[int] | None = None,
        learners: list[int] | None = None,
        voters_outgoing: list[int] | None = None,
        learners_next: list[int] | None = None,
        auto_leave: bool = False,
    ) -> None:
        self.voters = sorted(voters or [])
        self.learners = sorted(learners or [])
        self.voters_outgoing = sorted(voters_outgoing or [])
        self.learners_next = sorted(learners_next or [])
        self.auto_leave = auto_leave

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, ConfState)
            and self.voters == other.voters
            and self.learners == other.learners
            and self.voters_outgoing == other.voters_outgoing
            and self.learners_next == other.learners_next
            and self.auto_leave == other.auto_leave
        )

    def __repr__(self) -> str:
        parts = [f"voters={self.voters}"]
        if self.learners:
            parts.append(f"learners={self.learners}")
        if self.voters_outgoing:
            parts.append(f"outgoing={self.voters_outgoing}")
        if self.learners_next:
            parts.append(f"learners_next={self.learners_next}")
        if self.auto_leave:
            parts.append("auto_leave")
        return "ConfState(" + ", ".join(parts) + ")"


class ConfChangeType:
    ADD_NODE = 0
    ADD_LEARNER = 1
    REMOVE_NODE = 2


class ConfChangeTransition:
    """How a multi-change config change leaves the joint state.

    AUTO: joint consensus only when needed (more than one voter changes), left automatically.
    IMPLICIT: always joint, left automatically. EXPLICIT: always joint, left by an empty change.
    """

    AUTO = 0
    IMPLICIT = 1
    EXPLICIT = 2


class ConfChangeSingle:
    __slots__ = ("type", "node_id")

    def __init__(self, type: int, node_id: int) -> None:
        self.type = type
        self.node_id = node_id

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, ConfChangeSingle) and self.type == other.type and self.node_id == other.node_id
        )

    def __repr__(self) -> str:
        name = ("add", "learner", "remove")[self.type]
        return f"{name}({self.node_id})"


class ConfChange:
    """A membership change. No changes at all means "leave the joint config"."""

    __slots__ = ("transition", "changes", "context")

    def __init__(
        self,
        changes: list[ConfChangeSingle] | None = None,
        transition: int = ConfChangeTransition.AUTO,
        context: bytes = b"",
    ) -> None:
        self.transition = transition
        self.changes = list(changes or [])
        self.context = context

    def leave_joint(self) -> bool:
        return not self.changes

    def enter_joint(self) -> tuple[bool, bool]:
        """Whether this change uses joint consensus, and whether it leaves the joint state by itself."""
        if self.transition != ConfChangeTransition.AUTO or len(self.changes) > 1:
            auto_leave = self.transition in (ConfChangeTransition.AUTO, ConfChangeTransition.IMPLICIT)
            return True, auto_leave
        return False, False

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, ConfChange)
            and self.transition == other.transition
            and self.changes == other.changes
            and self.context == other.context
        )

    def __repr__(self) -> str:
        return f"ConfChange({self.changes}, transition={self.transition})"


class SnapshotMetadata:
    __slots__ = ("index", "term", "conf_state")

    def __init__(self, index: int = 0, term: int = 0, conf_state: ConfState | None = None) -> None:
        self.index = index
        self.term = term
        self.conf_state = conf_state if conf_state is not None else ConfState()

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, SnapshotMetadata)
            and self.index == other.index
            and self.term == other.term
            and self.conf_state == other.conf_state
        )

    def __repr__(self) -> str:
        return f"SnapshotMetadata(index={self.index}, term={self.term}, {self.conf_state})"


class Snapshot:
    __slots__ = ("metadata", "data")

    def __init__(self, metadata: SnapshotMetadata | None = None, data: bytes = b"") -> None:
        self.metadata = metadata if metadata is not None else SnapshotMetadata()
        self.data = data

    def is_empty(self) -> bool:
        return self.metadata.index == 0

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Snapshot) and self.metadata == other.metadata and self.data == other.data

    def __repr__(self) -> str:
        return f"Snapshot({self.metadata}, {len(self.data)} bytes)"


class Message:
    """One Raft message.

    ``round`` is the leader's heartbeat round (see ``Raft.round``): the leader stamps it on
    appends and heartbeats and followers echo it back, so the leader learns when a quorum has
    heard from it since a given moment. Leases and ReadIndex are built on that.
    """

    __slots__ = (
        "type",
        "to",
        "frm",
        "term",
        "log_term",
        "index",
        "entries",
        "commit",
        "snapshot",
        "reject",
        "reject_hint",
        "context",
        "round",
    )

    def __init__(
        self,
        type: int,
        to: int = NONE,
        frm: int = NONE,
        term: int = 0,
        log_term: int = 0,
        index: int = 0,
        entries: list[Entry] | None = None,
        commit: int = 0,
        snapshot: Snapshot | None = None,
        reject: bool = False,
        reject_hint: int = 0,
        context: bytes = b"",
        round: int = 0,
    ) -> None:
        self.type = type
        self.to = to
        self.frm = frm
        self.term = term
        self.log_term = log_term
        self.index = index
        self.entries = entries if entries is not None else []
        self.commit = commit
        self.snapshot = snapshot
        self.reject = reject
        self.reject_hint = reject_hint
        self.context = context
        self.round = round

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Message) and all(
            getattr(self, name) == getattr(other, name) for name in Message.__slots__
        )

    def __repr__(self) -> str:
        parts = [f"{self.frm}->{self.to} {MESSAGE_TYPE_NAMES.get(self.type, self.type)} term={self.term}"]
        if self.log_term or self.index:
            parts.append(f"log={self.log_term}/{self.index}")
        if self.commit:
            parts.append(f"commit={self.commit}")
        if self.entries:
            parts.append(f"entries={self.entries}")
        if self.reject:
            parts.append(f"reject(hint={self.reject_hint})")
        if self.snapshot is not None:
            parts.append(repr(self.snapshot))
        if self.context:
            parts.append(f"ctx={self.context!r}")
        if self.round:
            parts.append(f"round={self.round}")
        return " ".join(parts)


class ReadState:
    """A ReadIndex answer: reads tagged ``request_ctx`` may be served once ``index`` is applied."""

    __slots__ = ("index", "request_ctx")

    def __init__(self, index: int, request_ctx: bytes) -> None:
        self.index = index
        self.request_ctx = request_ctx

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, ReadState)
            and self.index == other.index
            and self.request_ctx == other.request_ctx
        )

    def __repr__(self) -> str:
        return f"ReadState(index={self.index}, ctx={self.request_ctx!r})"


class Role:
    FOLLOWER = 0
    CANDIDATE = 1
    LEADER = 2
    PRE_CANDIDATE = 3


ROLE_NAMES = {
    Role.FOLLOWER: "follower",
    Role.CANDIDATE: "candidate",
    Role.LEADER: "leader",
    Role.PRE_CANDIDATE: "pre-candidate",
}


class SoftState:
    """Volatile state worth reporting when it changes: who leads and this node's role."""

    __slots__ = ("leader_id", "role")

    def __init__(self, leader_id: int, role: int) -> None:
        self.leader_id = leader_id
        self.role = role

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SoftState) and self.leader_id == other.leader_id and self.role == other.role

    def __repr__(self) -> str:
        return f"SoftState(leader={self.leader_id}, {ROLE_NAMES[self.role]})"

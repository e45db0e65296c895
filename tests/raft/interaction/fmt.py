"""Compact, stable text renderings of Raft values for the expected outputs.

The harness formats values itself rather than using the types' ``repr`` so that the expected
outputs only change when behaviour changes, not when someone polishes a ``__repr__``.
"""

from __future__ import annotations

from kvdb.raft import ConfChange, ConfState, Entry, EntryType, Message, MessageType, Role
from kvdb.raft.codec import decode_conf_change
from kvdb.raft.types import MESSAGE_TYPE_NAMES, ConfChangeTransition, ConfChangeType

ROLE = {
    Role.FOLLOWER: "follower",
    Role.CANDIDATE: "candidate",
    Role.PRE_CANDIDATE: "pre-candidate",
    Role.LEADER: "leader",
}
STATE = {
    Role.FOLLOWER: "StateFollower",
    Role.CANDIDATE: "StateCandidate",
    Role.PRE_CANDIDATE: "StatePreCandidate",
    Role.LEADER: "StateLeader",
}
CHANGE_PREFIX = {
    ConfChangeType.ADD_NODE: "v",
    ConfChangeType.ADD_LEARNER: "l",
    ConfChangeType.REMOVE_NODE: "r",
}
TRANSITION = {
    ConfChangeTransition.AUTO: "auto",
    ConfChangeTransition.IMPLICIT: "implicit",
    ConfChangeTransition.EXPLICIT: "explicit",
}
# Messages whose commit field is meaningful even when zero.
_SHOWS_COMMIT = (MessageType.APP, MessageType.HEARTBEAT)


def ids(values: list[int]) -> str:
    return "(" + " ".join(str(v) for v in values) + ")"


def conf_change(cc: ConfChange) -> str:
    """``v4 r1 transition=explicit`` style, the same words ``propose-conf-change`` takes."""
    if cc.leave_joint():
        return "leave-joint"
    words = [f"{CHANGE_PREFIX[c.type]}{c.node_id}" for c in cc.changes]
    if cc.transition != ConfChangeTransition.AUTO:
        words.append(f"transition={TRANSITION[cc.transition]}")
    return " ".join(words)


def conf_state(cs: ConfState) -> str:
    """etcd's notation: ``voters=(1 2 3)&&(1 2 4) learners=(5) learners_next=(1) autoleave``."""
    out = "voters=" + ids(cs.voters)
    if cs.voters_outgoing:
        out += "&&" + ids(cs.voters_outgoing)
    if cs.learners:
        out += " learners=" + ids(cs.learners)
    if cs.learners_next:
        out += " learners_next=" + ids(cs.learners_next)
    if cs.auto_leave:
        out += " autoleave"
    return out


def data(raw: bytes) -> str:
    return repr(raw.decode("utf-8", "backslashreplace"))


def entry(e: Entry) -> str:
    if e.type == EntryType.CONF_CHANGE:
        return f"{e.term}/{e.index} conf[{conf_change(decode_conf_change(e.data))}]"
    return f"{e.term}/{e.index} {data(e.data)}"


def message(m: Message) -> str:
    """One line per message; fields at their zero value are left out unless meaningful."""
    name = "MSG_" + MESSAGE_TYPE_NAMES.get(m.type, str(m.type))
    parts = [f"{m.frm}->{m.to} {name} term={m.term}"]
    if m.type == MessageType.APP_RESP and m.reject:
        # The rejected probe index, and the (term, index) where the follower's log may match.
        parts.append(f"index={m.index} rejected hint={m.log_term}/{m.reject_hint}")
    elif m.log_term:
        parts.append(f"log={m.log_term}/{m.index}")
    elif m.index:
        parts.append(f"index={m.index}")
    if m.commit or m.type in _SHOWS_COMMIT:
        parts.append(f"commit={m.commit}")
    if m.entries:
        parts.append("entries=[" + ", ".join(entry(e) for e in m.entries) + "]")
    if m.reject and m.type != MessageType.APP_RESP:
        parts.append("rejected")
    if m.snapshot is not None:
        md = m.snapshot.metadata
        parts.append(f"snapshot={md.term}/{md.index} {conf_state(md.conf_state)}")
    if m.context:
        parts.append(f"ctx={data(m.context)}")
    if m.round:
        parts.append(f"round={m.round}")
    return " ".join(parts)

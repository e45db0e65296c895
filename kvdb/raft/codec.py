"""Conversion between the core's plain objects (``kvdb.raft.types``) and ``proto/raft.proto``.

This sits on the transport hot path, so it is written for upb's costs (see docs/raft.md):
assigning a field is cheaper than passing it as a constructor keyword, nested messages are built
in place with ``add()`` rather than built and copied, and a field that holds its default value is
not touched at all (an ``if`` costs less than a upb write, and most fields of most messages are
zero). Decoding reads every field once and checks the containers before walking them.

Message types are not restricted to the ones that cross the wire: the simulator and tests encode
local messages too. Decoding rejects numbers that are no message type at all.
"""

from __future__ import annotations

from google.protobuf.message import DecodeError

from kvdb.pb import raft_pb2 as pb
from kvdb.raft.types import (
    MESSAGE_TYPE_NAMES,
    ConfChange,
    ConfChangeSingle,
    ConfChangeTransition,
    ConfChangeType,
    ConfState,
    Entry,
    HardState,
    Message,
    Snapshot,
    SnapshotMetadata,
)

_MAX_MESSAGE_TYPE = max(MESSAGE_TYPE_NAMES)
_CONF_CHANGE_TYPES = frozenset(v for k, v in vars(ConfChangeType).items() if not k.startswith("_"))
_TRANSITIONS = frozenset(v for k, v in vars(ConfChangeTransition).items() if not k.startswith("_"))


# -- entries ---------------------------------------------------------------------------------


def _fill_entry(p: pb.Entry, e: Entry) -> None:
    p.term = e.term
    p.index = e.index
    if e.type:
        p.type = e.type
    if e.data:
        p.data = e.data


def entry_to_pb(e: Entry) -> pb.Entry:
    p = pb.Entry()
    _fill_entry(p, e)
    return p


def entry_from_pb(p: pb.Entry) -> Entry:
    return Entry(p.term, p.index, p.data, p.type)


# -- hard state, conf state, snapshot --------------------------------------------------------


def hard_state_to_pb(hs: HardState) -> pb.HardState:
    return pb.HardState(term=hs.term, vote=hs.vote, commit=hs.commit)


def hard_state_from_pb(p: pb.HardState) -> HardState:
    return HardState(p.term, p.vote, p.commit)


def _fill_conf_state(p: pb.ConfState, cs: ConfState) -> None:
    p.voters.extend(cs.voters)
    p.learners.extend(cs.learners)
    p.voters_outgoing.extend(cs.voters_outgoing)
    p.learners_next.extend(cs.learners_next)
    if cs.auto_leave:
        p.auto_leave = True


def conf_state_to_pb(cs: ConfState) -> pb.ConfState:
    p = pb.ConfState()
    _fill_conf_state(p, cs)
    return p


def conf_state_from_pb(p: pb.ConfState) -> ConfState:
    return ConfState(p.voters, p.learners, p.voters_outgoing, p.learners_next, p.auto_leave)


def _fill_snapshot(p: pb.Snapshot, s: Snapshot) -> None:
    md = s.metadata
    p.data = s.data
    pm = p.metadata
    pm.index = md.index
    pm.term = md.term
    _fill_conf_state(pm.conf_state, md.conf_state)
    # An all-zero snapshot must still be present on the wire: presence is what tells "no
    # snapshot" (None) from "an empty one" (Snapshot()).
    pm.SetInParent()


def snapshot_to_pb(s: Snapshot) -> pb.Snapshot:
    p = pb.Snapshot()
    _fill_snapshot(p, s)
    return p


def snapshot_from_pb(p: pb.Snapshot) -> Snapshot:
    md = p.metadata
    return Snapshot(SnapshotMetadata(md.index, md.term, conf_state_from_pb(md.conf_state)), p.data)


# -- messages --------------------------------------------------------------------------------


def _fill_message(p: pb.Message, m: Message) -> None:
    p.type = m.type
    if m.to:
        p.to = m.to
    if m.frm:
        setattr(p, "from", m.frm)  # ``from`` is a Python keyword
    if m.term:
        p.term = m.term
    if m.log_term:
        p.log_term = m.log_term
    if m.index:
        p.index = m.index
    if m.entries:
        add = p.entries.add
        for e in m.entries:
            _fill_entry(add(), e)
    if m.commit:
        p.commit = m.commit
    if m.snapshot is not None:
        _fill_snapshot(p.snapshot, m.snapshot)
    if m.reject:
        p.reject = True
    if m.reject_hint:
        p.reject_hint = m.reject_hint
    if m.context:
        p.context = m.context
    if m.round:
        p.round = m.round


def message_to_pb(m: Message) -> pb.Message:
    p = pb.Message()
    _fill_message(p, m)
    return p


def message_from_pb(p: pb.Message) -> Message:
    """Convert one wire message; raises ``ValueError`` for a number that is no message type."""
    if p.type > _MAX_MESSAGE_TYPE:
        raise ValueError(f"unknown raft message type {p.type}")
    return Message(
        p.type,
        p.to,
        getattr(p, "from"),
        p.term,
        p.log_term,
        p.index,
        [Entry(e.term, e.index, e.data, e.type) for e in p.entries] if p.entries else [],
        p.commit,
        snapshot_from_pb(p.snapshot) if p.HasField("snapshot") else None,
        p.reject,
        p.reject_hint,
        p.context,
        p.round,
    )


def encode_message_batch(messages: list[Message]) -> bytes:
    """Serialize messages into one ``MessageBatch`` frame for the transport."""
    batch = pb.MessageBatch()
    add = batch.messages.add
    for m in messages:
        _fill_message(add(), m)
    return batch.SerializeToString()


def decode_message_batch(data: bytes) -> list[Message]:
    """Parse a ``MessageBatch`` frame; raises ``ValueError`` when it is not one."""
    try:
        batch = pb.MessageBatch.FromString(data)
    except DecodeError as exc:
        raise ValueError(f"malformed raft message batch ({len(data)} bytes): {exc}") from exc
    return [message_from_pb(p) for p in batch.messages]


# -- conf changes (the payload of ENTRY_CONF_CHANGE entries) ---------------------------------


def encode_conf_change(cc: ConfChange) -> bytes:
    p = pb.ConfChange()
    if cc.transition:
        p.transition = cc.transition
    add = p.changes.add
    for c in cc.changes:
        add(type=c.type, node_id=c.node_id)
    if cc.context:
        p.context = cc.context
    return p.SerializeToString()


def decode_conf_change(data: bytes) -> ConfChange:
    """Parse a conf change entry's payload.

    Raises ``ValueError`` when the bytes are not a ``ConfChange`` or name a change type or
    transition this version does not know: applying a half-understood membership change is
    worse than stopping. Unknown fields are ignored, as protobuf intends.
    """
    p = pb.ConfChange()
    try:
        p.ParseFromString(data)
    except DecodeError as exc:
        raise ValueError(f"malformed conf change ({len(data)} bytes): {exc}") from exc
    if p.transition not in _TRANSITIONS:
        raise ValueError(f"malformed conf change: unknown transition {p.transition}")
    changes = []
    for c in p.changes:
        if c.type not in _CONF_CHANGE_TYPES:
            raise ValueError(f"malformed conf change: unknown change type {c.type} for node {c.node_id}")
        changes.append(ConfChangeSingle(c.type, c.node_id))
    return ConfChange(changes, p.transition, p.context)

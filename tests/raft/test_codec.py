"""Round trips between kvdb.raft.types and the wire types, and that the two stay mirrors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvdb.pb import raft_pb2 as pb
from kvdb.raft import codec
from kvdb.raft.types import (
    MESSAGE_TYPE_NAMES,
    ConfChange,
    ConfChangeSingle,
    ConfChangeTransition,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    Snapshot,
    SnapshotMetadata,
)

U64 = 2**64 - 1
JOINT = ConfState(
    voters=[1, 2, 4], learners=[5], voters_outgoing=[1, 2, 3], learners_next=[3], auto_leave=True
)


def _via_wire(obj, to_pb, from_pb):
    """Convert to protobuf, serialize, parse and convert back."""
    wire = to_pb(obj)
    return from_pb(type(wire).FromString(wire.SerializeToString()))


def _constants(cls: type) -> dict[str, int]:
    return {name: value for name, value in vars(cls).items() if not name.startswith("_")}


# -- the proto mirrors types.py ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("plain", "wire", "prefix"),
    [
        (MessageType, pb.MessageType, "MSG_"),
        (EntryType, pb.EntryType, "ENTRY_"),
        (ConfChangeType, pb.ConfChangeType, "CONF_CHANGE_"),
        (ConfChangeTransition, pb.ConfChangeTransition, "CONF_CHANGE_TRANSITION_"),
    ],
)
def test_enums_match(plain: type, wire, prefix: str) -> None:
    assert {prefix + name: value for name, value in _constants(plain).items()} == dict(wire.items())


@pytest.mark.parametrize(
    ("plain", "wire"),
    [
        (Entry, pb.Entry),
        (HardState, pb.HardState),
        (ConfState, pb.ConfState),
        (ConfChangeSingle, pb.ConfChangeSingle),
        (ConfChange, pb.ConfChange),
        (SnapshotMetadata, pb.SnapshotMetadata),
        (Snapshot, pb.Snapshot),
        (Message, pb.Message),
    ],
)
def test_fields_match(plain: type, wire) -> None:
    wire_fields = {"frm" if f.name == "from" else f.name for f in wire.DESCRIPTOR.fields}
    assert wire_fields == set(plain.__slots__)


# -- round trips of every type ------------------------------------------------------------------


@pytest.mark.parametrize(
    "entry",
    [
        Entry(0, 0),
        Entry(3, 7, b"payload"),
        Entry(U64, U64, b"\x00" * 1000),
        Entry(
            2,
            9,
            codec.encode_conf_change(ConfChange([ConfChangeSingle(ConfChangeType.ADD_NODE, 4)])),
            EntryType.CONF_CHANGE,
        ),
    ],
)
def test_entry_round_trip(entry: Entry) -> None:
    assert _via_wire(entry, codec.entry_to_pb, codec.entry_from_pb) == entry


@pytest.mark.parametrize("hs", [HardState(), HardState(5, 2, 17), HardState(U64, U64, U64)])
def test_hard_state_round_trip(hs: HardState) -> None:
    assert _via_wire(hs, codec.hard_state_to_pb, codec.hard_state_from_pb) == hs


@pytest.mark.parametrize(
    "cs", [ConfState(), ConfState(voters=[3, 1, 2]), ConfState(voters=[1], learners=[2, 3]), JOINT]
)
def test_conf_state_round_trip(cs: ConfState) -> None:
    assert _via_wire(cs, codec.conf_state_to_pb, codec.conf_state_from_pb) == cs


@pytest.mark.parametrize(
    "snap",
    [
        Snapshot(),
        Snapshot(SnapshotMetadata(10, 3, ConfState(voters=[1, 2, 3])), b"state"),
        Snapshot(SnapshotMetadata(U64, U64, JOINT), b"\xff" * 64),
    ],
)
def test_snapshot_round_trip(snap: Snapshot) -> None:
    assert _via_wire(snap, codec.snapshot_to_pb, codec.snapshot_from_pb) == snap


@pytest.mark.parametrize("type_", sorted(MESSAGE_TYPE_NAMES), ids=lambda t: MESSAGE_TYPE_NAMES[t])
def test_every_message_type_round_trips(type_: int) -> None:
    m = Message(
        type_,
        to=2,
        frm=1,
        term=4,
        log_term=3,
        index=9,
        entries=[Entry(4, 10, b"x")],
        commit=8,
        reject=True,
        reject_hint=6,
        context=b"ctx",
        round=11,
    )
    assert _via_wire(m, codec.message_to_pb, codec.message_from_pb) == m
    assert codec.decode_message_batch(codec.encode_message_batch([m])) == [m]


@pytest.mark.parametrize("snap", [None, Snapshot(), Snapshot(SnapshotMetadata(5, 2, JOINT), b"data")])
def test_message_snapshot_presence_survives(snap: Snapshot | None) -> None:
    m = Message(MessageType.SNAP, to=3, frm=1, term=2, snapshot=snap)
    (back,) = codec.decode_message_batch(codec.encode_message_batch([m]))
    assert back == m
    assert (back.snapshot is None) == (snap is None)


def test_default_message_round_trips() -> None:
    m = Message(MessageType.HUP)
    assert codec.decode_message_batch(codec.encode_message_batch([m])) == [m]


def test_batch_keeps_order_and_empty_batch() -> None:
    ms = [Message(MessageType.HEARTBEAT, to=i, frm=1, term=2, commit=i) for i in range(1, 50)]
    assert codec.decode_message_batch(codec.encode_message_batch(ms)) == ms
    assert codec.encode_message_batch([]) == b""
    assert codec.decode_message_batch(b"") == []


@pytest.mark.parametrize(
    "cc",
    [
        ConfChange(),  # leave joint
        ConfChange([ConfChangeSingle(ConfChangeType.ADD_NODE, 4)]),
        ConfChange([ConfChangeSingle(ConfChangeType.ADD_LEARNER, 5)], context=b"ctx"),
        ConfChange([ConfChangeSingle(ConfChangeType.REMOVE_NODE, U64)], ConfChangeTransition.IMPLICIT),
        ConfChange(
            [
                ConfChangeSingle(ConfChangeType.ADD_NODE, 4),
                ConfChangeSingle(ConfChangeType.REMOVE_NODE, 1),
                ConfChangeSingle(ConfChangeType.ADD_LEARNER, 1),
            ],
            ConfChangeTransition.EXPLICIT,
        ),
    ],
)
def test_conf_change_round_trip(cc: ConfChange) -> None:
    assert codec.decode_conf_change(codec.encode_conf_change(cc)) == cc


# -- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"\x00", "malformed"),  # field number 0
        (b"\xff\xff", "malformed"),  # truncated varint
        (b"\x12\x05\x08", "malformed"),  # length past the end
        (b"\x08\x07", "unknown transition 7"),
        (b"\x12\x04\x08\x09\x10\x02", "unknown change type 9"),
    ],
)
def test_decode_conf_change_rejects_malformed_bytes(data: bytes, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        codec.decode_conf_change(data)


@pytest.mark.parametrize(
    ("data", "why"),
    [(b"\x0a\x05\x08", "malformed"), (b"\x0a\x02\x08\x63", "unknown raft message type 99")],
)
def test_decode_message_batch_rejects_malformed_bytes(data: bytes, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        codec.decode_message_batch(data)


@given(st.binary(max_size=64))
def test_decode_conf_change_of_any_bytes_is_a_conf_change_or_value_error(data: bytes) -> None:
    try:
        cc = codec.decode_conf_change(data)
    except ValueError:
        return
    assert codec.decode_conf_change(codec.encode_conf_change(cc)) == cc


# -- property: any message survives the wire ------------------------------------------------------

u64 = st.integers(min_value=0, max_value=U64)
ids = st.lists(u64, max_size=5, unique=True)
entry_types = st.sampled_from([EntryType.NORMAL, EntryType.CONF_CHANGE])
entries = st.builds(Entry, u64, u64, st.binary(max_size=32), entry_types)
conf_states = st.builds(ConfState, ids, ids, ids, ids, st.booleans())
snapshots = st.builds(Snapshot, st.builds(SnapshotMetadata, u64, u64, conf_states), st.binary(max_size=32))
messages = st.builds(
    Message,
    type=st.sampled_from(sorted(MESSAGE_TYPE_NAMES)),
    to=u64,
    frm=u64,
    term=u64,
    log_term=u64,
    index=u64,
    entries=st.lists(entries, max_size=4),
    commit=u64,
    snapshot=st.none() | snapshots,
    reject=st.booleans(),
    reject_hint=u64,
    context=st.binary(max_size=16),
    round=u64,
)


@given(messages)
def test_message_round_trip(m: Message) -> None:
    assert _via_wire(m, codec.message_to_pb, codec.message_from_pb) == m


@given(st.lists(messages, max_size=8))
def test_message_batch_round_trip(ms: list[Message]) -> None:
    assert codec.decode_message_batch(codec.encode_message_batch(ms)) == ms

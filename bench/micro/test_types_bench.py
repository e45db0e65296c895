"""Should the Raft core work on protobuf messages or on plain ``__slots__`` objects?

The core builds and inspects many messages per step (an append and its response per follower per
round, heartbeats, votes). This measures that work on both representations, with the message mix
of steady replication: a MsgApp carrying 4 entries of 100 bytes and the MsgAppResp it gets. It
also measures what the plain objects cost at the edge, where the codec turns them into bytes.

Run: ``.venv/bin/pytest bench/micro --benchmark-only`` (results and conclusion: docs/raft.md).
"""

from __future__ import annotations

import pytest

from kvdb.pb import raft_pb2 as pb
from kvdb.raft import codec
from kvdb.raft.types import Entry, Message, MessageType

PAYLOAD = b"v" * 100
BATCH = 64


def light_pair() -> tuple[Message, Message]:
    app = Message(
        MessageType.APP,
        to=2,
        frm=1,
        term=7,
        log_term=7,
        index=1000,
        entries=[Entry(7, 1001 + i, PAYLOAD) for i in range(4)],
        commit=999,
        round=42,
    )
    resp = Message(MessageType.APP_RESP, to=1, frm=2, term=7, index=1004, round=42)
    return app, resp


def pb_pair_kwargs() -> tuple[pb.Message, pb.Message]:
    """The idiomatic way: nested constructors with keyword arguments."""
    app = pb.Message(
        type=pb.MSG_APP,
        to=2,
        term=7,
        log_term=7,
        index=1000,
        entries=[pb.Entry(term=7, index=1001 + i, data=PAYLOAD) for i in range(4)],
        commit=999,
        round=42,
        **{"from": 1},
    )
    resp = pb.Message(type=pb.MSG_APP_RESP, to=1, term=7, index=1004, round=42, **{"from": 2})
    return app, resp


def pb_pair_assign() -> tuple[pb.Message, pb.Message]:
    """The fastest way we found: assign fields, build nested messages in place."""
    app = pb.Message()
    app.type = pb.MSG_APP
    app.to = 2
    setattr(app, "from", 1)
    app.term = 7
    app.log_term = 7
    app.index = 1000
    add = app.entries.add
    for i in range(4):
        e = add()
        e.term = 7
        e.index = 1001 + i
        e.data = PAYLOAD
    app.commit = 999
    app.round = 42
    resp = pb.Message()
    resp.type = pb.MSG_APP_RESP
    resp.to = 1
    setattr(resp, "from", 2)
    resp.term = 7
    resp.index = 1004
    resp.round = 42
    return app, resp


def read_five(m) -> int:
    return m.type + m.term + m.index + m.commit + len(m.entries)


@pytest.mark.benchmark(group="construct + read 5 fields (MsgApp x4 entries + MsgAppResp)")
@pytest.mark.parametrize("build", [light_pair, pb_pair_kwargs, pb_pair_assign])
def test_construct_and_read(benchmark, build) -> None:
    def work() -> int:
        app, resp = build()
        return read_five(app) + read_five(resp)

    assert benchmark(work) > 0


def _batch() -> list[Message]:
    return [m for _ in range(BATCH // 2) for m in light_pair()]


@pytest.mark.benchmark(group=f"codec, batch of {BATCH} (half MsgApp x4 entries, half MsgAppResp)")
def test_codec_encode_batch(benchmark) -> None:
    messages = _batch()
    assert benchmark(codec.encode_message_batch, messages)


@pytest.mark.benchmark(group=f"codec, batch of {BATCH} (half MsgApp x4 entries, half MsgAppResp)")
def test_codec_decode_batch(benchmark) -> None:
    messages = _batch()
    assert benchmark(codec.decode_message_batch, codec.encode_message_batch(messages)) == messages


@pytest.mark.benchmark(group=f"codec, batch of {BATCH} (half MsgApp x4 entries, half MsgAppResp)")
def test_pb_only_serialize_parse_batch(benchmark) -> None:
    """Lower bound for the codec: serialize and parse an already-built pb batch, no conversion."""
    batch = pb.MessageBatch(messages=[m for _ in range(BATCH // 2) for m in pb_pair_assign()])

    def work() -> int:
        return len(pb.MessageBatch.FromString(batch.SerializeToString()).messages)

    assert benchmark(work) == BATCH


# -- one replication round as the core sees it ------------------------------------------------
# The leader builds a MsgApp per follower from entries already in its log, each follower checks
# the append and answers, the leader reads the answers. Plain objects share the log's Entry
# objects; a protobuf repeated field copies them into every message.

LOG_LIGHT = [Entry(7, i, PAYLOAD) for i in range(1, 2001)]
LOG_PB = [pb.Entry(term=7, index=i, data=PAYLOAD) for i in range(1, 2001)]
FOLLOWERS = (2, 3)


def _light_round() -> tuple[int, list[Message], list[Message]]:
    apps = [
        Message(MessageType.APP, to=to, frm=1, term=7, log_term=7, index=1000,
                entries=LOG_LIGHT[1000:1004], commit=999, round=42)
        for to in FOLLOWERS
    ]  # fmt: skip
    resps = []
    for m in apps:
        check = m.type + m.term + m.frm + m.index + m.log_term + m.commit + m.round
        check += sum(e.term + e.index for e in m.entries)
        resps.append(Message(MessageType.APP_RESP, to=m.frm, frm=m.to, term=m.term,
                             index=m.entries[-1].index, round=m.round))  # fmt: skip
    return check + sum(r.type + r.term + r.frm + r.index + r.reject + r.round for r in resps), apps, resps


def _pb_round() -> tuple[int, list[pb.Message], list[pb.Message]]:
    apps = []
    for to in FOLLOWERS:
        m = pb.Message()
        m.type = pb.MSG_APP
        m.to = to
        setattr(m, "from", 1)
        m.term = 7
        m.log_term = 7
        m.index = 1000
        m.entries.extend(LOG_PB[1000:1004])
        m.commit = 999
        m.round = 42
        apps.append(m)
    resps = []
    for m in apps:
        frm = getattr(m, "from")
        check = m.type + m.term + frm + m.index + m.log_term + m.commit + m.round
        check += sum(e.term + e.index for e in m.entries)
        r = pb.Message()
        r.type = pb.MSG_APP_RESP
        r.to = frm
        setattr(r, "from", m.to)
        r.term = m.term
        r.index = m.entries[-1].index
        r.round = m.round
        resps.append(r)
    return (
        check + sum(r.type + r.term + getattr(r, "from") + r.index + r.reject + r.round for r in resps),
        apps,
        resps,
    )


def _light_round_over_wire() -> int:
    check, apps, resps = _light_round()
    return (
        check
        + len(codec.decode_message_batch(codec.encode_message_batch(apps)))
        + len(codec.decode_message_batch(codec.encode_message_batch(resps)))
    )


def _pb_round_over_wire() -> int:
    check, apps, resps = _pb_round()
    for messages in (apps, resps):
        batch = pb.MessageBatch()
        batch.messages.extend(messages)
        check += len(pb.MessageBatch.FromString(batch.SerializeToString()).messages)
    return check


@pytest.mark.benchmark(group="replication round, leader + 2 followers (MsgApp x4 entries, MsgAppResp)")
@pytest.mark.parametrize(
    "run",
    [lambda: _light_round()[0], lambda: _pb_round()[0], _light_round_over_wire, _pb_round_over_wire],
    ids=["light", "pb", "light+codec+wire", "pb+wire"],
)
def test_replication_round(benchmark, run) -> None:
    assert benchmark(run) > 0

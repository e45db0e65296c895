"""Interaction tests of the Raft core: one datadriven scenario per file in interaction/testdata.

Each scenario's expected output is its specification (``KVDB_REWRITE=1`` rewrites it; read the
result before committing it). Each also has a checker below that asserts the scenario's key
facts in Python, between commands, so a test fails for the right reason even if an expected
output was rewritten carelessly.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from kvdb.raft import ConfState, Message, MessageType, Role
from kvdb.raft.progress import Progress, ProgressState

from .interaction import Interpreter, Script
from .interaction.env import Env

TESTDATA = Path(__file__).parent / "interaction" / "testdata"


def roles(env: Env) -> dict[int, int]:
    return {i: n.raw.raft.role for i, n in env.nodes.items()}


def terms(env: Env) -> dict[int, int]:
    return {i: n.raw.raft.term for i, n in env.nodes.items()}


def leaders(env: Env) -> list[int]:
    return [i for i, role in roles(env).items() if role == Role.LEADER]


def log_terms(env: Env, node_id: int) -> list[tuple[int, int]]:
    """(index, term) of every entry in the node's storage."""
    s = env.nodes[node_id].storage
    return [(e.index, e.term) for e in s.entries(s.first_index(), s.last_index() + 1)]


def rejections(env: Env, frm: int) -> int:
    """How many append rejections ``frm`` sent that were delivered."""
    return sum(1 for m in env.delivered if m.type == MessageType.APP_RESP and m.reject and m.frm == frm)


def votes_granted(env: Env, term: int) -> list[int]:
    """Who granted a vote (not a pre-vote) in ``term``, as delivered."""
    return [
        m.frm for m in env.delivered if m.type == MessageType.VOTE_RESP and m.term == term and not m.reject
    ]


def payloads(env: Env, node_id: int) -> list[str]:
    return [d for _, d in env.nodes[node_id].applied]


def check_election(s: Script, env: Env) -> None:
    s.run_to("isolate 1")
    assert leaders(env) == [1] and terms(env) == {1: 2, 2: 2, 3: 2}
    s.run_to("heal")
    # Node 1 still believes it leads term 2; node 2 leads term 3; 'lost' is not committed.
    assert leaders(env) == [1, 2]
    assert terms(env) == {1: 2, 2: 3, 3: 3}
    assert all("lost" not in payloads(env, i) for i in env.nodes)
    s.run_to("tick-heartbeat 2")
    assert leaders(env) == [1, 2], "a heartbeat of a stale term must not depose anyone"
    s.finish()
    assert leaders(env) == [2] and terms(env) == {1: 3, 2: 3, 3: 3}
    assert log_terms(env, 1) == log_terms(env, 2)
    assert payloads(env, 1) == payloads(env, 3) == ["a", "b"]


def check_prevote(s: Script, env: Env) -> None:
    s.run_through("isolate 3")
    assert leaders(env) == [1] and terms(env) == {1: 2, 2: 2, 3: 2}
    s.run_to("heal")
    assert terms(env) == {1: 2, 2: 2, 3: 2}, "pre-votes that fail must not raise the term"
    assert roles(env)[3] == Role.PRE_CANDIDATE
    s.finish()
    assert leaders(env) == [1] and terms(env) == {1: 2, 2: 2, 3: 2}, "the rejoining node disrupted the leader"
    assert env.nodes[3].applied == env.nodes[1].applied == [(3, "a")]


def check_check_quorum(s: Script, env: Env) -> None:
    s.run_to("campaign 2")
    assert leaders(env) == [1]
    s.run_to("tick-heartbeat 1")
    # The lease: nobody voted for 2 at term 3, although its log is as long as theirs.
    assert leaders(env) == [1] and terms(env) == {1: 2, 2: 3, 3: 2}
    assert votes_granted(env, 3) == []
    s.run_through("tick-heartbeat 1")
    s.run_to("campaign 2")
    assert leaders(env) == [] and terms(env) == {1: 3, 2: 3, 3: 2}, "the term-3 response deposes leader 1"
    s.run_to("tick 1 count=11")
    # Deposed a moment ago, node 1 keeps the promise it made as leader: no vote, no term change.
    assert votes_granted(env, 4) == [], "a just-deposed leader must not vote within its own promise"
    assert terms(env) == {1: 3, 2: 4, 3: 2} and roles(env)[2] == Role.CANDIDATE
    s.run_to("campaign 2")
    assert terms(env) == {1: 3, 2: 4, 3: 2} and roles(env)[1] == Role.FOLLOWER, "node 1 must not campaign"
    s.run_to("isolate 2")
    assert leaders(env) == [2] and terms(env)[2] == 5
    assert votes_granted(env, 5) == [1], "node 3 heard from leader 1 recently: it must not vote"
    s.run_to("heal")
    assert roles(env)[2] == Role.FOLLOWER, "a leader cut off from a quorum must step down"
    s.finish()
    assert leaders(env) == [1] and terms(env) == {1: 6, 2: 6, 3: 6}
    assert votes_granted(env, 6) == [3], "node 2 led a moment ago (by its clock): it must not vote"


def check_log_repair(s: Script, env: Env) -> None:
    s.run_to("heal")
    assert [t for _, t in log_terms(env, 1)] == [2] * 7
    assert rejections(env, 1) == 0
    s.finish()
    assert log_terms(env, 1) == log_terms(env, 3) == [(2, 2), (3, 2), (4, 3), (5, 3), (6, 3), (7, 4)]
    assert payloads(env, 1) == ["a", "b", "c"]
    assert rejections(env, 1) == 1, "the hint should let the leader skip the conflict in one round trip"


def check_figure8(s: Script, env: Env) -> None:
    s.run_to("status 1")
    leader = env.nodes[1].raw.raft
    assert leader.role == Role.LEADER and leader.term == 4
    assert sum((3, 2) in log_terms(env, i) for i in env.nodes) == 4, "2/3 should be on four nodes"
    assert leader.raft_log.committed == 2, "an entry of an earlier term was committed by counting replicas"
    s.finish()
    # Node 1, cut off for good, still believes it leads term 4 (CheckQuorum is off).
    assert leaders(env) == [1, 5] and terms(env)[5] == 5
    assert log_terms(env, 2) == log_terms(env, 3) == log_terms(env, 5) == [(2, 2), (3, 3), (4, 5)]
    assert env.nodes[5].raw.raft.raft_log.committed == 4
    assert all("a" not in payloads(env, i) for i in env.nodes)


def check_snapshot(s: Script, env: Env) -> None:
    s.run_to("heal")
    assert env.nodes[1].storage.first_index() == 5
    s.finish()
    assert sum(1 for m in env.delivered if m.type == MessageType.SNAP) == 1
    assert env.nodes[3].storage.snapshot().metadata.index == 4
    assert env.nodes[3].applied == env.nodes[1].applied == [(3, "a"), (4, "b"), (5, "c"), (6, "d")]


def check_joint_consensus(s: Script, env: Env) -> None:
    s.run_to("propose-conf-change 1 v4 r1")
    assert env.nodes[4].raw.status().conf_state.learners == [4]
    s.run_to("tick-election")
    joint = ConfState(voters=[2, 3, 4], voters_outgoing=[1, 2, 3], auto_leave=True)
    for i in (2, 3, 4):
        history = [cs for _, cs in env.nodes[i].conf_states]
        assert joint in history, "the change must go through joint consensus"
        cs = env.nodes[i].raw.status().conf_state
        assert cs == ConfState(voters=[2, 3, 4]), "the joint config must be left"
    assert roles(env)[1] == Role.FOLLOWER, "the removed leader steps down"
    s.finish()
    assert len(leaders(env)) == 1 and leaders(env)[0] in (2, 3, 4)


def check_leader_transfer(s: Script, env: Env) -> None:
    s.run_to("isolate 3")
    assert leaders(env) == [2] and terms(env) == {1: 3, 2: 3, 3: 3}
    s.run_to("isolate 1")
    assert leaders(env) == [3] and terms(env) == {1: 4, 2: 4, 3: 4}
    assert "refused" not in payloads(env, 3)
    s.finish()
    assert leaders(env) == [3] and payloads(env, 3) == ["a", "b", "accepted"]
    assert not env.nodes[3].raw.raft.lease_allowed(), "no lease in a term in which TIMEOUT_NOW was sent"


def check_read_index(s: Script, env: Env) -> None:
    s.run_through("read-index 1 r1")
    s.run_through("process-ready 1")
    assert env.nodes[1].read_states == [], "no read before the leader committed in its term"
    s.run_to("read-index 1 r2")
    (r1,) = env.nodes[1].read_states
    assert r1.request_ctx == b"r1" and r1.index == 2 == env.nodes[1].raw.raft.raft_log.committed
    s.run_through("deliver-msgs 2")
    assert len(env.nodes[1].read_states) == 1, "answered before the heartbeat round was acknowledged"
    s.run_to("read-index 2 r3")
    assert [rs.request_ctx for rs in env.nodes[1].read_states] == [b"r1", b"r2"]
    s.finish()
    assert [(rs.index, rs.request_ctx) for rs in env.nodes[2].read_states] == [(2, b"r3")]


def check_lease_rounds(s: Script, env: Env) -> None:
    s.run_to("tick-heartbeat 1")
    leader = env.nodes[1]
    acked = list(leader.lease_rounds_acked)
    s.run_through("process-ready 1")
    heartbeat_round = leader.lease_rounds_started[-1]
    assert heartbeat_round > max(acked)
    s.run_to("deliver-msgs 3")
    assert leader.lease_rounds_acked == acked, "the leader and one follower are not a quorum of five"
    s.run_to("stabilize")
    assert leader.lease_rounds_acked == [*acked, heartbeat_round]
    acked = list(leader.lease_rounds_acked)
    s.run_to("isolate 1")
    assert leader.lease_rounds_acked == acked, "further responses must not re-report the round"
    s.run_to("heal")
    assert leader.lease_rounds_acked == acked, "an isolated leader's rounds are never acknowledged"
    assert len(leader.lease_rounds_started) == len(acked) + 2
    s.finish()
    assert leader.lease_rounds_acked == [*acked, leader.lease_rounds_started[-1]]


def vote_responses(env: Env, since: int = 0) -> list[tuple[int, int, bool]]:
    """(from, to, granted) of every pre-vote or vote response delivered after ``since``."""
    kinds = (MessageType.PRE_VOTE_RESP, MessageType.VOTE_RESP)
    return [(m.frm, m.to, not m.reject) for m in env.delivered[since:] if m.type in kinds]


def check_manual_campaign_in_lease(s: Script, env: Env) -> None:
    s.run_to("campaign 2")
    assert leaders(env) == [1] and terms(env) == {1: 2, 2: 2, 3: 2}
    assert env.nodes[1].lease_rounds_acked[-1] == 2, "the heartbeat round must be acknowledged"
    before = len(env.delivered)
    s.run_to("lose-contact 2")
    # Node 2's own promise forbids its campaign: it sent nothing and still follows leader 1.
    assert roles(env)[2] == Role.FOLLOWER and env.nodes[2].raw.raft.lead == 1
    assert len(env.delivered) == before
    s.run_to("campaign 3")
    assert roles(env)[2] == Role.PRE_CANDIDATE and env.nodes[2].raw.raft.lead == 0
    s.run_to("isolate 1")
    # Node 2's pre-vote got nothing, not even an answer, and node 3's promise kept it from
    # campaigning at all (node 2, out of contact, would have granted it a pre-vote).
    assert vote_responses(env, before) == []
    assert leaders(env) == [1] and terms(env) == {1: 2, 2: 2, 3: 2}
    assert roles(env)[2] == Role.PRE_CANDIDATE and roles(env)[3] == Role.FOLLOWER
    before = len(env.delivered)
    s.run_to("heal")
    # Once nodes 2 and 3 have not heard from a leader for an election timeout, an election works.
    assert sorted(leaders(env)) == [1, 2] and terms(env) == {1: 2, 2: 3, 3: 3}
    assert vote_responses(env, before) == [(3, 2, True), (3, 2, True)]
    assert votes_granted(env, 3) == [3]
    s.finish()
    assert leaders(env) == [2] and terms(env) == {1: 3, 2: 3, 3: 3}
    assert log_terms(env, 1) == log_terms(env, 2) == log_terms(env, 3) == [(2, 2), (3, 3)]


def check_transfer_forwarded(s: Script, env: Env) -> None:
    s.run_to("transfer-leader 2 to=3")
    assert leaders(env) == [1] and terms(env) == {1: 2, 2: 2, 3: 2}
    before = len(env.delivered)
    s.finish()
    sent = [
        m for m in env.delivered[before:] if m.type in (MessageType.TRANSFER_LEADER, MessageType.TIMEOUT_NOW)
    ]
    assert [(m.type, m.frm, m.to) for m in sent] == [
        (MessageType.TRANSFER_LEADER, 3, 1),  # forwarded by node 2, naming the transferee
        (MessageType.TIMEOUT_NOW, 1, 3),
    ], "the forwarding follower must not be taken for the transferee"
    assert leaders(env) == [3] and terms(env) == {1: 3, 2: 3, 3: 3}
    assert roles(env)[2] == Role.FOLLOWER
    assert sorted(votes_granted(env, 3)) == [1, 2]


def progress_of(env: Env, leader: int, peer: int) -> Progress:
    return env.nodes[leader].raw.raft.trk.progress[peer]


def waiting_appends(env: Env, to: int) -> list[Message]:
    """The appends in ``to``'s inbox, not yet delivered."""
    return [m for _, m in env.inbox[to] if m.type == MessageType.APP]


def check_replicate_pause(s: Script, env: Env) -> None:
    s.run_through("process-ready 1")
    pr = progress_of(env, 1, 3)
    assert pr.inflights.count() == 3 and pr.inflights.full() and pr.is_paused()
    assert [len(m.entries) for m in waiting_appends(env, 3)] == [1, 1, 1]
    s.run_to("tick-heartbeat 1")
    leader_log = env.nodes[1].raw.raft.raft_log
    assert progress_of(env, 1, 2).match == leader_log.last_index() == leader_log.committed
    assert pr.inflights.count() == 3 and pr.next == 6, "no entries beyond the full window"
    for _ in range(2):
        s.run_through("process-ready 3")  # node 3 answers the heartbeat
        s.run_through("stabilize 1")  # the leader handles the response
        appends = waiting_appends(env, 3)
        assert len(appends) == 1 and appends[0].entries == [], "a full window gets an empty append"
        assert appends[0].commit == leader_log.committed
        assert pr.inflights.count() == 3 and pr.next == 6 and pr.is_paused()
    s.finish()
    assert pr.match == leader_log.last_index() and pr.inflights.count() == 0
    assert payloads(env, 3) == ["a", "b", "c", "d", "e", "f"]


def appends_sent(env: Env, to: int, since: int = 0) -> list[Message]:
    """The appends delivered to ``to`` (or dropped on the way) after ``since`` deliveries."""
    return [m for m in env.delivered[since:] if m.type == MessageType.APP and m.to == to]


def check_inflight_bytes(s: Script, env: Env) -> None:
    s.run_through("process-ready 1")
    pr = progress_of(env, 1, 3)
    assert pr.inflights.count() == 3 and pr.inflights.bytes == 39 and pr.inflights.full()
    assert [len(m.entries) for m in waiting_appends(env, 3)] == [1, 1, 1], "d waits for room"
    s.run_through("process-ready 3")  # node 3 answers the heartbeat
    s.run_through("stabilize 1")
    leader_log = env.nodes[1].raw.raft.raft_log
    assert leader_log.committed == leader_log.last_index() == 6
    assert [m.entries for m in waiting_appends(env, 3)] == [[]], "a full window gets an empty append"
    assert (pr.inflights.count(), pr.inflights.bytes, pr.next) == (3, 39, 6)
    s.finish()
    assert pr.match == 6 and pr.inflights.count() == 0
    assert payloads(env, 3) == ["a", "b", "c", "d"]


def check_probe_heartbeat(s: Script, env: Env) -> None:
    s.run_through("status 1")
    assert progress_of(env, 1, 2).state == ProgressState.PROBE
    before = len(env.delivered)
    s.run_through("stabilize")
    assert [m.entries for m in appends_sent(env, 2, before)] == [[]], "one probe, no second empty append"
    assert progress_of(env, 1, 2).state == ProgressState.REPLICATE
    s.finish()


CHECKS: dict[str, Callable[[Script, Env], None]] = {
    "election": check_election,
    "prevote": check_prevote,
    "check_quorum": check_check_quorum,
    "log_repair": check_log_repair,
    "figure8": check_figure8,
    "snapshot": check_snapshot,
    "joint_consensus": check_joint_consensus,
    "leader_transfer": check_leader_transfer,
    "read_index": check_read_index,
    "lease_rounds": check_lease_rounds,
    "manual_campaign_in_lease": check_manual_campaign_in_lease,
    "transfer_forwarded": check_transfer_forwarded,
    "replicate_pause": check_replicate_pause,
    "inflight_bytes": check_inflight_bytes,
    "probe_heartbeat": check_probe_heartbeat,
}


def test_every_scenario_has_a_checker() -> None:
    assert sorted(p.stem for p in TESTDATA.glob("*.txt")) == sorted(CHECKS)


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_interaction(name: str) -> None:
    interpreter = Interpreter()
    CHECKS[name](Script(TESTDATA / f"{name}.txt", interpreter), interpreter.env)

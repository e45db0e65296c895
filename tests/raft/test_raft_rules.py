"""Single rules of the core, each pinned by a test that a plausible bug would fail."""

from __future__ import annotations

import random

import pytest

from kvdb.raft import (
    ConfChange,
    ConfChangeSingle,
    ConfChangeType,
    Config,
    ConfState,
    Entry,
    EntryType,
    HardState,
    MemoryStorage,
    Message,
    MessageType,
    ProposalDroppedError,
    RawNode,
    ReadState,
    Role,
    StepError,
)
from kvdb.raft.codec import decode_conf_change

MT = MessageType


class Group:
    """Nodes with in-memory storage; messages delivered only by ``deliver``."""

    def __init__(self, n: int = 3, **config: object) -> None:
        ids = list(range(1, n + 1))
        self.storages = {i: MemoryStorage(ConfState(voters=ids)) for i in ids}
        self.nodes = {
            i: RawNode(Config(id=i, storage=self.storages[i], rng=random.Random(i), **config)) for i in ids
        }
        self.outbox: list[Message] = []
        self.cut: set[int] = set()
        self.drop_types: set[int] = set()
        self.reads: dict[int, list[ReadState]] = {i: [] for i in ids}

    def persist(self, node_id: int) -> None:
        node = self.nodes[node_id]
        if not node.has_ready():
            return
        rd = node.ready()
        storage = self.storages[node_id]
        self.outbox += rd.messages
        if rd.snapshot is not None:
            storage.apply_snapshot(rd.snapshot)
        storage.append(rd.entries)
        if rd.hard_state is not None:
            storage.set_hard_state(rd.hard_state)
        self.outbox += rd.messages_after_persist
        self.reads[node_id] += rd.read_states
        for e in rd.committed_entries:
            if e.type == EntryType.CONF_CHANGE:
                node.apply_conf_change(decode_conf_change(e.data))
        node.advance(rd)

    def stabilize(self) -> None:
        for _ in range(100):
            for node_id in self.nodes:
                self.persist(node_id)
            if not self.outbox:
                return
            batch, self.outbox = self.outbox, []
            for m in batch:
                if m.to not in self.cut and m.frm not in self.cut and m.type not in self.drop_types:
                    self.nodes[m.to].step(m)
        raise AssertionError("did not stabilize")

    def elect(self, node_id: int = 1) -> RawNode:
        self.nodes[node_id].campaign()
        self.stabilize()
        assert self.nodes[node_id].raft.role == Role.LEADER
        return self.nodes[node_id]


def test_vote_refused_to_candidate_with_shorter_log() -> None:
    g = Group()
    leader = g.elect(1)
    leader.propose(b"a")
    g.stabilize()
    follower = g.nodes[2].raft
    last, term = follower.raft_log.last_index(), follower.raft_log.last_term()
    follower.leader_contact_elapsed = follower.election_timeout + 1  # out of the leader lease
    g.nodes[2].step(Message(MT.VOTE, to=2, frm=3, term=term + 5, index=last - 1, log_term=term))
    resp = g.nodes[2].ready().messages_after_persist
    assert [(m.type, m.reject) for m in resp] == [(MT.VOTE_RESP, True)]
    assert follower.vote == 0


def test_followers_refuse_votes_while_leader_is_recent() -> None:
    g = Group()
    g.elect(1)
    follower = g.nodes[2].raft
    term = follower.term
    g.nodes[2].step(Message(MT.VOTE, to=2, frm=3, term=term + 1, index=99, log_term=term))
    assert follower.term == term and not follower.msgs_after_persist and not follower.msgs


def test_leader_counts_itself_only_after_persisting() -> None:
    g = Group(1)
    leader = g.elect(1)
    g.stabilize()
    leader.propose(b"a")
    rd = leader.ready()
    assert rd.entries and not rd.committed_entries
    assert leader.raft.raft_log.committed < rd.entries[-1].index
    g.storages[1].append(rd.entries)
    leader.advance(rd)
    assert leader.raft.raft_log.committed == rd.entries[-1].index


def test_acknowledgements_and_votes_wait_for_persist() -> None:
    g = Group(pre_vote=False)
    g.nodes[1].campaign()
    rd = g.nodes[1].ready()
    # The candidate's own vote must be durable before it asks for votes.
    assert [m.type for m in rd.messages_after_persist] == [MT.VOTE, MT.VOTE]
    assert not rd.messages and rd.hard_state.vote == 1 and rd.must_sync
    g.outbox += rd.messages_after_persist
    g.nodes[1].advance(rd)
    g.stabilize()
    leader = g.nodes[1]
    leader.propose(b"a")
    g.persist(1)
    g.nodes[2].step(g.outbox[0])
    follower_ready = g.nodes[2].ready()
    assert [m.type for m in follower_ready.messages_after_persist] == [MT.APP_RESP]
    assert not follower_ready.messages and follower_ready.entries


def test_prior_term_entries_are_not_committed_by_counting() -> None:
    g = Group()
    g.elect(1)
    g.cut = {2, 3}
    g.nodes[1].propose(b"old")
    g.stabilize()
    old_index = g.nodes[1].raft.raft_log.last_index()
    # Node 1 is now deposed by node 2; then it comes back as leader of a later term.
    g.cut = set()
    g.nodes[1].raft.become_follower(g.nodes[1].raft.term + 1, 0)
    g.nodes[1].raft.election_elapsed = 99
    raft = g.nodes[1].raft
    raft.become_candidate()
    raft.become_leader()
    # Replicate only the old entry by hand: the leader must not commit it by counting.
    raft.trk.progress[2].match = old_index
    raft.trk.progress[1].match = old_index
    assert not raft.maybe_commit()
    raft.trk.progress[2].match = raft.raft_log.last_index()
    raft.trk.progress[1].match = raft.raft_log.last_index()
    assert raft.maybe_commit() and raft.raft_log.committed == raft.raft_log.last_index()


def test_proposals_refused_during_leader_transfer() -> None:
    g = Group()
    leader = g.elect(1)
    g.cut = {3}
    leader.propose(b"x")
    g.stabilize()
    leader.transfer_leader(3)
    with pytest.raises(ProposalDroppedError):
        leader.propose(b"y")


def test_read_index_waits_for_current_term_commit() -> None:
    g = Group()
    g.drop_types = {MT.APP_RESP}  # the new leader's no-op cannot commit
    leader = g.elect(1)
    assert not leader.raft.committed_entry_in_current_term()
    noop_index = leader.raft.raft_log.last_index()
    leader.read_index(b"r")
    g.stabilize()
    assert g.reads[1] == [], "answered before an entry of the leader's term committed"
    g.drop_types = set()
    leader.tick()  # a heartbeat round: followers answer, the leader re-sends the no-op
    g.stabilize()
    assert leader.raft.committed_entry_in_current_term()
    assert [rs.request_ctx for rs in g.reads[1]] == [b"r"] and g.reads[1][0].index >= noop_index


def test_read_index_needs_a_quorum_to_acknowledge_its_round() -> None:
    g = Group()
    leader = g.elect(1)
    g.cut = {2, 3}
    leader.read_index(b"isolated")
    g.stabilize()
    assert g.reads[1] == []
    g.cut = {3}
    leader.read_index(b"with-2")
    g.stabilize()
    # Node 2's answer to the second round also covers the first request.
    assert [rs.request_ctx for rs in g.reads[1]] == [b"isolated", b"with-2"]


def test_single_node_group_elects_and_commits() -> None:
    g = Group(1)
    leader = g.elect(1)
    leader.propose(b"a")
    g.stabilize()
    assert leader.raft.raft_log.committed == leader.raft.raft_log.last_index()
    assert leader.raft.raft_log.term(leader.raft.raft_log.last_index()) == leader.raft.term


def test_local_messages_and_unknown_responses_are_refused() -> None:
    g = Group()
    with pytest.raises(StepError):
        g.nodes[1].step(Message(MT.HUP))
    with pytest.raises(StepError):
        g.nodes[1].step(Message(MT.APP_RESP, frm=9, term=1))


def test_append_entry_does_not_mutate_proposed_entries() -> None:
    g = Group(1)
    leader = g.elect(1)
    proposed = Entry(0, 0, b"shared")
    leader.raft.step(Message(MT.PROP, frm=1, entries=[proposed]))
    assert (proposed.term, proposed.index) == (0, 0)


def test_restarted_node_refuses_votes_for_an_election_timeout() -> None:
    g = Group()
    g.elect(1)
    storage = g.storages[2]
    restarted = RawNode(Config(id=2, storage=storage, rng=random.Random(2)))
    term = restarted.raft.term
    vote = Message(MT.VOTE, to=2, frm=3, term=term + 1, index=99, log_term=term)
    restarted.step(vote)
    assert restarted.raft.term == term, "voted right after a restart: a leader's lease could be broken"
    for _ in range(restarted.raft.election_timeout + 1):
        restarted.tick()
    restarted.step(vote)
    assert restarted.raft.term == term + 1 and restarted.raft.vote == 3


def test_lease_not_allowed_after_timeout_now_in_this_term() -> None:
    g = Group()
    leader = g.elect(1)
    assert leader.raft.lease_allowed()
    g.cut = {2}  # the transfer cannot complete
    leader.transfer_leader(2)
    assert not leader.raft.lease_allowed()
    for _ in range(leader.raft.election_timeout):
        leader.tick()
    g.stabilize()
    assert leader.raft.lead_transferee == 0 and leader.raft.role == Role.LEADER
    # TIMEOUT_NOW was sent (node 2 was up to date): it may still arrive and win an election.
    assert not leader.raft.lease_allowed()


def test_manual_campaign_does_not_end_the_vote_refusal() -> None:
    g = Group()
    leader = g.elect(1)
    leader.tick()
    g.stabilize()
    term = leader.raft.term
    g.nodes[2].campaign()  # a pre-candidate has no leader, but it still heard from one just now
    g.nodes[3].campaign()
    g.stabilize()
    assert leader.raft.role == Role.LEADER and leader.raft.term == term


def test_forwarded_transfer_targets_the_transferee() -> None:
    g = Group()
    g.elect(1)
    g.nodes[2].transfer_leader(3)
    g.stabilize()
    assert g.nodes[3].raft.role == Role.LEADER


def test_no_vote_at_own_term_while_promised_to_a_leader() -> None:
    g = Group()
    g.elect(1)
    follower = g.nodes[2].raft
    follower.become_follower(follower.term + 1, 0)  # e.g. raised by a rejection, no vote yet
    follower.leader_contact_elapsed = 0
    g.nodes[2].step(Message(MT.VOTE, to=2, frm=3, term=follower.term, index=99, log_term=follower.term))
    assert follower.vote == 0
    assert [(m.type, m.reject) for m in follower.msgs_after_persist] == [(MT.VOTE_RESP, True)]


def _restarted(node_id: int, log: list[Entry], commit: int) -> RawNode:
    storage = MemoryStorage(ConfState(voters=[1, 2, 3]))
    storage.append(log)
    storage.set_hard_state(HardState(term=2, vote=0, commit=commit))
    node = RawNode(Config(id=node_id, storage=storage, rng=random.Random(node_id)))
    node.raft.leader_contact_elapsed = node.raft.election_timeout + 1  # its promise has run out
    return node


def test_candidate_learns_commit_from_a_rejection() -> None:
    log = [Entry(2, 2), Entry(2, 3, b"x")]
    candidate = _restarted(1, log, commit=1)
    voter = _restarted(2, [*log, Entry(2, 4, b"y")], commit=3)
    candidate.campaign()
    pre_vote = next(m for m in candidate.ready().messages if m.to == 2)
    voter.step(pre_vote)
    (reply,) = voter.ready().messages_after_persist
    assert reply.reject and (reply.commit, reply.log_term) == (3, 2)
    candidate.step(reply)
    assert candidate.raft.raft_log.committed == 3


def test_commit_not_learnt_from_a_different_log() -> None:
    candidate = _restarted(1, [Entry(2, 2), Entry(2, 3, b"x")], commit=1)
    candidate.campaign()
    candidate.ready()
    candidate.step(Message(MT.PRE_VOTE_RESP, to=1, frm=2, term=2, reject=True, commit=3, log_term=3))
    assert candidate.raft.raft_log.committed == 1


def test_no_lease_without_check_quorum() -> None:
    leader = Group(check_quorum=False).elect(1)
    assert not leader.raft.lease_allowed()


def test_candidate_gives_up_when_its_configuration_changes() -> None:
    g = Group(pre_vote=False)
    candidate = g.nodes[1]
    candidate.campaign()
    term = candidate.raft.term
    candidate.apply_conf_change(ConfChange([ConfChangeSingle(ConfChangeType.REMOVE_NODE, 1)]))
    assert candidate.raft.role == Role.FOLLOWER and candidate.raft.vote == 1
    for voter in (2, 3):
        candidate.step(Message(MT.VOTE_RESP, to=1, frm=voter, term=term))
    assert candidate.raft.role == Role.FOLLOWER, "won an election in a configuration it is not in"


@pytest.mark.parametrize("broadcast", [True, False])
def test_followers_learn_the_commit_index_by_broadcast_or_with_the_next_heartbeat(broadcast: bool) -> None:
    g = Group(heartbeat_tick=2, broadcast_commit=broadcast)
    leader = g.elect(1)
    g.stabilize()
    leader.propose(b"a")
    index = leader.raft.raft_log.last_index()
    for _ in range(10):  # the append and its answers, but nothing a broadcast would add
        for node_id in g.nodes:
            g.persist(node_id)
        batch, g.outbox = g.outbox, []
        for m in batch:
            if m.type != MT.APP_RESP or m.frm == 2:  # node 3's answer is late: node 2 makes the quorum
                g.nodes[m.to].step(m)
    assert leader.raft.raft_log.committed == index
    followers = [g.nodes[2].raft.raft_log.committed, g.nodes[3].raft.raft_log.committed]
    assert followers == ([index, index] if broadcast else [index - 1, index - 1])
    if not broadcast:
        for _ in range(2):
            leader.tick()
        g.stabilize()
        assert [g.nodes[i].raft.raft_log.committed for i in (2, 3)] == [index, index]

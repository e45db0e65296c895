"""After a leader dies, its followers elect a successor in one election, not a split vote.

Both followers reset their election timers on the dead leader's last heartbeat. With timeouts
drawn uniformly from [n, 2n) ticks they time out in the same tick one time in n; each then wins
the other's pre-vote before hearing its own answered, both become candidates in the same term,
each votes for itself, and the range waits a second timeout. ``election_bands`` (the stores'
setting) gives each voter its own band of timeouts, so this cannot happen to voters that heard
the same heartbeat.
"""

from __future__ import annotations

import random

import pytest

from kvdb.raft import Config, ConfState, MemoryStorage, Message, MessageType, RawNode, Role

SEEDS = 60
ELECTION_TICK = 10


class Cluster:
    """Three nodes stepping in lockstep: each tick every live node ticks, then messages flow."""

    def __init__(self, seed: int, bands: bool) -> None:
        ids = [1, 2, 3]
        self.storages = {i: MemoryStorage(ConfState(voters=ids)) for i in ids}
        self.nodes = {
            i: RawNode(Config(id=i, storage=self.storages[i], rng=random.Random(seed * 10 + i),
                              election_tick=ELECTION_TICK, heartbeat_tick=2, election_bands=bands))
            for i in ids
        }
        self.down: set[int] = set()

    def run(self) -> None:
        """Persist every Ready and deliver every message between live nodes until nothing moves."""
        for _ in range(100):
            outbox: list[Message] = []
            for node_id, node in self.nodes.items():
                while node.has_ready():
                    rd = node.ready()
                    self.storages[node_id].append(rd.entries)
                    if rd.hard_state is not None:
                        self.storages[node_id].set_hard_state(rd.hard_state)
                    outbox += rd.messages + rd.messages_after_persist
                    node.advance(rd)
            if not outbox:
                return
            for m in outbox:
                if m.to not in self.down and m.frm not in self.down:
                    self.nodes[m.to].step(m)
        raise AssertionError("did not settle")

    def leader(self) -> int | None:
        live = (i for i, n in self.nodes.items() if i not in self.down and n.raft.role == Role.LEADER)
        return next(live, None)


def elections_after_the_leader_dies(seed: int, bands: bool) -> int:
    """How many terms the survivors go through until one of them leads."""
    c = Cluster(seed, bands)
    c.nodes[1].campaign()
    c.run()
    assert c.leader() == 1
    c.nodes[1].raft.step(Message(MessageType.BEAT, frm=1))  # the last heartbeat both followers hear
    c.run()
    c.down.add(1)
    term = c.nodes[2].raft.term
    for _ in range(20 * ELECTION_TICK):
        for node_id in (2, 3):
            c.nodes[node_id].tick()
        c.run()
        if (leader := c.leader()) is not None:
            return c.nodes[leader].raft.term - term
    raise AssertionError(f"seed {seed}: no leader after {20 * ELECTION_TICK} ticks")


def test_survivors_never_split_the_vote_with_bands() -> None:
    assert [elections_after_the_leader_dies(seed, bands=True) for seed in range(SEEDS)] == [1] * SEEDS


def test_uniform_timeouts_split_the_vote_sometimes() -> None:
    """The reason for the bands, and a check that this harness can see a split vote at all."""
    assert any(elections_after_the_leader_dies(seed, bands=False) > 1 for seed in range(SEEDS))


@pytest.mark.parametrize("voters", [2, 3, 5])
def test_bands_stay_within_the_uniform_span_and_two_ticks_apart(voters: int) -> None:
    ids = list(range(1, voters + 1))
    drawn: dict[int, set[int]] = {}
    for node_id in ids:
        storage = MemoryStorage(ConfState(voters=ids))
        node = RawNode(Config(id=node_id, storage=storage, rng=random.Random(node_id),
                              election_tick=ELECTION_TICK, election_bands=True))
        drawn[node_id] = set()
        for _ in range(50):
            node.raft.reset_randomized_election_timeout()
            drawn[node_id].add(node.raft.randomized_election_timeout)
    everything = set().union(*drawn.values())
    assert ELECTION_TICK == min(everything) and max(everything) < 2 * ELECTION_TICK
    for a in ids:
        for b in ids:
            if a < b:  # a lower id times out earlier, by two ticks at least
                assert max(drawn[a]) + 2 <= min(drawn[b])


def test_bands_need_pre_vote() -> None:
    with pytest.raises(ValueError, match="pre_vote"):
        storage = MemoryStorage(ConfState(voters=[1]))
        Config(id=1, storage=storage, election_bands=True, pre_vote=False).validate()

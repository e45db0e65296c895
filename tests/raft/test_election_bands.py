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

from kvdb.raft import (
    Config,
    ConfState,
    MemoryStorage,
    Message,
    MessageType,
    RawNode,
    Role,
    Snapshot,
    SnapshotMetadata,
)
from kvdb.store.config import StoreConfig
from tests.raft.test_lease_promise import Cluster

SEEDS = 60
ELECTION_TICK = StoreConfig().election_tick


def elections_after_the_leader_dies(seed: int, bands: bool) -> int:
    """How many terms the survivors go through until one of them leads (the lease test's three
    nodes: each tick both survivors tick, then messages flow until nothing moves)."""
    c = Cluster(StoreConfig(), seed, bands)
    c.nodes[1].campaign()
    c.run()
    assert c.nodes[1].raft.role == Role.LEADER
    c.nodes[1].raft.step(Message(MessageType.BEAT, frm=1))  # the last heartbeat both followers hear
    c.run()
    c.cut |= {frozenset((1, 2)), frozenset((1, 3))}
    term = c.nodes[2].raft.term
    for _ in range(20 * ELECTION_TICK):
        for node_id in (2, 3):
            c.nodes[node_id].tick()
        c.run()
        leaders = [i for i in (2, 3) if c.nodes[i].raft.role == Role.LEADER]
        if leaders:
            return c.nodes[leaders[0]].raft.term - term
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


def test_a_replica_created_empty_draws_from_its_band_once_a_snapshot_names_the_voters() -> None:
    """A store creates a replica on a leader's first message, knowing no voters yet, so it drew
    its first timeout uniformly; the snapshot that follows names the voters, and from then on
    the replica must use its band (a failover right after a replica was added measured 1.37 s
    and 1.64 s: its uniform timeout fell into a survivor's band and they split the vote)."""
    for seed in range(20):
        node = RawNode(Config(id=3, storage=MemoryStorage(ConfState()), rng=random.Random(seed),
                              election_tick=ELECTION_TICK, election_bands=True))
        snapshot = Snapshot(SnapshotMetadata(index=10, term=2, conf_state=ConfState(voters=[1, 2, 3])))
        node.step(Message(MessageType.SNAP, frm=1, to=3, term=2, snapshot=snapshot))
        assert node.raft.trk.config.voters.incoming == {1, 2, 3}
        width = ELECTION_TICK // 3
        band = range(ELECTION_TICK + 2 * width, ELECTION_TICK + 3 * width - 1)  # the highest rank
        assert node.raft.randomized_election_timeout in band, (seed, node.raft.randomized_election_timeout)

"""Tuning and identity of one Raft node."""

from __future__ import annotations

import random
from dataclasses import dataclass

from kvdb.raft.storage import Storage


def promise_intervals(election_tick: int) -> int:
    """Whole tick intervals a node keeps its promise after hearing from a leader (or leading).

    Within them it neither grants (pre-)votes to others nor campaigns itself, leader transfers
    excepted. The contact may come just before a tick, so the promise counts ticks up to and
    including ``election_tick`` (``Raft._in_lease``): ``election_tick`` whole intervals. A lease
    must end at least the clock drift bound before this (``StoreConfig.validate``).
    """
    return election_tick


@dataclass
class Config:
    id: int
    storage: Storage
    # Injected so elections are reproducible: the simulator passes a seeded generator.
    # Defaults to a generator seeded by the node id, so peers do not time out in lockstep.
    rng: random.Random | None = None
    # Ticks without hearing from a leader before a follower campaigns (randomized in [n, 2n)).
    # Followers also neither vote nor campaign for this many whole tick intervals after hearing
    # from a leader (``promise_intervals``), which makes leases of ``election_tick`` intervals
    # minus clock drift safe.
    election_tick: int = 10
    heartbeat_tick: int = 1
    # Draw each voter's randomized election timeout from its own band of [n, 2n), by its rank
    # among the voters' ids, with a tick between bands (``Raft.reset_randomized_election_timeout``).
    election_bands: bool = False
    # Send every follower an append as soon as the commit index advances (etcd's behaviour).
    # False: followers learn it with the next append or heartbeat (``Raft.maybe_commit``).
    broadcast_commit: bool = True
    # The applied index the state machine already reflects (from the application's own state).
    applied: int = 0
    max_size_per_msg: int = 1 << 20
    # Cap on the committed entries one Ready hands out for applying (None: no cap).
    max_committed_size_per_ready: int | None = None
    max_inflight_msgs: int = 256
    max_inflight_bytes: int = 0
    max_uncommitted_entries_size: int = 0
    pre_vote: bool = True
    check_quorum: bool = True
    # A leader removed from (or demoted in) the configuration steps down when that applies.
    step_down_on_removal: bool = True
    disable_proposal_forwarding: bool = False

    def __post_init__(self) -> None:
        if self.rng is None:
            self.rng = random.Random(self.id)

    def validate(self) -> None:
        if self.id == 0:
            raise ValueError("node id 0 is reserved for 'none'")
        if self.heartbeat_tick <= 0:
            raise ValueError("heartbeat_tick must be > 0")
        if self.election_tick <= self.heartbeat_tick:
            raise ValueError("election_tick must be greater than heartbeat_tick")
        if self.election_bands and not self.pre_vote:
            # Without pre-vote, a voter that cannot win (its log is behind) but always times out
            # first would bump the term and reset the others' timers forever.
            raise ValueError("election_bands needs pre_vote")
        if self.max_inflight_msgs <= 0:
            raise ValueError("max_inflight_msgs must be > 0")
        if self.max_inflight_bytes and self.max_inflight_bytes < self.max_size_per_msg:
            raise ValueError("max_inflight_bytes must be >= max_size_per_msg")

"""Known Raft bugs planted in the core must be caught.

A simulator (or a test) that never fails proves nothing: each case below breaks one rule of the
core or the store, the way a plausible patch might, and asserts that a simulator (the Raft core's
or the store's, within a handful of seeds, often of the swarm profile aimed at that class of bug)
exposes it at the system level. If a case stops failing, either the checks lost their teeth or the
rule moved; both need a look.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from kvdb.pb import raft_serverpb_pb2
from kvdb.raft import log as log_module
from kvdb.raft import raft as raft_module
from kvdb.raft.types import MessageType, Role
from kvdb.store import hibernate as hibernate_module
from kvdb.store import store as store_module
from kvdb.store.lease import Lease
from kvdb.store.peer import Peer
from kvdb.store.range_index import RangeIndex
from tests.sim import SimFailure, SimOptions, Simulation
from tests.storesim import SimFailure as StoreSimFailure
from tests.storesim import SimOptions as StoreSimOptions
from tests.storesim import StoreSimulation

SEEDS = 40
TICKS = 600


def commit_counts_prior_terms(mp: pytest.MonkeyPatch) -> None:
    """Commit by counting replicas whatever the entry's term (Raft §5.4.2, Figure 8)."""

    def maybe_commit(self: log_module.RaftLog, index: int, term: int) -> bool:
        if index > self.committed:
            self.commit_to(index)
            return True
        return False

    mp.setattr(log_module.RaftLog, "maybe_commit", maybe_commit)


def vote_without_log_check(mp: pytest.MonkeyPatch) -> None:
    """Grant votes without checking that the candidate's log is up to date (§5.4.1)."""
    mp.setattr(log_module.RaftLog, "is_up_to_date", lambda self, index, term: True)


def ack_before_persist(mp: pytest.MonkeyPatch) -> None:
    """Send append acknowledgements before the entries are durable."""
    mp.setattr(raft_module, "_AFTER_PERSIST", frozenset({MessageType.VOTE, MessageType.VOTE_RESP}))


def read_index_without_quorum(mp: pytest.MonkeyPatch) -> None:
    """Answer ReadIndex at once, without a heartbeat round acknowledged by a quorum."""
    mp.setattr(
        raft_module.Raft, "_leader_read_index", lambda self, m: self._answer_read(m, self.raft_log.committed)
    )


def lease_from_later_round(mp: pytest.MonkeyPatch) -> None:
    """Start the lease at the send time of the latest round, not of the acknowledged one."""

    def round_acked(self: Lease, term: int, round_: int) -> None:
        if term == self._term and self._rounds:
            self._expiry = max(self._expiry, self._rounds[-1][1] + self._span)

    mp.setattr(Lease, "round_acked", round_acked)


def lease_during_transfer(mp: pytest.MonkeyPatch) -> None:
    """Keep the lease while a leader transfer is in flight (or after TIMEOUT_NOW was sent)."""
    mp.setattr(raft_module.Raft, "lease_allowed", lambda self: self.check_quorum and self.role == Role.LEADER)


def campaign_inside_promise(mp: pytest.MonkeyPatch) -> None:
    """A follower's own election timer ignores its promise (issue 10 item 1): it may campaign one
    tick interval before the promise, and so the lease it acknowledged, ends."""
    mp.setattr(raft_module.Raft, "_promise_forbids_campaign", lambda self, campaign_type: False)


def heartbeat_ack_before_persist(mp: pytest.MonkeyPatch) -> None:
    """A heartbeat acknowledgement leaves before the term it was sent in is durable (issue 10
    item 2): a store that crashes then restarts at the bootstrap term, outside its promise."""
    mp.setattr(raft_module, "_AFTER_PERSIST", raft_module._AFTER_PERSIST - {MessageType.HEARTBEAT_RESP})


def unsafe_membership_changes(mp: pytest.MonkeyPatch) -> None:
    """The leader proposes any membership change (issue 10 item 10): it removes itself, or a live
    voter while another is down, leaving the live voters short of a quorum."""
    mp.setattr(store_module, "check_conf_change", lambda peer, changes, joint: None)


class _Blind(RangeIndex):
    def overlapping(self, start: bytes, end: bytes) -> list[int]:
        return []


def replica_over_held_keys(mp: pytest.MonkeyPatch) -> None:
    """(issue 11) A store creates a replica for a message although a replica it holds covers the
    message's keys (a parent yet to apply its split): the overlap check on messages is gone."""
    find = store_module.Store._peer_for_message

    def peer_for_message(self: store_module.Store, msg: raft_serverpb_pb2.RaftMessage) -> Peer | None:
        index = self.range_index
        blind = _Blind()
        blind.__dict__.update(index.__dict__)
        self.range_index = blind
        try:
            return find(self, msg)
        finally:
            self.range_index = index

    mp.setattr(store_module.Store, "_peer_for_message", peer_for_message)


def replica_and_snapshot_over_held_keys(mp: pytest.MonkeyPatch) -> None:
    """(issue 11) As ``replica_over_held_keys``, and a snapshot is applied over them too."""
    replica_over_held_keys(mp)
    mp.setattr(store_module.Store, "_overlaps_others", lambda self, range_id, desc: False)


def read_index_without_epoch_fence(mp: pytest.MonkeyPatch) -> None:
    """(issue 11) A read queued for ReadIndex is served although a split applied meanwhile: its
    keys may belong to a range led elsewhere by then."""
    mp.setattr(Peer, "_fenced", lambda self, fn: fn)
def hibernation_without_store_liveness(mp: pytest.MonkeyPatch) -> None:
    """Hibernated followers never hear that their leader's store died: with no ticks and no
    heartbeats they wait for it for ever, and the range stays without a leader."""
    mp.setattr(hibernate_module.Hibernation, "_check_liveness", lambda self: None)


def run_simulator(name: str, profile: str | None = None, seeds: int = SEEDS) -> None:
    """The Raft simulator catches ``name`` within ``seeds`` seeds (3 then 5 nodes each)."""
    for seed in range(seeds):
        for nodes in (3, 5):
            try:
                Simulation(SimOptions(seed=seed, nodes=nodes, ticks=TICKS, profile=profile)).run()
            except SimFailure as failure:
                print(f"{name}: caught by seed {seed} ({nodes} nodes): {str(failure).splitlines()[0]}")
                return
    pytest.fail(f"planted bug {name!r} survived {seeds} seeds with 3 and 5 nodes (profile {profile})")


def run_store_simulator(name: str, profile: str, seeds: int, ranges: int | None = 1, first: int = 0) -> None:
    """The store simulator catches ``name`` within ``seeds`` seeds of ``profile`` (3 stores), from
    seed ``first`` on. ``ranges``: founding ranges (None: drawn per seed); the one-range bugs below
    were measured with one, before ranges were many."""
    for seed in range(first, first + seeds):
        try:
            StoreSimulation(StoreSimOptions(seed=seed, stores=3, profile=profile, ranges=ranges)).run()
        except StoreSimFailure as failure:
            print(f"{name}: caught by store seed {seed}: {str(failure).splitlines()[0]}")
            return
    pytest.fail(f"planted bug {name!r} survived {seeds} store simulator seeds (profile {profile})")


Catch = Callable[[str], None]

# Each planted bug, and what must catch it. The seed counts are budgets; when written, each was
# caught by the first seed(s) noted beside it.
PLANTED: dict[str, tuple[Callable[[pytest.MonkeyPatch], None], Catch]] = {
    # Figure 8: caught by the Raft simulator's figure8 profile (seed 1 with 3 nodes),
    # the moment a commit leaves an electable voter without the entry.
    "commit_counts_prior_terms": (commit_counts_prior_terms, lambda n: run_simulator(n, "figure8", 10)),
    "vote_without_log_check": (vote_without_log_check, run_simulator),
    "ack_before_persist": (ack_before_persist, run_simulator),
    "read_index_without_quorum": (read_index_without_quorum, run_simulator),
    # Transfers racing reads: Raft simulator seed 0, store simulator seed 1.
    "lease_during_transfer_raft": (lease_during_transfer, lambda n: run_simulator(n, "transfers", 10)),
    "lease_during_transfer_store": (lease_during_transfer, lambda n: run_store_simulator(n, "transfers", 10)),
    # A round's acknowledgement arriving after later rounds began. The drawn profiles caught it
    # by luck only (pauses seed 280, the only one of 0-299, after trajectories moved four times),
    # so the late_acks profile aims at it: messages to the leader an election timeout or more late,
    # then the leader cut off from its followers. Caught by seeds 0, 1, 2, 8, 14, 15 of 0-19
    # (3 stores, drawn ranges) and 4, 6 of 0-9 (5 stores), by the per-event "stale lease" check.
    "lease_from_later_round": (lease_from_later_round,
                               lambda n: run_store_simulator(n, "late_acks", 6)),
    # Issue 10 item 1: store simulator seed 2 of the promise profile (a lease a tenth of a tick
    # short of the promise, cut after a heartbeat ack; about one seed in six catches it).
    "campaign_inside_promise_store": (campaign_inside_promise,
                                      lambda n: run_store_simulator(n, "promise", 15)),
    # The same in the Raft simulator: seed 1 with 3 nodes (4 of its first 60 seeds with 3 nodes).
    "campaign_inside_promise_raft": (campaign_inside_promise, lambda n: run_simulator(n, "promise", 20)),
    # Issue 10 item 2: store simulator seed 0 of the first_term profile (14 of seeds 0-19 catch it).
    "heartbeat_ack_before_persist": (heartbeat_ack_before_persist,
                                     lambda n: run_store_simulator(n, "first_term", 5)),
    # Issue 10 item 10: store simulator seed 3 of the churn profile, whose aimed fault removes a
    # live follower while another has been down for long (6 of seeds 0-29 catch it).
    "unsafe_membership_changes": (unsafe_membership_changes, lambda n: run_store_simulator(n, "churn", 12)),
    # Issue 11 item 5: the hibernate profile's check after a crash of the hibernated leader wants a
    # new leader within six election timeouts. Seeds 8, 9, 12, 13, 14 of 0-15 catch it since issue
    # 14's flow control changed the message trajectories (seed 0, 3 of 0-9 before); unplanted, the
    # same seeds 0-9 hibernate as often (115 naps against 108) and see 3 takeovers against 2.
    "hibernation_without_store_liveness": (hibernation_without_store_liveness,
                                           lambda n: run_store_simulator(n, "hibernate", 10)),
    # Issue 11, split races: with both overlap checks gone (messages and snapshots) the per-tick
    # "no key in two replicas on a store" check fires: splits profile seeds 0, 8, 9, 16, 19 of
    # 0-19 when measured; 1, 5, 7, 14, 15, 17, 18 on main before issue 14's flow control, and 5,
    # 13, 14, 16 with it (the trajectories moved), hence 8 seeds. With only the message check gone
    # nothing shows: the snapshot check and the split's adoption of the uninitialized replica
    # cover it (0 of splits seeds 0-79). Nor do the two lease rules of docs/store.md ("Leases
    # across a split"), planted as a parent leader keeping its lease while its split is in flight,
    # or a new range inheriting the parent's lease (0 of seeds 0-79 each, though the inherited
    # lease served reads): a new range elsewhere needs an election timeout before it can take a
    # write, and the parent leader applies a split in the iteration that learns it committed.
    # tests/store/test_split.py checks those rules directly.
    "replica_and_snapshot_over_held_keys": (replica_and_snapshot_over_held_keys,
                                            lambda n: run_store_simulator(n, "splits", 8, ranges=None)),
    # A ReadIndex read served after a split moved its keys away: the clients' check that a store
    # answers reads only for keys its replica holds (clients.check_read_in_bounds) catches it,
    # splits profile seeds 0, 2, 8, 9, 13, 17 of 0-19.
    "read_index_without_epoch_fence": (read_index_without_epoch_fence,
                                       lambda n: run_store_simulator(n, "splits", 5, ranges=None)),
}


@pytest.mark.parametrize("name", sorted(PLANTED))
def test_planted_bug_is_caught(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    plant, catch = PLANTED[name]
    plant(monkeypatch)
    catch(name)

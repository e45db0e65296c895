"""The store simulator in PD mode: a simulated PD grows a one-replica range to three voters and
keeps it there through crashes, long outages, cuts from PD and a store that dies for good, with
client histories checked for linearizability; and the checks catch a store that never replaces a
stale replica.

Reproduce a failing seed with the command in its failure message; the soak is
``.venv/bin/python -m tests.storesim --seeds 300 --pd``.
"""

from __future__ import annotations

import pytest

from kvdb.pb import metapb_pb2, pdpb_pb2, raft_serverpb_pb2
from kvdb.store.peer import Peer
from kvdb.store.store import Store
from placement.cluster import ClusterModel
from placement.config import effective
from placement.schedule.checkers import replica
from placement.schedule.controller import OperatorController
from placement.schedule.operator import STALE, Operator, Priority
from tests.seed_sweep import sweep
from tests.storesim import SimFailure, SimOptions, Stats, StoreSimulation
from tests.storesim.faults import RANGE_ID

RUNS = [(5, seed) for seed in range(24)] + [(3, seed) for seed in range(8)]
"""(stores, seed): about 25 s here; together they exercised every counter below when written.
Three stores leave PD no spare store: a replica it removes from a store that is down comes back
on the same store, so stale replicas get replaced there."""
EXERCISED = (
    "ops_ok",
    "ops_indeterminate",
    "leader_changes",
    "crashes",
    "pauses",
    "partitions",
    "snapshots_applied",
    "pd_ops_issued",
    "pd_learners_added",
    "pd_learners_promoted",
    "pd_peers_removed",
    "pd_ops_timed_out",
    "pd_stale_heartbeats",
    "pd_replies_stale",
    "pd_long_outages",
    "pd_cut_offs",
    "pd_stalls",
    "pd_mutes",
    "pd_failovers",
    "pd_dead_stores",
    "pd_decommissions",
    "pd_tombstones",
    "pd_stale_replicas_cleaned",
)


def test_seeds() -> None:
    """Every seed grows the range, stays linearizable, converges to three voters on UP stores
    with identical data, and recovers; together they exercised every operator and fault."""
    totals = Stats()
    failures = sweep(StoreSimulation, SimFailure,
                     (SimOptions(seed=seed, stores=stores, pd=True) for stores, seed in RUNS), totals)
    assert not failures, "\n".join(failures)
    idle = [name for name in EXERCISED if getattr(totals, name) == 0]
    assert not idle, f"the seeds never exercised {idle}: {totals.summary()}"
    # A replica removed while away is destroyed (the leader's tombstone, or PD's answer about a
    # leaderless replica): none is left at the end of any run.
    assert totals.pd_stale_replicas_left == 0, totals.summary()


def test_healthy_run_grows_the_range_onto_the_emptiest_stores() -> None:
    """Without faults PD adds exactly two replicas (two operators: a learner, promoted once caught
    up), onto the stores with the fewest ranges (lowest id first), and then leaves the range alone.
    (The coordinator's first operator, made before the range elected its first leader, times out
    undelivered in this seed; its replacement is the one carried out.)"""
    sim = StoreSimulation(SimOptions(seed=5, pd=True, faults=False, ticks=100))
    stats = sim.run()
    assert (stats.pd_learners_added, stats.pd_learners_promoted) == (2, 2)
    assert stats.pd_ops_issued - stats.pd_ops_timed_out == 2
    assert sim.pd.controller.outcomes[("add-replica", "success")] == 2
    assert stats.pd_peers_removed == stats.pd_replies_stale == 0
    desc = sim.leader().store.peers[RANGE_ID].desc
    assert sorted((p.store_id, p.role) for p in desc.peers) == [(s, metapb_pb2.VOTER) for s in (1, 2, 3)]
    assert all(RANGE_ID not in sim.stores[s].store.peers for s in (4, 5))


def test_a_seed_replays_exactly() -> None:
    """PD's decisions, like everything else, are a pure function of the seed."""
    runs = []
    for _ in range(2):
        sim = StoreSimulation(SimOptions(seed=3, pd=True))
        stats = sim.run()
        runs.append((sim.world.now, stats.summary(), sim.history, sim.pd.model.get_range(RANGE_ID)))
    assert runs[0] == runs[1]


def _keeps_stale_replicas(monkeypatch: pytest.MonkeyPatch) -> None:
    """A store that ignores a leader talking to a newer replica of a range it holds a removed one
    of, and every other word that its replica was removed (the leader's tombstone message, PD's
    answer about a leaderless replica): PD's learner there never comes to life."""
    real = Store._peer_for_message

    def keeps_stale(self: Store, msg: raft_serverpb_pb2.RaftMessage) -> Peer | None:
        peer = self.peers.get(msg.range_id)
        if peer is not None and peer.peer_id < msg.to_peer.id:
            return None
        return real(self, msg)

    monkeypatch.setattr(Store, "_peer_for_message", keeps_stale)
    monkeypatch.setattr(Store, "destroy_if_removed", lambda self, range_id, current: False)


PLANTED_SEEDS = range(10)
"""With five stores a replica replaced while its store was down is stale once the store returns,
and PD later places a replica of the same range there again (seed 0 catches the planted bug; the
test needs one). Three stores no longer do: PD keeps a voter on a DOWN store when no other store
can take its place, so nothing goes stale."""


def test_planted_stale_replica_kept_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The stale replica blocks the new one: PD waits on its learner forever and the range never
    settles; the same seed passes with the real store."""
    _keeps_stale_replicas(monkeypatch)
    caught = None
    for seed in PLANTED_SEEDS:
        try:
            StoreSimulation(SimOptions(seed=seed, stores=5, pd=True)).run()
        except SimFailure as failure:
            caught = seed, str(failure).splitlines()[0]
            break
    assert caught is not None, f"no seed in {PLANTED_SEEDS} caught a store keeping stale replicas"
    seed, first = caught
    assert "did not settle" in first and "membership" in first, first
    monkeypatch.undo()
    stats = StoreSimulation(SimOptions(seed=seed, stores=5, pd=True)).run()
    assert stats.pd_stale_replicas_cleaned > 0


def test_leader_on_a_store_pd_thinks_down_hands_over_and_is_removed() -> None:
    """The leader's store heartbeats fail while its range heartbeats still arrive: PD adds a
    replacement, hands leadership over (a leader cannot remove itself) and removes the live
    replica, which applies its own removal."""
    sim = StoreSimulation(SimOptions(seed=1, pd=True, faults=False, ticks=300))
    muted = []

    def mute_the_leader() -> None:
        leader = sim.leader()
        if not sim.pd_grew or leader is None:
            sim.world.after(sim.tick_us, mute_the_leader)
            return
        leader.pd_agent.muted_until = sim.world.now + 250 * sim.tick_us
        muted.append(leader.id)

    sim.world.after(0, mute_the_leader)
    stats = sim.run()
    assert (stats.pd_learners_added, stats.pd_leaders_transferred, stats.pd_peers_removed) == (3, 1, 1)
    node = sim.stores[muted[0]]
    assert RANGE_ID not in node.store.peers and RANGE_ID in node.store.tombstones
    assert muted[0] not in {p.store_id for p in sim.leader().store.peers[RANGE_ID].desc.peers}


def test_controller_drops_an_operator_planned_for_a_membership_gone() -> None:
    """What ``--seed 5215 --stores 3 --pd`` found: PD's removal of learner 103 (its store down)
    timed out but committed late, while PD had moved on to promoting 103 (its store back). Re-sent
    with the new epoch, the promotion added 103 as a voter on a store that had tombstoned it: a
    voter that never exists, the range one replica short for good while PD saw it healthy."""
    desc = metapb_pb2.RangeDescriptor(id=RANGE_ID, epoch=metapb_pb2.RangeEpoch(conf_ver=7, version=1))
    desc.peers.add(id=1, store_id=1, role=metapb_pb2.VOTER)
    desc.peers.add(id=102, store_id=3, role=metapb_pb2.VOTER)
    desc.peers.add(id=103, store_id=2, role=metapb_pb2.LEARNER)
    info = pdpb_pb2.RangeInfo(descriptor=desc, leader=desc.peers[1])
    stores = [pdpb_pb2.StoreInfo(id=i, last_heartbeat_ms=0) for i in (1, 2, 3)]
    config = effective(pdpb_pb2.ScheduleConfig(replica_count=3, operator_timeout_ms=1_000))
    model = ClusterModel(config, 10_000, stores, [info])
    controller = OperatorController(model)
    promote = pdpb_pb2.Operator(kind=pdpb_pb2.Operator.PROMOTE_LEARNER, peer=desc.peers[2])
    op = Operator(RANGE_ID, "add-replica", "test", "promote 103", [promote], Priority.REPAIR)
    assert controller.add(op, 0)
    assert controller.step_for(info, 5) == promote
    later = pdpb_pb2.RangeInfo()
    later.CopyFrom(info)
    del later.descriptor.peers[2]  # the late removal applied
    later.descriptor.epoch.conf_ver += 1
    assert controller.step_for(later, 10) is None
    assert (op.status, controller.running()) == (STALE, [])


def test_planted_decommission_ignored_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """A replica checker that counts a replica on an OFFLINE store as healthy never empties a
    decommissioned store: the range never settles (seed 3 caught it when written); the same seed
    with the real checker moves the replicas off and buries the store."""
    monkeypatch.setattr(replica, "HEALTHY", (*replica.HEALTHY, pdpb_pb2.OFFLINE))
    caught = None
    for seed in range(6):
        try:
            StoreSimulation(SimOptions(seed=seed, pd=True)).run()
        except SimFailure as failure:
            caught = seed, str(failure).splitlines()[0]
            break
    assert caught is not None, "no seed caught a decommission that never completes"
    seed, first = caught
    assert "did not settle" in first, first
    monkeypatch.undo()
    stats = StoreSimulation(SimOptions(seed=seed, pd=True)).run()
    assert stats.pd_decommissions == stats.pd_tombstones == 1

"""PD mode: a simulated placement driver grows and repairs the range through real stores.

PD is one object and always available (its own replication is tested elsewhere; a failover here
only forgets the operators in flight), but all it exchanges with stores crosses the simulated
network, with its latency, loss, duplication and reordering, and the nemesis can cut stores off
from it, stall their links or fail their store heartbeats. It runs the real scheduling code at
simulator time (world milliseconds): the cluster model (``ClusterModel``: store liveness from
store heartbeats, the newest report per range), the ``OperatorController`` handing out one step
per range heartbeat, and the coordinator (``default_coordinator``: the replica checker and every
scheduler) run every ``schedule_interval_ms``, as on the PD leader. Stores report as ``PdWorker``
does (one batched request with ``range_info`` of every range they lead; the simulated stores
report every range every time) and carry out PD's decisions with ``carry_out_decisions``, so a
stale, lost or repeated reply exercises the same epoch checks as in production.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from kvdb.pb import metapb_pb2, pdpb_pb2
from kvdb.raft import ConfChangeType
from kvdb.server.pd_worker import LeaderlessReplicas, carry_out_decisions, describe_operator, range_info
from kvdb.store.errors import StoreError
from placement.cluster import ClusterModel
from placement.config import effective
from placement.schedule.controller import OperatorController
from placement.schedule.coordinator import default_coordinator
from placement.schedule.operator import STALE, TIMEOUT, Operator
from tests.storesim.faults import RANGE_ID, check_applied
from tests.storesim.transport import PD_NODE

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.sim.world import World
    from tests.storesim.cluster import StoreSimulation
    from tests.storesim.node import SimStore
    from tests.storesim.transport import SimNetwork

REPLICA_COUNT = 3
FIRST_ALLOCATED_ID = 100
"""PD's id allocator starts above the founding replica's peer id (1): peer ids only grow."""
DISCONNECT_HEARTBEATS = 4
"""Missed store heartbeats before PD calls a store DISCONNECTED (PD's default: 5 s at 1 s)."""
SIM_ASLEEP_CHECKS = 20
"""Heartbeats between an asleep follower's questions to PD (production: ``ASLEEP_CHECKS``, 600):
often enough that the liveness phase (40 heartbeats at the slowest) asks about each twice."""
DECOMMISSION_CHANCE = 0.3
"""Of seeds with two spare stores, those in which an operator decommissions a store."""
TIMEOUT_HEARTBEATS = 2
"""The shortest operator step timeout, in heartbeat intervals."""

_CHANGES = {
    pdpb_pb2.Operator.ADD_LEARNER: ConfChangeType.ADD_LEARNER,
    pdpb_pb2.Operator.PROMOTE_LEARNER: ConfChangeType.ADD_NODE,
    pdpb_pb2.Operator.REMOVE_PEER: ConfChangeType.REMOVE_NODE,
    pdpb_pb2.Operator.REPLACE_VOTER: ConfChangeType.ADD_NODE,  # what it does to ``op.peer``
}
_DONE_STATS = {
    pdpb_pb2.Operator.ADD_LEARNER: "pd_learners_added",
    pdpb_pb2.Operator.PROMOTE_LEARNER: "pd_learners_promoted",
    pdpb_pb2.Operator.REPLACE_VOTER: "pd_learners_promoted",
    pdpb_pb2.Operator.REMOVE_PEER: "pd_peers_removed",
    pdpb_pb2.Operator.TRANSFER_LEADER: "pd_leaders_transferred",
}
_END_STATS = {TIMEOUT: "pd_ops_timed_out", STALE: "pd_ops_stale"}


class SimTso:
    """PD's timestamp oracle at simulator scale: ``(world ms << 18) | counter``, strictly
    increasing and above every stamp handed out before (as PD's, whatever the mode: a store asks
    it across the network even when no ``SimPd`` schedules anything)."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.last = 0

    def next(self) -> int:
        self.last = max(self.last + 1, (self.world.now // 1000) << 18)
        return self.last

    def serve(self, network: SimNetwork, store_id: int, reply: Callable[[bytes], None]) -> None:
        """Answer one store's request (which reached PD) through the network."""
        network.send_pd(PD_NODE, store_id, self.next().to_bytes(8, "big"), reply)


class SimPd:
    """The placement driver: the cluster model, the operator controller and the coordinator.

    Timings are drawn per seed at simulator scale (PD's defaults are 1 s heartbeats, 5 s to
    DISCONNECTED, 30 s to DOWN, 200 ms between coordinator runs; here tens to hundreds of
    milliseconds), keeping their order.
    """

    def __init__(self, sim: StoreSimulation) -> None:
        self.sim = sim
        self.world = sim.world
        self.network = sim.network
        self.stats = sim.stats
        rng = self.rng = sim.world.child_rng()
        tick_ms = int(sim.config.tick_interval * 1000)
        self.heartbeat_ticks = rng.choice([3, 5, 10])
        heartbeat_ms = self.heartbeat_ticks * tick_ms
        self.disconnect_ms = DISCONNECT_HEARTBEATS * heartbeat_ms
        self.schedule = pdpb_pb2.ScheduleConfig(
            replica_count=REPLICA_COUNT,
            store_down_ms=rng.choice([500, 800]),
            # An operator made by the coordinator waits up to a heartbeat to reach the range's
            # leader, and until then its time runs from its creation (PD's: 60 s, 1 s heartbeats).
            operator_timeout_ms=max(rng.choice([150, 300, 1000]), TIMEOUT_HEARTBEATS * heartbeat_ms),
            schedule_interval_ms=tick_ms * rng.choice([1, 2, self.heartbeat_ticks]),
        )
        # Every store joined (PutStore) when the cluster started.
        stores = [pdpb_pb2.StoreInfo(id=sid, address=f"store-{sid}") for sid in sim.stores]
        first = sim.first_range
        self.model = ClusterModel(effective(self.schedule), self.disconnect_ms, stores,
                                  [pdpb_pb2.RangeInfo(descriptor=first, leader=first.peers[0])])
        self._next_id = FIRST_ALLOCATED_ID
        self._lead()
        self.world.after(0, self._coordinate)

    def _lead(self) -> None:
        """This leadership's operator controller and coordinator (operators live in memory only)."""
        self.controller = OperatorController(self.model)
        self.coordinator = default_coordinator(self.model, self.controller, self._alloc_id)

    def fail_over(self) -> None:
        """A new PD leader takes over: the replicated metadata (stores, ranges, ids) carries over,
        the operators in flight, held only in the old leader's memory, do not; silence counts
        from now."""
        self._lead()
        self.model.serving_since_ms = self.now_ms()
        self.stats.pd_failovers += 1
        self.world.trace("pd: a new leader takes over, forgetting operators in flight")

    def now_ms(self) -> int:
        return self.world.now // 1000

    def maybe_decommission(self, within_us: int) -> None:
        """Now and then (drawn per seed), an operator decommissions a store holding a voter at
        some point of the next ``within_us``: it is set OFFLINE, the replica checker moves its
        replicas off (leadership first if it leads), and the coordinator task makes it a
        TOMBSTONE once empty. Only with two spare stores, so that one dying for good later still
        leaves three."""
        if len(self.model.stores) >= REPLICA_COUNT + 2 and self.rng.random() < DECOMMISSION_CHANCE:
            self.world.after(self.rng.randrange(within_us), self._decommission)

    def _decommission(self) -> None:
        voters = [p.store_id for p in self.model.get_range(RANGE_ID).descriptor.peers
                  if p.role == metapb_pb2.VOTER and self.model.stores[p.store_id].state == pdpb_pb2.UP]
        store_id = self.rng.choice(voters)
        self.model.stores[store_id].state = pdpb_pb2.OFFLINE  # what SetStoreState writes
        self.stats.pd_decommissions += 1
        self.world.trace("pd: store %d is decommissioned (OFFLINE)", store_id)

    def store_view(self) -> dict[int, pdpb_pb2.StoreInfo]:
        """Every store with the state PD acts on now."""
        now = self.now_ms()
        return {store_id: self.model.store_with_state(store_id, now) for store_id in self.model.stores}

    def _alloc_id(self) -> int:
        self._next_id += 1
        return self._next_id

    # -- the coordinator ----------------------------------------------------------------------

    def _coordinate(self) -> None:
        """One coordinator run, then the next one an interval later (as PD's coordinator task)."""
        running = self.controller.running()
        for op in self.coordinator.run_once(self.now_ms()):
            self.stats.pd_ops_issued += 1
            self.world.trace("pd: operator %d: %s", op.id, op.description)
        for op in running:
            self._account(op, op.step)  # expired by the run
        for store_id in self.coordinator.tombstones(self.now_ms()):
            self.model.stores[store_id].state = pdpb_pb2.TOMBSTONE  # what the coordinator task writes
            self.stats.pd_tombstones += 1
            self.world.trace("pd: store %d holds no replica any more: TOMBSTONE", store_id)
        self.world.after(self.model.config.schedule_interval_ms * 1000, self._coordinate)

    def _account(self, op: Operator, step_before: int) -> None:
        """Count the steps ``op`` (running until just now) got done since ``step_before``, and how
        it ended if it did."""
        for step in op.steps[step_before:op.step]:
            name = _DONE_STATS[step.kind]
            setattr(self.stats, name, getattr(self.stats, name) + 1)
            self.world.trace("pd: %s done", describe_operator(step))
        if op.status in _END_STATS:
            name = _END_STATS[op.status]
            setattr(self.stats, name, getattr(self.stats, name) + 1)
            self.world.trace("pd: operator %d (%s) ended %s", op.id, op.description, op.status)

    # -- requests -----------------------------------------------------------------------------

    def on_store_heartbeat(self, data: bytes) -> None:
        req = pdpb_pb2.StoreHeartbeatRequest.FromString(data)
        self.model.store_heartbeat(req.store_id, req.stats, self.now_ms())
        self.stats.pd_store_heartbeats += 1

    def on_range_query(self, store_id: int, range_id: int, reply: Callable[[bytes], None], _: bytes) -> None:
        """``GetRangeByID``: PD's descriptor of the range (empty when it knows none), back to
        ``store_id`` through the network."""
        info = self.model.get_range(range_id)
        data = info.descriptor.SerializeToString() if info is not None else b""
        self.network.send_pd(PD_NODE, store_id, data, reply)

    def on_range_heartbeat(self, store_id: int, reply: Callable[[bytes], None], data: bytes) -> None:
        """Answer on the heartbeat's own stream: back to ``store_id`` through the network."""
        resp = pdpb_pb2.RangeHeartbeatResponse()
        for info in pdpb_pb2.RangeHeartbeatRequest.FromString(data).ranges:
            step = self._range_heartbeat(info)
            if step is not None:
                resp.decisions.add(range_id=info.descriptor.id, epoch=info.descriptor.epoch, operator=step)
        self.network.send_pd(PD_NODE, store_id, resp.SerializeToString(), reply)

    def _range_heartbeat(self, info: pdpb_pb2.RangeInfo) -> pdpb_pb2.Operator | None:
        """PD's decision on one reported range: the step its leader should carry out, if any."""
        self.stats.pd_range_heartbeats += 1
        desc = info.descriptor
        if self.model.ranges.is_stale(info):
            self.stats.pd_stale_heartbeats += 1
            return None  # no decision on a stale view
        self.model.put_range(info)
        op = self.controller.get(desc.id)
        if op is None:
            self.coordinator.mark_dirty(desc.id)
            return None
        step_before = op.step
        step = self.controller.step_for(info, self.now_ms())
        self._account(op, step_before)
        if op.finished:
            self.coordinator.mark_dirty(desc.id)
        if step is not None:
            self.world.trace("pd: range %d (epoch %d/%d, leader %d): %s", desc.id, desc.epoch.conf_ver,
                             desc.epoch.version, info.leader.id, describe_operator(step))
        return step

    # -- convergence --------------------------------------------------------------------------

    def grown(self) -> bool:
        """Whether PD's view of the range reached its replica count, all voters."""
        peers = self.model.get_range(RANGE_ID).descriptor.peers
        return len(peers) == REPLICA_COUNT and all(p.role == metapb_pb2.VOTER for p in peers)

    def unconverged(self, desc: metapb_pb2.RangeDescriptor) -> str | None:
        """Why the leader's descriptor ``desc`` is not yet what PD should leave behind, or None:
        exactly the replica count in voters, no learners, all on UP stores, PD agreeing, and every
        decommissioned store a TOMBSTONE."""
        voters = [p for p in desc.peers if p.role == metapb_pb2.VOTER]
        if len(voters) != REPLICA_COUNT or len(voters) != len(desc.peers):
            return f"membership {[(p.id, p.store_id, p.role) for p in desc.peers]}"
        now = self.now_ms()
        down = [p.store_id for p in voters if self.model.state(p.store_id, now) != pdpb_pb2.UP]
        if down:
            return f"voters on stores {down} that are not UP"
        if self.model.get_range(RANGE_ID).descriptor != desc:
            return "PD has not seen the current descriptor"
        if (op := self.controller.get(RANGE_ID)) is not None:
            return f"operator in flight: {op.description} at step {op.step}"
        offline = [sid for sid in self.model.stores if self.model.state(sid, now) == pdpb_pb2.OFFLINE]
        if offline:
            return f"decommissioned stores {offline} are not TOMBSTONE yet"
        return None


class PdAgent:
    """A store's side of PD, as ``PdWorker``: heartbeats every few ticks while the process runs
    (a paused or dead process sends none), carries out the operators PD answers with, and asks PD
    about replicas that have known no leader for a while (``LeaderlessReplicas``: a replica
    removed while it was not listening never learns it otherwise)."""

    def __init__(self, node: SimStore, pd: SimPd) -> None:
        self.node = node
        self.pd = pd
        self.network = pd.network
        self.stats = pd.stats
        self._ticks = 0
        self.muted_until = 0
        """World time until which store heartbeats fail (the range heartbeat stream still works)."""
        self._leaderless = LeaderlessReplicas(SIM_ASLEEP_CHECKS)

    def started(self) -> None:
        """A fresh process heartbeats on its first tick, as ``PdWorker`` does on start."""
        self._ticks = 0

    def tick(self) -> None:
        if self._ticks % self.pd.heartbeat_ticks == 0:
            self._heartbeat()
        self._ticks += 1

    def _heartbeat(self) -> None:
        node, pd = self.node, self.pd
        peers = list(node.store.peers.values())
        stats = pdpb_pb2.StoreStats(range_count=len(peers), leader_count=sum(p.is_leader for p in peers))
        req = pdpb_pb2.StoreHeartbeatRequest(store_id=node.id, stats=stats)
        if node.world.now >= self.muted_until:
            self.network.send_pd(node.id, PD_NODE, req.SerializeToString(), pd.on_store_heartbeat)
        # The reply stream belongs to this process: a reply reaching a later one is dropped.
        reply = partial(self._on_reply, node.incarnation)
        req = pdpb_pb2.RangeHeartbeatRequest(
            store_id=node.id, ranges=[range_info(p) for p in peers if p.is_leader and p.initialized])
        if req.ranges:
            self.network.send_pd(node.id, PD_NODE, req.SerializeToString(),
                                 partial(pd.on_range_heartbeat, node.id, reply))
        for range_id in self._leaderless.due(peers, node.store.hibernation.asleep):
            answer = partial(self._on_range_answer, node.incarnation, range_id)
            self.network.send_pd(node.id, PD_NODE, b"", partial(pd.on_range_query, node.id, range_id, answer))

    def _on_range_answer(self, incarnation: int, range_id: int, data: bytes) -> None:
        """What ``PdWorker._stale_replica_checks`` does with PD's answer."""
        node = self.node
        if incarnation == node.incarnation and node.alive and data:
            current = metapb_pb2.RangeDescriptor.FromString(data)
            node.deliver(("pd",), node.store.destroy_if_removed, range_id, current)

    def _on_reply(self, incarnation: int, data: bytes) -> None:
        node = self.node
        if incarnation == node.incarnation and node.alive:
            node.deliver(("pd",), self._carry_out, data)

    def _carry_out(self, data: bytes) -> None:
        """What ``PdWorker._read_decisions`` does with one reply."""
        resp = pdpb_pb2.RangeHeartbeatResponse.FromString(data)
        self.stats.pd_replies_stale += carry_out_decisions(self.node.store, resp, self._outcome)

    def _outcome(self, op: pdpb_pb2.Operator) -> Callable[[object], None]:
        self.node.world.trace("%r: carry out %s", self.node, describe_operator(op))
        return partial(self._conf_changed, op)

    def _conf_changed(self, op: pdpb_pb2.Operator, result: object) -> None:
        if isinstance(result, StoreError):
            self.node.world.trace("%r: %s failed: %s", self.node, describe_operator(op), result)
            return
        check_applied(_CHANGES[op.kind], op.peer, result)
        self.stats.pd_conf_changes += 1

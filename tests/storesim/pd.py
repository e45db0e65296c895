"""PD mode: a simulated placement driver grows and repairs the range through real stores.

PD is one object and always available (its own replication is tested elsewhere; a failover here
only forgets the operators in flight), but all it exchanges with stores crosses the simulated
network, with its latency, loss, duplication and reordering, and the nemesis can cut stores off
from it, stall their links or fail their store heartbeats. It runs the real scheduling code:
``store_state`` over the last heartbeat times (world milliseconds), and on each range heartbeat
``OperatorTracker.next_operator`` with ``check_replicas``, keeping only the newest report per
range (``range_report_stale``: higher epoch, then higher term), as ``placement/service.py`` does.
Stores report as ``PdWorker`` does (one batched request with ``range_info`` of every range they
lead; the simulated stores report every range every time) and carry out PD's decisions with
``carry_out_decisions``, so a stale, lost or repeated reply exercises the same epoch checks as in
production.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from kvdb.pb import metapb_pb2, pdpb_pb2
from kvdb.raft import ConfChangeType
from kvdb.server.pd_worker import carry_out_decisions, describe_operator, range_info
from kvdb.store.errors import StoreError
from placement.checker import OperatorTracker, check_replicas, store_state
from placement.range_tree import range_report_stale
from tests.storesim.faults import RANGE_ID, check_applied
from tests.storesim.transport import PD_NODE

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.storesim.cluster import StoreSimulation
    from tests.storesim.node import SimStore

REPLICA_COUNT = 3
FIRST_ALLOCATED_ID = 100
"""PD's id allocator starts above the founding replica's peer id (1): peer ids only grow."""
DISCONNECT_HEARTBEATS = 4
"""Missed store heartbeats before PD calls a store DISCONNECTED (PD's default: 5 s at 1 s)."""

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


class SimPd:
    """The placement driver: store liveness, the latest descriptor per range, one operator each.

    Timings are drawn per seed at simulator scale (PD's defaults are 1 s heartbeats, 5 s to
    DISCONNECTED, 30 s to DOWN; here tens to hundreds of milliseconds), keeping their order.
    """

    def __init__(self, sim: StoreSimulation) -> None:
        self.sim = sim
        self.world = sim.world
        self.network = sim.network
        self.stats = sim.stats
        rng = sim.world.child_rng()
        tick_ms = int(sim.config.tick_interval * 1000)
        self.heartbeat_ticks = rng.choice([3, 5, 10])
        self.disconnect_ms = DISCONNECT_HEARTBEATS * self.heartbeat_ticks * tick_ms
        self.schedule = pdpb_pb2.ScheduleConfig(
            replica_count=REPLICA_COUNT,
            store_down_ms=rng.choice([500, 800]),
            operator_timeout_ms=rng.choice([150, 300, 1000]),
        )
        self.operators = OperatorTracker(self.schedule.operator_timeout_ms)
        # Every store joined (PutStore) when the cluster started.
        self.stores = {sid: pdpb_pb2.StoreInfo(id=sid, address=f"store-{sid}") for sid in sim.stores}
        first = sim.first_range
        self.ranges = {first.id: pdpb_pb2.RangeInfo(descriptor=first, leader=first.peers[0])}
        self._next_id = FIRST_ALLOCATED_ID
        self.serving_since_ms = 0  # when the current PD leader began to serve

    def fail_over(self) -> None:
        """A new PD leader takes over: the replicated metadata (stores, ranges, ids) carries over,
        the operators in flight, held only in the old leader's memory, do not; silence counts
        from now."""
        self.operators = OperatorTracker(self.schedule.operator_timeout_ms)
        self.serving_since_ms = self.now_ms()
        self.stats.pd_failovers += 1
        self.world.trace("pd: a new leader takes over, forgetting operators in flight")

    def now_ms(self) -> int:
        return self.world.now // 1000

    def store_view(self) -> dict[int, pdpb_pb2.StoreInfo]:
        """Every store with the state PD acts on now (the stored records keep only heartbeats)."""
        view = {}
        now = self.now_ms()
        for store_id, stored in self.stores.items():
            info = pdpb_pb2.StoreInfo()
            info.CopyFrom(stored)
            info.state = store_state(stored, now, self.disconnect_ms, self.schedule.store_down_ms,
                                     self.serving_since_ms)
            view[store_id] = info
        return view

    def _alloc_id(self) -> int:
        self._next_id += 1
        return self._next_id

    # -- requests -----------------------------------------------------------------------------

    def on_store_heartbeat(self, data: bytes) -> None:
        req = pdpb_pb2.StoreHeartbeatRequest.FromString(data)
        info = self.stores[req.store_id]
        info.stats.CopyFrom(req.stats)
        info.last_heartbeat_ms = self.now_ms()
        self.stats.pd_store_heartbeats += 1

    def on_range_heartbeat(self, store_id: int, reply: Callable[[bytes], None], data: bytes) -> None:
        """Answer on the heartbeat's own stream: back to ``store_id`` through the network."""
        resp = pdpb_pb2.RangeHeartbeatResponse()
        for info in pdpb_pb2.RangeHeartbeatRequest.FromString(data).ranges:
            op = self._range_heartbeat(info)
            if op is not None:
                resp.decisions.add(range_id=info.descriptor.id, epoch=info.descriptor.epoch, operator=op)
        self.network.send_pd(PD_NODE, store_id, resp.SerializeToString(), reply)

    def _range_heartbeat(self, info: pdpb_pb2.RangeInfo) -> pdpb_pb2.Operator | None:
        """PD's decision on one reported range: the operator its leader should carry out, if any."""
        self.stats.pd_range_heartbeats += 1
        desc = info.descriptor
        old = self.ranges.get(desc.id)
        if old is not None and range_report_stale(info, old):
            self.stats.pd_stale_heartbeats += 1
            return None  # no decision on a stale view
        self.ranges[desc.id] = info
        stores = self.store_view()
        tracker = self.operators
        before = tracker.pending().get(desc.id)
        timed_out, stale = tracker.timed_out, tracker.stale
        op = tracker.next_operator(
            info, self.now_ms(), lambda: check_replicas(info, stores, self.schedule, self._alloc_id))
        if before is not None and op is not before:
            if tracker.timed_out > timed_out:
                self.stats.pd_ops_timed_out += 1
                self.world.trace("pd: %s timed out", describe_operator(before))
            elif tracker.stale > stale:
                self.stats.pd_ops_stale += 1
                self.world.trace("pd: %s dropped: the membership changed without it",
                                 describe_operator(before))
            else:
                name = _DONE_STATS[before.kind]
                setattr(self.stats, name, getattr(self.stats, name) + 1)
                self.world.trace("pd: %s done", describe_operator(before))
        if op is not None:
            if op is not before:
                self.stats.pd_ops_issued += 1
                self.world.trace("pd: range %d (epoch %d/%d, leader %d): %s", desc.id, desc.epoch.conf_ver,
                                 desc.epoch.version, info.leader.id, describe_operator(op))
        return op

    # -- convergence --------------------------------------------------------------------------

    def grown(self) -> bool:
        """Whether PD's view of the range reached its replica count, all voters."""
        peers = self.ranges[RANGE_ID].descriptor.peers
        return len(peers) == REPLICA_COUNT and all(p.role == metapb_pb2.VOTER for p in peers)

    def unconverged(self, desc: metapb_pb2.RangeDescriptor) -> str | None:
        """Why the leader's descriptor ``desc`` is not yet what PD should leave behind, or None:
        exactly the replica count in voters, no learners, all on UP stores, and PD agreeing."""
        voters = [p for p in desc.peers if p.role == metapb_pb2.VOTER]
        if len(voters) != REPLICA_COUNT or len(voters) != len(desc.peers):
            return f"membership {[(p.id, p.store_id, p.role) for p in desc.peers]}"
        view = self.store_view()
        down = [p.store_id for p in voters if view[p.store_id].state != pdpb_pb2.UP]
        if down:
            return f"voters on stores {down} that are not UP"
        if self.ranges[RANGE_ID].descriptor != desc:
            return "PD has not seen the current descriptor"
        if self.operators.pending():
            return f"operator in flight: {describe_operator(self.operators.pending()[RANGE_ID])}"
        return None


class PdAgent:
    """A store's side of PD, as ``PdWorker``: heartbeats every few ticks while the process runs
    (a paused or dead process sends none), and carries out the operators PD answers with."""

    def __init__(self, node: SimStore, pd: SimPd) -> None:
        self.node = node
        self.pd = pd
        self.network = pd.network
        self.stats = pd.stats
        self._ticks = 0
        self.muted_until = 0
        """World time until which store heartbeats fail (the range heartbeat stream still works)."""

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

"""A whole simulated cluster: nodes, network, checker, workload and faults, driven by one seed.

A run is a fault phase (clients, membership changes and every fault at once) followed by a
liveness phase (faults stop, the network heals, crashed nodes restart) in which a leader must
emerge and a fresh proposal must be acknowledged within a bounded number of ticks.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from kvdb.raft import MemoryStorage
from kvdb.raft.errors import ProposalDroppedError
from kvdb.raft.types import (
    ConfChange,
    ConfState,
    Entry,
    HardState,
    Message,
    MessageType,
    Role,
    Snapshot,
    SnapshotMetadata,
)
from tests.sim.checker import Checker, LogView
from tests.sim.faults import BASE_WEIGHTS, PROFILES, Nemesis
from tests.sim.network import Network
from tests.sim.node import TICK_JITTER_US, SimNode
from tests.sim.statemachine import GENESIS, StateMachine
from tests.sim.swarm import Profile, draw_profile
from tests.sim.workload import Workload
from tests.sim.world import TICK_US, World

INIT_INDEX = 5
INIT_TERM = 5
"""Initial members boot from a snapshot at this index (as TiKV does), never from index 0.

A replica added later starts empty and can only learn the membership from a snapshot: if the
leader's log still began at index 1, it would replay conf changes onto an empty configuration.
"""

DEFAULT_TICKS = 1500
DEFAULT_LIVENESS_TICKS = 400


class LivenessFailure(AssertionError):
    """The healed cluster did not commit a fresh proposal in time."""


class SimFailure(AssertionError):
    """A run failed; the message says how to reproduce it exactly."""


@dataclass
class SimOptions:
    seed: int
    nodes: int = 3
    ticks: int = DEFAULT_TICKS
    liveness_ticks: int = DEFAULT_LIVENESS_TICKS
    verbose: bool = False
    profile: str | None = None
    """Force this swarm profile (``tests/sim/faults.py`` PROFILES); None: drawn from the seed."""

    def repro(self) -> str:
        cmd = f".venv/bin/python -m tests.sim --seed {self.seed} --nodes {self.nodes}"
        if self.profile is not None:
            cmd += f" --profile {self.profile}"
        if self.ticks != DEFAULT_TICKS:
            cmd += f" --ticks {self.ticks}"
        if self.liveness_ticks != DEFAULT_LIVENESS_TICKS:
            cmd += f" --liveness-ticks {self.liveness_ticks}"
        return cmd


@dataclass
class Stats:
    """What a run did, so tests can assert that the workload really exercised the core."""

    runs: int = 0
    proposals: int = 0
    proposals_dropped: int = 0
    proposals_acked: int = 0
    reads_issued: int = 0
    reads_answered: int = 0
    lease_read_checks: int = 0
    leader_changes: int = 0
    crashes: int = 0
    crashes_mid_write: int = 0
    conf_changes_proposed: int = 0
    conf_changes_applied: int = 0
    transfers_requested: int = 0
    transfers_completed: int = 0
    compactions: int = 0
    snapshots_sent: int = 0
    snapshots_applied: int = 0
    aimed_faults: int = 0
    """Aimed schedules that fired (cut after an ack, crash after a heartbeat ack, Figure 8, ...)."""
    messages: int = 0

    def add(self, other: Stats) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def summary(self) -> str:
        return ", ".join(f"{f.name}={getattr(self, f.name)}" for f in fields(self))


class Simulation:
    """One run: owns the world, the nodes and everything that acts on them, and wires their
    callbacks together (nodes report applies, leaders and writes here; the workload and the
    nemesis act through it)."""

    def __init__(self, options: SimOptions) -> None:
        self.options = options
        self.world = World(options.seed, options.verbose)
        self.rng = self.world.rng
        self.stats = Stats(runs=1)
        # First draw of the seed: the rest of the run depends on it.
        self.profile: Profile = draw_profile(self.rng, PROFILES, BASE_WEIGHTS, options.profile)
        self.world.trace("%s", self.profile.describe())
        self.checker = Checker(self._leader_logs, self._leaseholders, self._electable_lacking)
        # The promise profile: a drift bound of a tenth of a tick (the lease ends a tenth of a tick
        # before the followers' promise), on a quick network and disk, so that anything that
        # shortens the promise by a tick leaves time for an election under the old lease.
        self.quick = self.profile.name == "promise"
        self.jitter_us = TICK_JITTER_US // 5 if self.quick else TICK_JITTER_US
        self.network = Network(self.world, self._deliver, self._on_drop)
        if self.quick:
            self.network.latency_us = (200, 500)
        self.raft_params = self._pick_raft_params()
        self.world.trace("raft params %s", self.raft_params)
        # The latest membership applied anywhere (applies happen in index order everywhere).
        voters = list(range(1, options.nodes + 1))
        self.conf = ConfState(voters=voters)
        self.next_id = options.nodes + 1
        self.max_members = options.nodes + 2
        self.nodes: dict[int, SimNode] = {}
        genesis = StateMachine(INIT_INDEX, GENESIS)
        self.checker.record_genesis(INIT_INDEX, INIT_TERM, GENESIS)
        for node_id in voters:
            storage = MemoryStorage()
            storage.apply_snapshot(
                Snapshot(SnapshotMetadata(INIT_INDEX, INIT_TERM, self.conf), genesis.snapshot_data())
            )
            storage.set_hard_state(HardState(term=INIT_TERM, commit=INIT_INDEX))
            self.nodes[node_id] = SimNode(self, node_id, storage)
        self.workload = Workload(self)
        if self.profile.name == "churn":
            self.workload.boost({"_change_membership": 4, "_compact": 3})
        elif self.profile.name == "figure8":
            # Elections among varied logs, mostly in a settled membership (see _electable_lacking).
            self.workload.boost({"_change_membership": 0.1})
        self.nemesis = Nemesis(self)
        self.live_acked = False
        self._probe: tuple[int, int, int] | None = None  # (node id, incarnation, give-up time)

    def _pick_raft_params(self) -> dict[str, object]:
        """Vary the knobs that change message shapes and timing, so seeds cover more paths."""
        rng = self.rng
        pre_vote = rng.random() < 0.85
        # Small appends make a lagging follower (Figure 8's minority, a slow follower) get its
        # entries one at a time, so commits happen on every prefix.
        small = self.profile.name in ("churn", "figure8")
        return {
            "election_tick": 10,
            "heartbeat_tick": rng.choice([1, 1, 2, 3]),
            "max_size_per_msg": rng.choice([256, 64, 1] if small else [1 << 20, 256, 64]),
            "max_inflight_msgs": rng.choice([8, 2] if small else [256, 8, 2]),
            "max_committed_size_per_ready": rng.choice([None, None, 100]),
            "max_uncommitted_entries_size": rng.choice([0, 0, 2000]),
            "pre_vote": pre_vote,
            "check_quorum": rng.random() < 0.85 or self.quick,  # no lease without it
            "election_bands": pre_vote and rng.random() < 0.5,  # the stores' choice, or etcd's
            "broadcast_commit": rng.random() < 0.5,  # etcd's choice, or the stores'
        }

    # -- running ------------------------------------------------------------------------------

    def run(self) -> Stats:
        """Run the fault phase then the liveness phase; raise ``SimFailure`` on any failure."""
        try:
            self._run()
        except Exception as exc:
            opts = self.options
            raise SimFailure(
                f"seed {opts.seed} ({opts.nodes} nodes) failed at {self.world.now / 1000:.3f}ms: "
                f"{type(exc).__name__}: {exc}\n"
                f"  repro: {opts.repro()}  (add --verbose for the full trace)\n"
                f"  {self.profile.describe()}\n"
                f"  last events:\n{self.world.recent_trace()}"
            ) from exc
        return self.stats

    def _run(self) -> None:
        for node in list(self.nodes.values()):
            node.start()
        self.workload.start()
        self.nemesis.start()
        fault_end = self.options.ticks * TICK_US
        self.world.run_until(fault_end)
        self._heal_all()
        deadline = fault_end + self.options.liveness_ticks * TICK_US
        self.world.after(0, self._liveness_probe)
        self.world.run_until(deadline, stop=lambda: self.live_acked)
        if not self.live_acked:
            leader = self.leader()
            raise LivenessFailure(
                f"no proposal acknowledged within {self.options.liveness_ticks} ticks after healing "
                f"(leader: {leader}, membership {self.conf}, "
                f"nodes: {[self._describe(n) for n in self.nodes.values() if not n.retired]})"
            )

    def fingerprint(self) -> str:
        """A digest of the whole committed history, to compare runs of one seed."""
        index = self.checker.max_applied
        return f"{index}:{self.checker.applied[index][3].hex()}@{self.world.now}"

    def _describe(self, node: SimNode) -> str:
        if not node.alive:
            return f"{node.id}:down"
        st = node.raw.raft
        return f"{node.id}:term={st.term},role={st.role},lead={st.lead},applied={node.sm.index}"

    def _heal_all(self) -> None:
        """End of the fault phase: no more faults, no more partitions, everyone back up."""
        self.world.trace("--- liveness phase: heal everything ---")
        self.workload.active = False
        self.nemesis.active = False
        self.network.heal()
        self.network.drop_rate = self.network.dup_rate = 0.0
        for node in list(self.nodes.values()):
            if not node.alive and not node.retired:
                node.start()

    def _liveness_probe(self) -> None:
        """Keep one fresh proposal going on the current leader until it is acknowledged."""
        if self.live_acked:
            return
        leader = self.leader()
        probe = self._probe
        stale = (
            probe is None
            or self.world.now > probe[2]
            or (leader is not None and (leader.id, leader.incarnation) != probe[:2])
        )
        if leader is not None and stale:
            data = b"live%d" % self.world.now
            try:
                leader.propose(data)
            except ProposalDroppedError:
                pass
            else:
                self.workload.track_write(data, leader)
                self._probe = (leader.id, leader.incarnation, self.world.now + 30 * TICK_US)
        self.world.after(TICK_US, self._liveness_probe)

    # -- queries ------------------------------------------------------------------------------

    def alive_nodes(self) -> list[SimNode]:
        return [n for n in self.nodes.values() if n.alive]

    def leader(self) -> SimNode | None:
        """The live node that leads the highest term, if any."""
        best = None
        for node in self.nodes.values():
            if node.alive and node.raw.raft.role == Role.LEADER:
                if best is None or node.raw.raft.term > best.raw.raft.term:
                    best = node
        return best

    def _electable_lacking(self, index: int, term: int) -> list[int]:
        """Voters whose durable log lacks entry ``(index, term)`` yet could win an election.

        Only while the membership is settled (no joint config, no change in flight): then a
        committed entry is on a majority of the current voters, and any voter whose durable log
        a quorum would find at least as up to date as theirs could be elected.
        """
        conf = self.conf
        if conf.voters_outgoing or self.workload.pending_cc is not None:
            return []
        voters = [self.nodes[v] for v in conf.voters if v in self.nodes and not self.nodes[v].retired]
        if len(voters) != len(conf.voters):
            return []
        tips = {n.id: n.durable_tip() for n in voters}
        quorum = len(voters) // 2 + 1
        lacking = []
        for node in voters:
            if node.durably_has(index, term):
                continue
            tip = tips[node.id]
            if sum(1 for other in tips.values() if other <= tip) >= quorum:
                lacking.append(node.id)
        return lacking

    def _leaseholders(self) -> list[SimNode]:
        return [n for n in self.nodes.values() if n.alive and n.lease is not None]

    def _leader_logs(self) -> list[tuple[int, int, LogView]]:
        return [
            (n.id, n.raw.raft.term, n.raw.raft.raft_log)
            for n in self.nodes.values()
            if n.alive and n.raw.raft.role == Role.LEADER
        ]

    def draw_fast_clock(self) -> int:
        """How early a new node's ticks come (µs): with skew, most nodes run at the drift bound."""
        if not self.profile.skew:
            return 0
        return self.rng.choice([0, self.jitter_us * 4 // 5, self.jitter_us, self.jitter_us])

    def disk_latency(self) -> int:
        if self.quick:
            return self.rng.randint(100, 500)
        if self.rng.random() < 0.05:
            return self.rng.randint(5_000, 20_000)
        return self.rng.randint(100, 3_000)

    # -- messages -----------------------------------------------------------------------------

    def send(self, msg: Message) -> None:
        self.stats.messages += 1
        self.nemesis.on_send(msg)
        if msg.type == MessageType.SNAP:
            self.stats.snapshots_sent += 1
        self.network.send(msg)

    def _deliver(self, msg: Message) -> None:
        node = self.nodes.get(msg.to)
        if node is None or not node.alive:
            self._on_drop(msg)
            return
        node.receive(msg)
        if msg.type == MessageType.SNAP:
            self._report(msg.frm, "report_snapshot", msg.to, False)
        self.nemesis.on_deliver(msg)

    def _on_drop(self, msg: Message) -> None:
        """Tell the sender what a real transport would notice: a snapshot failed, a peer is gone."""
        if msg.type == MessageType.SNAP:
            self._report(msg.frm, "report_snapshot", msg.to, True)
        elif self.rng.random() < 0.1:
            self._report(msg.frm, "report_unreachable", msg.to)

    def _report(self, node_id: int, method: str, *args: object) -> None:
        sender = self.nodes.get(node_id)
        if sender is not None and sender.alive:
            delay = self.rng.randint(100, 2_000)
            self.world.after(delay, self._report_now, sender, sender.incarnation, method, args)

    def _report_now(self, node: SimNode, incarnation: int, method: str, args: tuple[object, ...]) -> None:
        if node.incarnation == incarnation:
            self.world.trace("%r %s%r", node, method, args)
            getattr(node, method)(*args)

    # -- callbacks from nodes -----------------------------------------------------------------

    def on_write_started(self, node: SimNode, latency: int) -> None:
        self.nemesis.on_write_started(node, latency)

    def on_new_leader(self, node: SimNode, term: int) -> None:
        self.stats.leader_changes += 1
        self.world.trace("%r became leader of term %d", node, term)
        self.workload.on_new_leader(node)
        self.nemesis.on_new_leader(node)

    def on_entry_applied(self, node: SimNode, entry: Entry) -> None:
        if self.workload.on_entry_applied(node, entry):
            # A write was acknowledged: whoever holds a lease must already see it.
            for other in self._leaseholders():
                other.check_lease()
            if entry.data.startswith(b"live"):
                self.live_acked = True

    def on_read_answered(self, ctx: bytes) -> None:
        self.workload.on_read_answered(ctx)

    def on_conf_applied(self, index: int, cc: ConfChange, conf: ConfState, first: bool) -> None:
        """A conf change applied; the first apply of an index makes it the cluster's membership.

        New members get an empty replica at once. Replicas no longer in the membership are
        destroyed only once every member has applied the change: until the members know it is
        committed they may still need the old ones (in a joint config, the outgoing majority).
        """
        self.workload.on_conf_applied(cc)
        if not first:
            return
        self.stats.conf_changes_applied += 1
        self.conf = conf
        members = sorted({*conf.voters, *conf.learners, *conf.voters_outgoing, *conf.learners_next})
        for node_id in members:
            if node_id not in self.nodes:
                new = SimNode(self, node_id, MemoryStorage())
                self.nodes[node_id] = new
                new.start()
        removed = [n for n in self.nodes.values() if n.id not in members and not n.retired]
        if removed:
            self.world.after(TICK_US, self._retire_when_applied, index, members, removed)

    def _retire_when_applied(self, index: int, members: list[int], removed: list[SimNode]) -> None:
        # A member removed by a later change meanwhile no longer counts.
        current = [self.nodes[m] for m in members if not self.nodes[m].retired]
        if all(n.alive and n.sm.index >= index for n in current):
            for node in removed:
                if not node.retired:
                    if node.alive:
                        node.crash()
                    node.retired = True
                    self.world.trace("%r retired", node)
        else:
            self.world.after(TICK_US, self._retire_when_applied, index, members, removed)

"""Clients and operators: proposals, ReadIndex reads, membership changes, leader transfers and
log compaction, issued at random during the fault phase.

It also decides what counts as acknowledged: a write is acknowledged when the node it was
proposed on applies it (in the same life: a crash forgets pending proposals, as a client
connection would be lost). Membership changes follow the policy an operator would: at most one
in flight, at least 3 voters, new replicas join as learners, ids are never reused.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kvdb.raft.errors import ProposalDroppedError
from kvdb.raft.types import ConfChange, ConfChangeSingle, ConfChangeTransition, ConfChangeType, Entry
from tests.sim.world import TICK_US

if TYPE_CHECKING:
    from tests.sim.cluster import Simulation
    from tests.sim.node import SimNode

MIN_VOTERS = 3
CONF_CHANGE_TIMEOUT_US = 60 * TICK_US
"""After this long without applying, a conf change is presumed lost and another may be tried
(the core itself refuses a second one while one is unapplied in its log)."""
TRANSFER_WINDOW_US = 30 * TICK_US

ADD, LEARNER, REMOVE = ConfChangeType.ADD_NODE, ConfChangeType.ADD_LEARNER, ConfChangeType.REMOVE_NODE
TRANSITIONS = (ConfChangeTransition.AUTO, ConfChangeTransition.IMPLICIT, ConfChangeTransition.EXPLICIT)


class Workload:
    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        self.world = sim.world
        self.stats = sim.stats
        self.rng = sim.world.child_rng()
        self.active = False
        self.counter = 0  # makes every proposal, read ctx and conf change context unique
        self.pending_writes: dict[bytes, tuple[int, int]] = {}  # data -> (node id, incarnation)
        self.pending_cc: tuple[bytes, int] | None = None  # (context, give-up time)
        self.transfer: tuple[int, int] | None = None  # (target, deadline)
        self.answered: set[bytes] = set()
        self.actions = [
            (self._propose, 50),
            (self._read, 20),
            (self._change_membership, 6),
            (self._transfer_leader, 3),
            (self._compact, 5),
        ]

    def boost(self, factors: dict[str, float]) -> None:
        """Multiply the weights of some actions (by method name), for a swarm profile."""
        self.actions = [(a, w * factors.get(a.__name__, 1)) for a, w in self.actions]

    def start(self) -> None:
        self.active = True
        self.world.after(0, self._step)

    def _step(self) -> None:
        if not self.active:
            return
        actions, weights = zip(*self.actions, strict=True)
        self.rng.choices(actions, weights)[0]()
        self.world.after(self.rng.randint(500, 8_000), self._step)

    def _unique(self, prefix: bytes) -> bytes:
        self.counter += 1
        return b"%s%d" % (prefix, self.counter)

    def _pick_node(self, leader_bias: float) -> SimNode | None:
        leader = self.sim.leader()
        if leader is not None and self.rng.random() < leader_bias:
            return leader
        alive = self.sim.alive_nodes()
        return self.rng.choice(alive) if alive else None

    # -- writes and reads ---------------------------------------------------------------------

    def _propose(self) -> None:
        node = self._pick_node(leader_bias=0.6)
        if node is None:
            return
        data = self._unique(b"w")
        try:
            node.propose(data)
        except ProposalDroppedError:
            self.stats.proposals_dropped += 1
            return
        self.track_write(data, node)

    def track_write(self, data: bytes, node: SimNode) -> None:
        """``data`` was proposed on ``node``: acknowledge it when ``node`` applies it."""
        self.pending_writes[data] = (node.id, node.incarnation)
        self.stats.proposals += 1

    def on_entry_applied(self, node: SimNode, entry: Entry) -> bool:
        """True if this apply acknowledges a write to its client."""
        owner = self.pending_writes.get(entry.data)
        if owner is None or owner != (node.id, node.incarnation):
            return False
        del self.pending_writes[entry.data]
        self.sim.checker.write_acked(entry.index)
        self.stats.proposals_acked += 1
        return True

    def _read(self) -> None:
        node = self._pick_node(leader_bias=0.5)
        if node is not None:
            self.read_on(node)

    def read_on(self, node: SimNode) -> None:
        """Issue a ReadIndex read on ``node`` (dropped reads are a client's retry, not a bug)."""
        ctx = self._unique(b"r")
        self.sim.checker.read_issued(ctx)
        self.stats.reads_issued += 1
        try:
            node.read_index(ctx)
        except ProposalDroppedError:
            pass

    def on_read_answered(self, ctx: bytes) -> None:
        if ctx not in self.answered:
            self.answered.add(ctx)
            self.stats.reads_answered += 1

    # -- operators ----------------------------------------------------------------------------

    def _change_membership(self) -> None:
        if self.pending_cc is not None and self.world.now < self.pending_cc[1]:
            return
        leader = self.sim.leader()
        if leader is None:
            return
        cc = self._next_conf_change(leader.id)
        if cc is None:
            return
        node = leader if self.rng.random() < 0.8 else self._pick_node(0.0)
        try:
            node.propose_conf_change(cc)
        except ProposalDroppedError:
            return
        self.world.trace("%r proposed %r ctx %r", node, cc, cc.context)
        self.pending_cc = (cc.context, self.world.now + CONF_CHANGE_TIMEOUT_US)
        self.stats.conf_changes_proposed += 1

    def _next_conf_change(self, leader_id: int) -> ConfChange | None:
        """A random valid next step from the latest applied membership, or None to wait."""
        conf, rng = self.sim.conf, self.rng
        context = self._unique(b"cc")
        if conf.voters_outgoing:
            # Joint: leave it explicitly, or wait for the leader to leave it by itself.
            return None if conf.auto_leave else ConfChange([], context=context)
        voters, learners = conf.voters, conf.learners
        choices = []
        if len(voters) + len(learners) < self.sim.max_members:
            choices.append("add_learner")
        if learners:
            choices += ["promote", "remove_learner", "replace_one", "demote"]
        if len(learners) >= 2:
            choices.append("replace_two")
        if len(voters) > MIN_VOTERS:
            choices.append("remove_voter")
            if leader_id in voters:
                choices.append("remove_leader")
        kind = rng.choice(choices)
        if kind == "add_learner":
            changes = [ConfChangeSingle(LEARNER, self.sim.next_id)]
            self.sim.next_id += 1
        elif kind == "promote":
            changes = [ConfChangeSingle(ADD, rng.choice(learners))]
        elif kind == "remove_learner":
            changes = [ConfChangeSingle(REMOVE, rng.choice(learners))]
        elif kind == "remove_voter":
            changes = [ConfChangeSingle(REMOVE, rng.choice(voters))]
        elif kind == "remove_leader":
            changes = [ConfChangeSingle(REMOVE, leader_id)]
        elif kind == "replace_one":
            changes = [
                ConfChangeSingle(ADD, rng.choice(learners)),
                ConfChangeSingle(REMOVE, rng.choice(voters)),
            ]
        elif kind == "demote":
            changes = [
                ConfChangeSingle(ADD, rng.choice(learners)),
                ConfChangeSingle(LEARNER, rng.choice(voters)),
            ]
        else:  # replace_two
            new = rng.sample(learners, 2)
            old = rng.sample(voters, 2)
            changes = [ConfChangeSingle(ADD, n) for n in new] + [ConfChangeSingle(REMOVE, o) for o in old]
        # A single change may still go through a joint config if asked to.
        transition = rng.choice(TRANSITIONS) if len(changes) > 1 or rng.random() < 0.2 else TRANSITIONS[0]
        return ConfChange(changes, transition, context)

    def on_conf_applied(self, cc: ConfChange) -> None:
        if self.pending_cc is not None and cc.context == self.pending_cc[0]:
            self.pending_cc = None

    def _transfer_leader(self) -> None:
        leader = self.sim.leader()
        if leader is not None:
            self.transfer_from(leader)

    def transfer_from(self, leader: SimNode) -> None:
        """Ask ``leader`` to hand leadership to a random other voter."""
        targets = [v for v in self.sim.conf.voters if v != leader.id]
        if not targets:
            return
        target = self.rng.choice(targets)
        self.world.trace("%r transfer leadership to %d", leader, target)
        leader.transfer_leader(target)
        self.transfer = (target, self.world.now + TRANSFER_WINDOW_US)
        self.stats.transfers_requested += 1

    def on_new_leader(self, node: SimNode) -> None:
        if self.transfer is not None and node.id == self.transfer[0] and self.world.now <= self.transfer[1]:
            self.stats.transfers_completed += 1
            self.transfer = None

    def _compact(self) -> None:
        candidates = [n for n in self.sim.alive_nodes() if n.sm.index > 0]
        if candidates:
            self.rng.choice(candidates).compact(self.rng)
            self.stats.compactions += 1

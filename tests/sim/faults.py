"""The nemesis: crashes (also in the middle of a disk write), partitions, a lossy network, and
fault schedules aimed at the windows where Raft's and the lease's rules are easiest to break.

Faults only run during the fault phase; every partition heals by itself after a while, and every
crashed node restarts after a while, so the cluster keeps making some progress between faults.
Which faults a seed uses, and how often, is its swarm profile (``tests/sim/swarm.py``).

The aimed schedules:

- ``isolate_after_ack``: the next time the leader hears an acknowledgement from a follower, cut
  the two apart (one follower at a time; two in a row reproduce the stale-lease shape of a
  follower that campaigns right after acknowledging a round, while the other one lost the leader);
- ``cut_two_after_ack``: cut the leader from one follower for long; once that follower's promise
  has run out, cut the leader from the follower with the shortest election timer right after it
  acknowledges a heartbeat round: the two can elect a leader the moment the second one's promise
  ends, while the lease that round started still runs (issue 10 item 1; the promise profile
  leaves a tenth of a tick between the two);
- ``crash_after_ack``: the next follower that acknowledges a heartbeat crashes at that instant,
  before its next write is durable (what it promised must survive the restart);
- ``transfer_racing_reads``: reads queue on the leader, then it hands leadership over, and the old
  leader is sometimes cut off from the transferee right after its TIMEOUT_NOW, so it keeps
  thinking it leads while the new leader commits;
- ``minority_then_crash`` (Figure 8's shape): the next leader elected is cut off with a minority
  the moment it wins, takes a proposal it can only replicate to that minority, then crashes;
  repeated, this gives elections among logs that end in different terms, and leaders that
  replicate an older term's entries one by one (the profile sends one entry per message);
- ``slow_follower``: every message to one follower is slow for a while (with small messages and
  compaction it falls behind the leader's first index and needs snapshots).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kvdb.raft.errors import ProposalDroppedError
from kvdb.raft.types import Message, MessageType
from tests.sim.swarm import ProfileSpec
from tests.sim.world import TICK_US

if TYPE_CHECKING:
    from tests.sim.cluster import Simulation
    from tests.sim.node import SimNode

ACKS = frozenset({MessageType.HEARTBEAT_RESP, MessageType.APP_RESP})

BASE_WEIGHTS = {
    "crash": 4,
    "partition": 2,
    "one_way": 2,
    "isolate_leader": 3,
    "weather": 2,
    "isolate_after_ack": 2,
    "cut_two_after_ack": 1,
    "crash_after_ack": 1,
    "transfer_racing_reads": 1,
    "minority_then_crash": 1,
    "slow_follower": 1,
}

PROFILES = [
    ProfileSpec("calm", {"weather": 1}, (80, 200), keep=0.2),
    ProfileSpec("mixed", {name: 1 for name in BASE_WEIGHTS}, (5, 40)),
    ProfileSpec("partitions", {"partition": 2, "one_way": 2, "isolate_leader": 2, "isolate_after_ack": 3},
                (5, 30)),
    ProfileSpec("crashes", {"crash": 3, "crash_after_ack": 4, "minority_then_crash": 2}, (5, 30)),
    ProfileSpec("skew", {"isolate_after_ack": 4, "isolate_leader": 1}, (10, 40), skew=True),
    ProfileSpec("transfers", {"transfer_racing_reads": 8, "isolate_after_ack": 1}, (5, 25), skew=True),
    ProfileSpec("churn", {"slow_follower": 4, "crash": 1}, (10, 40)),
    ProfileSpec("figure8", {"minority_then_crash": 10, "crash": 1}, (5, 20)),
    # A quick network and disk and a drift bound of a tenth of a tick (Simulation.quick).
    ProfileSpec("promise", {"cut_two_after_ack": 6}, (10, 20), skew=True, keep=0.0),
]


class Nemesis:
    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        self.world = sim.world
        self.network = sim.network
        self.stats = sim.stats
        self.rng = sim.world.child_rng()
        self.active = False
        self.profile = sim.profile
        n = sim.options.nodes
        # Some seeds may lose a quorum to crashes alone, others never do.
        self.max_down = self.rng.choice([n // 2, n // 2 + 1])
        crashy = self.profile.weights["crash"] > 0 or self.profile.name == "crashes"
        self.crash_in_write_rate = self.rng.choice([0.0, 0.003, 0.01]) if crashy else 0.0
        methods = {name: getattr(self, "_" + name) for name in BASE_WEIGHTS}
        self.faults = [(methods[name], w) for name, w in self.profile.weights.items() if w > 0]
        # Armed aimed schedules, fired by the next matching message (see on_deliver / on_send).
        self.cut_on_ack = False
        self.cut_on_heartbeat_ack: int | None = None  # cut_two_after_ack: its leader's second cut
        self.cut_two_busy = False
        self.crash_on_ack = False
        self.cut_on_timeout_now = False
        self.figure8_armed = False

    def start(self) -> None:
        self.active = True
        self._weather()
        self.world.after(self.rng.randint(5, 30) * TICK_US, self._step)

    def _step(self) -> None:
        if not self.active:
            return
        if self.faults:
            faults, weights = zip(*self.faults, strict=True)
            self.rng.choices(faults, weights)[0]()
        self.world.after(self.rng.randint(*self.profile.gap) * TICK_US, self._step)

    # -- crashes ------------------------------------------------------------------------------

    def _down(self) -> int:
        return sum(1 for n in self.sim.nodes.values() if not n.alive and not n.retired)

    def _crash(self) -> None:
        alive = self.sim.alive_nodes()
        if alive and self._down() < self.max_down:
            self._crash_node(self.rng.choice(alive))

    def _crash_node(self, node: SimNode, down_ticks: tuple[int, int] = (1, 60)) -> None:
        if node.writing is not None:
            self.stats.crashes_mid_write += 1
        node.crash()
        self.stats.crashes += 1
        self.world.after(self.rng.randint(*down_ticks) * TICK_US, self._restart, node)

    def _restart(self, node: SimNode) -> None:
        if not node.alive and not node.retired:
            node.start()

    def on_write_started(self, node: SimNode, latency: int) -> None:
        """Sometimes crash ``node`` before the write it just started is durable."""
        if self.active and self.crash_in_write_rate and self.rng.random() < self.crash_in_write_rate:
            self.world.after(self.rng.randint(0, latency), self._crash_mid_write, node, node.incarnation)

    def _crash_mid_write(self, node: SimNode, incarnation: int) -> None:
        if self.active and node.incarnation == incarnation and node.alive and self._down() < self.max_down:
            self._crash_node(node)

    def _crash_after_ack(self) -> None:
        self.crash_on_ack = True

    def on_send(self, msg: Message) -> None:
        """An armed ``crash_after_ack`` crashes the next follower acknowledging a heartbeat, at
        once: whatever its Ready was still writing (a new term, a vote) is lost."""
        if self.crash_on_ack and msg.type == MessageType.HEARTBEAT_RESP and self.active:
            node = self.sim.nodes[msg.frm]
            if node.alive and self._down() < self.max_down:
                self.crash_on_ack = False
                self.stats.aimed_faults += 1
                self.world.trace("%r crashes right after acknowledging a heartbeat", node)
                self.world.after(0, self._crash_now, node, node.incarnation)

    def _crash_now(self, node: SimNode, incarnation: int) -> None:
        if node.incarnation == incarnation and node.alive:
            self._crash_node(node, (1, 15))

    # -- network ------------------------------------------------------------------------------

    def _heal_later(self, links: list[tuple[int, int]], ticks: tuple[int, int] = (5, 80)) -> None:
        self.world.after(self.rng.randint(*ticks) * TICK_US, self.network.restore, links)

    def _members(self) -> list[int]:
        return [n.id for n in self.sim.nodes.values() if not n.retired]

    def _partition(self) -> None:
        ids = self._members()
        self.rng.shuffle(ids)
        cut = self.rng.randint(1, len(ids) - 1)
        self._heal_later(self.network.partition(sorted(ids[:cut]), sorted(ids[cut:])))

    def _one_way(self) -> None:
        frm, to = self.rng.sample(self._members(), 2)
        self._heal_later(self.network.block_one_way(frm, to))

    def _isolate_leader(self) -> None:
        leader = self.sim.leader()
        if leader is not None:
            others = [i for i in self._members() if i != leader.id]
            self._heal_later(self.network.partition([leader.id], others))

    def _isolate_after_ack(self) -> None:
        self.cut_on_ack = True

    def _cut_two_after_ack(self) -> None:
        leader = self.sim.leader()
        followers = [n for n in self.sim.alive_nodes() if leader is not None and n.id != leader.id
                     and not n.retired]
        if leader is None or self.cut_two_busy or len(followers) < 2:
            return
        self.cut_two_busy = True
        # The one left connected is the one whose election timer is shortest: the worst case.
        first = max(followers, key=lambda n: (n.raw.raft.randomized_election_timeout, self.rng.random()))
        self.world.trace("cut leader %d from %d for long", leader.id, first.id)
        self._heal_later(self.network.partition([leader.id], [first.id]), (40, 80))
        wait = self.rng.randint(12, 20)  # the first one's promise is over
        self.world.after(wait * TICK_US, self._arm_heartbeat_cut, leader.id, leader.incarnation)

    def _arm_heartbeat_cut(self, leader_id: int, incarnation: int) -> None:
        leader = self.sim.leader()
        if leader is not None and (leader.id, leader.incarnation) == (leader_id, incarnation):
            self.cut_on_heartbeat_ack = leader_id
        else:
            self.cut_two_busy = False  # leadership moved meanwhile: the shape is gone

    def _cut_two_done(self) -> None:
        self.cut_two_busy = False

    def on_deliver(self, msg: Message) -> None:
        """Fire armed schedules on the message just delivered (after its recipient handled it)."""
        if not self.active:
            return
        if self.cut_on_heartbeat_ack == msg.to and msg.type == MessageType.HEARTBEAT_RESP:
            self.cut_on_heartbeat_ack = None
            self.stats.aimed_faults += 1
            self.world.trace("cut leader %d from %d right after its heartbeat ack", msg.to, msg.frm)
            self._heal_later(self.network.partition([msg.to], [msg.frm]), (20, 80))
            self.world.after(15 * TICK_US, self._cut_two_done)
        if self.cut_on_ack and msg.type in ACKS:
            leader = self.sim.leader()
            if leader is not None and msg.to == leader.id:
                self.cut_on_ack = False
                self.stats.aimed_faults += 1
                self.world.trace("cut leader %d from %d right after its acknowledgement", msg.to, msg.frm)
                self._heal_later(self.network.partition([msg.to], [msg.frm]), (20, 80))
        if self.cut_on_timeout_now and msg.type == MessageType.TIMEOUT_NOW:
            self.cut_on_timeout_now = False
            self.stats.aimed_faults += 1
            self.world.trace("cut old leader %d from transferee %d", msg.frm, msg.to)
            self._heal_later(self.network.partition([msg.frm], [msg.to]), (10, 40))

    def _transfer_racing_reads(self) -> None:
        """Queue reads on the leader, then transfer leadership away while they are in flight."""
        leader = self.sim.leader()
        if leader is None:
            return
        for _ in range(self.rng.randint(1, 4)):
            self.sim.workload.read_on(leader)
        self.cut_on_timeout_now = self.rng.random() < 0.5
        self.sim.workload.transfer_from(leader)
        self.stats.aimed_faults += 1

    def _minority_then_crash(self) -> None:
        self.figure8_armed = True

    def on_new_leader(self, leader: SimNode) -> None:
        """Figure 8: the new leader can replicate its entries to a minority only, then crashes."""
        if not (self.figure8_armed and self.active) or self._down() >= self.max_down:
            return
        self.figure8_armed = False
        others = [i for i in self._members() if i != leader.id]
        self.rng.shuffle(others)
        minority = others[: self.rng.randint(0, (len(others) - 1) // 2)]
        majority = others[len(minority):]
        links = self.network.partition(sorted([leader.id, *minority]), sorted(majority))
        data = b"f8-%d" % self.world.now
        try:
            leader.propose(data)
        except ProposalDroppedError:
            pass
        else:
            self.sim.workload.track_write(data, leader)
        self.stats.aimed_faults += 1
        self.world.after(self.rng.randint(1, 8) * TICK_US, self._crash_now_f8, leader, leader.incarnation)
        self._heal_later(links, (2, 25))

    def _crash_now_f8(self, node: SimNode, incarnation: int) -> None:
        if node.incarnation == incarnation and node.alive and self._down() < self.max_down:
            self._crash_node(node, (3, 30))

    def _slow_follower(self) -> None:
        leader = self.sim.leader()
        followers = [i for i in self._members() if leader is None or i != leader.id]
        if not followers:
            return
        target = self.rng.choice(followers)
        self.network.slow_to[target] = self.rng.randint(5_000, 30_000)
        self.world.trace("messages to %d are slow", target)
        self.world.after(self.rng.randint(20, 100) * TICK_US, self.network.slow_to.pop, target, None)

    def _weather(self) -> None:
        net, rng = self.network, self.rng
        net.drop_rate = rng.choice([0.0, 0.0, 0.01, 0.05, 0.2])
        net.dup_rate = rng.choice([0.0, 0.01, 0.05])
        net.slow_rate = rng.choice([0.01, 0.05, 0.2])
        if self.profile.name in ("calm", "promise"):
            net.drop_rate = net.dup_rate = 0.0
        if self.sim.quick:
            net.slow_rate = 0.0
        self.world.trace(
            "net weather: drop %.2f dup %.2f slow %.2f", net.drop_rate, net.dup_rate, net.slow_rate
        )

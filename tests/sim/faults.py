"""The nemesis: crashes (also in the middle of a disk write), partitions and a lossy network.

Faults only run during the fault phase; every partition heals by itself after a while, and every
crashed node restarts after a while, so the cluster keeps making some progress between faults.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.sim.world import TICK_US

if TYPE_CHECKING:
    from tests.sim.cluster import Simulation
    from tests.sim.node import SimNode


class Nemesis:
    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        self.world = sim.world
        self.network = sim.network
        self.stats = sim.stats
        self.rng = sim.world.child_rng()
        self.active = False
        n = sim.options.nodes
        # Some seeds may lose a quorum to crashes alone, others never do.
        self.max_down = self.rng.choice([n // 2, n // 2 + 1])
        self.crash_in_write_rate = self.rng.choice([0.0, 0.003, 0.01])
        self.faults = [
            (self._crash_random, 4),
            (self._partition, 2),
            (self._one_way, 2),
            (self._isolate_leader, 3),
            (self._weather, 2),
        ]

    def start(self) -> None:
        self.active = True
        self._weather()
        self.world.after(self.rng.randint(5, 30) * TICK_US, self._step)

    def _step(self) -> None:
        if not self.active:
            return
        faults, weights = zip(*self.faults, strict=True)
        self.rng.choices(faults, weights)[0]()
        self.world.after(self.rng.randint(5, 40) * TICK_US, self._step)

    # -- crashes ------------------------------------------------------------------------------

    def _down(self) -> int:
        return sum(1 for n in self.sim.nodes.values() if not n.alive and not n.retired)

    def _crash_random(self) -> None:
        alive = self.sim.alive_nodes()
        if alive and self._down() < self.max_down:
            self._crash(self.rng.choice(alive))

    def _crash(self, node: SimNode) -> None:
        if node.writing is not None:
            self.stats.crashes_mid_write += 1
        node.crash()
        self.stats.crashes += 1
        self.world.after(self.rng.randint(1, 60) * TICK_US, self._restart, node)

    def _restart(self, node: SimNode) -> None:
        if not node.alive and not node.retired:
            node.start()

    def on_write_started(self, node: SimNode, latency: int) -> None:
        """Sometimes crash ``node`` before the write it just started is durable."""
        if self.active and self.crash_in_write_rate and self.rng.random() < self.crash_in_write_rate:
            self.world.after(self.rng.randint(0, latency), self._crash_mid_write, node, node.incarnation)

    def _crash_mid_write(self, node: SimNode, incarnation: int) -> None:
        if self.active and node.incarnation == incarnation and node.alive and self._down() < self.max_down:
            self._crash(node)

    # -- network ------------------------------------------------------------------------------

    def _heal_later(self, links: list[tuple[int, int]]) -> None:
        self.world.after(self.rng.randint(5, 80) * TICK_US, self.network.restore, links)

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

    def _weather(self) -> None:
        net, rng = self.network, self.rng
        net.drop_rate = rng.choice([0.0, 0.0, 0.01, 0.05, 0.2])
        net.dup_rate = rng.choice([0.0, 0.01, 0.05])
        net.slow_rate = rng.choice([0.01, 0.05, 0.2])
        self.world.trace(
            "net weather: drop %.2f dup %.2f slow %.2f", net.drop_rate, net.dup_rate, net.slow_rate
        )

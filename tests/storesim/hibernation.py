"""The ``hibernate`` profile: the range goes idle until it hibernates, then a fault strikes the
hibernated state.

Clients alternate between bursts of calls and quiet spells longer than the leader's idle time
(``hibernate_idle_ticks``). Once every replica of the range is hibernated, the schedule strikes:
it crashes the hibernated leader (a follower must notice through store liveness and take over),
isolates it, cuts one follower off, pauses the leader, or does nothing (the next call wakes the
range). Sometimes it also loses the hibernate notices to one follower, which must then keep
ticking (and its campaign wakes the others). The ordinary checks apply throughout: linearizable
history, one leader per term, one lease at a time, the lease frontier after every event.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kvdb.pb import metapb_pb2

if TYPE_CHECKING:
    from tests.storesim.cluster import StoreSimulation
    from tests.storesim.faults import Nemesis
    from tests.storesim.node import SimStore

RANGE_ID = 1

STRIKES = ("crash_leader", "crash_leader", "isolate_leader", "cut_follower", "pause_leader", "none")

TAKEOVER_ELECTION_TIMEOUTS = 6
"""With the hibernated leader's store dead and nothing else wrong, a follower must lead within this
many election timeouts: the store liveness timeout (E + 1 ticks), a randomized election timeout
(< 2E ticks) and an election, with room for a split vote and lost messages."""


class HibernateSchedule:
    def __init__(self, nemesis: Nemesis) -> None:
        self.nemesis = nemesis
        self.sim: StoreSimulation = nemesis.sim
        self.world = nemesis.world
        self.rng = nemesis.rng
        self.tick_us = nemesis.tick_us
        self.idle_ticks = self.sim.config.hibernate_idle_ticks
        self.armed = False  # quiet: strike once everything is hibernated
        self.active = True
        self.world.after(self.rng.randint(10, 30) * self.tick_us, self._go_quiet)

    def stop(self) -> None:
        """The fault phase is over: clients call again at once, nothing more is lost."""
        self.active = self.armed = False
        self.sim.network.lose_notices_to.clear()
        self.sim.clients.resume()

    def _go_quiet(self) -> None:
        if not self.active:
            return
        quiet = self.idle_ticks + self.rng.randint(3 * self.sim.config.election_tick, 120)
        self.world.trace("--- clients quiet for %d ticks ---", quiet)
        self.sim.clients.quiet_until = self.world.now + quiet * self.tick_us
        if self.rng.random() < 0.3:
            followers = [n.id for n in self._followers()]
            if followers:
                store_id = self.rng.choice(followers)
                self.world.trace("hibernate notices to store %d are lost", store_id)
                self.sim.network.lose_notices_to.add(store_id)
        self.armed = True
        self.world.after(self.tick_us, self._watch, self.sim.clients.quiet_until)
        active = self.rng.randint(10, 40)
        self.world.after((quiet + active) * self.tick_us, self._go_quiet)

    def _watch(self, quiet_until: int) -> None:
        """Every tick of a quiet spell: strike once every live replica is hibernated."""
        if not self.armed or self.world.now >= quiet_until:
            self.sim.network.lose_notices_to.clear()
            return
        if self._all_asleep():
            self.armed = False
            self.sim.stats.hibernated_strikes += 1
            self._strike(self.rng.choice(STRIKES))
            return
        self.world.after(self.tick_us, self._watch, quiet_until)

    def _calm(self, leader: SimStore) -> bool:
        """Every store up, running and a voter of the range, no link cut: nothing else stands in a
        takeover's way."""
        nodes = self.sim.stores.values()
        if self.sim.network.blocked or not all(n.alive and not n.paused for n in nodes):
            return False
        desc = leader.store.peers[RANGE_ID].desc
        voters = {p.store_id: p.id for p in desc.peers if p.role == metapb_pb2.VOTER}
        replicas = {n.id: n.store.peers[RANGE_ID].peer_id for n in nodes if RANGE_ID in n.store.peers}
        return replicas == voters and len(voters) == len(nodes)

    def _faults_so_far(self) -> tuple[int, ...]:
        stats = self.sim.stats
        return stats.crashes, stats.partitions, stats.pauses, stats.conf_changes, stats.transfers_requested

    def _check_takeover(self, dead: int, faults: tuple[int, ...]) -> None:
        """The hibernated leader's store died: its followers must notice (store liveness) and elect."""
        from tests.storesim.cluster import LivenessFailure  # cluster imports this module

        if not self.active or self._faults_so_far() != (faults[0] + 1, *faults[1:]):
            return  # another fault came meanwhile: the bound is off
        leader = self.sim.leader()
        if leader is None or leader.id == dead:
            raise LivenessFailure(
                f"store {dead}, the hibernated range's leader, died and no follower took over within "
                f"{TAKEOVER_ELECTION_TIMEOUTS} election timeouts ({self.sim._describe()})")
        self.sim.stats.hibernated_takeovers += 1

    def _all_asleep(self) -> bool:
        nodes = [n for n in self.sim.stores.values() if n.alive and RANGE_ID in n.store.peers]
        return len(nodes) >= 2 and all(
            n.store.hibernation.is_asleep(n.store.peers[RANGE_ID]) for n in nodes)

    def _followers(self) -> list[SimStore]:
        leader = self.sim.leader()
        return [n for n in self.sim.stores.values() if n.alive and (leader is None or n.id != leader.id)]

    def _strike(self, what: str) -> None:
        nemesis, leader = self.nemesis, self.sim.leader()
        self.world.trace("strike the hibernated range: %s", what)
        if leader is None:
            return
        others = [i for i in sorted(self.sim.stores) if i != leader.id]
        if what == "crash_leader" and nemesis._down() < nemesis.max_down:
            bound = TAKEOVER_ELECTION_TIMEOUTS * self.sim.config.election_tick
            if self._calm(leader):
                self.world.after(bound * self.tick_us, self._check_takeover, leader.id, self._faults_so_far())
            nemesis._crash(leader, bound + self.rng.randint(10, 40))
        elif what == "isolate_leader":
            nemesis._heal_later(self.sim.network.partition([leader.id], others), (20, 80))
        elif what == "cut_follower":
            nemesis._heal_later(self.sim.network.partition([leader.id], [self.rng.choice(others)]), (20, 80))
        elif what == "pause_leader":
            leader.pause()
            nemesis.stats.pauses += 1
            ticks = self.rng.randint(20, 60)
            self.world.after(ticks * self.tick_us, nemesis._resume, leader, leader.incarnation)

"""The nemesis: crashes (also mid-write), process pauses, partitions, a lossy network, clock
rates, and the operator's own disruptions (leader transfers, forced log compaction, replica
replacement). In PD mode PD replaces replicas instead, and the nemesis adds store outages long
enough for PD to give up on a store, cuts between stores and PD, stalled PD links, failing store
heartbeats and PD leader failovers.

Faults only run during the fault phase; every partition heals by itself after a while, every
crashed store restarts and every paused one resumes after a while, so the cluster keeps making
some progress between faults.
Clock rates stay within the drift bound the lease is built for: the simulator checks the store
under the conditions it promises to survive, not beyond them (profiles with skew put them at the
edge of it).

Which faults a seed uses, and how often, is its swarm profile (``tests/sim/swarm.py``). Besides
the faults above there are schedules aimed at the lease's dangerous windows:

- ``isolate_after_ack``: the next time the leader receives an acknowledgement from a follower,
  cut the two apart (one follower at a time);
- ``cut_two_after_ack``: cut the leader from one follower for long; once that follower's promise
  has run out, cut the leader from the next follower that acknowledges a heartbeat round. The
  two can then elect a leader as soon as the second one's promise ends, while the old leader's
  lease, started by that round, still runs: the promise must outlast the lease (issue 10 item 1);
- ``first_term`` (its own profile, played once from the start): one store misses the first
  election, then hears of the first term through a heartbeat, acknowledges it and crashes before
  the new term is durable, cut off from the leader; meanwhile the other follower lost the leader
  and its promise ran out. The restarted store, back at the bootstrap term, must still keep the
  promise its acknowledgement gave (issue 10 item 2), or the two elect a leader under the old
  leader's lease;
- ``transfer_racing_reads``: hand leadership over while readers keep asking the leader, and
  sometimes cut the old leader off from the transferee right after its TIMEOUT_NOW;
- ``slow_follower``: every message to one follower is slow for a while, so that with small
  messages, compaction and replica replacement it needs snapshots;
- ``late_acks`` (its own profile): every Raft message to the leader arrives one to three election
  timeouts late, then the leader's messages stop reaching its followers. Acknowledgements of the
  rounds sent before the cut keep arriving long after later rounds began, while the followers,
  their promise over, elect a new leader that takes writes. The lease must count from the send
  time of the round acknowledged; counted from the latest round sent, it outlives the promise by
  the delay and the old leader answers stale reads;
- splits, plain and aimed (``tests/storesim/splits.py``): the ``splits`` profile's, and some
  other seeds' (``draw_seed_profile``).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING

from kvdb.pb import metapb_pb2, raft_serverpb_pb2
from kvdb.raft import ConfChangeType, MessageType
from kvdb.store.errors import StoreError
from kvdb.store.peer import Peer
from tests.sim.swarm import Profile, ProfileSpec, draw_profile
from tests.storesim.hibernation import HibernateSchedule
from tests.storesim.splits import SPLIT_FAULTS, Splitter
from tests.storesim.transport import PD_NODE

if TYPE_CHECKING:
    from tests.storesim.cluster import StoreSimulation
    from tests.storesim.node import SimStore

RANGE_ID = 1

ACKS = frozenset({MessageType.HEARTBEAT_RESP, MessageType.APP_RESP})

BASE_WEIGHTS = {
    "crash_random": 3,
    "crash_leader": 2,
    "pause": 3,
    "partition": 2,
    "one_way": 2,
    "isolate_leader": 3,
    "weather": 2,
    "clock_rate": 2,
    "transfer_leader": 2,
    "compact_log": 2,
    "churn": 2,
    "isolate_after_ack": 2,
    "cut_two_after_ack": 1,
    "transfer_racing_reads": 1,
    "slow_follower": 1,
}

PROFILES = [
    ProfileSpec("calm", {"weather": 1}, (60, 150), keep=0.2),
    ProfileSpec("mixed", {name: 1 for name in BASE_WEIGHTS}, (5, 40)),
    ProfileSpec("partitions", {"partition": 2, "one_way": 2, "isolate_leader": 2, "isolate_after_ack": 3},
                (5, 30)),
    ProfileSpec("crashes", {"crash_random": 3, "crash_leader": 3}, (5, 30)),
    ProfileSpec("pauses", {"pause": 4}, (10, 40)),
    ProfileSpec("skew", {"isolate_after_ack": 4, "clock_rate": 2, "slow_follower": 3}, (5, 30), skew=True),
    ProfileSpec("transfers", {"transfer_racing_reads": 6, "transfer_leader": 2}, (5, 25), skew=True),
    ProfileSpec("churn", {"churn": 4, "compact_log": 3, "slow_follower": 3}, (5, 30)),
    # The FirstTerm shape first (on a clean network), then a little of everything.
    ProfileSpec("first_term", {"isolate_after_ack": 1}, (10, 40), keep=0.3),
    # Always the "tight" timing (cluster.py TIMINGS): a lease a fifth of a tick short of the promise.
    ProfileSpec("promise", {"cut_two_after_ack": 6, "clock_rate": 1}, (10, 20), skew=True, keep=0.0),
]

HIBERNATE = ProfileSpec("hibernate", {"weather": 1}, (60, 150), keep=0.2)
"""Quiet spells until the range hibernates, then a fault on the hibernated state
(``tests/storesim/hibernation.py``). Only by ``--profile hibernate``: drawing it too would change
the profile every other seed draws."""

SPLITS = ProfileSpec("splits", {"crash_leader": 2, "transfer_leader": 1, "compact_log": 2, "churn": 1,
                                "isolate_after_ack": 1}, (5, 25), skew=True)
"""Splits aimed at every window, with clocks at the drift bound; not in ``PROFILES`` (whose draw
the seeds pinned by tests depend on): ``draw_seed_profile`` picks it for some seeds."""
LATE_ACKS = ProfileSpec("late_acks", {"weather": 1}, (30, 60), keep=0.0)
"""Only the ``late_acks`` schedule (added outside the drawn weights) and the weather. Only by
``--profile late_acks``, like ``hibernate``: drawing it would change every other seed's profile."""
ALL_PROFILES = [*PROFILES, HIBERNATE, SPLITS, LATE_ACKS]
FORCED_ONLY = {spec.name: spec for spec in (HIBERNATE, LATE_ACKS)}
"""Profiles drawn only when forced, each from ``PROFILES`` and itself (the list it was measured with)."""
SPLIT_WEIGHTS = {"split": 3, "split_isolated_follower": 2, "split_crash_leader": 2, "split_transfer": 1,
                 "split_churn": 1}
SPLITS_SHARE = 0.15
"""Seeds that run the ``splits`` profile."""
SPLITS_ELSEWHERE = 0.3
"""Seeds of another profile that split too (each split fault then on with the profile's keep)."""


def draw_seed_profile(world_rng: random.Random, seed: int, forced: str | None, pd: bool) -> Profile:
    """The seed's swarm profile, with split faults for some seeds.

    Whether a seed splits is drawn on a generator of its own, after the profile draw, so that a
    seed which does not split draws what it drew before splits existed (the planted-bug tests pin
    such seeds). PD mode does not split: its simulated PD schedules one range.
    ``forced``: the profile's name, from ``ALL_PROFILES``.
    """
    own = random.Random(f"splits-{seed}")
    if forced == SPLITS.name or (forced is None and not pd and own.random() < SPLITS_SHARE):
        profile = draw_profile(world_rng, [SPLITS], BASE_WEIGHTS)
        profile.weights.update(SPLIT_WEIGHTS)
        return profile
    specs = [*PROFILES, FORCED_ONLY[forced]] if forced in FORCED_ONLY else PROFILES
    profile = draw_profile(world_rng, specs, BASE_WEIGHTS, forced)
    if forced is None and not pd and own.random() < SPLITS_ELSEWHERE:
        profile.weights.update({name: w if own.random() < profile.spec.keep else 0.0
                                for name, w in SPLIT_WEIGHTS.items()})
        profile.weights["split"] = SPLIT_WEIGHTS["split"]
    return profile


class Nemesis:
    def __init__(self, sim: StoreSimulation) -> None:
        self.sim = sim
        self.world = sim.world
        self.network = sim.network
        self.stats = sim.stats
        self.rng = sim.world.child_rng()
        self.tick_us = int(sim.config.tick_interval * 1e6)
        self.active = False
        n = len(sim.stores)
        # Some seeds may lose a quorum to crashes alone, others never do.
        self.max_down = self.rng.choice([n // 2, n // 2 + 1])
        self.crash_in_write_rate = self.rng.choice([0.0, 0.003, 0.01])
        # In PD mode PD is the one operator that changes membership.
        self.churn = Churn(sim, self.rng) if sim.options.churn and sim.pd is None else None
        profile = sim.profile
        self.splitter = Splitter(self)
        self.faults = [(self._fault(name), w) for name, w in profile.weights.items() if w > 0]
        if not self.churn:
            self.faults = [(f, w) for f, w in self.faults if f != self._churn]
        elif profile.name == "churn":
            # Outside the drawn weights, so adding it reshuffled no other profile's seeds.
            self.faults.append((self._remove_beside_dead, 4))
        if profile.name == LATE_ACKS.name:
            self.faults.append((self._late_acks, 4))
        self.late_acks_until = 0  # world time the current late_acks shape heals
        # Armed aimed schedules, fired by the next matching message (see on_arrive).
        self.cut_on_ack = False
        self.cut_on_heartbeat_ack = False  # the second cut of cut_two_after_ack
        # (store, incarnation) of the leader a cut_two_after_ack works on, until it is over.
        self.cut_two: tuple[int, int] | None = None
        self.cut_on_timeout_now = False
        self.first_term: FirstTerm | None = None
        self.hibernate: HibernateSchedule | None = None
        self.network.on_arrive = self.on_arrive
        if sim.pd is not None:
            self.faults += [(self._long_outage, 2), (self._cut_from_pd, 2), (self._stall_pd_link, 2),
                            (self._mute_store_heartbeats, 1), (self.sim.pd.fail_over, 1)]
            self.outage_until = 0  # world time the current long outage ends
        # Tests that aim at one fault retune these.
        self.fault_gap = profile.gap  # ticks between faults
        self.pause_ticks = (2, 40)  # up to four election timeouts

    def _fault(self, name: str) -> Callable[[], object]:
        return getattr(self.splitter, name) if name in SPLIT_FAULTS else getattr(self, "_" + name)

    def start(self) -> None:
        self.active = True
        self._weather()
        if self.sim.profile.name == "first_term" and self.sim.pd is None:
            self.network.drop_rate = self.network.dup_rate = 0.0
            self.first_term = FirstTerm(self)
            return  # the other faults start once the shape played out (FirstTerm.done)
        if self.sim.profile.name == HIBERNATE.name:
            self.hibernate = HibernateSchedule(self)
        self.world.after(self.rng.randint(20, 40) * self.tick_us, self._step)

    def start_faults(self) -> None:
        """The ordinary faults of the profile, from now on."""
        if self.active:
            self._weather()
            self.world.after(self.rng.randint(20, 40) * self.tick_us, self._step)

    def stop(self) -> None:
        self.active = False
        if self.hibernate is not None:
            self.hibernate.stop()

    def _some_range(self) -> int:
        """A random range for a fault aimed at one (no draw while there is one: such seeds run as
        before ranges were many). Aimed schedules, churn and PD's work stay on the first range."""
        ids = self.sim.range_ids
        return ids[0] if len(ids) == 1 else self.rng.choice(ids)

    def _step(self) -> None:
        if not self.active:
            return
        faults, weights = zip(*self.faults, strict=True)
        self.rng.choices(faults, weights)[0]()
        self.world.after(self.rng.randint(*self.fault_gap) * self.tick_us, self._step)

    # -- crashes ------------------------------------------------------------------------------

    def _down(self) -> int:
        return sum(1 for s in self.sim.stores.values() if not s.alive)

    def _crash_random(self) -> None:
        alive = [s for s in self.sim.stores.values() if s.alive]
        if alive and self._down() < self.max_down:
            self._crash(self.rng.choice(alive))

    def _crash_leader(self) -> None:
        leader = self.sim.leader(self._some_range())
        if leader is not None and self._down() < self.max_down:
            self._crash(leader)

    def _crash(self, node: SimStore, down_ticks: int | None = None) -> None:
        if node.writing:
            self.stats.crashes_mid_write += 1
        node.crash()
        self.stats.crashes += 1
        if down_ticks is None:
            down_ticks = self.rng.randint(1, 60)
        self.world.after(down_ticks * self.tick_us, self._restart, node)

    def _restart(self, node: SimStore) -> None:
        if not node.alive:
            node.start()

    def on_write_started(self, node: SimStore, latency: int) -> None:
        """Sometimes crash ``node`` before the write it just started is durable."""
        if self.first_term is not None and self.first_term.on_write_started(node):
            return
        if node.crash_on_next_write:
            node.crash_on_next_write = False
            self.world.after(self.rng.randint(0, latency - 1), self._crash_mid_write, node, node.incarnation)
            return
        if self.active and self.crash_in_write_rate and self.rng.random() < self.crash_in_write_rate:
            self.world.after(self.rng.randint(0, latency - 1), self._crash_mid_write, node, node.incarnation)

    def _crash_mid_write(self, node: SimStore, incarnation: int) -> None:
        if self.active and node.incarnation == incarnation and node.writing and self._down() < self.max_down:
            self._crash(node)

    def _long_outage(self) -> None:
        """Take a store, most often one with a replica, down for longer than PD waits before it
        calls the store DOWN and replaces its replica; one such outage at a time."""
        if self.world.now < self.outage_until or self._down() >= self.max_down:
            return
        alive = [s for s in self.sim.stores.values() if s.alive]
        hosting = [s for s in alive if RANGE_ID in s.store.peers]
        node = self.rng.choice(hosting if hosting and self.rng.random() < 0.8 else alive)
        down_ticks = self._ticks(self.sim.pd.schedule.store_down_ms) + self.rng.randint(20, 150)
        self.world.trace("%r: long outage of %d ticks", node, down_ticks)
        self.outage_until = self.world.now + down_ticks * self.tick_us
        self.stats.pd_long_outages += 1
        self._crash(node, down_ticks)

    def _ticks(self, ms: int) -> int:
        return ms * 1000 // self.tick_us

    # -- pauses -------------------------------------------------------------------------------

    def _pause(self) -> None:
        """Stall a store, most often a leader, for up to a few election timeouts."""
        leader = self.sim.leader(self._some_range())
        running = [s for s in self.sim.stores.values() if s.alive and not s.paused]
        node = leader if leader is not None and not leader.paused and self.rng.random() < 0.7 else None
        if node is None and running:
            node = self.rng.choice(running)
        if node is None:
            return
        node.pause()
        self.stats.pauses += 1
        ticks = self.rng.randint(*self.pause_ticks)
        self.world.after(ticks * self.tick_us, self._resume, node, node.incarnation)

    def _resume(self, node: SimStore, incarnation: int) -> None:
        if node.incarnation == incarnation and node.paused:
            node.resume()

    # -- network ------------------------------------------------------------------------------

    def _heal_later(self, links: list[tuple[int, int]], ticks: tuple[int, int] = (5, 80)) -> None:
        self.stats.partitions += 1
        self.world.after(self.rng.randint(*ticks) * self.tick_us, self.network.restore, links)

    def _partition(self) -> None:
        ids = sorted(self.sim.stores)
        self.rng.shuffle(ids)
        cut = self.rng.randint(1, len(ids) - 1)
        self._heal_later(self.network.partition(sorted(ids[:cut]), sorted(ids[cut:])))

    def _one_way(self) -> None:
        frm, to = self.rng.sample(sorted(self.sim.stores), 2)
        self._heal_later(self.network.block_one_way(frm, to))

    def _isolate_leader(self) -> None:
        leader = self.sim.leader(self._some_range())
        if leader is not None:
            others = [i for i in sorted(self.sim.stores) if i != leader.id]
            self._heal_later(self.network.partition([leader.id], others))

    def _isolate_after_ack(self) -> None:
        self.cut_on_ack = True

    def _cut_two_after_ack(self) -> None:
        leader = self.sim.leader()
        if leader is None or self.cut_two is not None:
            return
        # The worst case: the follower left connected is the one whose election timer is shortest.
        followers = [n for n in self.sim.stores.values() if n.alive and n.id != leader.id]
        if not followers:
            return
        first = max(followers, key=lambda n: (n.store.peers[RANGE_ID].raw.raft.randomized_election_timeout
                                              if RANGE_ID in n.store.peers else 0, self.rng.random())).id
        election_tick = self.sim.config.election_tick
        self.world.trace("cut leader %r from store %d for long", leader, first)
        self.cut_two = (leader.id, leader.incarnation)
        self._heal_later(self.network.partition([leader.id], [first]), (4 * election_tick, 8 * election_tick))
        wait = election_tick + self.rng.randint(2, election_tick)  # the first one's promise is over
        self.world.after(wait * self.tick_us, self._arm_heartbeat_cut)

    def _arm_heartbeat_cut(self) -> None:
        leader = self.sim.leader()
        if leader is not None and (leader.id, leader.incarnation) == self.cut_two:
            self.cut_on_heartbeat_ack = True
        else:
            self.cut_two = None  # leadership moved meanwhile: the shape is gone

    def _cut_two_done(self) -> None:
        self.cut_two = None

    def on_arrive(self, frm: int, to: int, msg: raft_serverpb_pb2.RaftMessage) -> None:
        """Fire armed schedules on a Raft message reaching store ``to`` (before it handles it)."""
        if not self.active or not (self.cut_on_ack or self.cut_on_heartbeat_ack or self.cut_on_timeout_now):
            return
        kind = msg.message.type
        heartbeat_ack = kind == MessageType.HEARTBEAT_RESP
        if (self.cut_on_ack and kind in ACKS) or (self.cut_on_heartbeat_ack and heartbeat_ack):
            leader = self.sim.leader()
            if leader is not None and leader.id == to:
                self.stats.aimed_faults += 1
                self.world.trace("cut leader %r from store %d right after its acknowledgement", leader, frm)
                # The second cut of cut_two_after_ack outlasts the follower's promise.
                heal = (2 * self.sim.config.election_tick, 80) if self.cut_on_heartbeat_ack else (5, 80)
                if self.cut_on_heartbeat_ack:  # the next one may start once this one played out
                    self.world.after((self.sim.config.election_tick + 5) * self.tick_us, self._cut_two_done)
                self.cut_on_ack = self.cut_on_heartbeat_ack = False
                self._heal_later(self.network.partition([to], [frm]), heal)
        elif self.cut_on_timeout_now and kind == MessageType.TIMEOUT_NOW:
            self.cut_on_timeout_now = False
            self.stats.aimed_faults += 1
            self.world.trace("cut old leader %d from transferee %d", frm, to)
            self._heal_later(self.network.partition([frm], [to]))

    def _transfer_racing_reads(self) -> None:
        """Transfer leadership while the readers bound to the leader's store keep asking it."""
        self.cut_on_timeout_now = self.rng.random() < 0.5
        self._transfer_leader()
        self.stats.aimed_faults += 1

    def _slow_follower(self) -> None:
        """Slow every message to one follower, or sometimes to the leader: acknowledgements then
        arrive after later rounds began (which round's send time starts the lease matters)."""
        leader = self.sim.leader(self._some_range())
        followers = [i for i in sorted(self.sim.stores) if leader is None or i != leader.id]
        target = self.rng.choice(followers)
        if leader is not None and self.rng.random() < 0.3:
            target = leader.id
        self.network.slow_to[target] = self.rng.randint(5_000, 30_000)
        self.world.trace("messages to store %d are slow", target)
        self.world.after(self.rng.randint(20, 100) * self.tick_us, self.network.slow_to.pop, target, None)

    def _late_acks(self) -> None:
        """Delay every Raft message to the leader by one to three election timeouts; a round or
        two later, cut the leader's messages to its followers (module docstring)."""
        leader = self.sim.leader()
        if leader is None or self.world.now < self.late_acks_until:
            return
        config = self.sim.config
        delay_ticks = self.rng.randint(config.election_tick, 3 * config.election_tick)
        self.network.slow_to[leader.id] = delay_ticks * self.tick_us
        self.stats.aimed_faults += 1
        cut_after = self.rng.randint(1, 2 * config.heartbeat_tick)
        heal_after = cut_after + delay_ticks + 4 * config.election_tick
        self.late_acks_until = self.world.now + heal_after * self.tick_us
        self.world.trace("messages to leader %r are %d ticks late; its own to followers stop in %d",
                         leader, delay_ticks, cut_after)
        self.world.after(cut_after * self.tick_us, self._cut_late_leader, leader.id, heal_after - cut_after)
        self.world.after(heal_after * self.tick_us, self.network.slow_to.pop, leader.id, None)

    def _cut_late_leader(self, leader_id: int, heal_ticks: int) -> None:
        links = [link for to in sorted(self.sim.stores) if to != leader_id
                 for link in self.network.block_one_way(leader_id, to)]
        self.world.trace("leader %d's messages to its followers stop", leader_id)
        self._heal_later(links, (heal_ticks, heal_ticks))

    def _cut_from_pd(self) -> None:
        """Cut some stores off from PD (PD on the other side of a partition), sometimes for longer
        than PD waits before it calls them DOWN, while they still serve and replicate."""
        ids = sorted(self.sim.stores)
        cut = sorted(self.rng.sample(ids, self.rng.randint(1, len(ids) - 1)))
        links = self.network.partition([PD_NODE], cut)
        self.stats.pd_cut_offs += 1
        ticks = self.rng.randint(5, self._ticks(self.sim.pd.schedule.store_down_ms) + 50)
        self.world.after(ticks * self.tick_us, self.network.restore, links)

    def _stall_pd_link(self) -> None:
        """Delay a store's PD traffic by up to a few heartbeats for a while, most often the
        leader's: its heartbeats then reach PD late, out of order, after newer ones."""
        leader = self.sim.leader()
        node = leader if leader is not None and self.rng.random() < 0.5 else None
        if node is None:
            node = self.rng.choice(list(self.sim.stores.values()))
        stall = self.rng.randint(50, 300) * 1000
        self.network.pd_stalls[node.id] = stall
        self.stats.pd_stalls += 1
        self.world.trace("%r: PD link stalls (up to %d ms)", node, stall // 1000)
        self.world.after(self.rng.randint(20, 100) * self.tick_us, self._unstall, node.id, stall)

    def _mute_store_heartbeats(self) -> None:
        """Fail a store's store heartbeats (their own RPC, apart from the range heartbeat stream),
        most often the leader's, sometimes until PD calls the store DOWN: PD then moves replicas
        off a store that still serves, handing its leadership over first."""
        leader = self.sim.leader()
        node = leader if leader is not None and self.rng.random() < 0.6 else None
        if node is None:
            node = self.rng.choice(list(self.sim.stores.values()))
        ticks = self.rng.randint(10, self._ticks(self.sim.pd.schedule.store_down_ms) + 100)
        node.pd_agent.muted_until = self.world.now + ticks * self.tick_us
        self.stats.pd_mutes += 1
        self.world.trace("%r: store heartbeats fail for %d ticks", node, ticks)

    def _unstall(self, store_id: int, stall: int) -> None:
        if self.network.pd_stalls.get(store_id) == stall:  # not a later stall of the same link
            del self.network.pd_stalls[store_id]

    def _weather(self) -> None:
        net, rng = self.network, self.rng
        net.drop_rate = rng.choice([0.0, 0.0, 0.01, 0.05, 0.2])
        net.dup_rate = rng.choice([0.0, 0.01, 0.05])
        net.slow_rate = rng.choice([0.01, 0.05, 0.2])
        if self.sim.profile.name == "promise":
            # A clean network around the aimed cuts: a lost or slow vote would let the lease run out.
            net.drop_rate = net.dup_rate = 0.0
            net.slow_rate = 0.01
        self.world.trace("net weather: drop %.2f dup %.2f slow %.2f", net.drop_rate, net.dup_rate,
                         net.slow_rate)

    # -- clocks -------------------------------------------------------------------------------

    def _clock_rate(self) -> None:
        node = self.rng.choice(list(self.sim.stores.values()))
        rate = self.sim.draw_clock_rate(self.rng)
        node.clock.set_rate(rate)
        self.stats.clock_changes += 1
        self.world.trace("%r clock rate %.4f", node, rate)

    # -- operator actions ---------------------------------------------------------------------

    def _transfer_leader(self, range_id: int | None = None) -> None:
        range_id = self._some_range() if range_id is None else range_id
        leader = self.sim.leader(range_id)
        if leader is None:
            return
        peer = leader.store.peers[range_id]
        voters = [v for v in peer.conf_state.voters if v != peer.peer_id]
        if not voters:
            return
        to = self.rng.choice(sorted(voters))
        try:
            leader.store.transfer_leader(range_id, to)
        except StoreError as exc:
            self.world.trace("transfer to peer %d refused: %s", to, exc)
            return
        self.stats.transfers_requested += 1
        self.world.trace("%r: transfer leadership of range %d to peer %d", leader, range_id, to)

    def _compact_log(self) -> None:
        range_id = self._some_range()
        alive = [s for s in self.sim.stores.values() if s.alive and range_id in s.store.peers]
        if not alive:
            return
        node = self.rng.choice(alive)
        try:
            first = node.store.compact_log(range_id)
        except StoreError as exc:
            self.world.trace("%r: compaction refused: %s", node, exc)
            return
        self.stats.compactions += 1
        self.world.trace("%r: range %d's log compacted, first index now %d", node, range_id, first)

    def _churn(self) -> None:
        if self.churn is not None:
            self.churn.begin()

    def _remove_beside_dead(self) -> None:
        """Crash a follower for long, then ask the leader to remove another, live follower (issue
        10 item 10): with {A, B, C} and C down, removing B leaves A alone in {A, C}. The leader must
        refuse; a removal that applies anyway is checked against the network's truth."""
        leader = self.sim.leader()
        if leader is None or self.churn is None or self.churn.step != "idle" or self._down():
            return
        peer = leader.store.peers[RANGE_ID]
        followers = [p for p in peer.desc.peers if p.role == metapb_pb2.VOTER and p.store_id != leader.id]
        if len(followers) < 2 or len(peer.desc.peers) != len(followers) + 1:
            return
        dead, victim = self.rng.sample(followers, 2)
        election_tick = self.sim.config.election_tick
        self.stats.aimed_faults += 1
        self.world.trace("remove beside dead: %r removes store %d's replica while store %d is down",
                         leader, victim.store_id, dead.store_id)
        self._crash(self.sim.stores[dead.store_id], down_ticks=6 * election_tick)
        # Past two CheckQuorum periods: the leader has had time to notice the dead voter.
        self.world.after(3 * election_tick * self.tick_us, self._remove_live, leader, leader.incarnation,
                         metapb_pb2.Peer(id=victim.id, store_id=victim.store_id))

    def _remove_live(self, leader: SimStore, incarnation: int, victim: metapb_pb2.Peer) -> None:
        if not (self.active and leader.alive and leader.incarnation == incarnation):
            return
        peer = leader.store.peers.get(RANGE_ID)
        if peer is None or not peer.is_leader:
            return

        live = self.sim.reachable_stores(leader)

        def applied(result: object) -> None:
            if isinstance(result, metapb_pb2.RangeDescriptor):
                self.sim.check_live_quorum(result, f"removing peer {victim.id} (store {victim.store_id})",
                                           live)

        try:
            leader.store.change_peer(RANGE_ID, ConfChangeType.REMOVE_NODE, victim, applied)
        except StoreError as exc:
            self.world.trace("remove beside dead: refused: %s", exc)
            return
        self.world.trace("%r: proposed removing peer %d beside a dead voter", leader, victim.id)


class FirstTerm:
    """Issue 10 item 2's shape, from the cluster's start (3 stores: leader L, followers B, C).

    C is cut off from the start, so L and B elect L in the first term after bootstrap. Once L
    committed in its term, B is cut off from L; a few ticks before B's election timer fires, C
    is reconnected, hears of L's term through a heartbeat, acknowledges it (the acknowledgement
    counts toward L's lease) and crashes as the write of the new term starts, cut off from L.
    C restarts at once at the bootstrap term, and B campaigns: C must refuse while L's lease
    runs. That is why a heartbeat acknowledgement may only leave once its term is durable.
    """

    LEAD_TIME = 4
    """Ticks between C's reconnection and B's election timer: L's heartbeats come every two."""

    def __init__(self, nemesis: Nemesis) -> None:
        self.nemesis = nemesis
        self.sim = nemesis.sim
        self.world = nemesis.world
        self.network = nemesis.network
        self.tick_us = nemesis.tick_us
        ids = sorted(self.sim.stores)
        self.c = nemesis.rng.choice(ids)
        self.cut = self.network.partition([self.c], [i for i in ids if i != self.c])
        self.world.trace("first term: store %d misses the first election", self.c)
        self.crash_armed = False
        self.leader = 0
        self.links: list[tuple[int, int]] = []
        self.polls = 0
        self.world.after(self.tick_us, self._await_leader)

    def _await_leader(self) -> None:
        """Once L committed in its term, cut B off and time C's return to B's election timer."""
        leader = self.sim.leader()
        peer = leader.store.peers[RANGE_ID] if leader is not None else None
        self.polls += 1
        if peer is None or peer.applied_term != peer.raw.raft.term:
            if self.polls < 100:
                self.world.after(self.tick_us, self._await_leader)
            else:
                self.done()
            return
        self.leader = leader.id
        b = next(i for i in sorted(self.sim.stores) if i not in (leader.id, self.c))
        store_b = self.sim.stores[b].store
        if store_b is None:  # B crashed (a crash at a synced write): no election timer to aim at
            self.done()
            return
        raft_b = store_b.peers[RANGE_ID].raw.raft
        self.links = self.network.partition([leader.id], [b])
        fires_in = raft_b.randomized_election_timeout - raft_b.election_elapsed
        self.world.trace("first term: %r cut from store %d, its timer fires in %d ticks", leader, b, fires_in)
        self.world.after(max(1, fires_in - self.LEAD_TIME) * self.tick_us, self._reconnect)

    def _reconnect(self) -> None:
        self.network.restore(self.cut)
        self.crash_armed = True
        self.world.trace("first term: store %d reconnected", self.c)

    def on_write_started(self, node: SimStore) -> bool:
        """C's first synced write after reconnecting holds L's term: C dies before it is durable."""
        if not (self.crash_armed and node.id == self.c):
            return False
        self.crash_armed = False
        self.nemesis.stats.aimed_faults += 1
        # Only L's way: C's acknowledgement, already on the wire, still reaches L.
        self.links += self.network.block_one_way(self.leader, self.c)
        self.world.trace("first term: store %d crashes as it writes the term it acknowledged", self.c)
        self.world.after(0, self.nemesis._crash, node, 1)
        self.world.after(30 * self.tick_us, self.done)
        return True

    def done(self) -> None:
        self.network.restore(self.links)
        self.nemesis.first_term = None
        self.nemesis.start_faults()


class ConfChangeMisreported(AssertionError):
    """``change_peer`` answered success for a change the range's descriptor does not show."""


def check_applied(change: int, target: metapb_pb2.Peer, result: object) -> None:
    """A successful ``change_peer`` answers the descriptor the change produced."""
    if not isinstance(result, metapb_pb2.RangeDescriptor):
        raise ConfChangeMisreported(f"change {change} of peer {target.id} answered {result!r}, "
                                    "not a descriptor")
    roles = {p.id: p.role for p in result.peers}
    want = {ConfChangeType.REMOVE_NODE: None, ConfChangeType.ADD_LEARNER: metapb_pb2.LEARNER,
            ConfChangeType.ADD_NODE: metapb_pb2.VOTER}[change]
    if roles.get(target.id) != want:
        raise ConfChangeMisreported(f"change {change} of peer {target.id} answered success, but the "
                                    f"descriptor has {list(result.peers)}")


class Churn:
    """Replaces one replica at a time: remove it, wait until its store dropped it, then add a
    fresh replica with a new peer id on that store, as a learner first, then as a voter.

    The new replica goes on the same store as soon as the removal committed. A store that never
    applied the removal (it was down or cut off) still holds the old replica then; the leader's
    first message to the new peer id makes the store destroy the stale one and start the new one.
    The nemesis starts a replacement; each later step is checked every few ticks and retried
    until it took effect.
    """

    POLL_TICKS = 5

    def __init__(self, sim: StoreSimulation, rng: random.Random) -> None:
        self.sim = sim
        self.world = sim.world
        self.stats = sim.stats
        self.rng = rng
        self.poll_us = self.POLL_TICKS * int(sim.config.tick_interval * 1e6)
        self.next_peer_id = 100
        self.step = "idle"
        self.store_id = 0
        self.old_peer_id = 0
        self.new_peer_id = 0
        self.polls = 0  # polls spent on the current step

    def begin(self) -> None:
        """Start replacing a replica, unless a replacement is under way."""
        if self.step == "idle":
            self.step, self.polls = "remove", 0
            self._poll()

    def _poll(self) -> None:
        if self.step == "idle" or not self.sim.nemesis.active:
            return
        leader = self.sim.leader()
        if leader is not None:
            getattr(self, "_" + self.step)(leader, leader.store.peers[RANGE_ID])
        self.world.after(self.poll_us, self._poll)

    def _propose(self, leader: SimStore, change: int, target: metapb_pb2.Peer, what: str) -> None:
        def done(result: object) -> None:
            failed = isinstance(result, StoreError)
            self.world.trace("conf change %s peer %d: %s", what, target.id, result if failed else "applied")
            if not failed:
                check_applied(change, target, result)
                self.stats.conf_changes += 1

        try:
            leader.store.change_peer(RANGE_ID, change, target, done)
        except StoreError as exc:
            self.world.trace("conf change %s peer %d refused: %s", what, target.id, exc)
            return
        self.world.trace("%r: propose %s peer %d on store %d", leader, what, target.id, target.store_id)

    def _remove(self, leader: SimStore, peer: Peer) -> None:
        voters = [p for p in peer.desc.peers if p.role == metapb_pb2.VOTER]
        # Shrinking below three voters would leave a range that cannot lose anyone.
        if len(voters) < 3 or len(peer.desc.peers) != len(voters):
            return
        victim = self.rng.choice(voters)
        self.store_id, self.old_peer_id = victim.store_id, victim.id
        self.step, self.polls = "await_removed", 0
        target = metapb_pb2.Peer(id=victim.id, store_id=victim.store_id)
        self._propose(leader, ConfChangeType.REMOVE_NODE, target, "remove")

    def _await_removed(self, leader: SimStore, peer: Peer) -> None:
        self.polls += 1
        if any(p.id == self.old_peer_id for p in peer.desc.peers):
            if self.polls > 3:  # the removal was lost (e.g. its leader stepped down): start over
                self.step = "remove"
            return
        node = self.sim.stores[self.store_id]
        if node.alive and getattr(node.store.peers.get(RANGE_ID), "peer_id", None) == self.old_peer_id:
            self.stats.stale_replicas_replaced += 1  # the new replica's first message replaces it
        self.stats.replicas_removed += 1
        self.next_peer_id += 1
        self.new_peer_id = self.next_peer_id
        self.step, self.polls = "add_learner", 0
        self._add_learner(leader, peer)

    def _add_learner(self, leader: SimStore, peer: Peer) -> None:
        if any(p.id == self.new_peer_id for p in peer.desc.peers):
            self.step = "promote"
            self._promote(leader, peer)
            return
        target = metapb_pb2.Peer(id=self.new_peer_id, store_id=self.store_id, role=metapb_pb2.LEARNER)
        self._propose(leader, ConfChangeType.ADD_LEARNER, target, "add learner")

    def _promote(self, leader: SimStore, peer: Peer) -> None:
        if any(p.id == self.new_peer_id and p.role == metapb_pb2.VOTER for p in peer.desc.peers):
            self.stats.replicas_added += 1
            self.step = "idle"
            return
        node = self.sim.stores[self.store_id]
        replica = node.store.peers.get(RANGE_ID) if node.alive else None
        if replica is None or replica.peer_id != self.new_peer_id or replica.applied < peer.applied - 20:
            return  # not caught up yet: a voter that lags would only weaken the quorum
        target = metapb_pb2.Peer(id=self.new_peer_id, store_id=self.store_id)
        self._propose(leader, ConfChangeType.ADD_NODE, target, "promote")

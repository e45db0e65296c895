"""A whole simulated store cluster, its clients and its faults, driven by one seed.

A run has four phases:

1. faults: clients call the raw KV API while the nemesis crashes and pauses stores, cuts links,
   skews clock rates, transfers leadership, compacts logs, replaces replicas and splits ranges;
2. liveness: faults stop, the network heals, every store restarts; a write invoked after the
   heal must be acknowledged within a bound;
3. drain: clients stop; every call in flight gets its answer or times out;
4. quiescence: every range (founding ones and those splits made) must settle (one leader, every
   member applied its whole log) within a bound; then every member's data in the range's
   bounds must be identical, the ranges must tile the key space, and the history, with a final
   read of every key from the range that owns it, must be linearizable.

Cheap invariants are checked every tick as well, per range: no two stores lead one term, and no
two stores hold a valid lease at the same instant (each by its own clock); across ranges: no
store holds two replicas of one key, and no key is under two valid leases
(``tests/storesim/ranges.py``).

In PD mode (``tests/storesim/pd.py``) the range starts with one replica, on store 1, and a
simulated PD must first grow it to three voters (with a bound) before the faults start; the
nemesis then also takes stores down for longer than PD waits before replacing their replicas,
and cuts stores off from PD. After the heal one store may die for good. Settling then also
needs PD's work done: exactly three voters, no learners, all on UP stores, and PD agreeing.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, fields

from kvdb.mvcc.keys import version_bounds
from kvdb.pb import metapb_pb2
from kvdb.raft import Role
from kvdb.storage.engine import CF_DEFAULT, CF_LOCK, CF_WRITE
from kvdb.store import keyspace
from kvdb.store.config import StoreConfig
from kvdb.testing.linearizability import Operation, check_history
from tests.sim.swarm import Profile
from tests.sim.world import World
from tests.storesim.clients import Clients
from tests.storesim.faults import RANGE_ID, Nemesis, draw_seed_profile
from tests.storesim.node import SimStore
from tests.storesim.pd import REPLICA_COUNT, PdAgent, SimPd, SimTso
from tests.storesim.ranges import (
    FIRST_SPLIT_ID,
    check_disjoint,
    check_lease_overlap,
    check_tiling,
    draw_range_count,
    founding_ranges,
    owner,
)
from tests.storesim.transport import SimNetwork
from tests.storesim.txn_clients import RPC_DEADLINE_US, TxnClients, TxnRecord
from tests.storesim.txn_workloads import WORKLOADS

DEFAULT_TICKS = 300
DEFAULT_PD_TICKS = 800
"""PD mode runs longer: a long outage alone outlasts PD's down time (up to 80 ticks)."""
DEFAULT_LIVENESS_TICKS = 400
QUIESCE_TICKS = 500
PD_QUIESCE_TICKS = 1000
"""Room for a store that died for good to turn DOWN, plus the three steps that replace it."""
TXN_RANGES = 8
"""Founding ranges of a txn run, cut over the workload's keys: transactions span many ranges."""
FINAL_READ_US = 5_000_000
"""How long the final snapshot read of a txn run may take (it resolves every lock left)."""
GROWTH_TICKS = 300
"""PD mode: how long PD may take to grow the one-replica range to three voters."""
FIRST_STORE = 1


_ROLES = {Role.FOLLOWER: "follower", Role.CANDIDATE: "candidate", Role.LEADER: "leader",
          Role.PRE_CANDIDATE: "pre-candidate"}


class SimFailure(AssertionError):
    """A run failed; the message starts with one line naming the seed and how to reproduce it."""


class InvariantViolation(AssertionError):
    pass


class LivenessFailure(AssertionError):
    pass


@dataclass
class SimOptions:
    seed: int
    stores: int | None = None
    """None: 3, or 5 in PD mode (PD needs spare stores to move replicas to)."""
    ticks: int | None = None
    """Length of the fault phase; None: ``DEFAULT_TICKS``, or ``DEFAULT_PD_TICKS`` in PD mode."""
    liveness_ticks: int = DEFAULT_LIVENESS_TICKS
    clients: int = 5
    keys: int = 5
    client_timeout_ticks: int | None = None
    """How long a client waits for an answer; None: drawn per seed."""
    readers: int | None = None
    """Read-only clients bound to one store each (round-robin); None: drawn per seed."""
    churn: bool = True
    faults: bool = True
    """False: no nemesis at all, a healthy run."""
    check_leases: bool = True
    pd: bool = False
    """PD mode: the range starts with one replica and a simulated PD schedules its replicas."""
    verbose: bool = False
    profile: str | None = None
    """Force this swarm profile (``tests/storesim/faults.py`` PROFILES); None: drawn from the seed."""
    ranges: int | None = None
    """Founding ranges (``tests/storesim/ranges.py``); None: drawn from the seed (1 in PD mode,
    ``TXN_RANGES`` with a txn workload)."""
    workload: str | None = None
    """A transactional workload (``tests/storesim/txn_workloads.py``: bank, append) run by
    ``txn_clients`` clients beside the raw ones; None: raw clients only."""
    txn_clients: int = 4

    def __post_init__(self) -> None:
        if self.stores is None:
            self.stores = 5 if self.pd else 3
        if self.ticks is None:
            self.ticks = DEFAULT_PD_TICKS if self.pd else DEFAULT_TICKS
        if self.workload is not None and self.pd:
            raise ValueError("a txn workload needs many ranges; PD mode schedules one")
        if self.workload is not None and self.workload not in WORKLOADS:
            raise ValueError(f"unknown workload {self.workload!r} (one of {sorted(WORKLOADS)})")
        if self.ranges is None and self.workload is not None:
            self.ranges = TXN_RANGES
        if self.ranges is None:
            # PD's and the hibernate profile's schedules watch one range.
            self.ranges = draw_range_count(self.seed, self.pd or self.profile == "hibernate")

    def repro(self) -> str:
        """The command that runs these options (a test that also retunes the nemesis is its own
        repro; the command then says so)."""
        cmd = f".venv/bin/python -m tests.storesim --seed {self.seed} --stores {self.stores}"
        if self.pd:
            cmd += " --pd"
        if self.profile is not None:
            cmd += f" --profile {self.profile}"
        if self.workload is not None:
            cmd += f" --workload {self.workload}"
        defaults = SimOptions(seed=self.seed, pd=self.pd, workload=self.workload)
        for name in ("ticks", "liveness_ticks", "clients", "readers", "keys", "client_timeout_ticks",
                     "ranges", "txn_clients"):
            if getattr(self, name) != getattr(defaults, name):
                cmd += f" --{name.replace('_', '-')} {getattr(self, name)}"
        for name in ("churn", "faults", "check_leases"):
            if not getattr(self, name):
                cmd += f" --no-{name.replace('_', '-')}"
        return cmd


@dataclass
class Stats:
    """What a run did, so tests can assert that it really exercised each feature."""

    runs: int = 0
    ops_ok: int = 0
    ops_not_executed: int = 0
    ops_indeterminate: int = 0
    ops_checked: int = 0
    lease_reads: int = 0
    read_index_reads: int = 0
    proposals: int = 0
    leader_changes: int = 0
    crashes: int = 0
    crashes_mid_write: int = 0
    pauses: int = 0
    partitions: int = 0
    clock_changes: int = 0
    transfers_requested: int = 0
    compactions: int = 0
    snapshots_sent: int = 0
    snapshots_applied: int = 0
    conf_changes: int = 0
    replicas_removed: int = 0
    replicas_added: int = 0
    stale_replicas_replaced: int = 0
    messages: int = 0
    aimed_faults: int = 0
    """Aimed schedules that fired (cut after an ack, transfer racing reads)."""
    hibernations: int = 0
    """Replicas that hibernated (leaders and followers)."""
    liveness_wakes: int = 0
    """Hibernated followers woken because their leader's store went silent."""
    hibernated_strikes: int = 0
    """Faults the hibernate profile aimed at a fully hibernated range."""
    hibernated_takeovers: int = 0
    """Crashes of a hibernated leader after which a follower was checked to take over in time."""
    splits_proposed: int = 0
    splits_applied: int = 0
    """Splits the proposing leader saw applied (answered with the new descriptors)."""
    ranges_created: int = 0
    """Ranges made by splits (known to the simulator once any store applied the split)."""
    stale_parent_blocks: int = 0
    """Replicas of new ranges a stale, never-told parent kept off their store (a known gap)."""
    # PD mode only (left out of the summary of runs without PD).
    pd_runs: int = 0
    pd_messages: int = 0
    pd_store_heartbeats: int = 0
    pd_range_heartbeats: int = 0
    pd_stale_heartbeats: int = 0
    """Range heartbeats with an older epoch than PD already saw (ignored)."""
    pd_ops_issued: int = 0
    """Operators the coordinator made and the controller accepted (each one or more steps)."""
    pd_learners_added: int = 0
    """Steps done, by kind (this one and the next four), as heartbeats showed them."""
    pd_learners_promoted: int = 0
    pd_peers_removed: int = 0
    pd_leaders_transferred: int = 0
    pd_ops_timed_out: int = 0
    """Operators whose current step did not show done in time (or never reached a leader)."""
    pd_ops_stale: int = 0
    """Operators dropped because the range's membership changed without them."""
    pd_replies_stale: int = 0
    """Operators a store did not carry out: no longer leader, or the epoch moved on."""
    pd_conf_changes: int = 0
    pd_long_outages: int = 0
    pd_cut_offs: int = 0
    pd_stalls: int = 0
    pd_mutes: int = 0
    pd_failovers: int = 0
    pd_dead_stores: int = 0
    pd_decommissions: int = 0
    """Stores an operator set OFFLINE: PD moves their replicas off, then buries them."""
    pd_tombstones: int = 0
    pd_stale_replicas_cleaned: int = 0
    """Replicas removed while away, destroyed when the leader talked to a newer one on their store."""
    pd_stale_replicas_left: int = 0
    """Replicas removed while away and still there at the end (tombstones and the leaderless
    check destroy them: test_seeds wants none)."""
    # Txn workload only (left out of the summary of runs without one).
    txn_runs: int = 0
    txn_committed: int = 0
    txn_aborted: int = 0
    txn_unknown: int = 0
    """Outcomes as the clients (or the simulator, for crashed clients) know them."""
    txn_checked: int = 0
    """Transactions the workload's checker covered."""
    txn_one_pc: int = 0
    txn_async: int = 0
    txn_two_pc: int = 0
    """Commit attempts by mode."""
    txn_client_crashes: int = 0
    txn_conflicts: int = 0
    txn_locks_met: int = 0
    txn_locks_resolved: int = 0
    txn_async_resolved: int = 0
    """Async-commit transactions a resolver decided from their secondaries' locks."""
    txn_scans: int = 0
    """Snapshot reads done by ``txn_scan`` (range by range) that got through."""

    def add(self, other: Stats) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def summary(self) -> str:
        shown = [f for f in fields(self) if (self.pd_runs or not f.name.startswith("pd_"))
                 and (self.txn_runs or not f.name.startswith("txn_"))]
        return ", ".join(f"{f.name}={getattr(self, f.name)}" for f in shown)


TIMINGS = {
    "fast": (0.01, 0.02),
    "tight": (0.1, 0.01),
}
"""(tick interval, max_clock_drift) in seconds. ``fast``: ticks ten times the network's typical
latency, drift two ticks (the defaults' ratio). ``tight``: long ticks with a drift bound of a
tenth of a tick, so the lease ends only a tenth of a tick before the followers' promise and
anything that shortens the promise by one tick (a timer that campaigns inside it) shows."""


def _data_bounds(desc: metapb_pb2.RangeDescriptor) -> list[tuple[str, bytes, bytes]]:
    """The range's data in every column family: raw values, locks and versions. The checker's
    own, not ``keyspace.data_bounds``: it must not share the code it checks (a planted bug
    there would blind it)."""
    return [(CF_DEFAULT, desc.start_key, keyspace.data_end(desc)),
            (CF_LOCK, desc.start_key, keyspace.data_end(desc)),
            (CF_WRITE, *version_bounds(desc))]


def sim_config(rng: random.Random, timing: str) -> StoreConfig:
    """Small limits, so that log truncation and snapshots to lagging replicas really happen."""
    keep = rng.choice([5, 10, 20])
    tick_interval, drift = TIMINGS[timing]
    return StoreConfig(
        tick_interval=tick_interval,
        election_tick=10,
        heartbeat_tick=2,
        max_clock_drift=drift,
        raft_log_gc_count_limit=keep + rng.choice([10, 30]),
        raft_log_gc_keep=keep,
        entry_cache_entries=rng.choice([4, 16, 256]),
        max_inflight_msgs=rng.choice([4, 256]),
        max_size_per_msg=rng.choice([512, 1 << 20]),
    )


class StoreSimulation:
    def __init__(self, options: SimOptions) -> None:
        self.options = options
        self.world = World(options.seed, options.verbose)
        # First draw of the seed: the rest of the run depends on it.
        self.profile: Profile = draw_seed_profile(self.world.rng, options.seed, options.profile, options.pd)
        self.rng = self.world.child_rng()
        # Only the promise profile's: with long ticks acknowledgements seldom arrive after later
        # rounds began, which other profiles need (and PD's timeouts are sized for short ticks).
        timing = "tight" if self.profile.name == "promise" else "fast"
        self.profile.knobs["timing"] = timing
        self.config = sim_config(self.rng, timing)
        self.world.trace("%s", self.profile.describe())
        self.tick_us = int(self.config.tick_interval * 1e6)
        # Two clocks at the extreme rates must disagree by less than max_clock_drift over an
        # election timeout: 2 * d * election_timeout < max_clock_drift, with 10% to spare.
        self.max_rate_deviation = 0.9 * self.config.max_clock_drift / (2 * self.config.election_timeout)
        self.stats = Stats(runs=1, pd_runs=int(options.pd))
        self.network = SimNetwork(self.world)
        self.tso = SimTso(self.world)
        founders = [FIRST_STORE] if options.pd else range(1, options.stores + 1)
        raw_keys = [b"k%d" % i for i in range(options.keys)]
        self.workload = None if options.workload is None else WORKLOADS[options.workload]()
        self.split_candidates = raw_keys if self.workload is None else self.workload.keys + raw_keys
        """Keys that splits cut at (and just after): the clients' keys."""
        self.founding = founding_ranges(options.ranges, founders,
                                        raw_keys if self.workload is None else self.workload.keys, RANGE_ID)
        self.first_range = self.founding[0]
        self.range_ids = [d.id for d in self.founding]
        """Every range the cluster has had (splits add theirs): what settling and the checks cover."""
        self._next_id = FIRST_SPLIT_ID
        self.stores: dict[int, SimStore] = {}
        for store_id in range(1, options.stores + 1):
            self.stores[store_id] = SimStore(self, store_id, self.draw_clock_rate(self.rng))
        self.network.stores = self.stores
        self.pd = SimPd(self) if options.pd else None
        if self.pd is not None:
            for node in self.stores.values():
                node.pd_agent = PdAgent(node, self.pd)
        timeout_ticks = self.rng.choice([50, 100, 200])
        if options.client_timeout_ticks is not None:
            timeout_ticks = options.client_timeout_ticks
        readers = self.rng.choice([0, options.stores]) if options.readers is None else options.readers
        if options.readers is None and self.profile.name == "transfers":
            readers = 2 * options.stores  # reads in flight at every store when leadership moves
        self.clients = Clients(self, options.clients, readers, options.keys, timeout_ticks * self.tick_us)
        self.txn = None if self.workload is None else TxnClients(self, options.txn_clients, self.workload)
        self.nemesis = Nemesis(self)
        self.history: list[Operation] = []
        self._leaders: dict[tuple[int, int], int] = {}  # (range, term) -> store that led it
        self._current_leader: dict[int, tuple[int, int]] = {}  # range -> (store, term)
        self.settled = False
        self.pd_grew = False  # PD grew the range: from then on it may never shrink below a quorum
        # Per range, the highest index any replica has seen committed: a lease read must not miss it.
        self.commit_frontier: dict[int, int] = {}
        if options.check_leases:
            self.world.after_event = self._check_lease_frontier

    # -- knobs the components share -----------------------------------------------------------

    def draw_clock_rate(self, rng: random.Random) -> float:
        d = self.max_rate_deviation
        if self.profile.skew:
            return rng.choice([1 - d, 1 + d])  # at the edge of what max_clock_drift covers
        return rng.uniform(1 - d, 1 + d)

    def disk_latency(self) -> int:
        if self.rng.random() < 0.05:
            return self.rng.randint(5_000, 20_000)
        return self.rng.randint(100, 2_000)

    def client_latency(self) -> int:
        return self.rng.randint(100, 1_000)

    def alloc_id(self) -> int:
        """A new range or peer id for a split: ids only grow, as PD's allocator's do."""
        self._next_id += 1
        return self._next_id

    def on_split(self, node: SimStore, descs: list[metapb_pb2.RangeDescriptor]) -> None:
        """``Store.on_split``: from now on the checks cover the new ranges and the run settles
        only once they did."""
        for desc in descs[1:]:
            if desc.id not in self.range_ids:
                self.range_ids.append(desc.id)
                self.stats.ranges_created += 1
        self.world.trace("%r applied the split of range %d into %s", node, descs[0].id, [d.id for d in descs])

    # -- queries ------------------------------------------------------------------------------

    def leader(self, range_id: int = RANGE_ID) -> SimStore | None:
        """The live store whose replica of ``range_id`` leads the highest term, if any."""
        best, best_term = None, -1
        for node in self.stores.values():
            peer = node.store.peers.get(range_id) if node.alive else None
            if peer is not None and peer.is_leader and peer.raw.raft.term > best_term:
                best, best_term = node, peer.raw.raft.term
        return best

    # -- running ------------------------------------------------------------------------------

    def run(self) -> Stats:
        """Run every phase; raise ``SimFailure`` (first line: seed and repro) on any failure."""
        try:
            self._run()
        except Exception as exc:
            opts = self.options
            raise SimFailure(
                f"seed {opts.seed} ({opts.stores} stores{', PD' if opts.pd else ''}) failed at "
                f"{self.world.now / 1000:.3f}ms: "
                f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}\n"
                f"  repro: {opts.repro()}  (add --verbose for the full trace)\n"
                f"  {self.profile.describe()}\n"
                f"{exc}\n  last events:\n{self.world.recent_trace()}"
            ) from exc
        return self.stats

    def _run(self) -> None:
        world, tick = self.world, self.tick_us
        for node in self.stores.values():
            node.start(bootstrap=True)
        world.after(0, self._monitor)
        self.clients.start()
        if self.txn is not None:
            self.txn.start()
        if self.pd is not None:
            world.run_until(GROWTH_TICKS * tick, stop=self.pd.grown)
            if not self.pd.grown():
                raise LivenessFailure(f"PD did not grow the range to three voters in {GROWTH_TICKS} ticks "
                                      f"({self._describe()})")
            self.pd_grew = True
            world.trace("--- PD grew the range: faults start ---")
        if self.options.faults:
            self.nemesis.start()
            if self.pd is not None:
                self.pd.maybe_decommission(self.options.ticks * tick)
        fault_end = world.now + self.options.ticks * tick
        world.run_until(fault_end)

        self._heal()
        healed = world.now
        txn = self.txn

        def recovered() -> bool:
            return self.clients.last_write_ok >= healed and (txn is None or txn.last_commit_invoke >= healed)

        world.run_until(healed + self.options.liveness_ticks * tick, stop=recovered)
        if self.clients.last_write_ok < healed:
            raise LivenessFailure(f"no write invoked after the heal was acknowledged within "
                                  f"{self.options.liveness_ticks} ticks ({self._describe()})")
        if not recovered():
            raise LivenessFailure(f"no transaction begun after the heal committed within "
                                  f"{self.options.liveness_ticks} ticks ({self._describe()})")

        self.clients.active = False
        drained = world.now + self.clients.timeout_us + tick
        world.run_until(drained, stop=lambda: self.clients.outstanding == 0)
        self.history = self.clients.finish_history()
        final = None
        if txn is not None:
            final = self._drain_txn()
            self.settled = False  # the drain ran past the tick that last judged it

        quiesce = QUIESCE_TICKS if self.pd is None else PD_QUIESCE_TICKS
        world.run_until(world.now + quiesce * tick, stop=lambda: self.settled)
        if not self.settled:
            raise LivenessFailure(f"the range did not settle in {quiesce} ticks ({self._describe()})")
        self._check_replicas()
        result = check_history(self.history)
        self.stats.ops_checked = result.checked_ops
        result.raise_if_failed()
        if txn is not None:
            self.stats.txn_checked = self.workload.check(txn.records, final)
        self._collect()

    def _drain_txn(self) -> TxnRecord:
        """Stop the txn clients (those still busy after a while as if they crashed), then read
        every key of the workload in one snapshot, resolving every lock the run left behind."""
        txn, world = self.txn, self.world
        txn.active = False
        world.run_until(world.now + RPC_DEADLINE_US, stop=lambda: txn.outstanding == 0)
        txn.stop()
        final: list[TxnRecord | None] = []
        txn.final_read(self.workload.keys, final.append)
        world.run_until(world.now + FINAL_READ_US, stop=lambda: bool(final))
        if not final or final[0] is None:
            raise LivenessFailure(f"the final snapshot read did not get through in "
                                  f"{FINAL_READ_US // 1000} ms ({self._describe()})")
        return final[0]

    def _heal(self) -> None:
        self.world.trace("--- liveness phase: heal everything ---")
        self.nemesis.stop()
        self.network.heal()
        for node in self.stores.values():
            if not node.alive:
                node.start()
            elif node.paused:
                node.resume()
            if node.pd_agent is not None:
                node.pd_agent.muted_until = 0
        spare = len(self.stores) > REPLICA_COUNT  # else PD has nowhere to move the replica to
        if self.pd is not None and self.options.faults and spare and self.rng.random() < 0.5:
            # Once every store heartbeated again, so that PD never acts on an outage that ended.
            self.world.after(3 * self.pd.heartbeat_ticks * self.tick_us, self._kill_for_good)

    def _kill_for_good(self) -> None:
        """Kill a store holding a replica for the rest of the run: PD has to replace it.

        Only while the range can lose it: at least three voters applied and no membership change
        pending (else a range shrunk to two voters could lose its quorum for good); retried every
        tick until then.
        """
        leader = self.leader()
        lead = leader.store.peers[RANGE_ID] if leader is not None else None
        voters = [] if lead is None else [p for p in lead.desc.peers if p.role == metapb_pb2.VOTER]
        if lead is None or len(voters) < REPLICA_COUNT or lead.raw.raft.pending_conf_index > lead.applied:
            self.world.after(self.tick_us, self._kill_for_good)
            return
        node = self.stores[self.rng.choice(voters).store_id]
        self.world.trace("%r dies for good", node)
        node.crash()
        self.settled = False  # it may have settled during the drain: it must settle again without it
        self.stats.pd_dead_stores += 1

    def _describe(self) -> str:
        parts = []
        if self.pd is not None:
            leader = self.leader()
            desc = self.pd.model.get_range(RANGE_ID).descriptor
            if leader is not None:
                desc = leader.store.peers[RANGE_ID].desc
            states = {sid: info.state for sid, info in self.pd.store_view().items()}
            parts.append(f"pd: {self.pd.unconverged(desc) or 'converged'}, store states {states}")
        for range_id in self.range_ids:
            for node in self.stores.values():
                peer = node.store.peers.get(range_id) if node.alive else None
                where = f"{node.id}" if len(self.range_ids) == 1 else f"r{range_id}@{node.id}"
                if not node.alive:
                    parts.append(f"{where}:down")
                elif peer is None:
                    parts.append(f"{where}:no replica")
                else:
                    raft = peer.raw.raft
                    parts.append(f"{where}:peer={peer.peer_id},term={raft.term},role={_ROLES[raft.role]},"
                                 f"lead={raft.lead},applied={peer.applied},commit={raft.raft_log.committed},"
                                 f"last={raft.raft_log.last_index()}")
        return "; ".join(parts)

    # -- per-event and per-tick invariants, quiescence ----------------------------------------

    def _check_lease_frontier(self) -> None:
        """After every event: a store that could serve a lease read now knows every commit.

        The frontier is the highest index any replica has seen committed, by whatever leader of
        whatever term. A leader whose lease is valid has committed an entry of its term, so no
        other leader can have been elected since its lease round, and a new leader's first commit
        (its no-op) lies beyond the old leader's whole log: a frontier beyond what the
        leaseholder has committed means a read it serves now can miss a committed (perhaps
        acknowledged) write. This compares with every commit in the cluster, not only with what
        the reading leader knows, and at every instant, not once per tick.
        """
        frontiers = self.commit_frontier
        holders = []
        leader = Role.LEADER
        for node in self.stores.values():
            store = node.store
            if store is None:
                continue
            for range_id, peer in store.peers.items():
                raft = peer.raw.raft
                committed = raft.raft_log.committed
                if committed > frontiers.get(range_id, 0):
                    frontiers[range_id] = committed
                if raft.role is leader:
                    holders.append((node, peer, committed))
        for node, peer, committed in holders:
            frontier = frontiers[peer.range_id]
            if committed < frontier and peer.lease_valid(node.clock.now()):
                raise InvariantViolation(
                    f"stale lease: {node!r} (range {peer.range_id}, term {peer.raw.raft.term}) could serve "
                    f"a lease read at applied index {peer.applied}, committed {committed}, but index "
                    f"{frontier} was committed elsewhere"
                )

    # -- per-tick invariants and quiescence ---------------------------------------------------

    def _monitor(self) -> None:
        """Every tick, per range: one leader per term, one lease at a time; on each store no key in
        two replicas; and whether every range settled."""
        for range_id in self.range_ids:
            self._monitor_range(range_id)
        holders = []
        for node in self.stores.values():
            if node.alive:
                check_disjoint(node.id, node.store.peers.values())
                if self.options.check_leases:
                    now = node.clock.now()
                    holders += [(node.id, p.desc) for p in node.store.peers.values()
                                if p.is_leader and p.lease_valid(now)]
        check_lease_overlap(holders)
        self.settled = not self.clients.active and all(self._is_settled(r) for r in self.range_ids) and (
            self.pd is None or (self.pd.unconverged(self.leader().store.peers[RANGE_ID].desc) is None
                                and self._stale_replicas() == 0))
        self.world.after(self.tick_us, self._monitor)

    def _stale_replicas(self) -> int:
        """Live stores outside the range's membership that still hold a replica of it (PD mode):
        a replica removed while away must be destroyed (a tombstone, or PD's answer) before the
        run counts as settled, else the end of the run would race its cleanup."""
        members = self._members(self.leader().store.peers[RANGE_ID].desc)
        return sum(1 for node in self.stores.values()
                   if node.alive and node.id not in members and RANGE_ID in node.store.peers)

    def _monitor_range(self, range_id: int) -> None:
        leases = []
        for node in self.stores.values():
            peer = node.store.peers.get(range_id) if node.alive else None
            if peer is None or not peer.is_leader:
                continue
            term = peer.raw.raft.term
            if self._leaders.setdefault((range_id, term), node.id) != node.id:
                raise InvariantViolation(f"stores {self._leaders[range_id, term]} and {node.id} both lead "
                                         f"range {range_id} in term {term}")
            if self.options.check_leases and peer.lease_valid(node.clock.now()):
                leases.append(node.id)
        if len(leases) > 1:
            raise InvariantViolation(f"stores {leases} hold a valid lease at the same time "
                                     f"(range {range_id})")
        leader = self.leader(range_id)
        if leader is not None:
            current = (leader.id, leader.store.peers[range_id].raw.raft.term)
            if current != self._current_leader.get(range_id):
                self._current_leader[range_id] = current
                self.stats.leader_changes += 1
                self.world.trace("%r leads range %d in term %d", leader, range_id, current[1])
            if self.pd_grew:
                self._check_quorum_kept(leader.store.peers[range_id].desc)

    def reachable_stores(self, leader: SimStore) -> set[int]:
        """The stores up and reachable both ways from ``leader`` now, by the simulator's truth
        (not the leader's view), ``leader`` included."""
        blocked = self.network.blocked
        return {sid for sid, node in self.stores.items()
                if sid == leader.id or (node.alive and not node.paused and (leader.id, sid) not in blocked
                                        and (sid, leader.id) not in blocked)}

    def check_live_quorum(self, desc: metapb_pb2.RangeDescriptor, what: str, live: set[int]) -> None:
        """A membership change the leader proposed while the stores ``live`` were up and reachable
        from it (``reachable_stores`` at the proposal) just applied: those of ``desc``'s voters must
        be a quorum of it, or the change left the range stuck until a dead voter comes back. (The
        truth at the proposal, not at the apply: a fault in between is not the guard's to foresee.)"""
        voters = [p for p in desc.peers if p.role == metapb_pb2.VOTER]
        alive = [p.store_id for p in voters if p.store_id in live]
        if len(alive) < len(voters) // 2 + 1:
            raise InvariantViolation(
                f"{what} left voters on stores {sorted(p.store_id for p in voters)} with only "
                f"{sorted(alive)} live: short of a quorum (epoch {desc.epoch.conf_ver})")

    @staticmethod
    def _check_quorum_kept(desc: metapb_pb2.RangeDescriptor) -> None:
        """PD removes a voter only while a quorum of the replica count stays healthy, and a leader
        campaigns only with its committed membership changes applied: once grown, a leader never
        knows fewer voters than that quorum."""
        voters = [p.id for p in desc.peers if p.role == metapb_pb2.VOTER]
        if len(voters) < REPLICA_COUNT // 2 + 1:
            raise InvariantViolation(f"the range shrank to voters {voters} (epoch {desc.epoch.conf_ver})")

    def _members(self, desc: metapb_pb2.RangeDescriptor) -> dict[int, int]:
        """Store id -> peer id of every replica in ``desc``, but for stores where a stale replica
        blocks it (``_blocked_by_stale``)."""
        return {p.store_id: p.id for p in desc.peers if not self._blocked_by_stale(p.store_id, desc)}

    def _blocked_by_stale(self, store_id: int, desc: metapb_pb2.RangeDescriptor) -> bool:
        """The known gap (docs/store.md, "Known gaps"): a replica removed while it was away, and so
        never told, holds keys of ``desc`` on ``store_id`` (the parent it was split off, at its old
        bounds), so the store never creates its replica of ``desc``. Without PD nothing removes it
        (in these runs: churn removed it and the nemesis stopped before the replacement)."""
        node = self.stores[store_id]
        if not node.alive or desc.id in node.store.peers:
            return False
        for peer in node.store.peers.values():
            if not peer.initialized or keyspace.clip(peer.desc, desc.start_key, desc.end_key) is None:
                continue
            leader = self.leader(peer.range_id)
            if leader is not None and peer.peer_id not in {
                    p.id for p in leader.store.peers[peer.range_id].desc.peers}:
                return True
        return False

    def _is_settled(self, range_id: int) -> bool:
        leader = self.leader(range_id)
        if leader is None:
            return False
        lead = leader.store.peers[range_id]
        raft = lead.raw.raft
        log = raft.raft_log
        if log.committed != log.last_index() or lead.applied != log.committed:
            return False
        if lead.applied_term != raft.term:
            return False
        for store_id, peer_id in self._members(lead.desc).items():
            node = self.stores[store_id]
            peer = node.store.peers.get(range_id) if node.alive else None
            if peer is None or peer.peer_id != peer_id or peer.applied != lead.applied or node.looping:
                return False
        return True

    def _check_replicas(self) -> None:
        """Per range, every member holds the same data within its bounds and no removed replica
        leads; the ranges tile the key space; a final read of every key, from the range that owns
        it, joins the history."""
        descs = []
        for range_id in self.range_ids:
            leader = self.leader(range_id)
            desc = leader.store.peers[range_id].desc
            descs.append(desc)
            members = self._members(desc)
            self.stats.stale_parent_blocks += len(desc.peers) - len(members)
            data = {sid: [self.stores[sid].engine.scan(cf, start, end, 0)
                          for cf, start, end in _data_bounds(desc)] for sid in sorted(members)}
            reference = data[leader.id]
            for sid, pairs in data.items():
                if pairs != reference:
                    diff = [sorted(set(a) ^ set(b))[:10] for a, b in zip(pairs, reference, strict=True)]
                    raise InvariantViolation(
                        f"range {range_id}: store {sid} and leader store {leader.id} hold different data at "
                        f"applied index {leader.store.peers[range_id].applied}: {diff}"
                    )
            for node in self.stores.values():
                stale = node.store.peers.get(range_id) if node.alive and node.id not in members else None
                if stale is not None and stale.is_leader:
                    # Removed while away and never replaced (PD mode): it may linger, but never lead.
                    raise InvariantViolation(f"{node!r} still leads range {range_id} with removed replica "
                                             f"{stale.peer_id}")
        check_tiling(descs)
        now = self.world.now
        for key in self.clients.keys:
            home = self.leader(owner(descs, key).id)
            self.history.append(Operation(-1, "get", key, now, now, home.engine.get(CF_DEFAULT, key)))

    def _collect(self) -> None:
        stats, counts = self.stats, self.clients.counts
        stats.ops_ok = counts["ok"]
        stats.ops_not_executed = counts["not_executed"]
        stats.ops_indeterminate = counts["indeterminate"]
        if self.txn is not None:
            tc = self.txn.counts
            stats.txn_runs = 1
            stats.txn_committed, stats.txn_aborted = tc["committed"], tc["aborted"]
            stats.txn_unknown = tc["unknown"]
            stats.txn_one_pc, stats.txn_async, stats.txn_two_pc = tc["one_pc"], tc["async"], tc["two_pc"]
            stats.txn_client_crashes, stats.txn_conflicts = tc["crashes"], tc["conflicts"]
            stats.txn_locks_met, stats.txn_locks_resolved = tc["locks_met"], tc["resolved"]
            stats.txn_async_resolved, stats.txn_scans = tc["async_resolved"], tc["scans"]
        stats.messages = self.network.sent
        stats.pd_messages = self.network.pd_sent
        for node in self.stores.values():
            if node.alive:
                node.peers_seen.update(node.store.peers.values())
            if node.alive:
                node.count_hibernation()
            for peer in node.peers_seen:
                c = peer.counters
                stats.lease_reads += c["lease_reads"]
                stats.read_index_reads += c["read_index_reads"]
                stats.proposals += c["proposals"]
                stats.snapshots_sent += c["snapshots_sent"]
                stats.snapshots_applied += c["snapshots_applied"]
            if self.pd is not None:
                # Destroyed while its descriptor still named it: it never applied its removal.
                stats.pd_stale_replicas_cleaned += sum(1 for p in node.peers_seen if p.destroyed and any(
                    m.id == p.peer_id for m in p.desc.peers))
        if self.pd is not None:
            stats.pd_stale_replicas_left = self._stale_replicas()


"""The deterministic simulator: many seeds of the Raft core under faults, and tests of the
simulator itself (a simulator whose faults or checks silently do nothing would prove nothing).

Reproduce a failing seed with the command in its failure message; the soak is
``.venv/bin/python -m tests.sim --seeds 2000 --nodes both``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kvdb.raft.types import Entry, HardState, Message, MessageType, ReadState, Role
from tests.seed_sweep import sweep
from tests.sim import SimFailure, SimOptions, Simulation, Stats
from tests.sim.checker import Checker, InvariantViolation
from tests.sim.network import Network
from tests.sim.world import TICK_US, World

ROOT = Path(__file__).resolve().parent.parent
CI_TICKS = 800
CHUNK = 20
CHUNKS = [(3, start) for start in range(0, 200, CHUNK)] + [(5, start) for start in range(0, 100, CHUNK)]
EXERCISED = (
    "proposals_acked",
    "reads_answered",
    "lease_read_checks",
    "leader_changes",
    "crashes",
    "crashes_mid_write",
    "conf_changes_applied",
    "transfers_completed",
    "snapshots_sent",
    "snapshots_applied",
)


CHUNK_IDS = [f"{n}nodes-seeds{s}-{s + CHUNK - 1}" for n, s in CHUNKS]


@pytest.mark.parametrize(("nodes", "start"), CHUNKS, ids=CHUNK_IDS)
def test_seeds(nodes: int, start: int) -> None:
    """Every seed keeps Raft's invariants and recovers; the chunk as a whole exercised everything."""
    totals = Stats(runs=0)
    runs = (SimOptions(seed=seed, nodes=nodes, ticks=CI_TICKS) for seed in range(start, start + CHUNK))
    failures = sweep(Simulation, SimFailure, runs, totals)
    assert not failures, "\n".join(failures)
    idle = [name for name in EXERCISED if getattr(totals, name) == 0]
    assert not idle, f"the workload never exercised {idle}: {totals.summary()}"


# -- the network ----------------------------------------------------------------------------


def _network() -> tuple[World, Network, list[Message]]:
    world = World(seed=1)
    delivered: list[Message] = []
    return world, Network(world, delivered.append, lambda msg: None), delivered


def _heartbeat(frm: int, to: int) -> Message:
    return Message(MessageType.HEARTBEAT, to=to, frm=frm, term=1)


def _links(delivered: list[Message]) -> set[tuple[int, int]]:
    return {(m.frm, m.to) for m in delivered}


def test_partition_cuts_both_ways_and_what_is_in_flight() -> None:
    world, net, delivered = _network()
    for _ in range(50):
        net.send(_heartbeat(1, 2))  # already on the wire when the partition starts
    net.partition([1], [2, 3])
    for _ in range(50):
        for frm, to in [(1, 2), (2, 1), (1, 3), (3, 1), (2, 3), (3, 2)]:
            net.send(_heartbeat(frm, to))
    world.run_until(TICK_US * 100)
    assert _links(delivered) == {(2, 3), (3, 2)}
    net.heal()
    net.send(_heartbeat(1, 2))
    world.run_until(TICK_US * 200)
    assert (1, 2) in _links(delivered)


def test_one_way_partition() -> None:
    world, net, delivered = _network()
    net.block_one_way(1, 2)
    for _ in range(50):
        net.send(_heartbeat(1, 2))
        net.send(_heartbeat(2, 1))
    world.run_until(TICK_US * 100)
    assert _links(delivered) == {(2, 1)}


def test_loss_duplication_and_copies() -> None:
    world, net, delivered = _network()
    net.drop_rate = 1.0
    for _ in range(20):
        net.send(_heartbeat(1, 2))
    world.run_until(TICK_US * 100)
    assert delivered == [] and net.dropped == 20
    net.drop_rate, net.dup_rate = 0.0, 1.0
    original = Message(MessageType.APP, to=2, frm=1, term=1, entries=[Entry(1, 1, b"x")])
    net.send(original)
    world.run_until(TICK_US * 200)
    assert len(delivered) == 2
    for copy in delivered:
        assert copy == original and copy is not original and copy.entries[0] is not original.entries[0]


# -- crashes --------------------------------------------------------------------------------


def _quiet_cluster(seed: int = 5) -> Simulation:
    """A cluster with no workload and no faults, run until it has a leader."""
    sim = Simulation(SimOptions(seed=seed, nodes=3))
    for node in sim.nodes.values():
        node.start()
    sim.world.run_until(TICK_US * 200, stop=lambda: sim.leader() is not None)
    assert sim.leader() is not None
    return sim


def test_crash_loses_the_write_in_flight() -> None:
    sim = _quiet_cluster()
    leader = sim.leader()
    sim.world.run_until(sim.world.now + TICK_US * 50, stop=lambda: leader.writing is None)
    leader.propose(b"doomed")
    assert [e.data for e in leader.writing.entries] == [b"doomed"]
    leader.crash()
    sim.world.run_until(sim.world.now + TICK_US * 10)  # long past the write's completion time
    storage = leader.storage
    durable = storage.entries(storage.first_index(), storage.last_index() + 1)
    assert b"doomed" not in [e.data for e in durable]
    # Control: without a crash, the same kind of write does reach the disk.
    sim.world.run_until(sim.world.now + TICK_US * 100, stop=lambda: sim.leader() is not None)
    new_leader = sim.leader()
    new_leader.propose(b"kept")
    sim.world.run_until(sim.world.now + TICK_US * 10)
    storage = new_leader.storage
    assert b"kept" in [e.data for e in storage.entries(storage.first_index(), storage.last_index() + 1)]


def test_crash_loses_the_state_machine_and_restart_replays_it() -> None:
    sim = _quiet_cluster()
    leader = sim.leader()
    leader.propose(b"w1")
    sim.world.run_until(sim.world.now + TICK_US * 10)
    applied, digest = leader.sm.index, leader.sm.digest
    assert applied > 0
    leader.crash()
    assert leader.sm is None and leader.raw is None
    leader.start()
    assert leader.sm.index <= applied
    sim.world.run_until(sim.world.now + TICK_US * 50, stop=lambda: leader.sm.index >= applied)
    assert sim.checker.applied[applied][3] == digest


# -- the checker ----------------------------------------------------------------------------


class _Log:
    def __init__(self, terms: dict[int, int]) -> None:
        self.terms = terms

    def first_index(self) -> int:
        return min(self.terms)

    def last_index(self) -> int:
        return max(self.terms)

    def term(self, index: int) -> int:
        return self.terms[index]


def test_checker_catches_two_commands_at_one_index() -> None:
    checker = Checker(lambda: [])
    checker.record_genesis(6, 1, b"g")
    checker.observe(1, 0, term=2, role=Role.LEADER, commit=7, log=_Log({7: 2}))
    assert checker.on_apply(1, Entry(2, 7, b"a"), b"d1")
    assert not checker.on_apply(2, Entry(2, 7, b"a"), b"d1")
    with pytest.raises(InvariantViolation, match="state machine safety"):
        checker.on_apply(3, Entry(2, 7, b"b"), b"d2")


def test_checker_catches_two_leaders_in_a_term() -> None:
    checker = Checker(lambda: [])
    log = _Log({1: 1})
    checker.observe(1, 0, term=4, role=Role.LEADER, commit=0, log=log)
    checker.observe(1, 0, term=4, role=Role.LEADER, commit=0, log=log)
    with pytest.raises(InvariantViolation, match="two leaders"):
        checker.observe(2, 0, term=4, role=Role.LEADER, commit=0, log=log)


def test_checker_catches_a_leader_missing_a_committed_entry() -> None:
    checker = Checker(lambda: [])
    checker.observe(1, 0, term=3, role=Role.LEADER, commit=1, log=_Log({1: 3}))
    with pytest.raises(InvariantViolation, match="leader completeness"):
        checker.observe(2, 0, term=5, role=Role.LEADER, commit=0, log=_Log({1: 4}))


def test_checker_allows_an_old_entry_committed_after_a_leader_without_it() -> None:
    """Raft's Figure 8: an entry of term 10 that leader 1 of term 11 lacks is committed in term 12."""
    leaders = [(1, 11, _Log({46: 11}))]
    checker = Checker(lambda: leaders)
    checker.record_genesis(45, 1, b"g")
    checker.observe(1, 0, term=11, role=Role.LEADER, commit=45, log=leaders[0][2])
    checker.observe(2, 0, term=12, role=Role.LEADER, commit=46, log=_Log({46: 10}))
    assert checker.commits[46] == (12, 10)
    # ... but a leader of a later term must have it.
    with pytest.raises(InvariantViolation, match="leader completeness"):
        checker.observe(3, 0, term=13, role=Role.LEADER, commit=45, log=_Log({46: 11}))


def test_checker_catches_log_mismatch() -> None:
    checker = Checker(lambda: [])
    checker.on_persist(1, [Entry(3, 10, b"a"), Entry(3, 11, b"b")], prev_term=2)
    checker.on_persist(2, [Entry(3, 11, b"b")], prev_term=3)
    with pytest.raises(InvariantViolation, match="log matching"):
        checker.on_persist(3, [Entry(3, 10, b"a")], prev_term=1)


def test_checker_catches_stale_reads_and_regressions() -> None:
    checker = Checker(lambda: [])
    checker.record_genesis(10, 1, b"g")
    checker.write_acked(10)
    checker.read_issued(b"r1")
    checker.on_read_state(1, ReadState(10, b"r1"))
    with pytest.raises(InvariantViolation, match="stale read"):
        checker.on_read_state(1, ReadState(9, b"r1"))
    with pytest.raises(InvariantViolation, match="voted twice"):
        checker.on_hard_state(1, HardState(5, 2, 0), HardState(5, 3, 0))
    with pytest.raises(InvariantViolation, match="commit went back"):
        checker.observe(1, 0, term=1, role=Role.FOLLOWER, commit=5, log=_Log({1: 1}))
        checker.observe(1, 0, term=1, role=Role.FOLLOWER, commit=4, log=_Log({1: 1}))


# -- runs as a whole ------------------------------------------------------------------------


def test_a_seed_replays_exactly() -> None:
    first = Simulation(SimOptions(seed=11, nodes=5, ticks=300))
    second = Simulation(SimOptions(seed=11, nodes=5, ticks=300))
    assert first.run() == second.run()
    assert first.world.recent_trace() == second.world.recent_trace()


def test_a_seed_replays_exactly_in_another_process() -> None:
    """No dependence on str/bytes hashing (set order), which differs between processes."""
    outputs = []
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        cmd = [sys.executable, "-m", "tests.sim", "--seed", "3", "--nodes", "3", "--ticks", "300"]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True, cwd=ROOT)
        outputs.append(done.stdout.splitlines()[1:])  # the first line has the elapsed time
    assert outputs[0] == outputs[1]


def test_a_failure_names_its_repro_command() -> None:
    sim = Simulation(SimOptions(seed=42, nodes=5, ticks=300))
    sim.checker.write_acked(10**9)  # make every ReadIndex answer look stale
    repro = r"repro: \.venv/bin/python -m tests\.sim --seed 42 --nodes 5 --ticks 300"
    with pytest.raises(SimFailure, match=repro):
        sim.run()

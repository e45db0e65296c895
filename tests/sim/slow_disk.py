"""A follower with a slow disk, and a run that measures what the leader keeps in flight to it.

The slow disk writes fewer bytes per second than the leader proposes, so the follower falls
further behind for as long as the run lasts, and acknowledges appends late. It answers heartbeats
at once: a heartbeat response must wait only until the term it echoes is durable (the core puts
it after the write for that reason alone, ``kvdb/raft/raft.py`` ``_AFTER_PERSIST``), which a store
whose log writer runs apart from its loop can tell without queueing behind the log writes
(etcd's asynchronous storage writes; issue 14 item 2). Such a follower looks alive to the leader
every heartbeat round while its appends go unacknowledged: exactly the case in which a leader
without flow control keeps adding batches in flight (issue 14 item 3).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kvdb.raft.errors import ProposalDroppedError
from kvdb.raft.rawnode import Ready
from kvdb.raft.types import MessageType
from tests.sim.cluster import SimOptions, Simulation
from tests.sim.world import TICK_US

if TYPE_CHECKING:
    from tests.sim.node import SimNode


@dataclass
class SlowDisk:
    """A write takes ``base_us`` plus ``us_per_byte`` for every byte of entries it holds."""

    base_us: int = 1_000
    us_per_byte: float = 20.0

    def latency(self, rd: Ready) -> int:
        return self.base_us + round(self.us_per_byte * sum(e.size() for e in rd.entries))

    def answer_heartbeats(self, node: SimNode) -> None:
        """Send the heartbeat responses whose term is already durable, ahead of the write."""
        raft = node.raw.raft
        durable_term = node.storage.hard_state.term
        waiting = []
        for msg in raft.msgs_after_persist:
            if msg.type == MessageType.HEARTBEAT_RESP and msg.term <= durable_term:
                node.sim.send(msg)
            else:
                waiting.append(msg)
        raft.msgs_after_persist = waiting


@dataclass
class FlowLimits:
    max_size_per_msg: int = 1024
    max_inflight_msgs: int = 8
    max_inflight_bytes: int = 4096


@dataclass
class SlowDiskRun:
    """What the leader had in flight to the slow follower, at most, and what got done."""

    max_inflight_count: int = 0
    max_inflight_bytes: int = 0
    max_follower_unstable_bytes: int = 0
    """The most entry bytes the slow follower held received but not yet written (its memory)."""
    proposed: int = 0
    committed: int = 0
    """Entries the leader committed (with the other follower) during the run."""
    slow_match: int = 0


ENTRY_DATA = 200
PROPOSALS_PER_TICK = 4


def run_slow_disk_follower(seed: int, ticks: int, limits: FlowLimits, disk: SlowDisk) -> SlowDiskRun:
    """Three nodes, no faults; once a leader is elected, one follower gets ``disk`` and the leader
    takes ``PROPOSALS_PER_TICK`` proposals of ``ENTRY_DATA`` bytes a tick for ``ticks`` ticks.
    The simulation's checker watches every node throughout, as in any run."""
    sim = Simulation(SimOptions(seed=seed, nodes=3, profile="calm"))
    sim.raft_params.update(
        heartbeat_tick=1,
        max_committed_size_per_ready=None,
        max_uncommitted_entries_size=0,
        pre_vote=True,
        check_quorum=True,
        max_size_per_msg=limits.max_size_per_msg,
        max_inflight_msgs=limits.max_inflight_msgs,
        max_inflight_bytes=limits.max_inflight_bytes,
    )
    sim.network.slow_rate = 0.0
    for node in sim.nodes.values():
        node.start()
    world = sim.world
    world.run_until(world.now + 100 * TICK_US, stop=lambda: sim.leader() is not None)
    leader = sim.leader()
    if leader is None:
        raise AssertionError("no leader elected in 100 ticks")
    slow = next(n for n in sim.nodes.values() if n is not leader)
    slow.slow_disk = disk
    run = SlowDiskRun()
    start_commit = leader.raw.raft.raft_log.committed
    for _ in range(ticks):
        for _ in range(PROPOSALS_PER_TICK):
            try:
                leader.propose(b"x" * ENTRY_DATA)
            except ProposalDroppedError as exc:
                raise AssertionError(f"the leader dropped a proposal: {exc}") from exc
            run.proposed += 1
        world.run_until(world.now + TICK_US)
        raft = leader.raw.raft
        if sim.leader() is not leader:
            raise AssertionError(f"{leader!r} lost leadership; the run needs a steady leader")
        inflights = raft.trk.progress[slow.id].inflights
        run.max_inflight_count = max(run.max_inflight_count, inflights.count())
        run.max_inflight_bytes = max(run.max_inflight_bytes, inflights.bytes)
        unwritten = sum(e.size() for e in slow.raw.raft.raft_log.unstable.entries)
        run.max_follower_unstable_bytes = max(run.max_follower_unstable_bytes, unwritten)
    raft = leader.raw.raft
    run.committed = raft.raft_log.committed - start_commit
    run.slow_match = raft.trk.progress[slow.id].match
    return run

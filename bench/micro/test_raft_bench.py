"""Throughput of the Raft core itself: run with ``pytest bench/micro --benchmark-only``.

``test_committed_entries_batched`` reports entries committed and applied per second through a
3-node in-memory group when proposals arrive in batches (as the store proposes them: one batch
per loop iteration). ``test_step_*`` report the cost of a single ``step()``.
"""

from __future__ import annotations

import pytest

from bench.micro.raft_group import RaftGroup
from kvdb.raft import Entry, Message, MessageType

BATCH = 256
PAYLOAD = b"x" * 100


@pytest.mark.parametrize("batch", [1, 16, BATCH])
def test_committed_entries_batched(benchmark, batch: int) -> None:
    group = RaftGroup(3)
    datas = [PAYLOAD] * batch
    rounds = max(1, 4096 // batch)

    def run() -> None:
        for _ in range(rounds):
            group.leader.propose_batch(datas)
            group.settle()
        group.compact()

    before = group.applied
    benchmark.pedantic(run, rounds=5, iterations=1, warmup_rounds=1)
    committed = group.applied - before
    assert committed == 6 * rounds * batch
    per_second = rounds * batch / benchmark.stats.stats.median
    benchmark.extra_info["entries_per_second"] = round(per_second)
    benchmark.extra_info["messages_per_entry"] = round(group.messages_stepped / group.applied, 3)


def _follower_and_append() -> tuple[RaftGroup, Message]:
    group = RaftGroup(3)
    raft = group.leader.raft
    last = raft.raft_log.last_index()
    m = Message(
        MessageType.APP,
        to=2,
        frm=1,
        term=raft.term,
        index=last,
        log_term=raft.term,
        entries=[Entry(raft.term, last + 1, PAYLOAD)],
        commit=raft.raft_log.committed,
    )
    return group, m


def test_step_heartbeat_on_follower(benchmark) -> None:
    group = RaftGroup(3)
    raft = group.leader.raft
    follower = group.nodes[2]
    m = Message(MessageType.HEARTBEAT, to=2, frm=1, term=raft.term, commit=raft.raft_log.committed, round=1)

    def step() -> None:
        follower.step(m)
        follower.raft.msgs.clear()

    benchmark(step)
    assert follower.raft.lead == 1


def test_step_duplicate_append_on_follower(benchmark) -> None:
    group, m = _follower_and_append()
    follower = group.nodes[2]
    follower.step(m)

    def step() -> None:
        follower.step(m)
        follower.raft.msgs_after_persist.clear()

    benchmark(step)
    assert follower.raft.raft_log.last_index() == m.index + 1


def test_step_append_response_on_leader(benchmark) -> None:
    group = RaftGroup(3)
    leader = group.leader
    raft = leader.raft
    resp = Message(
        MessageType.APP_RESP, to=1, frm=2, term=raft.term, index=raft.raft_log.last_index(), round=1
    )

    def step() -> None:
        leader.step(resp)
        raft.msgs.clear()

    benchmark(step)
    assert raft.trk.progress[2].match == raft.raft_log.last_index()

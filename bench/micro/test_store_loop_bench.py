"""The store loop's CPU per write, without I/O: run with ``pytest bench/micro --benchmark-only``.

``test_put_batch_through_three_stores`` sends a burst of puts (as a loaded leader sees them
arrive between two iterations) through a 3-store ``LocalCluster`` (in-memory engines, messages
handed over in memory) until every store is idle: request handling, proposing, the leader's and
both followers' iterations, applying and answering. Reports microseconds of all three stores'
work per put and loop iterations per burst (an iteration with nothing ready costs a write batch,
a Ready check per peer and the loop's bookkeeping).
"""

from __future__ import annotations

import pytest

from kvdb.server.kv_handler import KvHandler
from kvdb.store.store import Store
from tests.store.local_cluster import LocalCluster, context, put

VALUE = b"x" * 100
ROUNDS, WARMUP = 200, 5


@pytest.mark.parametrize("burst", [1, 32])
def test_put_batch_through_three_stores(benchmark, burst: int, monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = LocalCluster([1, 2, 3])
    leader = cluster.elect()
    handler = KvHandler(leader)
    ctx = context(leader)
    answers: list[object] = []
    iterations = [0]
    begin = Store.begin

    def counted(store: Store):  # noqa: ANN202 (wraps Store.begin)
        iterations[0] += 1
        return begin(store)

    n = [0]

    def run() -> None:
        for _ in range(burst):
            n[0] += 1
            handler.handle(put(b"k%08d" % n[0], VALUE, ctx), answers.append)
        cluster.pump()

    monkeypatch.setattr(Store, "begin", counted)
    benchmark.pedantic(run, rounds=ROUNDS, iterations=1, warmup_rounds=WARMUP)
    assert len(answers) == n[0] and not any(a.put.HasField("error") for a in answers)
    benchmark.extra_info["us_per_put"] = round(1e6 * benchmark.stats.stats.median / burst, 1)
    benchmark.extra_info["iterations_per_burst"] = round(iterations[0] / (ROUNDS + WARMUP), 2)

"""A node's counters never go down: a replica's counters outlive the replica (``Store.stats``)."""

from __future__ import annotations

from prometheus_client.core import Metric

from kvdb.metrics.raft import raft_families
from kvdb.raft import ConfChangeType
from kvdb.store.loop import LoopTimings
from tests.store.local_cluster import LocalCluster, context, new_peer, put


def sample(families: list[Metric], name: str) -> float:
    return next(s.value for f in families for s in f.samples if s.name == name)


def test_a_removed_replicas_counters_stay_in_the_nodes_totals() -> None:
    cluster = LocalCluster([1, 2, 3])
    first = cluster.elect()
    for i in range(5):
        assert not cluster.call(first, put(b"k%d" % i, b"v", context(first))).put.HasField("error")
    proposed = sample(raft_families(first, LoopTimings()), "kvdb_raft_proposals_total")
    assert proposed >= 5

    second = next(s for sid, s in cluster.stores.items() if sid != first.store_id)
    first.transfer_leader(1, second.store_id)
    cluster.advance(0.5)
    assert cluster.leader() is second
    removed = new_peer(first.store_id, first.store_id)
    second.change_peer(1, ConfChangeType.REMOVE_NODE, removed, lambda result: None)
    cluster.advance(0.5)

    assert 1 not in first.peers  # the replica is gone from the first store...
    families = raft_families(first, LoopTimings())
    assert sample(families, "kvdb_raft_proposals_total") == proposed  # ...its proposals still count
    assert sample(families, "kvdb_store_ranges") == 0

"""A range's transactional data (column families ``lock`` and ``write``) goes wherever its raw
data goes: into snapshots, into the ranges a split makes, and away with a destroyed replica
(``kvdb.store.keyspace.data_bounds``)."""

from __future__ import annotations

from kvdb.mvcc import keys as mvcc_keys
from kvdb.mvcc.reader import MvccReader
from kvdb.pb import metapb_pb2, mvccpb_pb2
from kvdb.raft import ConfChangeType
from kvdb.storage.engine import CF_DEFAULT, CF_LOCK, CF_WRITE, Engine
from kvdb.storage.memory import MemEngine
from kvdb.store import keyspace
from kvdb.store.store import Store
from tests.store.local_cluster import LocalCluster, new_peer
from tests.store.test_split import do_split
from tests.store.test_store import write_keys
from tests.store.test_txn_store import call, prewrite

KEYS = [b"k0001", b"k0015", b"k0025"]


def plant_txn_data(cluster: LocalCluster) -> None:
    """A lock and two committed versions of each key in ``KEYS``, on every store (as if
    replicated: these tests are about where the data goes, not how it was written)."""
    for engine in cluster.engines.values():
        batch = engine.batch()
        for key in KEYS:
            batch.put(CF_LOCK, key, mvccpb_pb2.Lock(primary=KEYS[0], start_ts=50).SerializeToString())
            for ts in (10, 20):
                write = mvccpb_pb2.Write(start_ts=ts - 1, value=key + b"@%d" % ts)
                batch.put(CF_WRITE, mvcc_keys.version_key(key, ts), write.SerializeToString())
        engine.write(batch, sync=True)


def txn_keys(engine: Engine, desc: metapb_pb2.RangeDescriptor) -> tuple[list[bytes], list[tuple[bytes, int]]]:
    """(user keys locked, (user key, ts) of versions) of ``desc``'s range in ``engine``."""
    (_, lo, hi), (_, wlo, whi) = keyspace.data_bounds(desc)[1:]
    locks = [k for k, _ in engine.scan(CF_LOCK, lo, hi, 0)]
    versions = [mvcc_keys.split_version_key(k) for k, _ in engine.scan(CF_WRITE, wlo, whi, 0)]
    return locks, versions


def everything(engine: Engine) -> dict[str, int]:
    return {cf: len(engine.scan(cf, b"", None, 0)) for cf in keyspace.DATA_CFS}


def _change(cluster: LocalCluster, range_id: int, change: int, peer: metapb_pb2.Peer) -> object:
    leader = cluster.leader(range_id)
    results: list[object] = []
    leader.change_peer(range_id, change, peer, results.append)
    cluster.advance(0.3)
    assert len(results) == 1 and isinstance(results[0], metapb_pb2.RangeDescriptor), results
    return results[0]


def _add_store(cluster: LocalCluster, store_id: int) -> Store:
    cluster.engines[store_id] = MemEngine()
    return cluster.start(store_id)


def test_a_snapshot_carries_locks_and_versions_and_a_removed_replica_leaves_nothing() -> None:
    cluster = LocalCluster([1, 2, 3])
    cluster.elect()
    write_keys(cluster, 3)
    plant_txn_data(cluster)
    newcomer = _add_store(cluster, 4)
    desc = _change(cluster, 1, ConfChangeType.ADD_LEARNER, new_peer(4, 4))
    assert newcomer.peers[1].counters["snapshots_applied"] == 1
    locks, versions = txn_keys(newcomer.engine, desc)
    assert locks == KEYS
    assert versions == [(k, ts) for k in KEYS for ts in (20, 10)]  # newest first
    write = mvccpb_pb2.Write.FromString(newcomer.engine.get(CF_WRITE, mvcc_keys.version_key(KEYS[1], 20)))
    assert write.value == b"k0015@20"
    assert newcomer.engine.get(CF_DEFAULT, b"k0002") == b"v2"
    victim = next(sid for sid in (1, 2, 3) if not cluster.stores[sid].peers[1].is_leader)
    _change(cluster, 1, ConfChangeType.REMOVE_NODE, new_peer(victim, victim))
    assert 1 not in cluster.stores[victim].peers
    assert everything(cluster.engines[victim]) == {CF_DEFAULT: 0, CF_LOCK: 0, CF_WRITE: 0}


def test_a_split_hands_its_keys_versions_and_locks_to_the_new_range_and_its_snapshots() -> None:
    cluster = LocalCluster([1, 2, 3])
    cluster.elect()
    plant_txn_data(cluster)
    parent, child = do_split(cluster, [b"k0010"])
    leader = cluster.leader(child.id)
    assert txn_keys(leader.engine, parent) == ([KEYS[0]], [(KEYS[0], 20), (KEYS[0], 10)])
    assert txn_keys(leader.engine, child) == (KEYS[1:], [(k, ts) for k in KEYS[1:] for ts in (20, 10)])
    # A new replica of the child gets exactly the child's transactional data by snapshot.
    newcomer = _add_store(cluster, 4)
    _change(cluster, child.id, ConfChangeType.ADD_LEARNER, new_peer(4 * 100, 4))
    assert newcomer.peers[child.id].counters["snapshots_applied"] == 1
    assert everything(newcomer.engine) == {CF_DEFAULT: 0, CF_LOCK: 2, CF_WRITE: 4}
    assert txn_keys(newcomer.engine, child) == txn_keys(leader.engine, child)


def test_txn_data_written_through_the_api_is_readable_in_a_split_off_range_on_a_new_replica() -> None:
    cluster = LocalCluster([1, 2, 3])
    leader = cluster.elect()
    start = cluster.ts()
    resp = prewrite(cluster, leader, start, [b"k0005", b"k0015"])
    assert list(resp.errors) == []
    call(cluster, leader, "commit", start_ts=start, keys=[b"k0005", b"k0015"], commit_ts=cluster.ts())
    locked = cluster.ts()
    assert list(prewrite(cluster, leader, locked, [b"k0016"]).errors) == []
    _, child = do_split(cluster, [b"k0010"])
    newcomer = _add_store(cluster, 4)
    _change(cluster, child.id, ConfChangeType.ADD_LEARNER, new_peer(4 * 100, 4))
    reader = MvccReader(newcomer.engine)
    assert reader.get_value(b"k0015", cluster.ts()) == b"v@%d" % start
    assert reader.load_lock(b"k0016").start_ts == locked
    assert reader.get_value(b"k0005", cluster.ts()) is None  # stayed with the parent, not on store 4

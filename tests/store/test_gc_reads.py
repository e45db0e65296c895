"""GC and reads on a store: a read admitted while the store's safe point was below its ts, but
served only after a GC at a higher safe point applied (it waited behind a latch), must not read
the collected data: it is refused with ``below_safe_point`` like a read arriving after the GC.
A store whose data was collected keeps refusing reads below the safe point across a restart
(before any heartbeat), and a replica built from a snapshot of collected data refuses them too."""

from __future__ import annotations

from kvdb.mvcc import keys
from kvdb.pb import kvrpc_pb2, mvccpb_pb2, raft_serverpb_pb2
from kvdb.server.kv_handler import KvHandler
from kvdb.storage.engine import CF_LOCK, CF_WRITE
from kvdb.store.config import StoreConfig
from kvdb.store.store import Store
from tests.store.local_cluster import LocalCluster, context
from tests.store.test_split import NEW_RANGE, do_split

Req = kvrpc_pb2.Request


def test_a_read_waiting_while_gc_passes_its_ts_is_refused_not_served_from_collected_data() -> None:
    cluster = LocalCluster([1, 2, 3])
    leader = cluster.elect()
    for engine in cluster.engines.values():  # k = v1 at 10, v2 at 30, on every replica
        batch = engine.batch()
        for commit_ts, value in ((10, b"v1"), (30, b"v2")):
            record = mvccpb_pb2.Write(kind=mvccpb_pb2.Write.PUT, start_ts=commit_ts - 1, value=value)
            batch.put(CF_WRITE, keys.version_key(b"k", commit_ts), record.SerializeToString())
        engine.write(batch, sync=False)
    handler, ctx = KvHandler(leader), context(leader)
    answers: list[kvrpc_pb2.Response] = []
    # A GC at 35 is proposed (it drops v1: v2 is the newest version at 35) ...
    gc = raft_serverpb_pb2.RaftCommand()
    gc.txn.gc.safe_point = 35
    leader.propose(1, leader.peers[1].desc.epoch, gc, lambda result: None)
    # ... then a stamped prewrite latches k, and a read at 20 is admitted (the store's safe point
    # is still 0) and waits behind the latch, until after the GC applied.
    handler.handle(Req(prewrite=kvrpc_pb2.PrewriteRequest(
        context=ctx, mutations=[kvrpc_pb2.TxnMutation(op=kvrpc_pb2.PUT, key=b"k", value=b"v3")],
        primary_lock=b"k", start_ts=40, lock_ttl_ms=3000, use_async_commit=True)), answers.append)
    handler.handle(Req(txn_get=kvrpc_pb2.TxnGetRequest(context=ctx, key=b"k", version=20)), answers.append)
    assert answers == []
    cluster.pump()
    (read,) = [a.txn_get for a in answers if a.HasField("txn_get")]
    assert read.key_error.below_safe_point.safe_point == 35, read  # not "not found" (v1 is gone)
    assert call_get(cluster, leader, 36) == b"v2"


def call_get(cluster: LocalCluster, store: Store, version: int) -> bytes | None:
    resp = cluster.call(store, Req(txn_get=kvrpc_pb2.TxnGetRequest(context=context(store), key=b"k",
                                                                   version=version))).txn_get
    assert not resp.HasField("key_error"), resp.key_error
    return None if resp.not_found else resp.value


def _gc(cluster: LocalCluster, leader: Store, safe_point: int) -> None:
    cmd = raft_serverpb_pb2.RaftCommand()
    cmd.txn.gc.safe_point = safe_point
    leader.propose(1, leader.peers[1].desc.epoch, cmd, lambda result: None)
    cluster.settle()  # every replica applied it


def test_a_restarted_store_refuses_reads_below_what_it_collected_before_any_heartbeat() -> None:
    cluster = LocalCluster([1, 2, 3])
    leader = cluster.elect()
    _gc(cluster, leader, 35)
    follower = next(sid for sid, s in cluster.stores.items() if s is not leader)
    cluster.crash(follower)
    assert cluster.start(follower).gc_safe_point == 35  # persisted with the deletions


def test_a_snapshot_of_collected_data_carries_the_safe_point_to_its_receiver() -> None:
    cluster = LocalCluster([1, 2, 3], StoreConfig(raft_log_gc_count_limit=30, raft_log_gc_keep=5))
    leader = cluster.elect()
    lagging = next(sid for sid, s in cluster.stores.items() if s is not leader)
    cluster.crash(lagging)
    _gc(cluster, leader, 35)
    for i in range(60):  # truncate the log past the GC: the lagging replica catches up by snapshot
        cluster.call(leader, Req(put=kvrpc_pb2.RawPutRequest(context=context(leader), key=b"f%03d" % i,
                                                             value=b"x")))
    assert leader.peers[1].storage.first_index() > 10
    store = cluster.start(lagging)
    assert store.gc_safe_point == 0
    cluster.advance(0.5)
    assert store.peers[1].counters["snapshots_applied"] == 1
    assert store.gc_safe_point == 35
    cluster.crash(lagging)  # and it was written with the snapshot's state
    assert cluster.start(lagging).gc_safe_point == 35


def test_a_prewrite_below_the_ranges_collected_safe_point_is_refused_at_apply_by_every_replica() -> None:
    """The safety review's lost update: T (start 100) read k; U deleted k at 150; GC at 200 drops
    the DELETE (the newest record at 200); T's prewrite then found nothing above 100 and
    committed over U's delete. The leader that let it through had not heard of the safe point
    (a new leader, no heartbeat yet: its store-wide safe point is 0); apply refuses it anyway,
    from the range's replicated safe point, and a restarted replica and a split-off child keep
    refusing."""
    cluster = LocalCluster([1, 2, 3])
    leader = cluster.elect()
    ctx = context(leader)
    for engine in cluster.engines.values():  # k = v at 50, deleted at 150, on every replica
        batch = engine.batch()
        put = mvccpb_pb2.Write(kind=mvccpb_pb2.Write.PUT, start_ts=40, value=b"v")
        delete = mvccpb_pb2.Write(kind=mvccpb_pb2.Write.DELETE, start_ts=140)
        batch.put(CF_WRITE, keys.version_key(b"k", 50), put.SerializeToString())
        batch.put(CF_WRITE, keys.version_key(b"k", 150), delete.SerializeToString())
        engine.write(batch, sync=False)
    _gc(cluster, leader, 200)
    assert {p.gc_safe_point for p in cluster.peers().values()} == {200}
    leader.gc_safe_point = 0  # as if it had just become leader and heard nothing from PD yet

    def prewrite(store: Store, start_ts: int) -> kvrpc_pb2.PrewriteResponse:
        request = kvrpc_pb2.PrewriteRequest(
            context=context(store), primary_lock=b"k", start_ts=start_ts, lock_ttl_ms=3000,
            mutations=[kvrpc_pb2.TxnMutation(op=kvrpc_pb2.PUT, key=b"k", value=b"v+1")])
        return cluster.call(store, Req(prewrite=request)).prewrite

    refused = prewrite(leader, 100)
    assert refused.errors[0].below_safe_point.safe_point == 200, refused
    assert all(e.get(CF_LOCK, b"k") is None for e in cluster.engines.values())
    assert ctx.epoch == context(leader).epoch
    for store_id in cluster.stores:  # replicas restart knowing the range's safe point
        cluster.crash(store_id)
        cluster.start(store_id)
    leader = cluster.elect()
    assert {p.gc_safe_point for p in cluster.peers().values()} == {200}
    leader.gc_safe_point = 0
    assert prewrite(leader, 190).errors[0].below_safe_point.safe_point == 200
    do_split(cluster, [b"j"])  # k moves to the new range, which inherits the safe point
    assert {p.gc_safe_point for p in cluster.peers(NEW_RANGE).values()} == {200}
    child = cluster.elect(NEW_RANGE)
    child.gc_safe_point = 0
    request = kvrpc_pb2.PrewriteRequest(
        context=context(child, NEW_RANGE), primary_lock=b"k", start_ts=190, lock_ttl_ms=3000,
        mutations=[kvrpc_pb2.TxnMutation(op=kvrpc_pb2.PUT, key=b"k", value=b"v+1")])
    assert cluster.call(child, Req(prewrite=request)).prewrite.errors[0].below_safe_point.safe_point == 200
    request.start_ts = 201  # above it: the DELETE's absence cannot matter
    assert not cluster.call(child, Req(prewrite=request)).prewrite.errors


def test_a_retried_1pc_prewrite_answers_the_commit_ts_of_the_attempt_that_committed() -> None:
    """The safety review's wrong commit_ts: a 1PC prewrite applied but its answer was lost; the
    retry, re-sent per range after a split, no longer asks for 1PC; it must still answer the
    commit_ts the keys were committed at, or the client takes the 2PC path and reports a TSO
    stamp above the one readers see the writes at."""
    cluster = LocalCluster([1, 2, 3])
    leader = cluster.elect()
    mutations = [kvrpc_pb2.TxnMutation(op=kvrpc_pb2.PUT, key=k, value=b"v") for k in (b"a", b"b")]
    first = kvrpc_pb2.PrewriteRequest(context=context(leader), mutations=mutations, primary_lock=b"a",
                                      start_ts=10, lock_ttl_ms=3000, try_one_pc=True)
    committed = cluster.call(leader, Req(prewrite=first)).prewrite.one_pc_commit_ts
    assert committed > 10
    retry = kvrpc_pb2.PrewriteRequest(context=context(leader), mutations=mutations[1:], primary_lock=b"a",
                                      start_ts=10, lock_ttl_ms=3000)
    again = cluster.call(leader, Req(prewrite=retry)).prewrite
    assert not again.errors and again.one_pc_commit_ts == committed

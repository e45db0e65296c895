"""Transactions on stores (kvdb.store.txn_api, Store._apply_txn, the max ts): requests through
the KV handler of in-memory stores with a hand-driven network, clock and TSO."""

from __future__ import annotations

import pytest

from kvdb.pb import kvrpc_pb2, raft_serverpb_pb2
from kvdb.server.kv_handler import KvHandler
from kvdb.storage.engine import CF_LOCK
from kvdb.store.store import Store
from kvdb.txn.concurrency import TS_AHEAD_ALLOWANCE_MS, TS_LIMIT_REFRESH_S
from tests.store.local_cluster import LocalCluster, context, request
from tests.storesim.cluster import SimOptions, StoreSimulation

Req = kvrpc_pb2.Request


def call(cluster: LocalCluster, store: Store, kind: str, **fields: object) -> object:
    """One request of ``kind`` to ``store``'s range 1, pumped until answered: its response body."""
    return getattr(cluster.call(store, request(kind, context(store), **fields)), kind)


def mutation(key: bytes, value: bytes = b"v") -> kvrpc_pb2.TxnMutation:
    return kvrpc_pb2.TxnMutation(op=kvrpc_pb2.PUT, key=key, value=value)


def prewrite(cluster: LocalCluster, store: Store, start_ts: int, keys: list[bytes],
             **fields: object) -> object:
    return call(cluster, store, "prewrite", mutations=[mutation(k, b"v@%d" % start_ts) for k in keys],
                primary_lock=keys[0], start_ts=start_ts, lock_ttl_ms=3000, **fields)


def test_prewrite_commit_and_reads_at_timestamps_on_every_replica() -> None:
    cluster = LocalCluster([1, 2, 3])
    leader = cluster.elect()
    start = cluster.ts()
    resp = prewrite(cluster, leader, start, [b"a", b"b"])
    assert not resp.HasField("error") and list(resp.errors) == []
    locked = call(cluster, leader, "txn_get", key=b"a", version=cluster.ts())
    assert locked.key_error.locked.start_ts == start and locked.key_error.locked.primary == b"a"
    commit_ts = cluster.ts()
    resp = call(cluster, leader, "commit", start_ts=start, keys=[b"a", b"b"], commit_ts=commit_ts)
    assert not resp.HasField("error") and not resp.HasField("key_error")
    assert call(cluster, leader, "txn_get", key=b"b", version=cluster.ts()).value == b"v@%d" % start
    assert call(cluster, leader, "txn_get", key=b"b", version=commit_ts - 1).not_found
    scan = call(cluster, leader, "txn_scan", start_key=b"", version=cluster.ts())
    assert [(p.key, p.value) for p in scan.pairs] == [(b"a", b"v@%d" % start), (b"b", b"v@%d" % start)]
    cluster.settle()
    for store in cluster.stores.values():  # applied everywhere: the locks are gone on every replica
        assert store.engine.scan(CF_LOCK, b"", None, 0) == []
    assert len(leader.latches) == 0  # every command's latches were released


def test_one_phase_commit_writes_no_lock() -> None:
    cluster = LocalCluster([1, 2, 3])
    leader = cluster.elect()
    start = cluster.ts()
    resp = prewrite(cluster, leader, start, [b"k"], try_one_pc=True)
    assert resp.one_pc_commit_ts > start and list(resp.errors) == []
    assert call(cluster, leader, "txn_get", key=b"k", version=cluster.ts()).value == b"v@%d" % start
    assert leader.engine.scan(CF_LOCK, b"", None, 0) == []


BAD = {
    "prewrite": [dict(start_ts=5, primary_lock=b"a"),  # no mutations
                 dict(mutations=[mutation(b"a")], primary_lock=b"a"),  # no start_ts
                 dict(mutations=[mutation(b"a")], start_ts=5),  # no primary
                 dict(mutations=[mutation(b"a"), mutation(b"a")], start_ts=5, primary_lock=b"a"),
                 dict(mutations=[mutation(b"")], start_ts=5, primary_lock=b"a"),
                 dict(mutations=[mutation(b"a", b"x" * (1 << 24))], start_ts=5, primary_lock=b"a")],
    "commit": [dict(start_ts=5, keys=[b"a"], commit_ts=5), dict(start_ts=5, commit_ts=6)],
    "rollback": [dict(keys=[b"a"])],
    "check_txn_status": [dict(primary_key=b"a")],
    "resolve_lock": [dict(start_ts=5, commit_ts=4, keys=[b"a"]),
                     dict(start_ts=5, keys=[b"a"], txn_infos=[kvrpc_pb2.TxnInfo(start_ts=5)])],
    "txn_heart_beat": [dict(start_ts=5)],
    "txn_get": [dict(key=b"a")],
    "txn_scan": [dict(start_key=b"b", end_key=b"a", version=5)],
}


@pytest.mark.parametrize("kind,fields", [(k, f) for k, cases in BAD.items() for f in cases])
def test_bad_txn_requests_are_refused_and_nothing_is_proposed(kind: str, fields: dict) -> None:
    cluster = LocalCluster([1])
    leader = cluster.elect()
    before = leader.peers[1].counters["proposals"]
    resp = call(cluster, leader, kind, **fields)
    assert resp.error.HasField("invalid_argument"), resp
    assert leader.peers[1].counters["proposals"] == before and len(leader.latches) == 0


def test_every_request_kind_is_served_or_refused_never_a_crash() -> None:
    cluster = LocalCluster([1])
    leader = cluster.elect()
    valid_when_empty = {"delete_range", "scan", "scan_lock"}  # whole range (scan_lock: locks <= ts 0)
    for field in kvrpc_pb2.Request.DESCRIPTOR.oneofs_by_name["cmd"].fields:
        resp = call(cluster, leader, field.name)  # answered exactly once (``call`` checks)
        assert resp.HasField("error") != (field.name in valid_when_empty), field.name


def test_an_async_prewrite_commits_above_every_read_already_served() -> None:
    """The concurrency manager's point: a read at R served before the prewrite's locks existed
    saw no lock, so the transaction must commit above R (with start_ts < R it would otherwise
    pick a commit ts <= R and the read would have missed a committed write)."""
    cluster = LocalCluster([1, 2, 3])
    leader = cluster.elect()
    start = cluster.ts()
    read_ts = cluster.ts()
    assert call(cluster, leader, "txn_get", key=b"k", version=read_ts).not_found
    resp = prewrite(cluster, leader, start, [b"k"], use_async_commit=True)
    assert resp.min_commit_ts > read_ts
    one_pc = prewrite(cluster, leader, start + 1, [b"j"], try_one_pc=True)  # not locked by the read
    assert list(one_pc.errors) == [] and one_pc.one_pc_commit_ts > read_ts


def test_a_read_that_meets_a_stamped_prewrite_waits_and_then_sees_its_lock() -> None:
    """The prewrite stamped the max ts before the read raised it: it may commit at or below the
    read's ts, so the read must not be served before its lock is visible."""
    cluster = LocalCluster([1, 2, 3])
    leader = cluster.elect()
    handler = KvHandler(leader)
    ctx = context(leader)
    start = cluster.ts()
    answers: list[kvrpc_pb2.Response] = []
    handler.handle(Req(prewrite=kvrpc_pb2.PrewriteRequest(
        context=ctx, mutations=[mutation(b"k")], primary_lock=b"k", start_ts=start, lock_ttl_ms=3000,
        use_async_commit=True)), answers.append)
    read_ts = cluster.ts()
    read = kvrpc_pb2.TxnGetRequest(context=ctx, key=b"k", version=read_ts)
    handler.handle(Req(txn_get=read), answers.append)
    assert answers == []  # a lease read would have been answered at once: it waits for the latch
    cluster.pump()
    (prewritten,) = [a.prewrite for a in answers if a.HasField("prewrite")]
    (read,) = [a.txn_get for a in answers if a.HasField("txn_get")]
    assert prewritten.min_commit_ts <= read_ts  # stamped before the read: the case waiting is for
    assert read.key_error.locked.start_ts == start


def test_a_new_leader_stamps_nothing_until_it_synced_its_max_ts_with_the_tso() -> None:
    cluster = LocalCluster([1, 2, 3])
    old = cluster.elect()
    read_ts = cluster.ts()
    start = read_ts - 1 if read_ts > 1 else read_ts
    assert call(cluster, old, "txn_get", key=b"k", version=read_ts).not_found  # served by the old leader
    cluster.tso_waiting = []  # the new leader's fetch stays unanswered for now
    cluster.isolate(old.store_id)
    cluster.advance(3.0)
    new = next(s for s in cluster.stores.values() if s is not old and s.peers[1].is_leader)
    assert not new.peers[1].max_ts_synced and cluster.tso_waiting
    resp = prewrite(cluster, new, start, [b"k"], use_async_commit=True)
    assert resp.error.max_ts_not_synced.backoff_ms > 0
    assert list(prewrite(cluster, new, start, [b"j"]).errors) == []  # 2PC needs no max ts
    cluster.answer_tso()
    resp = prewrite(cluster, new, start, [b"k"], use_async_commit=True)
    assert not resp.HasField("error") and resp.min_commit_ts > read_ts


def test_a_follower_answers_not_leader_to_a_stamped_prewrite_not_max_ts_not_synced() -> None:
    """A follower never syncs its max ts; answering "not synced" made a client with a stale
    leader cache back off and ask the same follower until its deadline (bank bench hang)."""
    cluster = LocalCluster([1, 2, 3])
    leader = cluster.elect()
    follower = next(s for s in cluster.stores.values() if s is not leader)
    for flags in ({"use_async_commit": True}, {"try_one_pc": True}):
        resp = prewrite(cluster, follower, cluster.ts(), [b"k"], **flags)
        assert resp.error.HasField("not_leader"), resp.error
        assert resp.error.not_leader.leader.store_id == leader.store_id
    assert len(follower.latches) == 0


def test_simulated_stores_sync_their_leaders_max_ts_with_the_sim_tso() -> None:
    """The simulator's TSO wiring (``SimStore._request_ts``, ``SimTso``): across a run with
    faults (lost and late PD messages, leader changes) every range leader ends up synced."""
    sim = StoreSimulation(SimOptions(seed=12, stores=5))
    sim.run()
    leaders = [(node, p) for node in sim.stores.values() if node.alive
               for p in node.store.peers.values() if p.is_leader]
    assert leaders
    for node, peer in leaders:
        assert peer.max_ts_synced, (node, peer.range_id)
        assert 0 < node.store.cm.max_ts <= sim.tso.last


def test_reads_and_prewrites_at_or_below_the_gc_safe_point_are_refused_in_the_body() -> None:
    cluster = LocalCluster([1])
    leader = cluster.elect()
    leader.gc_safe_point = 50
    before = leader.peers[1].counters["proposals"]
    for version in (49, 50):
        resp = call(cluster, leader, "txn_get", key=b"k", version=version)
        below = resp.key_error.below_safe_point
        assert (below.ts, below.safe_point) == (version, 50)
    resp = prewrite(cluster, leader, 50, [b"k"])
    assert not resp.HasField("error") and resp.errors[0].below_safe_point.safe_point == 50
    assert leader.peers[1].counters["proposals"] == before  # nothing went through Raft
    assert call(cluster, leader, "txn_get", key=b"k", version=51).not_found


def test_an_apply_pass_writes_earlier_entries_only_before_a_txn_command_that_reads_their_keys(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Txn commands on distinct keys share one engine write per apply pass; a command reading a
    key an earlier entry of the pass staged (commit after prewrite), or walking the range
    (resolve_lock by transaction), first gets those entries written, so it sees them."""
    cluster = LocalCluster([1, 2, 3])
    leader = cluster.elect()
    peer = leader.peers[1]
    writes: list[int] = []
    write = leader.engine.write
    monkeypatch.setattr(leader.engine, "write", lambda batch, sync=False: (writes.append(len(batch)),
                                                                            write(batch, sync=sync)))
    t1, t2, t3 = cluster.ts(), cluster.ts(), cluster.ts()

    def apply(**command: object) -> object:
        return leader._apply_txn(peer, raft_serverpb_pb2.TxnCommand(**command))

    def pw(start_ts: int, key: bytes) -> kvrpc_pb2.PrewriteRequest:
        return kvrpc_pb2.PrewriteRequest(mutations=[mutation(key)], primary_lock=key, start_ts=start_ts,
                                         lock_ttl_ms=3000)

    leader.apply_batch = leader.engine.batch()  # a new apply pass
    assert list(apply(prewrite=pw(t1, b"a")).errors) == []
    assert list(apply(prewrite=pw(t2, b"b")).errors) == []
    assert list(apply(prewrite=pw(t3, b"c")).errors) == []
    assert writes == []  # three commands, distinct keys: nothing written yet
    answer = apply(commit=kvrpc_pb2.CommitRequest(start_ts=t1, keys=[b"a"], commit_ts=cluster.ts()))
    assert not answer.HasField("key_error")  # it saw a's lock: the prewrites were written first
    assert len(writes) == 1
    apply(resolve_lock=kvrpc_pb2.ResolveLockRequest(start_ts=t2, commit_ts=0))  # walks the range
    assert len(writes) == 2
    apply(resolve_lock=kvrpc_pb2.ResolveLockRequest(start_ts=t3, commit_ts=0, keys=[b"c"]))
    assert len(writes) == 3  # the walk may have staged anything
    leader.flush_apply()
    assert [k for k, _ in leader.engine.scan(CF_LOCK, b"", None, 0)] == []  # b, c rolled back, a committed


@pytest.mark.parametrize("far", [1 << 62, (1 << 64) - 1])
def test_a_timestamp_from_the_far_future_is_refused_and_later_commits_stay_visible(far: int) -> None:
    """A reader (any role may read) naming a timestamp no TSO issued would raise the store's max ts
    past it: every later 1PC/async commit would land in the future, invisible to fresh snapshots,
    or (near 2**64) fail to encode while applying, on every replica, at every restart."""
    cluster = LocalCluster([1, 2, 3])
    leader = cluster.elect()
    for kind, fields in (("txn_get", dict(key=b"k", version=far)),
                         ("txn_scan", dict(start_key=b"a", end_key=b"z", version=far)),
                         ("check_txn_status", dict(primary_key=b"k", lock_ts=5, caller_start_ts=far,
                                                   current_ts=far)),
                         ("prewrite", dict(mutations=[mutation(b"k")], primary_lock=b"k", start_ts=far,
                                           try_one_pc=True))):
        assert call(cluster, leader, kind, **fields).error.HasField("invalid_argument"), kind
    start = cluster.ts()
    resp = prewrite(cluster, leader, start, [b"k"], try_one_pc=True)
    assert start < resp.one_pc_commit_ts < start + 10 and list(resp.errors) == []
    assert call(cluster, leader, "txn_get", key=b"k", version=cluster.ts()).value == b"v@%d" % start


def test_the_timestamp_limit_follows_the_tso_a_store_fetched() -> None:
    """A store with leaders re-fetches a TSO stamp every few seconds, so a timestamp just issued is
    always under its limit, and one far past the last fetch never is."""
    cluster = LocalCluster([1])
    leader = cluster.elect()
    cluster.last_ts = 1_000_000 << 18  # PD's clock: 1,000,000 ms
    cluster.advance(TS_LIMIT_REFRESH_S + 0.5)  # the next fetch learns it
    assert call(cluster, leader, "txn_get", key=b"k", version=cluster.ts()).error.ByteSize() == 0
    too_far = (1_000_000 + TS_AHEAD_ALLOWANCE_MS + 2_000) << 18
    assert call(cluster, leader, "txn_get", key=b"k", version=too_far).error.HasField("invalid_argument")

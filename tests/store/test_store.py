"""The store's logic with in-memory engines and a hand-driven network and clock."""

from __future__ import annotations

import pytest

from kvdb.pb import kvrpc_pb2, metapb_pb2, raft_serverpb_pb2
from kvdb.raft import ConfChangeType, EntryType
from kvdb.server.kv_handler import KvHandler
from kvdb.storage.engine import CF_DEFAULT, CF_META
from kvdb.storage.keys import range_state_key
from kvdb.storage.memory import MemEngine
from kvdb.store.config import StoreConfig
from kvdb.store.errors import DamagedStateError, StoreError
from tests.store.local_cluster import LocalCluster, context, get, new_peer, put

SMALL_LOG = StoreConfig(raft_log_gc_count_limit=30, raft_log_gc_keep=5)


def write_keys(cluster: LocalCluster, n: int, prefix: bytes = b"k") -> None:
    leader = cluster.leader()
    ctx = context(leader)
    for i in range(n):
        resp = cluster.call(leader, put(prefix + b"%04d" % i, b"v%d" % i, ctx))
        assert not resp.put.HasField("error"), resp


def test_elects_a_leader_replicates_and_serves_lease_reads() -> None:
    cluster = LocalCluster([1, 2, 3])
    leader = cluster.elect()
    write_keys(cluster, 20)
    cluster.advance(0.2)
    for store in cluster.stores.values():
        assert store.engine.get(CF_DEFAULT, b"k0007") == b"v7"
        assert store.peers[1].applied == leader.peers[1].applied
    peer = leader.peers[1]
    before = dict(peer.counters)
    commit = peer.raw.raft.raft_log.committed
    resp = cluster.call(leader, get(b"k0003", context(leader)))
    assert resp.get.value == b"v3"
    assert peer.counters["lease_reads"] == before["lease_reads"] + 1
    assert peer.counters["read_index_reads"] == before["read_index_reads"]
    assert peer.raw.raft.raft_log.committed == commit  # no Raft entry for a read


def test_read_without_lease_goes_through_read_index() -> None:
    cluster = LocalCluster([1, 2, 3])
    leader = cluster.elect()
    write_keys(cluster, 3)
    peer = leader.peers[1]
    peer.lease.expire()
    resp = cluster.call(leader, get(b"k0001", context(leader)))
    assert resp.get.value == b"v1"
    assert peer.counters["read_index_reads"] == 1


def test_follower_answers_not_leader_with_a_hint() -> None:
    cluster = LocalCluster([1, 2, 3])
    leader = cluster.elect()
    follower = next(s for s in cluster.stores.values() if s is not leader)
    for req in (put(b"a", b"1", context(follower)), get(b"a", context(follower))):
        resp = cluster.call(follower, req)
        body = getattr(resp, req.WhichOneof("cmd"))
        assert body.error.not_leader.leader.store_id == leader.store_id


def test_stale_epoch_and_wrong_cluster_are_refused_with_the_current_descriptor() -> None:
    cluster = LocalCluster([1, 2, 3])
    leader = cluster.elect()
    ctx = context(leader)
    ctx.epoch.version += 5
    resp = cluster.call(leader, put(b"a", b"1", ctx))
    assert list(resp.put.error.epoch_not_match.current_ranges) == [leader.peers[1].desc]
    ctx = context(leader)
    ctx.cluster_id = 99
    assert cluster.call(leader, get(b"a", ctx)).get.error.HasField("wrong_cluster")
    ctx = context(leader)
    ctx.range_id = 42
    assert cluster.call(leader, get(b"a", ctx)).get.error.range_not_found.range_id == 42


def test_restart_resumes_from_the_persisted_log_and_applied_index() -> None:
    cluster = LocalCluster([1, 2, 3])
    cluster.elect()
    write_keys(cluster, 10)
    cluster.advance(0.2)
    applied = {sid: s.peers[1].applied for sid, s in cluster.stores.items()}
    terms = {sid: s.peers[1].raw.raft.term for sid, s in cluster.stores.items()}
    for sid in list(cluster.stores):
        cluster.crash(sid)
    for sid in applied:
        store = cluster.start(sid)
        assert store.peers[1].applied == applied[sid]
        assert store.peers[1].raw.raft.term == terms[sid]
    leader = cluster.elect()
    assert cluster.call(leader, get(b"k0009", context(leader))).get.value == b"v9"


def test_power_cut_of_every_store_loses_no_acknowledged_write() -> None:
    """Only what the loop synced survives; that must be enough for every answered write."""
    cluster = LocalCluster([1, 2, 3])
    cluster.elect()
    write_keys(cluster, 10)
    applied = {sid: s.peers[1].applied for sid, s in cluster.stores.items()}
    lost = sum(cluster.crash(sid, power_cut=True) for sid in applied)
    assert lost > 0  # the apply passes were not synced: their writes are gone
    restarted = {sid: cluster.start(sid).peers[1].applied for sid in applied}
    assert any(restarted[sid] < applied[sid] for sid in applied), (restarted, applied)
    leader = cluster.elect()
    for i in range(10):
        assert cluster.call(leader, get(b"k%04d" % i, context(leader))).get.value == b"v%d" % i


def test_isolated_leader_loses_its_lease_and_its_pending_write_goes_stale() -> None:
    cluster = LocalCluster([1, 2, 3])
    old = cluster.elect()
    write_keys(cluster, 1)
    cluster.isolate(old.store_id)
    answers: list[kvrpc_pb2.Response] = []
    KvHandler(old).handle(put(b"lost", b"x", context(old)), answers.append)
    cluster.advance(cluster.config.lease_span + cluster.config.tick_interval)
    assert not old.peers[1].lease_valid(cluster.clock.now())
    cluster.advance(cluster.config.election_timeout * 3)
    others = [s for s in cluster.stores.values() if s is not old]
    new = next(s for s in others if s.peers[1].is_leader)
    assert cluster.call(new, put(b"k0000", b"new", context(new))).put.error.message == ""
    assert answers == []
    cluster.heal()
    cluster.advance(0.5)
    assert answers and answers[0].put.error.HasField("stale_command")
    assert new.engine.get(CF_DEFAULT, b"lost") is None
    assert old.engine.get(CF_DEFAULT, b"k0000") == b"new"


def test_server_busy_when_too_many_writes_wait() -> None:
    cluster = LocalCluster([1, 2, 3], StoreConfig(max_pending_proposals=2))
    leader = cluster.elect()
    cluster.isolate(leader.store_id)  # nothing commits, so proposals pile up
    answers: list[kvrpc_pb2.Response] = []
    handler = KvHandler(leader)
    for i in range(3):
        handler.handle(put(b"k%d" % i, b"v", context(leader)), answers.append)
    assert len(answers) == 1 and answers[0].put.error.server_busy.backoff_ms > 0


def test_a_proposal_the_core_drops_is_answered_busy_not_stale() -> None:
    """Over the uncommitted-bytes limit the core appends nothing: the write cannot apply later,
    so the answer is server_busy (retry after a backoff), not stale_command ("it may have")."""
    cluster = LocalCluster([1, 2, 3], StoreConfig(max_uncommitted_entries_size=512))
    leader = cluster.elect()
    cluster.isolate(leader.store_id)  # nothing commits, so uncommitted bytes pile up
    answers: dict[int, kvrpc_pb2.Response] = {}
    handler = KvHandler(leader)
    for i in range(4):
        handler.handle(put(b"k%d" % i, b"v" * 400, context(leader)), lambda r, i=i: answers.__setitem__(i, r))
        cluster.pump()
    busy = [i for i, a in answers.items() if a.put.error.HasField("server_busy")]
    assert busy and "uncommitted" in answers[busy[0]].put.error.message
    assert not any(a.put.error.HasField("stale_command") for a in answers.values())
    cluster.heal()
    cluster.advance(0.5)
    assert all(leader.engine.get(CF_DEFAULT, b"k%d" % i) is None for i in busy)


def test_cas_sees_earlier_entries_of_the_same_apply_pass() -> None:
    cluster = LocalCluster([1, 2, 3])
    leader = cluster.elect()
    ctx = context(leader)
    answers: list[kvrpc_pb2.Response] = []
    handler = KvHandler(leader)
    handler.handle(put(b"c", b"1", ctx), answers.append)
    for prev, new in ((b"1", b"2"), (b"2", b"3"), (b"1", b"4")):
        cas = kvrpc_pb2.RawCompareAndSwapRequest(context=ctx, key=b"c", value=new, previous_value=prev)
        handler.handle(kvrpc_pb2.Request(cas=cas), answers.append)
    cluster.pump()
    assert [a.cas.succeed for a in answers[1:]] == [True, True, False]
    assert answers[3].cas.previous_value == b"3"
    cluster.settle()  # the followers applied them too
    for store in cluster.stores.values():
        assert store.engine.get(CF_DEFAULT, b"c") == b"3"


def test_scan_delete_range_and_batch_get() -> None:
    cluster = LocalCluster([1, 2, 3])
    leader = cluster.elect()
    write_keys(cluster, 10)
    ctx = context(leader)
    scan = kvrpc_pb2.RawScanRequest(context=ctx, start_key=b"k0002", end_key=b"k0008", limit=3, reverse=True)
    resp = cluster.call(leader, kvrpc_pb2.Request(scan=scan))
    assert [p.key for p in resp.scan.pairs] == [b"k0007", b"k0006", b"k0005"]
    dr = kvrpc_pb2.RawDeleteRangeRequest(context=ctx, start_key=b"k0003", end_key=b"k0006")
    assert not cluster.call(leader, kvrpc_pb2.Request(delete_range=dr)).delete_range.HasField("error")
    bg = kvrpc_pb2.RawBatchGetRequest(context=ctx, keys=[b"k0002", b"k0003", b"k0006"])
    resp = cluster.call(leader, kvrpc_pb2.Request(batch_get=bg))
    assert [p.key for p in resp.batch_get.pairs] == [b"k0002", b"k0006"]


def test_lagging_follower_is_repaired_by_snapshot_after_log_truncation() -> None:
    cluster = LocalCluster([1, 2, 3], SMALL_LOG)
    cluster.elect()
    follower = next(sid for sid, s in cluster.stores.items() if not s.peers[1].is_leader)
    cluster.crash(follower)
    write_keys(cluster, 80)
    leader = cluster.leader()
    assert leader.peers[1].storage.first_index() > 10  # the log was truncated
    cluster.start(follower)
    cluster.advance(0.5)
    peer = cluster.stores[follower].peers[1]
    assert peer.counters["snapshots_applied"] == 1
    assert leader.peers[1].counters["snapshots_sent"] >= 1
    assert peer.applied == leader.peers[1].applied
    assert cluster.stores[follower].engine.get(CF_DEFAULT, b"k0079") == b"v79"


def _change(cluster: LocalCluster, change: int, peer: metapb_pb2.Peer) -> object:
    leader = cluster.leader()
    results: list[object] = []
    leader.change_peer(1, change, peer, results.append)
    cluster.advance(0.3)
    assert len(results) == 1
    return results[0]


def test_add_learner_promote_and_remove_a_replica() -> None:
    cluster = LocalCluster([1, 2, 3])
    cluster.engines[4] = MemEngine()
    cluster.start(4)
    cluster.elect()
    write_keys(cluster, 5)
    desc = _change(cluster, ConfChangeType.ADD_LEARNER, new_peer(4, 4))
    assert not isinstance(desc, StoreError)
    assert (desc.epoch.conf_ver, [(p.id, p.role) for p in desc.peers][-1]) == (2, (4, metapb_pb2.LEARNER))
    newcomer = cluster.stores[4].peers[1]
    assert newcomer.counters["snapshots_applied"] == 1 and newcomer.desc == desc
    assert cluster.stores[4].engine.get(CF_DEFAULT, b"k0004") == b"v4"
    desc = _change(cluster, ConfChangeType.ADD_NODE, new_peer(4, 4))
    assert [p.role for p in desc.peers] == [metapb_pb2.VOTER] * 4
    victim = next(sid for sid in (1, 2, 3) if not cluster.stores[sid].peers[1].is_leader)
    desc = _change(cluster, ConfChangeType.REMOVE_NODE, new_peer(victim, victim))
    assert victim not in [p.store_id for p in desc.peers]
    assert 1 not in cluster.stores[victim].peers and cluster.stores[victim].tombstones[1] == victim
    assert cluster.stores[victim].engine.get(CF_DEFAULT, b"k0004") is None
    cluster.crash(victim)
    assert 1 not in cluster.start(victim).peers  # the tombstone survives a restart
    write_keys(cluster, 3, b"after")
    cluster.settle()
    assert cluster.stores[4].engine.get(CF_DEFAULT, b"after0002") == b"v2"


def test_conf_change_on_a_stale_epoch_is_rejected_at_apply() -> None:
    cluster = LocalCluster([1, 2, 3])
    leader = cluster.elect()
    peer = leader.peers[1]
    stale = metapb_pb2.RangeDescriptor()
    stale.CopyFrom(peer.desc)
    stale.epoch.conf_ver -= 1
    peer.desc, real = stale, peer.desc
    results: list[object] = []
    leader.change_peer(1, ConfChangeType.ADD_LEARNER, new_peer(9, 9), results.append)
    peer.desc = real
    cluster.advance(0.3)
    assert isinstance(results[0], StoreError) and "stale epoch" in str(results[0])
    assert 9 not in peer.conf_state.learners


def test_a_snapshot_is_never_built_from_an_apply_pass_that_is_not_written_yet() -> None:
    """Applying a conf change makes the leader send to every follower, which builds a snapshot for
    one whose next entry was truncated. In the middle of an apply pass the engine lacks the
    pass's earlier writes, while ``applied`` already counts them: such a snapshot would lose an
    acknowledged write on the follower that installs it (issue 10, item 9)."""
    cluster = LocalCluster([1, 2, 3], SMALL_LOG)
    cluster.engines[4] = MemEngine()
    cluster.start(4)
    cluster.elect()
    lagging = next(sid for sid, s in cluster.stores.items() if sid != 4 and not s.peers[1].is_leader)
    cluster.isolate(lagging)
    write_keys(cluster, 80)
    leader = cluster.leader()
    peer = leader.peers[1]
    lagging_id = cluster.stores[lagging].peers[1].peer_id
    assert peer.storage.first_index() > 10  # the lagging follower's next entry is gone
    # Two proposals that commit together and so apply in one pass: a put, then the conf change
    # whose application sends to every follower.
    results: list[object] = []
    KvHandler(leader).handle(put(b"in-the-pass", b"v", context(leader)), results.append)
    leader.run_once()
    leader.change_peer(1, ConfChangeType.ADD_LEARNER, new_peer(4, 4), results.append)
    for _frm, to, _payload, snap in cluster.wire:
        if snap is not None and to == lagging:
            snap[1](False)  # the snapshot the proposals sent is lost on the cut link
    cluster.wire = [w for w in cluster.wire if w[1] != lagging]
    cluster.heal()
    # The leader's view of the lagging follower when the pass starts, as it is right after the
    # follower answered a heartbeat whose snapshot attempt has not happened yet: probing, not
    # paused, known to be alive, next entry long gone.
    apply_pass = peer.apply

    def apply_with_lagging_follower_probed(entries: list, answers: list) -> None:
        pr = peer.raw.raft.trk.progress.get(lagging_id)
        if pr is not None and any(e.type == EntryType.CONF_CHANGE for e in entries):
            pr.become_probe()
            pr.recent_active = True
            pr.next = 2
        apply_pass(entries, answers)

    peer.apply = apply_with_lagging_follower_probed
    cluster.pump()
    cluster.advance(1.0)
    assert len(results) == 2 and not isinstance(results[1], StoreError)
    lagging_peer = cluster.stores[lagging].peers[1]
    assert lagging_peer.applied >= peer.applied - 1
    assert cluster.stores[lagging].engine.get(CF_DEFAULT, b"in-the-pass") == b"v", (
        "the lagging follower installed a snapshot that lacks a write applied before its index"
    )


class _Crash(Exception):
    """The process dies here."""


def test_a_crash_in_the_pass_that_applies_a_replicas_removal_leaves_a_store_that_starts() -> None:
    """The removed replica's pass also held a CAS, whose flush wrote the new descriptor (without
    this store's replica) before the tombstone: after a crash there, the store could not start
    (IndexError in ``_load``). Now the descriptor is written as a tombstone at once and a removed
    replica applies nothing after its removal (issue 10, item 5)."""
    cluster = LocalCluster([1, 2, 3])
    leader = cluster.elect()
    victim = next(sid for sid, s in cluster.stores.items() if not s.peers[1].is_leader)
    victim_store = cluster.stores[victim]
    victim_peer = victim_store.peers[1]
    passes: list[list[int]] = []
    apply_pass = victim_peer.apply

    def record(entries: list, answers: list) -> None:
        passes.append([e.type for e in entries if e.index > victim_peer.applied])
        apply_pass(entries, answers)

    destroy_scheduled = victim_store._destroy_scheduled

    def crash(batch: object) -> list:
        if victim_store._to_destroy:
            raise _Crash()  # after the pass's entries, before the replica's destruction
        return destroy_scheduled(batch)

    victim_peer.apply = record
    victim_store._destroy_scheduled = crash
    results: list[object] = []
    cas = kvrpc_pb2.Request(cas=kvrpc_pb2.RawCompareAndSwapRequest(
        context=context(leader), key=b"k", value=b"v", previous_not_exist=True))
    KvHandler(leader).handle(cas, results.append)
    leader.peers[1].flush_proposals()  # the CAS first: the removal's commit, sent at once, covers it
    leader.change_peer(1, ConfChangeType.REMOVE_NODE, new_peer(victim, victim), results.append)
    try:
        cluster.pump()
    except _Crash:
        pass
    else:
        raise AssertionError("the victim never applied its removal")
    assert any(EntryType.CONF_CHANGE in p and len(p) >= 2 for p in passes), (
        f"the removal and the CAS must apply in one pass on the victim: {passes}"
    )
    cluster.crash(victim)
    restarted = cluster.start(victim)  # raised IndexError before the fix
    cluster.advance(0.5)
    assert 1 not in restarted.peers and restarted.tombstones[1] == victim_peer.peer_id
    assert cluster.leader().engine.get(CF_DEFAULT, b"k") == b"v"


def test_a_store_refuses_to_start_on_a_descriptor_that_names_no_replica_of_its_own() -> None:
    cluster = LocalCluster([1, 2, 3])
    cluster.elect()
    engine = cluster.engines[3]
    state = raft_serverpb_pb2.RangeLocalState.FromString(engine.get(CF_META, range_state_key(1)))
    kept = [p for p in state.descriptor.peers if p.store_id != 3]
    del state.descriptor.peers[:]
    state.descriptor.peers.extend(kept)
    batch = engine.batch()
    batch.put(CF_META, range_state_key(1), state.SerializeToString())
    engine.write(batch, sync=True)
    cluster.crash(3)
    with pytest.raises(DamagedStateError, match="range 1's persisted descriptor names 0 replicas"):
        cluster.start(3)


def test_every_answer_is_counted_once_by_kind_and_outcome() -> None:
    """KvHandler's request stats (kvdb_kv_requests_total): answers at once (refusals), later (a
    write after it applied), and a write response swallowed by the failpoint, which is not sent."""
    cluster = LocalCluster([1, 2, 3])
    leader = cluster.elect()
    handler, answers = KvHandler(leader), []
    stale = context(leader)
    stale.epoch.version += 5
    for req in (put(b"a", b"1", context(leader)), get(b"a", context(leader)), get(b"a", stale)):
        handler.handle(req, answers.append)
        cluster.pump()
    handler.drop_write_responses = 1
    handler.handle(put(b"b", b"2", context(leader)), answers.append)
    cluster.pump()
    assert [a.WhichOneof("resp") for a in answers] == ["put", "get", "get"]
    assert answers[1].get.value == b"1"
    assert handler.stats.requests == {("put", "ok"): 1, ("get", "ok"): 1, ("get", "epoch_not_match"): 1}
    assert {kind: hist.cumulative()[0][-1][1] for kind, hist in handler.stats.latency.items()} == \
        {"put": 1, "get": 2}

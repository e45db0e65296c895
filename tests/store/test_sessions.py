"""Client sessions at apply: a re-sent write is applied at most once, on every replica alike,
across restarts, snapshots and leader changes, and sessions expire by log time only."""

from __future__ import annotations

from kvdb.pb import kvrpc_pb2
from kvdb.storage.engine import CF_DEFAULT
from kvdb.storage.memory import MemEngine
from kvdb.store.config import StoreConfig
from kvdb.store.sessions import EXPIRY_CHECK_MS, Sessions
from kvdb.store.store import Store
from tests.store.local_cluster import LocalCluster, context, get

W1, W2 = 0x1111_0000_0000_0001, 0x2222_0000_0000_0002
SMALL_LOG = StoreConfig(raft_log_gc_count_limit=30, raft_log_gc_keep=5)


def header(sid: int, seq: int, first_incomplete: int | None = None,
           retry: bool = False) -> kvrpc_pb2.SessionHeader:
    return kvrpc_pb2.SessionHeader(session_id=sid, seq=seq, retry_after_ambiguous=retry,
                                   first_incomplete_seq=seq if first_incomplete is None else first_incomplete)


def with_session(ctx: kvrpc_pb2.Context, session: kvrpc_pb2.SessionHeader) -> kvrpc_pb2.Context:
    out = kvrpc_pb2.Context()
    out.CopyFrom(ctx)
    out.session.CopyFrom(session)
    return out


def sput(store: Store, key: bytes, value: bytes, session: kvrpc_pb2.SessionHeader) -> kvrpc_pb2.Request:
    return kvrpc_pb2.Request(put=kvrpc_pb2.RawPutRequest(context=with_session(context(store), session),
                                                         key=key, value=value))


def scas(store: Store, key: bytes, expected: bytes | None, new: bytes,
         session: kvrpc_pb2.SessionHeader) -> kvrpc_pb2.Request:
    return kvrpc_pb2.Request(cas=kvrpc_pb2.RawCompareAndSwapRequest(
        context=with_session(context(store), session), key=key, value=new, previous_value=expected or b"",
        previous_not_exist=expected is None))


def ok_put(cluster: LocalCluster, store: Store, key: bytes, value: bytes,
           session: kvrpc_pb2.SessionHeader) -> None:
    resp = cluster.call(store, sput(store, key, value, session))
    assert not resp.put.HasField("error"), resp


def value_of(cluster: LocalCluster, key: bytes) -> bytes | None:
    leader = cluster.leader()
    resp = cluster.call(leader, get(key, context(leader)))
    return None if resp.get.not_found else resp.get.value


def tables(cluster: LocalCluster) -> dict[int, bytes]:
    """Every replica's session table (and log time), serialized: equal bytes, equal state."""
    return {sid: p.sessions.to_pb().SerializeToString() for sid, p in cluster.peers().items()}


def test_a_late_duplicate_of_a_put_does_not_bring_back_the_old_value() -> None:
    """v, w, v: writer 1's put v applied but its answer was lost; writer 2 puts w; writer 1's retry
    must be answered from its stored result, not applied again over w."""
    cluster = LocalCluster([1, 2, 3])
    leader = cluster.elect()
    ok_put(cluster, leader, b"k", b"v", header(W1, 1))
    ok_put(cluster, leader, b"k", b"w", header(W2, 1))
    ok_put(cluster, leader, b"k", b"v", header(W1, 1, retry=True))  # the retry succeeds ...
    assert value_of(cluster, b"k") == b"w"  # ... without applying again
    assert leader.peers[1].counters["duplicates_answered"] == 1
    cluster.advance(0.2)
    assert {s.engine.get(CF_DEFAULT, b"k") for s in cluster.stores.values()} == {b"w"}
    assert len(set(tables(cluster).values())) == 1


def test_a_copy_below_the_floor_is_refused_and_not_applied() -> None:
    cluster = LocalCluster([1, 2, 3])
    leader = cluster.elect()
    ok_put(cluster, leader, b"k", b"old", header(W1, 1))
    ok_put(cluster, leader, b"k", b"new", header(W1, 2, first_incomplete=2))  # seq 1 is acknowledged
    resp = cluster.call(leader, sput(leader, b"k", b"old", header(W1, 1)))
    assert resp.put.error.WhichOneof("kind") == "duplicate_request", resp
    assert resp.put.error.duplicate_request.seq == 1
    assert f"{W1:016x}" in resp.put.error.message
    assert value_of(cluster, b"k") == b"new"
    state = leader.peers[1].sessions.table[W1]
    assert state.floor == 2 and [r.seq for r in state.results] == [2]  # results below the floor dropped


def test_a_cas_retry_returns_the_stored_result() -> None:
    cluster = LocalCluster([1, 2, 3])
    leader = cluster.elect()
    first = cluster.call(leader, scas(leader, b"c", None, b"mine", header(W1, 1)))
    assert first.cas.succeed and first.cas.previous_not_exist
    ok_put(cluster, leader, b"c", b"theirs", header(W2, 1))
    retry = cluster.call(leader, scas(leader, b"c", None, b"mine", header(W1, 1, retry=True)))
    assert retry.cas.succeed and retry.cas.previous_not_exist, retry  # not "failed: theirs"
    assert value_of(cluster, b"c") == b"theirs"
    # A failed compare is a result too.
    failed = cluster.call(leader, scas(leader, b"c", b"nope", b"x", header(W1, 2)))
    again = cluster.call(leader, scas(leader, b"c", b"nope", b"x", header(W1, 2, retry=True)))
    assert (failed.cas.succeed, failed.cas.previous_value) == (again.cas.succeed, again.cas.previous_value) \
        == (False, b"theirs")


def test_sessions_survive_a_restart_of_every_store() -> None:
    cluster = LocalCluster([1, 2, 3])
    leader = cluster.elect()
    ok_put(cluster, leader, b"k", b"v", header(W1, 1))
    ok_put(cluster, leader, b"k", b"w", header(W2, 1))
    cluster.advance(0.2)
    before = tables(cluster)
    for sid in list(cluster.stores):
        cluster.crash(sid)
    for sid in before:
        cluster.start(sid)
    assert tables(cluster) == before  # loaded from CF_META as applied
    leader = cluster.elect()
    ok_put(cluster, leader, b"k", b"v", header(W1, 1, retry=True))
    assert value_of(cluster, b"k") == b"w"


def test_a_snapshot_carries_the_sessions_to_a_follower_that_then_leads() -> None:
    cluster = LocalCluster([1, 2, 3], SMALL_LOG)
    leader = cluster.elect()
    follower = next(sid for sid, s in cluster.stores.items() if s is not leader)
    cluster.crash(follower)
    ok_put(cluster, leader, b"k", b"v", header(W1, 1))
    ok_put(cluster, leader, b"k", b"w", header(W2, 1))
    for i in range(60):  # truncate the log past what the follower has
        ok_put(cluster, leader, b"f%03d" % i, b"x", header(W2, 2 + i))
    assert leader.peers[1].storage.first_index() > 10
    cluster.start(follower)
    cluster.advance(0.5)
    peer = cluster.stores[follower].peers[1]
    assert peer.counters["snapshots_applied"] == 1
    assert peer.sessions.table.keys() == {W1, W2}
    assert len(set(tables(cluster).values())) == 1
    cluster.crash(follower)  # and the installed sessions were written with the data
    cluster.start(follower)
    assert cluster.stores[follower].peers[1].sessions.table.keys() == {W1, W2}
    cluster.advance(0.3)
    cluster.leader().transfer_leader(1, cluster.stores[follower].peers[1].peer_id)
    cluster.advance(0.5)
    new_leader = cluster.leader()
    assert new_leader is cluster.stores[follower]
    ok_put(cluster, new_leader, b"k", b"v", header(W1, 1, retry=True))
    assert value_of(cluster, b"k") == b"w"
    assert new_leader.peers[1].counters["duplicates_answered"] == 1


def test_expiry_happens_at_the_same_index_on_every_replica_and_a_late_retry_is_uncertain() -> None:
    cluster = LocalCluster([1, 2, 3], StoreConfig(session_ttl=2.0))
    leader = cluster.elect()
    lagging = next(sid for sid, s in cluster.stores.items() if s is not leader)
    ok_put(cluster, leader, b"k", b"v", header(W1, 1))
    cluster.advance(0.2)
    cluster.isolate(lagging)  # it learns the expiring entries later, from the log
    cluster.clock.t += 2.5  # log time moves only with the next stamped command
    assert W1 in leader.peers[1].sessions.table
    ok_put(cluster, leader, b"k", b"w", header(W2, 1))
    assert W1 not in leader.peers[1].sessions.table
    cluster.heal()
    cluster.advance(0.5)
    assert cluster.stores[lagging].peers[1].sessions.table.keys() == {W2}
    assert len(set(tables(cluster).values())) == 1
    resp = cluster.call(leader, sput(leader, b"k", b"v", header(W1, 1, retry=True)))
    assert resp.put.error.WhichOneof("kind") == "session_expired", resp
    assert resp.put.error.session_expired.session_id == W1
    assert value_of(cluster, b"k") == b"w"
    assert W1 not in leader.peers[1].sessions.table  # a refused retry does not revive the session


def test_log_time_never_goes_back_and_expiry_waits_for_the_check_point() -> None:
    engine = MemEngine()
    sessions = Sessions(1, ttl_ms=1000)
    batch = engine.batch()
    sessions.advance(10_000, batch)
    sessions.record(header(W1, 1), None)
    sessions.advance(9_000, batch)  # a new leader whose clock is behind
    assert sessions.log_time_ms == 10_000
    sessions.advance(10_000 + EXPIRY_CHECK_MS, batch)  # a check point: W1 is idle for just the TTL
    assert W1 in sessions.table
    sessions.advance(11_500, batch)  # idle for longer than the TTL, but no check point yet
    assert W1 in sessions.table
    sessions.advance(10_000 + 2 * EXPIRY_CHECK_MS, batch)
    assert W1 not in sessions.table
    sessions.stage(batch)  # as Peer.write_apply_state does with the applied index
    engine.write(batch, sync=False)
    assert Sessions.load(engine, 1, 1000).to_pb() == sessions.to_pb()


def test_a_malformed_session_header_is_refused_before_it_is_proposed() -> None:
    cluster = LocalCluster([1, 2, 3])
    leader = cluster.elect()
    proposals = leader.peers[1].counters["proposals"]
    for bad in (header(W1, 0), header(W1, 3, first_incomplete=4)):
        resp = cluster.call(leader, sput(leader, b"k", b"v", bad))
        assert resp.put.error.WhichOneof("kind") == "invalid_argument", resp
    assert leader.peers[1].counters["proposals"] == proposals

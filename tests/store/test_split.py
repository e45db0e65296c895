"""Range splits on stores with in-memory engines and a hand-driven network and clock."""

from __future__ import annotations

from kvdb.pb import kvrpc_pb2, metapb_pb2, raft_serverpb_pb2
from kvdb.raft import ConfChangeType
from kvdb.raft import MessageType as MT
from kvdb.storage.engine import CF_DEFAULT
from kvdb.storage.memory import MemEngine
from kvdb.store.errors import EpochNotMatchError, InvalidArgumentError, StoreError
from kvdb.store.store import Store
from tests.store.local_cluster import LocalCluster, context, get, new_peer, put
from tests.store.test_sessions import header, sput
from tests.store.test_store import SMALL_LOG, write_keys

NEW_RANGE = 10


def split_requests(store: Store, keys: list[bytes], range_id: int = 1,
                   first_id: int = NEW_RANGE) -> list[raft_serverpb_pb2.SplitRequest]:
    """Requests as PD would allocate them: a range id, then one peer id per replica of the parent."""
    peers = len(store.peers[range_id].desc.peers)
    out = []
    next_id = first_id
    for key in keys:
        ids = list(range(next_id + 1, next_id + 1 + peers))
        out.append(raft_serverpb_pb2.SplitRequest(split_key=key, new_range_id=next_id, new_peer_ids=ids))
        next_id += peers + 1
    return out


def do_split(cluster: LocalCluster, keys: list[bytes], range_id: int = 1) -> list[metapb_pb2.RangeDescriptor]:
    leader = cluster.leader(range_id)
    results: list[object] = []
    leader.split(range_id, leader.peers[range_id].desc.epoch, split_requests(leader, keys, range_id),
                 results.append)
    cluster.pump()
    assert len(results) == 1 and isinstance(results[0], list), results
    return results[0]


def ctx_of(store: Store, range_id: int) -> kvrpc_pb2.Context:
    return context(store, range_id)


def test_split_shrinks_the_parent_and_starts_new_ranges_on_every_store_with_their_data() -> None:
    cluster = LocalCluster([1, 2, 3])
    leader = cluster.elect()
    write_keys(cluster, 30)  # k0000 .. k0029
    descs = do_split(cluster, [b"k0010", b"k0020"])
    bounds = [(d.start_key, d.end_key) for d in descs]
    assert bounds == [(b"", b"k0010"), (b"k0010", b"k0020"), (b"k0020", b"")]
    assert {d.epoch.version for d in descs} == {3}
    for store in cluster.stores.values():
        assert store.peers[1].desc.end_key == b"k0010"
        assert store.range_index.find(b"k0015") == NEW_RANGE
        assert store.range_index.find(b"k0025") == descs[2].id
    # The parent's leader store campaigned for the new ranges at once: no time passed.
    for d in descs[1:]:
        assert cluster.leader(d.id) is leader
        assert leader.peers[d.id].applied_term == leader.peers[d.id].raw.raft.term
    resp = cluster.call(leader, get(b"k0015", ctx_of(leader, NEW_RANGE)))
    assert resp.get.value == b"v15"
    resp = cluster.call(leader, put(b"k0025", b"new", ctx_of(leader, descs[2].id)))
    assert not resp.put.HasField("error"), resp
    cluster.advance(0.2)
    for store in cluster.stores.values():
        assert store.engine.get(CF_DEFAULT, b"k0025") == b"new"


def test_a_request_routed_with_the_old_epoch_learns_every_new_range() -> None:
    cluster = LocalCluster([1, 2, 3])
    leader = cluster.elect()
    old = context(leader)
    descs = do_split(cluster, [b"m"])
    resp = cluster.call(leader, put(b"x", b"1", old))
    current = resp.put.error.epoch_not_match.current_ranges
    assert {d.id for d in current} == {d.id for d in descs}
    resp = cluster.call(leader, put(b"x", b"1", ctx_of(leader, 1)))
    assert resp.put.error.HasField("key_not_in_range")


def test_no_lease_read_while_a_split_is_in_flight_nor_on_a_new_range_before_its_own_round() -> None:
    cluster = LocalCluster([1, 2, 3])
    leader = cluster.elect()
    peer = leader.peers[1]
    assert peer.lease_valid(cluster.clock.now())
    seen: list[bool] = []

    def on_split(descs: list[metapb_pb2.RangeDescriptor]) -> None:
        # Every store, the moment its new replicas start (the leader's has just campaigned).
        seen.extend(s.peers[d.id].lease_valid(cluster.clock.now()) for s in cluster.stores.values()
                    for d in descs[1:] if d.id in s.peers)

    for store in cluster.stores.values():
        store.on_split = on_split
    results: list[object] = []
    leader.split(1, peer.desc.epoch, split_requests(leader, [b"m"]), results.append)
    # Proposed, not applied: once it commits, the new range may elect a leader elsewhere and take
    # writes to keys this lease covers.
    assert not peer.lease_valid(cluster.clock.now())
    cluster.pump()
    assert len(results) == 1 and seen and not any(seen)
    assert peer.lease_valid(cluster.clock.now())  # the parent keeps its lease for what it kept
    child = leader.peers[NEW_RANGE]
    assert child.is_leader and child.lease_valid(cluster.clock.now())  # after its own round


def test_a_follower_cut_off_through_the_split_catches_up_from_the_log() -> None:
    cluster = LocalCluster([1, 2, 3])
    leader = cluster.elect()
    write_keys(cluster, 10)
    lagging = next(sid for sid in cluster.stores if sid != leader.store_id)
    cluster.isolate(lagging)
    descs = do_split(cluster, [b"k0005"])
    resp = cluster.call(leader, put(b"k0007", b"after", ctx_of(leader, descs[1].id)))
    assert not resp.put.HasField("error")
    cluster.heal()
    cluster.advance(1.0)
    store = cluster.stores[lagging]
    assert store.peers[1].desc.end_key == b"k0005"
    assert store.peers[descs[1].id].applied == leader.peers[descs[1].id].applied
    assert store.engine.get(CF_DEFAULT, b"k0007") == b"after"


def test_a_follower_behind_a_truncated_log_gets_the_parent_and_the_new_range_by_snapshot() -> None:
    cluster = LocalCluster([1, 2, 3], SMALL_LOG)
    leader = cluster.elect()
    lagging = next(sid for sid in cluster.stores if sid != leader.store_id)
    cluster.isolate(lagging)
    write_keys(cluster, 10)
    descs = do_split(cluster, [b"k0005"])
    child = descs[1].id
    for i in range(40):  # truncate both logs past the split
        for range_id, key in ((1, b"k0001"), (child, b"k0008")):
            resp = cluster.call(leader, put(key, b"w%d" % i, ctx_of(leader, range_id)))
            assert not resp.put.HasField("error"), resp
    assert leader.peers[1].storage.first_index() > 5
    cluster.heal()
    cluster.advance(1.5)
    store = cluster.stores[lagging]
    assert store.peers[1].desc.end_key == b"k0005"
    assert store.peers[child].initialized
    assert store.engine.get(CF_DEFAULT, b"k0008") == b"w39"
    assert store.engine.get(CF_DEFAULT, b"k0001") == b"w39"
    assert store.engine.get(CF_DEFAULT, b"k0009") == b"v9"
    assert store.peers[child].counters["snapshots_applied"] == 1


def test_every_store_restarts_with_the_split_ranges() -> None:
    cluster = LocalCluster([1, 2, 3])
    cluster.elect()
    write_keys(cluster, 10)
    descs = do_split(cluster, [b"k0003", b"k0006"])
    for sid in list(cluster.stores):
        cluster.crash(sid, power_cut=True)
    for sid in cluster.engines:
        cluster.start(sid)
    for sid, store in cluster.stores.items():
        assert {r for r in store.peers} == {d.id for d in descs}, sid
    leader = cluster.elect(descs[2].id)
    resp = cluster.call(leader, get(b"k0007", ctx_of(leader, descs[2].id)))
    assert resp.get.value == b"v7"


def test_a_read_queued_before_the_split_is_refused_if_the_split_applies_first() -> None:
    cluster = LocalCluster([1, 2, 3])
    leader = cluster.elect()
    write_keys(cluster, 10)
    peer = leader.peers[1]
    peer.lease.expire()  # the read must wait for ReadIndex
    answers: list[kvrpc_pb2.Response] = []
    from kvdb.server.kv_handler import KvHandler

    KvHandler(leader).handle(get(b"k0007", context(leader)), answers.append)
    results: list[object] = []
    leader.split(1, peer.desc.epoch, split_requests(leader, [b"k0005"]), results.append)
    cluster.pump()
    assert len(answers) == 1
    assert answers[0].get.error.HasField("epoch_not_match"), answers[0]


def test_sessions_travel_to_the_new_range() -> None:
    cluster = LocalCluster([1, 2, 3])
    leader = cluster.elect()
    session = header(77, 1)
    resp = cluster.call(leader, sput(leader, b"x", b"1", session))
    assert not resp.put.HasField("error")
    do_split(cluster, [b"m"])
    resp = cluster.call(leader, put(b"x", b"2", ctx_of(leader, NEW_RANGE)))
    assert not resp.put.HasField("error")
    # The first write is re-sent to the range that owns its key now: answered, not applied again.
    retry = kvrpc_pb2.Request(put=kvrpc_pb2.RawPutRequest(context=ctx_of(leader, NEW_RANGE), key=b"x",
                                                          value=b"1"))
    retry.put.context.session.CopyFrom(header(77, 1, retry=True))
    resp = cluster.call(leader, retry)
    assert not resp.put.HasField("error"), resp
    cluster.advance(0.2)
    for store in cluster.stores.values():
        assert store.engine.get(CF_DEFAULT, b"x") == b"2"
        assert 77 in store.peers[NEW_RANGE].sessions.table


def test_bad_split_requests_are_refused_before_anything_is_proposed() -> None:
    cluster = LocalCluster([1, 2, 3])
    leader = cluster.elect()
    epoch = leader.peers[1].desc.epoch
    bad = [
        split_requests(leader, [b""]),
        split_requests(leader, [b"m", b"c"]),
        [raft_serverpb_pb2.SplitRequest(split_key=b"m", new_range_id=1, new_peer_ids=[20, 21, 22])],
        [raft_serverpb_pb2.SplitRequest(split_key=b"m", new_range_id=20, new_peer_ids=[21])],
    ]
    for requests in bad:
        try:
            leader.split(1, epoch, requests, lambda r: None)
        except InvalidArgumentError:
            continue
        raise AssertionError(f"accepted {requests}")
    stale = metapb_pb2.RangeEpoch(conf_ver=epoch.conf_ver, version=epoch.version + 1)
    try:
        leader.split(1, stale, split_requests(leader, [b"m"]), lambda r: None)
    except EpochNotMatchError:
        pass
    else:
        raise AssertionError("stale epoch accepted")
    follower = next(s for s in cluster.stores.values() if s is not leader)
    try:
        follower.split(1, epoch, split_requests(follower, [b"m"]), lambda r: None)
    except StoreError as exc:
        assert exc.to_pb().HasField("not_leader")
    else:
        raise AssertionError("a follower proposed a split")


def _leader_message(range_id: int, to_peer: int, to_store: int, start: bytes, end: bytes,
                    ) -> raft_serverpb_pb2.RaftMessage:
    """A heartbeat of range ``range_id``'s leader (peer 500 on store 1) to a replica we lack."""
    msg = raft_serverpb_pb2.RaftMessage(range_id=range_id, start_key=start, end_key=end)
    msg.from_peer.id, msg.from_peer.store_id = 500, 1
    msg.to_peer.id, msg.to_peer.store_id = to_peer, to_store
    msg.message.type = MT.HEARTBEAT
    msg.message.to, msg.message.term = to_peer, 5
    setattr(msg.message, "from", 500)
    return msg


def test_an_uninitialized_replica_that_is_destroyed_deletes_no_data() -> None:
    """Destroying a replica created by a message (no bounds yet) used to delete every key here."""
    cluster = LocalCluster([1, 2, 3])
    cluster.elect()
    cluster.engines[4] = MemEngine()
    store = cluster.start(4)
    desc = metapb_pb2.RangeDescriptor(id=50, start_key=b"a", end_key=b"m",
                                      epoch=metapb_pb2.RangeEpoch(conf_ver=1, version=1))
    desc.peers.add(id=51, store_id=4)
    store.bootstrap_range(desc)
    leader = cluster.elect(50)
    resp = cluster.call(leader, put(b"b", b"kept", ctx_of(leader, 50)))
    assert not resp.put.HasField("error"), resp
    store.on_raft_messages([_leader_message(99, 501, 4, b"x", b"y")])
    assert 99 in store.peers and not store.peers[99].initialized
    store.on_raft_messages([_leader_message(99, 502, 4, b"x", b"y")])  # ours was removed meanwhile
    cluster.pump()
    assert 99 not in store.peers
    assert store.engine.get(CF_DEFAULT, b"b") == b"kept"


def test_a_message_of_a_range_overlapping_an_unsplit_parent_creates_no_replica() -> None:
    cluster = LocalCluster([1, 2, 3])
    cluster.elect()
    store = cluster.stores[3]
    store.on_raft_messages([_leader_message(99, 501, 3, b"m", b"")])
    assert 99 not in store.peers


def _store_3_cut_off_from_its_leader() -> tuple[LocalCluster, Store]:
    """Three stores with ten keys, range 1's leader not on store 3, and store 3 cut off."""
    cluster = LocalCluster([1, 2, 3])
    leader = cluster.elect()
    if leader.store_id == 3:
        cluster.leader().transfer_leader(1, cluster.stores[1].peers[1].peer_id)
        cluster.advance(0.5)
        leader = cluster.leader()
    write_keys(cluster, 10)
    cluster.isolate(3)
    return cluster, leader


def test_a_parent_removed_while_cut_off_blocks_its_split_ranges_until_pd_says_it_was_removed() -> None:
    """The stale-parent case the store simulator found: the split's new ranges have a replica on
    store 3, whose parent replica was removed before it could apply the split. It never learns
    (nobody talks to a removed replica) and its keys overlap the new ranges, so their replicas
    cannot start there until PD's view of the parent (newer membership, no such peer) removes it."""
    cluster, leader = _store_3_cut_off_from_its_leader()
    descs = do_split(cluster, [b"k0005"])
    child = descs[1].id
    removed = cluster.stores[3].peers[1].peer_id
    results: list[object] = []
    leader.change_peer(1, ConfChangeType.REMOVE_NODE, new_peer(removed, 3), results.append)
    cluster.pump()
    assert len(results) == 1 and isinstance(results[0], metapb_pb2.RangeDescriptor), results
    cluster.heal()
    cluster.cut |= {(3, 1), (3, 2)}  # its campaign messages would get it a tombstone (next test)
    cluster.advance(2.0)
    stale = cluster.stores[3]
    assert stale.peers[1].desc.end_key == b""  # still the whole key space, never split
    assert child not in stale.peers or not stale.peers[child].initialized
    current = leader.peers[1].desc
    assert not stale.destroy_if_removed(1, leader.peers[child].desc)  # another range's view: no
    assert stale.destroy_if_removed(1, current)
    cluster.heal()
    cluster.advance(2.0)
    assert 1 not in stale.peers and stale.tombstones[1] == removed
    assert stale.peers[child].initialized
    assert stale.engine.get(CF_DEFAULT, b"k0007") == b"v7"  # the new range's data, by snapshot
    assert stale.engine.get(CF_DEFAULT, b"k0001") is None  # the parent's keys went with it
    assert not stale.destroy_if_removed(child, leader.peers[child].desc)  # a member: kept


def test_a_replica_removed_while_cut_off_is_told_so_by_the_first_member_it_messages() -> None:
    """Its removal was applied without it and the leader's tombstone was lost; once back, its
    first campaign reaches replicas whose newer membership lacks it, and they answer with a
    tombstone (TiKV's stale-peer GC message): it goes without waiting to ask PD."""
    cluster, leader = _store_3_cut_off_from_its_leader()
    removed = cluster.stores[3].peers[1].peer_id
    results: list[object] = []
    leader.change_peer(1, ConfChangeType.REMOVE_NODE, new_peer(removed, 3), results.append)
    cluster.pump()
    assert len(results) == 1 and isinstance(results[0], metapb_pb2.RangeDescriptor), results
    stale = cluster.stores[3]
    assert 1 in stale.peers  # the leader's tombstone did not get through
    cluster.heal()
    cluster.advance(3.0)  # longer than an election timeout: it campaigns
    assert 1 not in stale.peers and stale.tombstones[1] == removed
    assert stale.engine.get(CF_DEFAULT, b"k0001") is None  # its data went with it
    assert {s.peers[1].peer_id for s in (cluster.stores[1], cluster.stores[2])} == {
        p.id for p in leader.peers[1].desc.peers}

"""Hibernation (kvdb/store/hibernate.py): idle ranges stop ticking; work, messages and a dead
leader's silent store wake them."""

from __future__ import annotations

from kvdb.pb import kvrpc_pb2, raft_serverpb_pb2
from kvdb.server.kv_handler import KvHandler
from kvdb.store.config import StoreConfig
from kvdb.store.store import Store
from tests.store.local_cluster import LocalCluster, context, get, put
from tests.store.test_split import do_split

CONFIG = StoreConfig(hibernate_idle_ticks=6)
E = CONFIG.election_tick


def tick(cluster: LocalCluster, n: int = 1) -> None:
    cluster.advance(n * cluster.config.tick_interval)


def asleep(cluster: LocalCluster, range_id: int = 1) -> dict[int, bool]:
    return {sid: cluster.stores[sid].hibernation.is_asleep(p) for sid, p in cluster.peers(range_id).items()}


def hibernated_cluster(config: StoreConfig = CONFIG) -> tuple[LocalCluster, Store]:
    """Three stores, a leader with one write applied everywhere, and every replica hibernated."""
    cluster = LocalCluster([1, 2, 3], config)
    leader = cluster.elect()
    assert not cluster.call(leader, put(b"a", b"1", context(leader))).put.HasField("error")
    for _ in range(4 * config.hibernate_idle_ticks):
        if all(asleep(cluster).values()):
            return cluster, leader
        tick(cluster)
    raise AssertionError(f"the idle range did not hibernate: {asleep(cluster)}")


def send(store: Store, request: kvrpc_pb2.Request) -> list[kvrpc_pb2.Response]:
    answers: list[kvrpc_pb2.Response] = []
    KvHandler(store).handle(request, answers.append)
    return answers


def test_an_idle_range_hibernates_and_its_ticks_cost_nothing() -> None:
    cluster, leader = hibernated_cluster()
    peer = leader.peers[1]
    raft = peer.raw.raft
    term, rounds = raft.term, raft.round
    for store in cluster.stores.values():
        assert store.hibernation.tick() == []  # nothing is ticked
    tick(cluster, 5 * E)
    assert all(asleep(cluster).values())
    assert peer.is_leader and raft.term == term
    assert raft.round == rounds, "a hibernated leader sent heartbeat rounds"
    assert not peer.lease_valid(cluster.clock.now())


def test_liveness_beats_are_one_message_per_store_pair_not_per_range() -> None:
    cluster, leader = hibernated_cluster()
    lead = leader.store_id
    sent: list[tuple[int, int, int]] = []
    for _ in range(2 * E):
        for store in cluster.stores.values():
            store.tick()
            store.run_once()  # sends what the tick queued
        sent += [(frm, to, len(msgs)) for frm, to, msgs, snap in cluster.wire]
        assert all(m.store_heartbeat for _, _, msgs, _ in cluster.wire for m in msgs)
        cluster.pump()
    # Every heartbeat_tick ticks, one beat each way between the leader's store and each other.
    others = [f for f in cluster.stores if f != lead]
    pairs = {(lead, f) for f in others} | {(f, lead) for f in others}
    assert {(frm, to) for frm, to, _ in sent} == pairs
    assert len(sent) == 2 * E // CONFIG.heartbeat_tick * len(pairs)
    assert all(n == 1 for _, _, n in sent)


def test_a_write_wakes_the_range_and_it_hibernates_again_when_idle() -> None:
    cluster, leader = hibernated_cluster()
    resp = cluster.call(leader, put(b"b", b"2", context(leader)))
    assert not resp.put.HasField("error")
    assert not any(asleep(cluster).values())
    tick(cluster, 2 * CONFIG.hibernate_idle_ticks)
    assert all(asleep(cluster).values())
    for store in cluster.stores.values():
        assert store.peers[1].applied == leader.peers[1].applied


def test_a_read_on_a_hibernated_leader_waits_for_a_new_acknowledged_round() -> None:
    cluster, leader = hibernated_cluster()
    peer = leader.peers[1]
    # The lease the last heartbeats earned would still run now; hibernating dropped it.
    cluster.isolate(leader.store_id)
    answers = send(leader, get(b"a", context(leader)))
    cluster.pump()
    assert answers == [], "a hibernated leader answered a read without a quorum-acknowledged round"
    assert peer.counters["lease_reads"] == 0
    assert not leader.hibernation.is_asleep(peer)
    cluster.heal()
    for _ in range(CONFIG.heartbeat_tick):  # the next heartbeat round reaches the followers
        tick(cluster)
        if answers:
            break
    assert [a.get.value for a in answers] == [b"1"]
    assert peer.counters["read_index_reads"] == 1


def test_an_admin_command_wakes_the_leader_and_its_messages_wake_the_followers() -> None:
    cluster, leader = hibernated_cluster()
    target = next(s for s in cluster.stores.values() if s is not leader)
    leader.transfer_leader(1, target.peers[1].peer_id)
    assert not leader.hibernation.is_asleep(leader.peers[1])
    cluster.pump()
    assert not any(asleep(cluster).values())
    assert target.peers[1].is_leader


def test_a_follower_that_missed_the_notice_keeps_ticking_and_wakes_the_leader() -> None:
    cluster = LocalCluster([1, 2, 3], CONFIG)
    leader = cluster.elect()
    other = [sid for sid in cluster.stores if sid != leader.store_id]
    missed = other[0]
    send = leader.transport.send

    def lose_notices(store_id: int, messages: list[raft_serverpb_pb2.RaftMessage]) -> None:
        send(store_id, [m for m in messages if not (m.hibernate and store_id == missed)])

    leader.transport.send = lose_notices  # type: ignore[method-assign]
    for _ in range(4 * CONFIG.hibernate_idle_ticks):
        tick(cluster)
        if leader.hibernation.is_asleep(leader.peers[1]):
            break
    leader.transport.send = send  # type: ignore[method-assign]
    state = asleep(cluster)
    assert state[leader.store_id] and state[other[1]] and not state[missed]
    term = leader.peers[1].raw.raft.term
    # The follower times out, campaigns (pre-vote): that wakes the leader, whose heartbeats
    # reach it; then the range hibernates again, under the same leader and term.
    woken = False
    for _ in range(6 * E):
        tick(cluster)
        woken |= not leader.hibernation.is_asleep(leader.peers[1])
        if woken and all(asleep(cluster).values()):
            break
    assert woken and all(asleep(cluster).values()), asleep(cluster)
    assert leader.peers[1].is_leader and leader.peers[1].raw.raft.term == term


def test_a_dead_leaders_store_is_noticed_and_a_follower_takes_over_within_a_bound() -> None:
    cluster, leader = hibernated_cluster()
    cluster.crash(leader.store_id)
    followers = list(cluster.stores.values())
    # Liveness: silent for more than E ticks wakes them; then a randomized election timeout
    # (< 2E ticks since the last contact) and an election of a few message rounds.
    bound = (E + 1) + 2 * E + 3
    ticks = 0
    leaders: list[Store] = []
    while not leaders:
        assert ticks < bound, f"no follower took over within {bound} ticks: {asleep(cluster)}"
        tick(cluster)
        ticks += 1
        leaders = [s for s in followers if s.peers[1].is_leader]
    assert ticks > E, "woken before the leader's store was silent for an election timeout"
    new = leaders[0]
    assert all(s.hibernation.counters["woken_by_liveness"] == 1 for s in followers)
    resp = cluster.call(new, put(b"c", b"3", context(new)))
    assert not resp.put.HasField("error")


def test_liveness_beats_keep_followers_of_a_live_leader_asleep() -> None:
    cluster, leader = hibernated_cluster()
    tick(cluster, 6 * E)
    assert all(asleep(cluster).values())
    assert all(s.hibernation.counters["woken_by_liveness"] == 0 for s in cluster.stores.values())


def test_hibernation_off_ticks_every_replica() -> None:
    config = StoreConfig(hibernate=False, hibernate_idle_ticks=2)
    cluster = LocalCluster([1, 2, 3], config)
    leader = cluster.elect()
    rounds = leader.peers[1].raw.raft.round
    tick(cluster, 3 * E)
    assert not any(asleep(cluster).values())
    assert leader.peers[1].raw.raft.round > rounds
    assert len(leader.hibernation.tick()) == 1


def test_a_follower_hibernates_only_on_a_notice_that_matches_its_log() -> None:
    cluster = LocalCluster([1, 2, 3], StoreConfig(hibernate_idle_ticks=1000))
    leader = cluster.elect()
    assert not cluster.call(leader, put(b"a", b"1", context(leader))).put.HasField("error")
    tick(cluster, 2)  # the commit index reaches the followers
    follower = next(s for s in cluster.stores.values() if s is not leader)
    lead, peer = leader.peers[1], follower.peers[1]
    log = lead.raw.raft.raft_log
    last = log.last_index()

    def notice(**fields: int) -> raft_serverpb_pb2.RaftMessage:
        msg = raft_serverpb_pb2.RaftMessage(range_id=1, hibernate=True)
        msg.from_peer.CopyFrom(lead.peer_cache[lead.peer_id])
        msg.to_peer.CopyFrom(peer.peer_cache[peer.peer_id])
        m = dict(term=lead.raw.raft.term, index=last, log_term=log.term(last), commit=log.committed)
        m.update(fields)
        for name, value in m.items():
            setattr(msg.message, name, value)
        return msg

    stale = [notice(index=last + 1), notice(index=last - 1), notice(term=lead.raw.raft.term + 1),
             notice(log_term=log.term(last) - 1), notice(commit=last - 1)]
    follower.on_raft_messages(stale)
    assert not follower.hibernation.is_asleep(peer)
    assert follower.hibernation.counters["notices_ignored"] == len(stale)
    follower.on_raft_messages([notice()])
    assert follower.hibernation.is_asleep(peer)


def test_a_split_wakes_a_hibernated_range_and_every_new_range_hibernates_when_idle() -> None:
    cluster, leader = hibernated_cluster()
    descs = do_split(cluster, [b"m", b"t"])
    assert not any(asleep(cluster).values())
    tick(cluster, 3 * CONFIG.hibernate_idle_ticks)
    for desc in descs:
        assert all(asleep(cluster, desc.id).values()), (desc.id, asleep(cluster, desc.id))
    new = descs[1].id
    resp = cluster.call(leader, put(b"n", b"1", context(leader, new)))
    assert not resp.put.HasField("error")
    assert not any(asleep(cluster, new).values())
    assert all(asleep(cluster, 1).values()), "a write to one range woke another"

"""PD places replicas on real stores: it grows the first range, repairs it after a store dies,
keeps doing so across a PD leader's kill -9, moves nothing because PD itself was down, and
lets peers find a store that came back on a new address.

Every step goes through PD's operators in range heartbeat replies (add learner, promote,
remove), carried out by the range's leader; the tests only watch PD's records and the stores'
admin view, and check the data where it ended up: a replica counts only once it has led and
served every key written before.
"""

from __future__ import annotations

import time

import pytest

from kvdb.pb import kvrpc_pb2, metapb_pb2, pdpb_pb2
from tests.integration.client import Client, PdHandle, error_kind
from tests.integration.cluster import Cluster, wait_for
from tests.integration.conftest import MakePdCluster

CHUNK = 100
GROWN_CONF_VER = 5
"""The first range's conf_ver after growing from 1 to 3 voters through learners: two conf
changes (add learner, promote) per new voter. A direct add-voter would leave it at 3."""
PD_OUTAGE = 3.5
"""Seconds all PD members stay down: longer than the store down time (3 s)."""
OBSERVE_AFTER_OUTAGE = 2.0
"""Seconds of range heartbeats (every 0.2 s) after PD's return in which nothing may move."""


def put_keys(client: Client, prefix: bytes, n: int) -> dict[bytes, bytes]:
    """Write ``n`` keys through the range's leader in batches; what was acknowledged."""
    written = {b"%s-%05d" % (prefix, i): b"value-%05d" % i for i in range(n)}
    items = list(written.items())
    for i in range(0, n, CHUNK):
        pairs = [kvrpc_pb2.KvPair(key=k, value=v) for k, v in items[i:i + CHUNK]]
        body = client.call("batch_put", pairs=pairs)
        assert error_kind(body) is None, body.error.message
    return written


def assert_store_serves(client: Client, store_id: int, expected: dict[bytes, bytes]) -> None:
    """Make ``store_id``'s replica lead and read everything from it alone: what that replica holds."""
    client.transfer_leader(store_id)
    assert client.scan_all(store_id) == expected, f"store {store_id} does not hold exactly the data written"


def voter_stores(info: pdpb_pb2.RangeInfo) -> set[int]:
    return {p.store_id for p in info.descriptor.peers if p.role == metapb_pb2.VOTER}


def test_pd_grows_the_first_range_to_three_voters_through_learners(make_pd_cluster: MakePdCluster) -> None:
    cluster, pd = make_pd_cluster(start_stores=False)
    cluster.start(1)
    client = pd.kv_client()
    alone = pd.first_range()
    assert voter_stores(alone) == {1} and alone.descriptor.epoch.conf_ver == 1, alone
    written = put_keys(client, b"before-growth", 500)

    cluster.start(2, 3)
    grown = pd.wait_voters(3)
    assert voter_stores(grown) == {1, 2, 3}
    assert grown.descriptor.epoch.conf_ver == GROWN_CONF_VER, grown.descriptor
    for sid in (2, 3):
        st = wait_for(lambda s=sid: client.status(s), 10, f"store {sid}'s replica")
        assert st.snapshots_applied >= 1, f"store {sid}'s new replica did not start from a snapshot"
    for sid in (2, 3, 1):
        assert_store_serves(client, sid, written)
    client.close()
    cluster.assert_all_running()


def kill_and_wait_repair(cluster: Cluster, pd: PdHandle, victim: int) -> pdpb_pb2.RangeInfo:
    """kill -9 ``victim`` and wait until PD has rebuilt its replica elsewhere and records it DOWN."""
    cluster.kill(victim)
    killed_at = time.monotonic()
    repaired = pd.wait_voters(3, timeout=30, exclude_stores={victim})
    assert time.monotonic() - killed_at >= 3.0, "PD replaced a replica before the store's down time"
    assert pd.stores()[victim].state == pdpb_pb2.DOWN
    return repaired


@pytest.mark.parametrize("victim_role", ["follower", "leader"])
def test_a_dead_stores_replica_is_rebuilt_on_a_spare_store(make_pd_cluster: MakePdCluster,
                                                            victim_role: str) -> None:
    cluster, pd = make_pd_cluster(n_stores=4)
    grown = pd.wait_voters(3)
    (spare,) = set(cluster.stores) - voter_stores(grown)
    client = pd.kv_client()
    leader = client.wait_leader()
    victim = leader if victim_role == "leader" else min(voter_stores(grown) - {leader})
    written = put_keys(client, b"before-kill", 1000)

    repaired = kill_and_wait_repair(cluster, pd, victim)
    assert voter_stores(repaired) == voter_stores(grown) - {victim} | {spare}
    written |= put_keys(client, b"after-repair", 200)
    assert_store_serves(client, spare, written)
    client.close()


def test_a_pd_outage_longer_than_the_down_time_moves_no_replica(make_pd_cluster: MakePdCluster) -> None:
    """The stores' heartbeats had nowhere to go while every PD member was down: back up, PD must
    not take that silence for death and tear down healthy replicas (a spare store invites a move)."""
    cluster, pd = make_pd_cluster(n_stores=4)
    grown = pd.wait_voters(3)
    for member_id in cluster.pd:
        cluster.kill_pd(member_id)
    down_at = time.monotonic()
    wait_for(lambda: time.monotonic() - down_at > PD_OUTAGE, PD_OUTAGE + 5, "the outage to outlast it")
    cluster.start_pd()
    restarted, restarted_ms = time.monotonic(), int(time.time() * 1000)

    def settled() -> bool:
        info = pd.first_range()
        assert info.descriptor == grown.descriptor, f"PD moved a replica off a live store: {info.descriptor}"
        heard = all(s.last_heartbeat_ms > restarted_ms for s in pd.stores().values())
        return heard and time.monotonic() - restarted >= OBSERVE_AFTER_OUTAGE

    wait_for(settled, 20, "every store to heartbeat the restarted PD", interval=0.05)
    assert {s.id: s.state for s in pd.stores().values()} == dict.fromkeys(cluster.stores, pdpb_pb2.UP)


def test_a_store_back_on_a_new_address_is_reached_through_pd(make_pd_cluster: MakePdCluster) -> None:
    """Peers dial a store at the address PD has for it now, not one they cached before it moved."""
    cluster, pd = make_pd_cluster()
    pd.wait_voters(3)
    client = pd.kv_client()
    victim = min({1, 2, 3} - {client.wait_leader()})
    old_address = pd.stores()[victim].address
    cluster.kill(victim)
    written = put_keys(client, b"while-away", 200)

    cluster.restart_elsewhere(victim)
    assert pd.stores()[victim].address == cluster.address(victim) != old_address
    client.wait_caught_up([victim], timeout=20)
    written |= put_keys(client, b"after-move", 100)
    assert_store_serves(client, victim, written)
    client.close()


def test_operators_flow_through_a_pd_leader_kill(make_pd_cluster: MakePdCluster) -> None:
    """The PD leader dies while the range is half grown; the next leader finishes the growth
    (its operator tracking starts empty, so it must re-derive the step from the heartbeats)."""
    # Slower heartbeats stretch the growth over seconds, so the kill reliably lands inside it.
    cluster, pd = make_pd_cluster(start_stores=False, heartbeat_interval=0.5)
    cluster.start(1)
    client = pd.kv_client()
    written = put_keys(client, b"before", 200)
    cluster.start(2, 3)

    def half_grown() -> pdpb_pb2.RangeInfo | None:
        info = pd.first_range()
        return info if info.descriptor.epoch.conf_ver > 1 else None

    midway = wait_for(half_grown, 15, "PD to start growing the range", interval=0.02)
    assert midway.descriptor.epoch.conf_ver < GROWN_CONF_VER, "the growth finished before the kill"
    old_leader = pd.leader_member()
    killed_ms = int(time.time() * 1000)
    cluster.kill_pd(old_leader)

    grown = pd.wait_voters(3)
    assert pd.leader_member() != old_leader
    assert voter_stores(grown) == {1, 2, 3}
    assert grown.descriptor.epoch.conf_ver == GROWN_CONF_VER, grown.descriptor

    def stores_heard() -> bool:
        infos = pd.stores()
        return all(infos[sid].last_heartbeat_ms > killed_ms for sid in cluster.stores)

    wait_for(stores_heard, 15, "every store to heartbeat the new PD leader", interval=0.1)
    client.put(b"after-pd-kill", b"v")
    assert client.get(b"after-pd-kill") == b"v"
    written[b"after-pd-kill"] = b"v"
    assert_store_serves(client, 3, written)
    client.close()

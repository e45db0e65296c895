"""PD's metadata is durable and PD trusts the higher range epoch.

Durability: kill -9 of every PD member loses nothing PD acknowledged. The stores are paused
meanwhile, so what PD answers after the restart comes from its own disks and not from fresh
heartbeats; ids and timestamps continue above everything handed out before (their windows were
persisted ahead), so an id is never reused across a PD failover.

Epochs: a heartbeat from a deposed range leader carries an older epoch and must not overwrite
what a newer leader reported; a newer epoch replaces the record.
"""

from __future__ import annotations

import time

import grpc

from kvdb.pb import pdpb_pb2, pdpb_pb2_grpc
from tests.integration.client import PdHandle
from tests.integration.cluster import Cluster, wait_for
from tests.integration.conftest import MakePdCluster

IDS = 20


def range_heartbeat(cluster: Cluster, pd: PdHandle, info: pdpb_pb2.RangeInfo
                    ) -> pdpb_pb2.RangeHeartbeatResponse:
    """Send one heartbeat straight to the PD leader on a raw stream; PD's answer, error-free.

    Raw, not through the client's heartbeat stream, so the test sees the exact answer to this
    very heartbeat (the client's stream passes answers of any heartbeat on).
    """
    request = pdpb_pb2.RangeHeartbeatRequest(header=pdpb_pb2.RequestHeader(cluster_id=cluster.cluster_id),
                                             store_id=info.leader.store_id, ranges=[info])

    def attempt() -> pdpb_pb2.RangeHeartbeatResponse | None:
        with grpc.insecure_channel(cluster.pd[pd.leader_member()].address) as channel:
            try:
                response = next(pdpb_pb2_grpc.PDStub(channel).RangeHeartbeat(iter([request]), timeout=5))
            except grpc.RpcError:
                return None
        return None if response.header.HasField("error") else response

    return wait_for(attempt, 15, f"PD to answer a heartbeat of range {info.descriptor.id}", interval=0.05)


def test_metadata_and_ids_survive_kill_9_of_every_pd_member(make_pd_cluster: MakePdCluster) -> None:
    cluster, pd = make_pd_cluster()
    pd.wait_voters(3)
    ids_before = [pd.run(pd.client.alloc_id()) for _ in range(IDS)]
    assert ids_before == sorted(set(ids_before)), ids_before
    ts_before = pd.run(pd.client.get_ts_batch(100))[-1]

    for sp in cluster.stores.values():
        sp.pause()  # from here on, PD's answers can only come from what PD itself stored
    try:
        stores_before = {sid: info.address for sid, info in pd.stores().items()}
        range_before = pd.first_range()
        handed_out = [*ids_before, range_before.descriptor.id, *(p.id for p in range_before.descriptor.peers)]
        assert stores_before == {sid: sp.address for sid, sp in cluster.stores.items()}

        for member_id in cluster.pd:
            cluster.kill_pd(member_id)
        cluster.start_pd()

        assert {sid: info.address for sid, info in pd.stores().items()} == stores_before
        by_id = pd.run(pd.client.get_range_by_id(range_before.descriptor.id))
        assert by_id is not None and by_id.descriptor == range_before.descriptor, by_id
        assert by_id.leader == range_before.leader
        assert pd.first_range() == by_id, "the lookup index by key did not survive"
        ids_after = [pd.run(pd.client.alloc_id()) for _ in range(IDS)]
        assert min(ids_after) > max(handed_out), (handed_out, ids_after)
        assert ids_after == sorted(set(ids_after)), ids_after
        assert pd.run(pd.client.get_ts()) > ts_before
    finally:
        for sp in cluster.stores.values():
            sp.resume()

    # The stores find the restarted PD again: their heartbeats arrive and the range serves.
    restarted_ms = int(time.time() * 1000)

    def stores_heard() -> bool:
        infos = pd.stores()
        return all(infos[sid].last_heartbeat_ms > restarted_ms and infos[sid].state == pdpb_pb2.UP
                   for sid in cluster.stores)

    wait_for(stores_heard, 15, "every store to heartbeat the restarted PD", interval=0.1)
    client = pd.kv_client()
    client.put(b"after-pd-restart", b"v")
    assert client.get(b"after-pd-restart") == b"v"
    client.close()
    cluster.assert_all_running()


def test_pd_trusts_the_higher_range_epoch(make_pd_cluster: MakePdCluster) -> None:
    cluster, pd = make_pd_cluster()
    current = pd.wait_voters(3)
    desc = current.descriptor
    assert desc.epoch.conf_ver > 1, "growing to 3 voters must have bumped conf_ver"

    # A deposed leader from before the growth: the first range's original single peer.
    stale = pdpb_pb2.RangeInfo()
    stale.CopyFrom(current)
    stale.descriptor.epoch.conf_ver = 1
    del stale.descriptor.peers[1:]
    stale.leader.CopyFrom(stale.descriptor.peers[0])
    # Same conf_ver, older version: stale along the other dimension of the epoch.
    older_version = pdpb_pb2.RangeInfo()
    older_version.CopyFrom(current)
    older_version.descriptor.epoch.version = desc.epoch.version - 1
    del older_version.descriptor.peers[2:]
    for info in (stale, older_version):
        answer = range_heartbeat(cluster, pd, info)
        assert not answer.decisions, "no operator may be decided on a stale view"
        recorded = pd.run(pd.client.get_range_by_id(desc.id))
        assert recorded.descriptor == desc, recorded
    # Which of two reports wins in every other order (a split's halves, deposed leaders): the
    # range tree's unit tests (tests/placement/test_range_tree.py).

    cluster.assert_all_running()

"""A follower that was down while the leader truncated its log past the follower's last entry
can only be repaired by a snapshot: it must get one, apply it, and end up with the same data
(including deletes it missed)."""

from __future__ import annotations

from kvdb.pb import adminpb_pb2, kvrpc_pb2
from tests.integration.client import Client, error_kind
from tests.integration.conftest import MakeCluster

GC_ARGS = ["--raft-log-gc-count-limit", "100", "--raft-log-gc-keep", "20"]


def put_many(client: Client, keys: list[bytes], value: bytes) -> None:
    """One put (one log entry) per key, pipelined on a Batch stream to the leader."""
    sid = client.wait_leader()
    reqs = [kvrpc_pb2.Request(id=i, put=client.request("put", key=k, value=value))
            for i, k in enumerate(keys)]
    responses = client.batch(sid, reqs)
    assert len(responses) == len(keys) and all(error_kind(r.put) is None for r in responses)


def test_follower_behind_truncated_log_gets_snapshot(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(extra_args=GC_ARGS)
    client = Client(cluster)
    leader = client.wait_leader()
    follower = next(sid for sid in (1, 2, 3) if sid != leader)

    old_keys = [b"old%03d" % i for i in range(50)]
    put_many(client, old_keys, b"before")
    client.wait_caught_up([follower])
    seen_by_follower = client.status(follower).last_index
    cluster.kill(follower)

    # While it is down: overwrite, delete, and write far past the GC limit.
    new_keys = [b"new%04d" % i for i in range(400)]
    put_many(client, new_keys, b"after")
    put_many(client, old_keys[:10], b"overwritten")
    assert error_kind(client.call("delete_range", start_key=b"old010", end_key=b"old030")) is None
    assert error_kind(client.call("delete", key=b"old049")) is None
    compact = client.admin(leader).CompactLog(adminpb_pb2.CompactLogRequest(range_id=1), timeout=5)
    assert not compact.HasField("error"), compact.error.message
    lst = client.status(leader)
    assert lst.first_index > seen_by_follower + 1, (
        f"the leader's log starts at {lst.first_index}, the follower has up to {seen_by_follower}: "
        "no snapshot needed, the test proves nothing")
    sent_before = lst.snapshots_sent

    cluster.restart(follower)
    client.wait_caught_up([follower])
    fst = client.status(follower)
    assert fst.snapshots_applied >= 1
    assert client.status(leader).snapshots_sent > sent_before
    assert fst.first_index > seen_by_follower, "the follower's log should restart from the snapshot"

    expected = {k: b"after" for k in new_keys}
    expected.update({k: b"overwritten" for k in old_keys[:10]})
    expected.update({k: b"before" for k in old_keys[30:49]})
    client.transfer_leader(follower)
    assert client.scan_all(follower) == expected
    # And it keeps replicating normally after the snapshot.
    client.put(b"later", b"x")
    assert client.get(b"later") == b"x"
    # The snapshot's files were deleted on both sides once sent and ingested.
    for sid in (leader, follower):
        assert list((cluster.stores[sid].data_dir / "snap").iterdir()) == []
    cluster.assert_all_running()
    client.close()

"""Bad requests get a clear error and change nothing; the stores keep serving.

``key_not_in_range`` is not exercised: the static cluster has one range over every key, so no
key lies outside it. Bad configuration is bad input too: a store refuses an unsafe one.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from kvdb.pb import adminpb_pb2, kvrpc_pb2, metapb_pb2
from tests.integration.client import Client, error_kind
from tests.integration.cluster import Cluster

MAX_KEY = 8 * 1024
MAX_VALUE = 8 * 1024 * 1024
MAX_BATCH = 10_000
MAX_SCAN = 10_000


def test_bad_requests_get_errors_and_the_store_keeps_serving(cluster: Cluster, client: Client) -> None:
    leader = client.wait_leader()
    client.put(b"k", b"v")

    def answer(kind: str, **fields: object) -> object:
        return client.attempt(leader, kind, client.request(kind, **fields), timeout=10)

    def invalid(kind: str, **fields: object) -> None:
        body = answer(kind, **fields)
        assert error_kind(body) == "invalid_argument", (kind, body)
        assert body.error.message

    invalid("put", key=b"", value=b"x")
    invalid("get", key=b"")
    invalid("cas", key=b"", value=b"x", previous_not_exist=True)
    invalid("put", key=b"k" * (MAX_KEY + 1), value=b"x")
    invalid("get", key=b"k" * (MAX_KEY + 1))
    invalid("put", key=b"big", value=b"v" * (MAX_VALUE + 1))
    invalid("batch_put", pairs=[kvrpc_pb2.KvPair(key=b"big2", value=b"v" * (MAX_VALUE + 1))])
    invalid("scan", start_key=b"b", end_key=b"a")
    invalid("scan", start_key=b"a", end_key=b"a")
    invalid("scan", start_key=b"k" * (MAX_KEY + 1))
    invalid("scan", start_key=b"a", limit=MAX_SCAN + 1)
    invalid("delete_range", start_key=b"z", end_key=b"a")
    invalid("batch_get", keys=[])
    invalid("batch_put", pairs=[])
    invalid("batch_get", keys=[b"x%05d" % i for i in range(MAX_BATCH + 1)])
    invalid("batch_put", pairs=[kvrpc_pb2.KvPair(key=b"x%05d" % i, value=b"v") for i in range(MAX_BATCH + 1)])
    # The limits themselves are allowed. An 8 MiB entry takes longer to replicate than the 0.2 s
    # election timeout these stores run with, so on a loaded machine leadership may move: retry.
    assert error_kind(client.call("put", key=b"K" * MAX_KEY, value=b"v" * MAX_VALUE)) is None
    leader = client.wait_leader()
    assert error_kind(answer("scan", start_key=b"a", limit=MAX_SCAN)) is None
    assert error_kind(answer("batch_get", keys=[b"x%05d" % i for i in range(MAX_BATCH)])) is None

    body = client.attempt(leader, "get", client.request("get", key=b"k", context=client.context(range_id=99)))
    assert error_kind(body) == "range_not_found" and body.error.range_not_found.range_id == 99
    body = client.attempt(leader, "put", client.request("put", key=b"k", value=b"x",
                                                        context=client.context(range_id=99)))
    assert error_kind(body) == "range_not_found"
    for cluster_id in (2, 0):
        body = client.attempt(leader, "put", client.request("put", key=b"k", value=b"x",
                                                            context=client.context(cluster_id=cluster_id)))
        assert error_kind(body) == "wrong_cluster" and body.error.wrong_cluster.cluster_id == 1
    body = client.attempt(leader, "get", kvrpc_pb2.RawGetRequest(key=b"k"))  # no context at all
    assert error_kind(body) == "wrong_cluster"

    current = client.status(leader).descriptor
    for version in (0, current.epoch.version + 1):
        stale = client.context(epoch=metapb_pb2.RangeEpoch(conf_ver=current.epoch.conf_ver, version=version))
        for kind, fields in (("get", {"key": b"k"}), ("put", {"key": b"k", "value": b"x"})):
            body = client.attempt(leader, kind, client.request(kind, context=stale, **fields))
            assert error_kind(body) == "epoch_not_match", (kind, version, body)
            assert list(body.error.epoch_not_match.current_ranges) == [current]

    # The Batch stream: a request without a command, duplicate ids in flight, empty messages.
    put = client.request("put", key=b"dup", value=b"first")
    put2 = client.request("put", key=b"dup", value=b"second")
    responses = client.batch(leader, [
        kvrpc_pb2.Request(id=1),
        kvrpc_pb2.Request(id=7, put=put),
        kvrpc_pb2.Request(id=7, put=put2),
        kvrpc_pb2.Request(id=8, get=client.request("get", key=b"")),
    ])
    by_id: dict[int, list[kvrpc_pb2.Response]] = {}
    for r in responses:
        by_id.setdefault(r.id, []).append(r)
    assert sorted(by_id) == [1, 7, 8] and len(responses) == 4
    assert error_kind(by_id[1][0].put) == "invalid_argument"
    assert sorted(str(error_kind(r.put)) for r in by_id[7]) == ["None", "invalid_argument"]
    assert error_kind(by_id[8][0].get) == "invalid_argument"
    assert client.get(b"dup") == b"first", "the refused duplicate must not have been applied"
    for messages in ([], [kvrpc_pb2.BatchRequest(), kvrpc_pb2.BatchRequest()]):
        assert list(client.kv(leader).Batch(iter(messages), timeout=5)) == []

    # Admin requests validate too.
    admin = client.admin(leader)
    resp = admin.RangeStatus(adminpb_pb2.RangeStatusRequest(range_id=99), timeout=5)
    assert error_kind(resp) == "range_not_found"
    resp = admin.TransferLeader(adminpb_pb2.TransferLeaderRequest(cluster_id=1, range_id=1, to_peer_id=99),
                                timeout=5)
    assert error_kind(resp) == "invalid_argument"
    resp = admin.TransferLeader(adminpb_pb2.TransferLeaderRequest(cluster_id=2, range_id=1, to_peer_id=1),
                                timeout=5)
    assert error_kind(resp) == "wrong_cluster"
    resp = admin.ChangePeer(adminpb_pb2.ChangePeerRequest(
        cluster_id=1, range_id=1, change_type=adminpb_pb2.ChangePeerRequest.ADD_LEARNER,
        peer=metapb_pb2.Peer(id=9)), timeout=5)
    assert error_kind(resp) == "invalid_argument", "a new peer without a store must be refused"
    resp = admin.CompactLog(adminpb_pb2.CompactLogRequest(range_id=99), timeout=5)
    assert error_kind(resp) == "range_not_found"
    resp = admin.SetFailpoint(adminpb_pb2.SetFailpointRequest(kind=adminpb_pb2.SetFailpointRequest.CLOCK_RATE,
                                                              value=0), timeout=5)
    assert error_kind(resp) == "invalid_argument"

    # Nothing refused was written, the store still serves, and every store is alive.
    found = client.call("batch_get", keys=[b"big", b"big2", b"x00000", b"x10000"])
    assert list(found.pairs) == []
    client.put(b"k", b"after")
    assert client.get(b"k") == b"after"
    assert client.status(leader).descriptor == current
    cluster.assert_all_running()


def test_store_refuses_a_negative_clock_drift(tmp_path: Path) -> None:
    """A negative drift would stretch the lease past the followers' vote refusal: unsafe, so refused."""
    result = subprocess.run(
        [sys.executable, "-m", "kvdb", "store", "--store-id", "1", "--listen", "127.0.0.1:0",
         "--data-dir", str(tmp_path / "data"), "--max-clock-drift", "-0.1"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2 and "max_clock_drift" in result.stderr

"""Every raw KV command against real stores, unary and through the Batch stream, and the data on
every replica afterwards (each replica in turn leads and serves a full scan)."""

from __future__ import annotations

from kvdb.pb import kvrpc_pb2
from tests.integration.client import Client, error_kind
from tests.integration.cluster import Cluster


def test_unary_commands(client: Client) -> None:
    client.put(b"a", b"1")
    assert client.get(b"a") == b"1"
    assert client.get(b"missing") is None
    client.put(b"a", b"2")
    assert client.get(b"a") == b"2"

    body = client.call("batch_put", pairs=[kvrpc_pb2.KvPair(key=b"k%02d" % i, value=b"v%d" % i)
                                           for i in range(20)])
    assert error_kind(body) is None
    body = client.call("batch_get", keys=[b"k05", b"nope", b"k01"])
    assert [(p.key, p.value) for p in body.pairs] == [(b"k05", b"v5"), (b"k01", b"v1")]

    # Scans: [start, end) bounds, limit, reverse (descending from the highest key below end).
    assert [k for k, _ in client.scan(b"k03", b"k07")] == [b"k03", b"k04", b"k05", b"k06"]
    assert [k for k, _ in client.scan(b"k03", b"k07", limit=2)] == [b"k03", b"k04"]
    assert [k for k, _ in client.scan(b"k03", b"k07", reverse=True)] == [b"k06", b"k05", b"k04", b"k03"]
    assert [k for k, _ in client.scan(b"k03", b"k07", limit=3, reverse=True)] == [b"k06", b"k05", b"k04"]
    assert [k for k, _ in client.scan(b"k18")] == [b"k18", b"k19"]
    body = client.call("scan", start_key=b"k00", end_key=b"k02", key_only=True)
    assert [(p.key, p.value) for p in body.pairs] == [(b"k00", b""), (b"k01", b"")]

    assert error_kind(client.call("delete", key=b"k00")) is None
    assert client.get(b"k00") is None
    assert error_kind(client.call("delete_range", start_key=b"k10", end_key=b"k15")) is None
    assert [k for k, _ in client.scan(b"k08", b"k17")] == [b"k08", b"k09", b"k15", b"k16"]

    # CAS: success, failure (answers the current value), and on an absent key.
    sid = client.wait_leader()
    cas = client.attempt(sid, "cas", client.request("cas", key=b"a", value=b"3", previous_value=b"2"))
    assert error_kind(cas) is None and cas.succeed and cas.previous_value == b"2"
    cas = client.attempt(sid, "cas", client.request("cas", key=b"a", value=b"4", previous_value=b"2"))
    assert error_kind(cas) is None and not cas.succeed and cas.previous_value == b"3"
    cas = client.attempt(sid, "cas", client.request("cas", key=b"new", value=b"x", previous_not_exist=True))
    assert cas.succeed and cas.previous_not_exist
    cas = client.attempt(sid, "cas", client.request("cas", key=b"new", value=b"y", previous_not_exist=True))
    assert not cas.succeed and cas.previous_value == b"x"
    assert client.get(b"a") == b"3" and client.get(b"new") == b"x"


def test_batch_stream(client: Client) -> None:
    sid = client.wait_leader()
    n = 2000
    puts = [kvrpc_pb2.Request(id=i, put=client.request("put", key=b"s%05d" % i, value=b"v%d" % i))
            for i in range(n)]
    responses = client.batch(sid, puts)
    assert sorted(r.id for r in responses) == list(range(n))
    assert all(r.WhichOneof("resp") == "put" and error_kind(r.put) is None for r in responses)

    gets = [kvrpc_pb2.Request(id=i, get=client.request("get", key=b"s%05d" % i)) for i in range(n)]
    cas = client.request("cas", key=b"s00000", value=b"c", previous_value=b"v0")
    mixed = gets + [
        kvrpc_pb2.Request(id=n, scan=client.request("scan", start_key=b"s00010", end_key=b"s00013")),
        kvrpc_pb2.Request(id=n + 1, cas=cas),
        kvrpc_pb2.Request(id=n + 2, batch_get=client.request("batch_get", keys=[b"s00001", b"s00002"])),
        kvrpc_pb2.Request(id=n + 3, delete=client.request("delete", key=b"s00003")),
    ]
    by_id = {r.id: r for r in client.batch(sid, mixed)}
    assert len(by_id) == n + 4
    for i in range(n):
        assert by_id[i].get.value == b"v%d" % i, by_id[i]
    assert [p.key for p in by_id[n].scan.pairs] == [b"s00010", b"s00011", b"s00012"]
    assert by_id[n + 1].cas.succeed
    assert [p.value for p in by_id[n + 2].batch_get.pairs] == [b"v1", b"v2"]
    assert error_kind(by_id[n + 3].delete) is None
    assert client.get(b"s00000") == b"c" and client.get(b"s00003") is None


def test_every_replica_holds_the_data(cluster: Cluster, client: Client) -> None:
    expected = {b"r%04d" % i: b"value-%d" % i for i in range(300)}
    for key, value in expected.items():
        client.put(key, value)
    client.call("delete_range", start_key=b"r0100", end_key=b"r0200")
    client.call("delete", key=b"r0000")
    expected = {k: v for k, v in expected.items() if not (b"r0100" <= k < b"r0200") and k != b"r0000"}

    index = client.wait_caught_up([1, 2, 3])
    statuses = client.statuses()
    assert all(st.applied_index >= index for st in statuses.values()), statuses
    for sid in (1, 2, 3):
        client.transfer_leader(sid)
        assert client.scan_all(sid) == expected, f"store {sid} disagrees"
    cluster.assert_all_running()

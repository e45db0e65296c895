"""Bad input to the raw KV API gets a clear error and changes nothing."""

from __future__ import annotations

import pytest

from kvdb.pb import kvrpc_pb2
from kvdb.storage.engine import CF_DEFAULT
from kvdb.store.config import StoreConfig
from tests.store.local_cluster import LocalCluster, context, get, put

LIMITS = StoreConfig(max_key_size=16, max_value_size=64, max_batch_keys=4, max_scan_limit=10)


@pytest.fixture
def single() -> tuple[LocalCluster, object]:
    cluster = LocalCluster([1], LIMITS)
    return cluster, cluster.elect()


def _error(resp: kvrpc_pb2.Response) -> kvrpc_pb2.Error:
    return getattr(resp, resp.WhichOneof("resp")).error


def bad_requests(ctx: kvrpc_pb2.Context) -> dict[str, kvrpc_pb2.Request]:
    R = kvrpc_pb2
    return {
        "key is empty": put(b"", b"v", ctx),
        "key is 17 bytes": put(b"k" * 17, b"v", ctx),
        "value is 65 bytes": put(b"k", b"v" * 65, ctx),
        "inverted bounds": R.Request(scan=R.RawScanRequest(context=ctx, start_key=b"b", end_key=b"a")),
        "scan limit 11": R.Request(scan=R.RawScanRequest(context=ctx, start_key=b"a", limit=11)),
        "batch is empty": R.Request(batch_get=R.RawBatchGetRequest(context=ctx)),
        "batch has 5 keys": R.Request(batch_put=R.RawBatchPutRequest(
            context=ctx, pairs=[R.KvPair(key=b"k%d" % i, value=b"v") for i in range(5)])),
        "delete range bounds": R.Request(delete_range=R.RawDeleteRangeRequest(
            context=ctx, start_key=b"z", end_key=b"z")),
        "no command": R.Request(id=5),
    }


def test_each_bad_request_gets_invalid_argument_and_writes_nothing(single) -> None:
    cluster, store = single
    applied = store.peers[1].applied
    for name, req in bad_requests(context(store)).items():
        err = _error(cluster.call(store, req))
        assert err.HasField("invalid_argument"), (name, err)
        assert err.message, name
    assert store.peers[1].applied == applied
    assert store.engine.scan(CF_DEFAULT, b"", None, 0) == []
    ok = cluster.call(store, put(b"k", b"v", context(store)))
    assert not ok.put.HasField("error")
    assert cluster.call(store, get(b"k", context(store))).get.value == b"v"


def test_limits_are_inclusive(single) -> None:
    cluster, store = single
    resp = cluster.call(store, put(b"k" * 16, b"v" * 64, context(store)))
    assert not resp.put.HasField("error")


def test_get_of_a_missing_key_says_not_found(single) -> None:
    cluster, store = single
    resp = cluster.call(store, get(b"nothing", context(store)))
    assert resp.get.not_found and not resp.get.HasField("error")

"""Transactional requests on real store processes (PD for the TSO, 3 stores): raw Percolator
requests on the Batch stream, as the transactional client will send them."""

from __future__ import annotations

import asyncio
import time

import pytest

from kvdb.client.transport import StoreConnection
from kvdb.pb import kvrpc_pb2
from tests.integration.client import Client, PdHandle
from tests.integration.conftest import MakePdCluster
from tests.store.local_cluster import request

ROUTING = {"not_leader", "epoch_not_match", "range_not_found", "server_busy", "stale_command"}


class TxnClient:
    """Sends one transactional request at a time to the range's leader, over the KV stream."""

    def __init__(self, pd: PdHandle, client: Client) -> None:
        self.pd = pd
        self.client = client
        self.conns: dict[int, StoreConnection] = {}

    def ts(self) -> int:
        return self.pd.run(self.pd.client.get_ts())

    def send(self, store_id: int, kind: str, **fields: object) -> object:
        """``kind``'s response body from ``store_id`` (errors included)."""
        req = request(kind, self.client.context(), **fields)
        if store_id not in self.conns:
            address = self.client.cluster.address(store_id)
            self.conns[store_id] = self.pd.run(_connect(address, self.client.cluster.cluster_id))
        resp = self.pd.run(asyncio.wait_for(self.conns[store_id].request(req), 5.0))
        return getattr(resp, kind)

    def call(self, kind: str, timeout: float = 15.0, **fields: object) -> object:
        """Send to the leader until an answer that is not a routing error."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            leader = self.client.wait_leader(timeout=max(0.1, deadline - time.monotonic()))
            body = self.send(leader, kind, **fields)
            if body.error.WhichOneof("kind") not in ROUTING:
                return body
            self.client.leader = None
        raise AssertionError(f"{kind}: no answer but routing errors within {timeout}s")

    def close(self) -> None:
        for conn in self.conns.values():
            self.pd.run(conn.close())


async def _connect(address: str, cluster_id: int) -> StoreConnection:
    return StoreConnection(address, cluster_id)  # its channel belongs to the loop that runs it


def mutation(key: bytes, value: bytes) -> kvrpc_pb2.TxnMutation:
    return kvrpc_pb2.TxnMutation(op=kvrpc_pb2.PUT, key=key, value=value)


@pytest.fixture
def txn(make_pd_cluster: MakePdCluster) -> TxnClient:
    _, pd = make_pd_cluster(n_stores=3, n_pd=1)
    pd.wait_voters(3)
    client = pd.kv_client()
    tc = TxnClient(pd, client)
    yield tc
    tc.close()
    client.close()


def test_percolator_requests_on_real_stores(txn: TxnClient) -> None:
    """2PC prewrite/commit and reads at timestamps, a lock met by a read, 1PC, and an async
    prewrite whose min_commit_ts is above a read the store already served (the concurrency
    manager: with start_ts < R, a commit at or below R would change what R read)."""
    start = txn.ts()
    resp = txn.call("prewrite", mutations=[mutation(b"a", b"1"), mutation(b"b", b"2")], primary_lock=b"a",
                    start_ts=start, lock_ttl_ms=3000)
    assert not resp.HasField("error") and list(resp.errors) == [], resp
    locked = txn.call("txn_get", key=b"b", version=txn.ts())
    assert locked.key_error.locked.start_ts == start and locked.key_error.locked.primary == b"a"
    commit_ts = txn.ts()
    resp = txn.call("commit", start_ts=start, keys=[b"a", b"b"], commit_ts=commit_ts)
    assert not resp.HasField("error") and not resp.HasField("key_error"), resp
    assert txn.call("txn_get", key=b"b", version=txn.ts()).value == b"2"
    assert txn.call("txn_get", key=b"b", version=commit_ts - 1).not_found

    one_pc = txn.call("prewrite", mutations=[mutation(b"c", b"3")], primary_lock=b"c", start_ts=txn.ts(),
                      lock_ttl_ms=3000, try_one_pc=True)
    assert list(one_pc.errors) == [] and one_pc.one_pc_commit_ts > 0, one_pc
    assert txn.call("txn_get", key=b"c", version=txn.ts()).value == b"3"

    start = txn.ts()
    read_ts = txn.ts()
    assert txn.call("txn_get", key=b"d", version=read_ts).not_found
    resp = txn.call("prewrite", mutations=[mutation(b"d", b"4")], primary_lock=b"d", start_ts=start,
                    lock_ttl_ms=3000, use_async_commit=True)
    assert list(resp.errors) == [] and resp.min_commit_ts > read_ts, resp


def test_a_new_leader_commits_async_above_the_reads_its_predecessor_served(txn: TxnClient) -> None:
    """After a leader transfer the new leader's store never saw the old one's reads: it must
    learn a TSO stamp first (answering MaxTimestampNotSynced meanwhile), and then stamp above it."""
    start = txn.ts()
    read_ts = txn.ts()
    old = txn.client.wait_leader()
    assert txn.send(old, "txn_get", key=b"k", version=read_ts).not_found  # served by the old leader
    new = next(sid for sid in txn.client.cluster.running_ids() if sid != old)
    txn.client.transfer_leader(new)
    deadline = time.monotonic() + 15.0
    not_synced = 0
    while True:
        resp = txn.send(new, "prewrite", mutations=[mutation(b"k", b"v")], primary_lock=b"k", start_ts=start,
                        lock_ttl_ms=3000, use_async_commit=True)
        if resp.error.HasField("max_ts_not_synced") and time.monotonic() < deadline:
            not_synced += 1
            time.sleep(resp.error.max_ts_not_synced.backoff_ms / 1000)  # the server's own backoff
            continue
        break
    assert not resp.HasField("error") and list(resp.errors) == [], resp
    assert resp.min_commit_ts > read_ts, (resp, not_synced)

"""Roles enforced by real TLS nodes (a PD member and a store, in process, on loopback): each
refused call raises PermissionDeniedError and leaves nothing applied, which a stronger client
then checks. docs/security.md "Roles"."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import socket
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

import kvdb.aio
from kvdb.client import txn as txn_module
from kvdb.client.txn import Transaction
from kvdb.errors import PermissionDeniedError
from kvdb.net import certs, grpc_factory
from kvdb.net.tls import TlsFiles
from kvdb.pb import (
    adminpb_pb2,
    adminpb_pb2_grpc,
    kvrpc_pb2,
    kvrpc_pb2_grpc,
    pdpb_pb2,
    raft_serverpb_pb2,
    raft_serverpb_pb2_grpc,
)
from kvdb.pdclient.client import PdClient
from kvdb.server.node import NodeConfig, StoreNode
from placement.server import PdConfig, PdMember
from placement.state import NotServingError
from tests.net import raw_certs

CLIENTS = {"ro": "readonly", "rw": "readwrite", "root": "admin"}


def _free_address() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


@dataclass
class TlsCluster:
    certs: Path
    pd: str
    store: str
    store_node: StoreNode

    def tls(self, name: str) -> TlsFiles:
        files = certs.client_files(self.certs, name)
        return TlsFiles(self.certs / certs.CA_CERT, files.cert, files.key)

    @contextlib.asynccontextmanager
    async def client(self, name: str) -> AsyncIterator[kvdb.aio.AsyncClient]:
        client = await kvdb.aio.connect(self.pd, timeout=10, tls=self.tls(name))
        try:
            yield client
        finally:
            await client.close()

    @contextlib.asynccontextmanager
    async def pd_client(self, name: str) -> AsyncIterator[PdClient]:
        async with PdClient(self.pd, timeout=10, tls=self.tls(name)) as pd:
            yield pd


async def _wait(condition: Callable[[], Coroutine[Any, Any, bool]], what: str, timeout: float) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def tls_cluster(root: Path) -> AsyncIterator[TlsCluster]:
    certs_dir = root / "certs"
    certs.create_ca(certs_dir)
    node = certs.create_node(certs_dir, ["127.0.0.1", "localhost"])
    for name, role in CLIENTS.items():
        certs.create_client(certs_dir, name, role)
    node_tls = TlsFiles(certs_dir / certs.CA_CERT, node.cert, node.key)
    pd_address = _free_address()
    member = PdMember(PdConfig(member_id=1, listen=pd_address, data_dir=root / "pd",
                               initial_members={1: pd_address}, tls=node_tls))
    await member.start()
    store: StoreNode | None = None
    try:
        async def pd_ready() -> bool:
            try:
                await member.ensure_leader_ready()
            except NotServingError:
                return False
            return True

        await _wait(pd_ready, "the PD member to lead", 15)
        store = StoreNode(NodeConfig(store_id=0, listen="127.0.0.1:0", data_dir=root / "store",
                                     pd_endpoints=pd_address, tls=node_tls, pd_heartbeat_interval=0.2))
        await store.start()
        yield TlsCluster(certs_dir, pd_address, f"127.0.0.1:{store.port}", store)
    finally:
        if store is not None:
            await store.stop()
        await member.stop()


def cluster_test(test: Callable[[TlsCluster], Coroutine[Any, Any, None]]) -> Callable[[Path], None]:
    """Runs ``test`` against a fresh TLS cluster on a fresh loop, bounded in time."""

    @functools.wraps(test)
    def run(tmp_path: Path) -> None:
        async def main() -> None:
            async with tls_cluster(tmp_path) as cluster:
                await asyncio.wait_for(test(cluster), 60)

        asyncio.run(main())

    run.__signature__ = None  # type: ignore[attr-defined]
    del run.__wrapped__  # pytest must see (tmp_path), not the wrapped test's (cluster)
    return run


@cluster_test
async def test_a_readonly_client_can_read_but_cannot_write(cluster: TlsCluster) -> None:
    async with cluster.client("root") as root, cluster.client("ro") as ro:
        await root.put(b"raw", b"old")
        async with root.transaction() as txn:
            await txn.put(b"txn", b"old")
        denied = r"client 'ro' \(role readonly\) may not .*needs readwrite"
        with pytest.raises(PermissionDeniedError, match=denied):
            await ro.put(b"raw", b"new")
        with pytest.raises(PermissionDeniedError, match="needs readwrite"):
            await ro.delete(b"raw")
        with pytest.raises(PermissionDeniedError, match="prewrite requests: needs readwrite"):
            async with ro.transaction() as txn:
                await txn.put(b"txn", b"new")
                await txn.put(b"txn2", b"new")
        # Unary Kv methods are refused by the interceptor before the store sees them.
        async with grpc_factory.channel(cluster.store, cluster.tls("ro")) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await kvrpc_pb2_grpc.KvStub(channel).RawPut(kvrpc_pb2.RawPutRequest(key=b"raw", value=b"new"))
            assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert "may not call /kvdb.kv.Kv/RawPut: needs readwrite" in refused.value.details()
        # Nothing applied: the reader itself and an admin see the old values.
        assert await ro.get(b"raw") == b"old"
        assert await root.get(b"raw") == b"old"
        async with ro.transaction() as txn:
            assert await txn.get(b"txn") == b"old"
            assert await txn.get(b"txn2") is None
        async with root.transaction() as txn:
            assert await txn.get(b"txn") == b"old"


@cluster_test
async def test_a_readonly_reader_cannot_resolve_a_crashed_writers_lock_a_readwrite_one_can(
        cluster: TlsCluster) -> None:
    """Lock resolution takes the caller's word for timestamps, so it can decide a transaction's
    outcome: it needs readwrite. A readonly reader that meets a lock it would have to resolve gets
    a clear refusal, and the lock is still there for a readwrite reader to resolve."""
    async with cluster.client("rw") as rw, cluster.client("ro") as ro:
        async with rw.transaction() as txn:
            await txn.put(b"k", b"old")
        # The writer locks k and "crashes": it never commits nor heartbeats; its lock expires soon.
        crashed = Transaction(rw, async_commit=False, one_pc=False)
        await crashed.begin()
        await crashed.put(b"k", b"new")
        original_ttl, txn_module.TTL_MS = txn_module.TTL_MS, 100
        try:
            await rw._run("prewrite", 5, lambda op: crashed._prewrite(op, [b"k"], False))
        finally:
            txn_module.TTL_MS = original_ttl
        with pytest.raises(PermissionDeniedError, match="check_txn_status requests: needs readwrite"):
            async with ro.transaction() as txn:
                await txn.get(b"k")
        async with rw.transaction() as txn:  # check_txn_status rolls the crashed writer back
            assert await txn.get(b"k") == b"old"
        async with ro.transaction() as txn:
            assert await txn.get(b"k") == b"old"


@cluster_test
async def test_a_readwrite_client_cannot_split_move_leaders_or_set_config(cluster: TlsCluster) -> None:
    async with cluster.pd_client("rw") as rw, cluster.pd_client("root") as root:
        ranges = await root.scan_ranges(b"")
        config = await root.get_config()
        with pytest.raises(PermissionDeniedError, match=r"may not call /kvdb.pd.PD/SplitRanges: needs admin"):
            await rw.split_ranges([b"m"], timeout=5)
        with pytest.raises(PermissionDeniedError, match="AddOperator: needs admin"):
            await rw.add_operator(ranges[0].descriptor.id, transfer_leader=cluster.store_node.store_id)
        with pytest.raises(PermissionDeniedError, match="SetConfig: needs admin"):
            await rw.set_config("replica_count", "5")
        assert len(await rw.scan_ranges(b"")) == len(ranges) == 1
        assert await root.get_config() == config
        assert await root.list_operators(include_finished=True) == []
    async with grpc_factory.channel(cluster.store, cluster.tls("rw")) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await adminpb_pb2_grpc.AdminStub(channel).TransferLeader(adminpb_pb2.TransferLeaderRequest())
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    async with cluster.pd_client("root") as root:  # and admin may: the split happens
        await root.split_ranges([b"m"], timeout=10)
        assert len(await root.scan_ranges(b"")) == 2


@cluster_test
async def test_an_admin_client_cannot_call_node_only_methods(cluster: TlsCluster) -> None:
    async with cluster.pd_client("root") as root:
        with pytest.raises(PermissionDeniedError, match="PutStore: needs node"):
            await root.put_store(pdpb_pb2.StoreInfo(id=999, address="127.0.0.1:1"))
        with pytest.raises(PermissionDeniedError, match="AllocID: needs node"):
            await root.alloc_id()
        assert [s.id for s in await root.get_all_stores()] == [cluster.store_node.store_id]
    async with grpc_factory.channel(cluster.store, cluster.tls("root")) as channel:
        stub = raft_serverpb_pb2_grpc.RaftTransportStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.RaftPort(raft_serverpb_pb2.RaftPortRequest())
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "may not call /kvdb.raftserver.RaftTransport/RaftPort: needs node" in refused.value.details()


@cluster_test
async def test_a_certificate_without_a_role_is_refused(cluster: TlsCluster) -> None:
    raw_certs.issue(cluster.certs, "mallory", [])
    with pytest.raises(PermissionDeniedError, match="client 'mallory': certificate carries no kvdb role"):
        await kvdb.aio.connect(cluster.pd, timeout=5, tls=cluster.tls("mallory"))
    async with grpc_factory.channel(cluster.store, cluster.tls("mallory")) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await kvrpc_pb2_grpc.KvStub(channel).RawGet(kvrpc_pb2.RawGetRequest(key=b"k"))
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "certificate carries no kvdb role" in refused.value.details()


@cluster_test
async def test_the_cli_prints_a_refusal_and_exits_1(cluster: TlsCluster) -> None:
    tls = cluster.tls("ro")
    env = {**os.environ, "KVDB_CA": str(tls.ca), "KVDB_CERT": str(tls.cert), "KVDB_KEY": str(tls.key)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kvdb", "put", "k", "v", "--pd", cluster.pd, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode == 1, err
    assert err.decode() == ("kvdb put: permission denied: put: client 'ro' (role readonly) may not send "
                            "put requests: needs readwrite\n")
    async with cluster.client("ro") as ro:
        assert await ro.get(b"k") is None

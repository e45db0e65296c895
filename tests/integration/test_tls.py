"""Mutual TLS between real processes: what a certificate from another CA cannot do, and rotation.

One TLS cluster (3 PD members, 3 stores, ``Cluster.create_with_pd(..., tls=True)``) per test.
Every refusal is checked twice: the foreign party fails, and the same step with the cluster's
own certificate succeeds (so the check could fail), and nothing the foreign party tried is seen.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from cryptography import x509

import kvdb
from kvdb.net import certs, grpc_factory, wire
from kvdb.net.tls import TlsFiles
from kvdb.pb import raft_serverpb_pb2, raft_serverpb_pb2_grpc
from tests.integration.cluster import Cluster, free_ports, make_node_tls, wait_for
from tests.integration.conftest import MakePdCluster

TIMEOUT = 30.0


def foreign_node_tls(root: Path, cluster_ca: Path) -> TlsFiles:
    """A node certificate for 127.0.0.1 from a CA the cluster has never seen, presented by a party
    that trusts both that CA and the cluster's (``ca.crt`` is public): it accepts the cluster's
    servers, so only the cluster's check of *its* certificate (mutual TLS) can keep it out."""
    own = make_node_tls(root / "foreign-certs")
    bundle = root / "foreign-certs" / "trusted.crt"
    bundle.write_bytes(cluster_ca.read_bytes() + own.ca.read_bytes())
    return TlsFiles(bundle, own.cert, own.key)


async def _raft_port(address: str, tls: TlsFiles, cluster_id: int) -> tuple[grpc.StatusCode, int]:
    """Asks a store for its Raft port the way a peer store does: the status and the port."""
    async with grpc_factory.channel(address, tls) as channel:
        stub = raft_serverpb_pb2_grpc.RaftTransportStub(channel)
        try:
            reply = await stub.RaftPort(raft_serverpb_pb2.RaftPortRequest(cluster_id=cluster_id), timeout=5)
        except grpc.aio.AioRpcError as exc:
            return exc.code(), 0
    return grpc.StatusCode.OK, reply.port


async def _send_raft_batch(port: int, tls: TlsFiles) -> None:
    """Sends one (empty) Raft batch of a made-up cluster to a store's Raft listener, until the
    store ends the connection: it read the batch (and refused its cluster), or it refused the TLS
    handshake (which, with TLS 1.3, the client may learn of only after its first write)."""
    try:
        conn = await wire.connect("127.0.0.1", port, tls)
    except (ssl.SSLError, ConnectionError):
        return
    conn.send(raft_serverpb_pb2.RaftMessageBatch(cluster_id=424242).SerializeToString())
    await asyncio.wait_for(conn.closed, 10)


def test_a_store_with_a_foreign_certificate_cannot_join_or_send_raft_messages(
        make_pd_cluster: MakePdCluster, tmp_path: Path) -> None:
    cluster, pd = make_pd_cluster(tls=True)
    foreign = foreign_node_tls(tmp_path, cluster.node_tls.ca)
    with kvdb.connect(cluster.pd_endpoints, timeout=TIMEOUT, tls=cluster.client_tls()) as client:
        client.put(b"k", b"v")
    assert sorted(pd.stores()) == [1, 2, 3]

    # A store process with a node certificate of another CA, pointed at this cluster's PD.
    intruder = cluster.add_store(4, free_ports(1)[0], cluster.pd_store_args())
    intruder.tls = foreign
    intruder.pd_allocates_id = True
    cluster._launch(intruder)
    wait_for(lambda: not intruder.running, TIMEOUT + 15, "the foreign store to give up on PD")
    assert intruder.proc.returncode != 0 and not intruder.ready_file.exists()
    assert "TLS handshake failed?" in intruder.tail() and "Traceback" not in intruder.tail(), intruder.tail()
    assert sorted(pd.stores()) == [1, 2, 3], "the foreign store registered"

    # A peer asking for the Raft port with the foreign certificate is refused before the request
    # is read; with the cluster's node certificate the same request reaches the store (which then
    # refuses its made-up cluster id: proof that it was read). The Raft listener itself refuses
    # the foreign certificate's handshake.
    address = cluster.address(1)
    assert asyncio.run(_raft_port(address, foreign, 424242)) == (grpc.StatusCode.UNAVAILABLE, 0)
    refused, _ = asyncio.run(_raft_port(address, cluster.node_tls, 424242))
    assert refused == grpc.StatusCode.FAILED_PRECONDITION
    status, port = asyncio.run(_raft_port(address, cluster.node_tls, pd.client.cluster_id))
    assert status == grpc.StatusCode.OK and port > 0
    read = "it sends for cluster 424242"
    asyncio.run(_send_raft_batch(port, cluster.node_tls))
    assert cluster.stores[1].tail().count(read) == 1, cluster.stores[1].tail()
    asyncio.run(_send_raft_batch(port, foreign))
    assert cluster.stores[1].tail().count(read) == 1, "the listener read a batch of a foreign certificate"
    with kvdb.connect(cluster.pd_endpoints, timeout=TIMEOUT, tls=cluster.client_tls()) as client:
        assert client.get(b"k") == b"v"


def presented_serial(address: str, client: TlsFiles) -> int:
    """The serial number of the certificate the server at ``address`` presents in its handshake."""
    context = ssl.create_default_context(cafile=str(client.ca))
    context.load_cert_chain(str(client.cert), str(client.key))
    context.set_alpn_protocols(["h2"])
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname=host) as tls:
        der = tls.getpeercert(binary_form=True)
    return x509.load_der_x509_certificate(der).serial_number


def test_rotation_restarting_a_store_with_a_reissued_certificate_keeps_the_cluster_serving(
        make_pd_cluster: MakePdCluster, tmp_path: Path) -> None:
    cluster, pd = make_pd_cluster(tls=True)
    pd.wait_voters(3)
    old_serial = presented_serial(cluster.address(1), cluster.client_tls())
    # Re-issue: the same CA (its two files) in a new directory, a new node key and certificate.
    new_dir = tmp_path / "rotated"
    new_dir.mkdir()
    for name in (certs.CA_CERT, certs.CA_KEY):
        shutil.copy2(cluster.certs_dir / name, new_dir / name)
    pair = certs.create_node(new_dir, ["127.0.0.1", "localhost"])
    cluster.stop(1)
    cluster.stores[1].tls = TlsFiles(new_dir / certs.CA_CERT, pair.cert, pair.key)
    cluster.restart(1)
    new_serial = presented_serial(cluster.address(1), cluster.client_tls())
    assert new_serial != old_serial
    assert new_serial == x509.load_pem_x509_certificate(pair.cert.read_bytes()).serial_number
    # With store 2 down, every write needs store 1 (new certificate) and store 3 (old one) to agree.
    cluster.kill(2)
    with kvdb.connect(cluster.pd_endpoints, timeout=TIMEOUT, tls=cluster.client_tls()) as client:
        for i in range(20):
            client.put(b"rotated-%d" % i, b"%d" % i)
        assert client.scan(b"rotated-", b"rotated.", limit=100) == [
            (b"rotated-%d" % i, b"%d" % i) for i in sorted(range(20), key=lambda i: b"%d" % i)]
    # The test client talks TLS too (an admin certificate): store 1 applied all of it.
    kv = pd.kv_client()
    try:
        kv.wait_caught_up([1, 3])
    finally:
        kv.close()


@pytest.mark.parametrize("mistake", ["missing", "not-pem", "partial", "other-key", "other-ca"])
def test_a_server_refuses_bad_tls_files_with_a_one_line_error(tmp_path: Path, mistake: str) -> None:
    good = make_node_tls(tmp_path / "a")
    other = make_node_tls(tmp_path / "b")
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    missing = tmp_path / "nope.crt"
    files = {"missing": ["--ca", str(missing), "--cert", str(good.cert), "--key", str(good.key)],
             "not-pem": ["--ca", str(junk), "--cert", str(good.cert), "--key", str(good.key)],
             "partial": ["--ca", str(good.ca), "--cert", str(good.cert)],
             "other-key": ["--ca", str(good.ca), "--cert", str(good.cert), "--key", str(other.key)],
             "other-ca": ["--ca", str(good.ca), "--cert", str(other.cert), "--key", str(other.key)]}[mistake]
    words = {"missing": "nope.crt", "not-pem": "not a PEM certificate", "partial": "missing --key",
             "other-key": "not the private key", "other-ca": "not signed by the CA"}[mistake]
    for command in (["store", "--store-id", "1", "--static-cluster", "1=127.0.0.1:1"],
                    ["pd", "--member-id", "1", "--initial-members", "1=127.0.0.1:1"]):
        result = subprocess.run([sys.executable, "-m", "kvdb", *command, "--listen", "127.0.0.1:0",
                                 "--data-dir", str(tmp_path / "data"), *files],
                                capture_output=True, text=True, timeout=TIMEOUT)
        assert result.returncode == 2, result
        assert len(result.stderr.strip().splitlines()) == 1 and words in result.stderr, result.stderr
        assert "Traceback" not in result.stderr


def _rolling_restart(cluster: Cluster, tls: TlsFiles, client: TlsFiles) -> None:
    """Restart every PD member, then every store, one at a time with ``tls``; after each, a write
    through ``client`` must succeed (the cluster kept, or got back, a quorum everywhere)."""
    for mid, member in cluster.pd.items():
        cluster.stop_pd(mid)
        member.tls = tls
        cluster.start_pd(mid)
        _write(cluster, client, f"pd{mid}")
    for sid, store in cluster.stores.items():
        cluster.stop(sid)
        store.tls = tls
        cluster.restart(sid)
        _write(cluster, client, f"store{sid}")


def _write(cluster: Cluster, client: TlsFiles, tag: str) -> None:
    with kvdb.connect(cluster.pd_endpoints, timeout=TIMEOUT, tls=client) as c:
        c.put(b"ca-rotation-" + tag.encode(), tag.encode())


def test_ca_rotation_through_a_bundle_keeps_the_cluster_serving(
        make_pd_cluster: MakePdCluster, tmp_path: Path) -> None:
    """docs/security.md, "Rotation", the CA: bundle old + new, new node certificates, drop the old CA."""
    cluster, pd = make_pd_cluster(tls=True)
    pd.wait_voters(3)
    old_client = cluster.client_tls()
    new_dir = tmp_path / "new-ca"
    certs.create_ca(new_dir)
    new_node = certs.create_node(new_dir, ["127.0.0.1", "localhost"])
    new_pair = certs.create_client(new_dir, "root2", "admin")
    new_ca = new_dir / certs.CA_CERT
    new_client = TlsFiles(new_ca, new_pair.cert, new_pair.key)
    bundle = tmp_path / "bundle.crt"
    bundle.write_bytes(cluster.node_tls.ca.read_bytes() + new_ca.read_bytes())

    _rolling_restart(cluster, TlsFiles(bundle, cluster.node_tls.cert, cluster.node_tls.key), old_client)
    # Nodes about to present certificates of the new CA: clients must trust it too (the bundle).
    old_client_both = TlsFiles(bundle, old_client.cert, old_client.key)
    _rolling_restart(cluster, TlsFiles(bundle, new_node.cert, new_node.key), old_client_both)
    _write(cluster, new_client, "both-clients")  # both CAs are trusted now
    _rolling_restart(cluster, TlsFiles(new_ca, new_node.cert, new_node.key), new_client)

    with kvdb.connect(cluster.pd_endpoints, timeout=TIMEOUT, tls=new_client) as c:
        tags = [f"pd{m}" for m in cluster.pd] + [f"store{s}" for s in cluster.stores] + ["both-clients"]
        for tag in tags:
            assert c.get(b"ca-rotation-" + tag.encode()) == tag.encode()
    refused = subprocess.run(
        [sys.executable, "-m", "kvdb", "put", "old-ca", "x", "--pd", cluster.pd_endpoints, "--timeout", "1",
         "--ca", str(old_client.ca), "--cert", str(old_client.cert), "--key", str(old_client.key)],
        capture_output=True, text=True, timeout=TIMEOUT)
    assert refused.returncode == 3 and "TLS handshake failed?" in refused.stderr, refused
    cluster.assert_all_running()

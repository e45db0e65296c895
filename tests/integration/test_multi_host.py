"""A cluster that spans hosts, on one machine: every PD member and store on a loopback address
of its own (127.0.0.2, 127.0.0.3, ...), stores listening on port 0 and advertising their own
address with the port they bound. Nothing may assume 127.0.0.1 or the listen address: clients
and peers reach a store only through what it advertised to PD.

Store ids come from PD (no --store-id), are kept in the data dir across restarts, and a data dir
of another cluster or store is refused with nothing written. Binding a wildcard address would
expose the test beyond loopback, so the one wildcard case checked is the refusal, which happens
before anything binds.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import kvdb
from kvdb.pb import raft_serverpb_pb2
from kvdb.server.identity import read_identity
from kvdb.server.raft_host import db_path
from kvdb.storage.engine import CF_META
from kvdb.storage.keys import STORE_IDENT_KEY
from kvdb.storage.rocks import RocksEngine
from tests.integration.client import PdHandle
from tests.integration.cluster import Cluster, StoreProcess, free_ports, wait_for
from tests.integration.conftest import PD_TEST_ARGS

PD_HOSTS = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
STORE_HOSTS = ["127.0.0.5", "127.0.0.6", "127.0.0.7"]
ZONES = ["a", "b", "c"]
KEYS = 200


@pytest.fixture
def spread(request: pytest.FixtureRequest, tmp_path: Path):  # noqa: ANN201
    """3 PD members and 3 stores, each on its own loopback host; PD started, stores not yet."""
    cluster = Cluster(tmp_path / "cluster", pd_args=PD_TEST_ARGS)
    request.node._kvdb_clusters = [cluster]
    addresses = [(host, free_ports(1, host)[0]) for host in PD_HOSTS]
    members = ",".join(f"{mid}={host}:{port}" for mid, (host, port) in enumerate(addresses, start=1))
    for mid, (host, port) in enumerate(addresses, start=1):
        pp = cluster.add_pd_member(mid, port, members)
        pp.host = host
        pp.args += ["--advertise-address", f"{host}:{port}"]
    for slot, (host, zone) in enumerate(zip(STORE_HOSTS, ZONES, strict=True), start=1):
        advertise = host if slot == 3 else f"{host}:0"  # both ways of saying "the port bound"
        sp = cluster.add_store(slot, 0, [*cluster.pd_store_args(), "--advertise-address", advertise,
                                         "--labels", f"zone={zone},host=h{slot}"])
        sp.host, sp.any_port, sp.pd_allocates_id = host, True, True
    try:
        cluster.start_pd()
        yield cluster
    finally:
        cluster.shutdown()


def allocated_id(sp: StoreProcess) -> int:
    """The id PD allocated to a store, as its data dir records it (read-only: it may be running)."""
    ident = read_identity(sp.data_dir)
    assert ident is not None, f"{sp.label} has no identity"
    return ident.store_id


def run_store(cluster: Cluster, data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """A store started by hand that must refuse to start (it exits; bounded by the timeout)."""
    host = "127.0.0.8"
    return subprocess.run([sys.executable, "-m", "kvdb", "store", "--listen", f"{host}:0",
                           "--data-dir", str(data_dir), "--pd", cluster.pd_endpoints, *args],
                          capture_output=True, text=True, timeout=60)


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("kvdb store:")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def files_of(directory: Path) -> dict[str, bytes]:
    """Every file's content (not its mtime: rocksdict rewrites its options sidecar, unchanged, at
    every open, even a read-only one)."""
    return {str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*") if p.is_file()}


def test_a_cluster_spanning_hosts_serves_and_keeps_pd_allocated_ids(spread: Cluster) -> None:
    cluster = spread
    cluster.start()
    pd = PdHandle(cluster)
    try:
        pd.wait_voters(3)
        ids = {slot: allocated_id(sp) for slot, sp in cluster.stores.items()}
        assert len(set(ids.values())) == 3
        records = pd.stores()
        assert set(records) == set(ids.values())  # PD knows exactly the ids the stores keep
        for slot, sp in cluster.stores.items():
            info = records[ids[slot]]
            # What others dial: the store's own host with the port it bound, never the listen address.
            assert info.address == sp.address and sp.address.startswith(f"{STORE_HOSTS[slot - 1]}:")
            assert sp.port != 0
            assert {lb.key: lb.value for lb in info.labels} == {"zone": ZONES[slot - 1], "host": f"h{slot}"}
            assert f"PD allocated store id {ids[slot]}" in sp.log_path.read_text()
            assert read_identity(sp.data_dir).cluster_id == cluster.cluster_id

        written = {b"key-%04d" % i: b"value-%04d" % i for i in range(KEYS)}
        with kvdb.connect(cluster.pd_endpoints, timeout=30) as client:
            client.batch_put(written)
            ranges = pd.run(pd.client.split_ranges([b"key-0100"], 30))
            assert [r.descriptor.start_key for r in ranges] == [b"key-0100"]
            assert client.batch_get(list(written)) == written
            for key in (b"key-0000", b"key-0150"):  # a write into each range
                client.put(key, b"after-split")
                assert client.get(key) == b"after-split"

            # A restart keeps the id (nothing new allocated) and registers the newly bound port.
            first = cluster.stores[1]
            old_port = first.port
            assert cluster.stop(1) == 0
            cluster.start(1)
            assert allocated_id(first) == ids[1]
            assert first.log_path.read_text().count("PD allocated store id") == 1
            wait_for(lambda: pd.stores()[ids[1]].address == first.address, 15,
                     f"PD to learn store {ids[1]}'s address after its restart (was port {old_port})")
            assert set(pd.stores()) == set(ids.values())
            client.put(b"key-0001", b"after-restart")
            assert client.get(b"key-0001") == b"after-restart"
            assert dict(client.scan(b"key-0150", b"key-0152")) == {b"key-0150": b"after-split",
                                                                   b"key-0151": b"value-0151"}
        cluster.assert_all_running()
    finally:
        pd.close()


def test_a_data_dir_of_another_cluster_or_store_is_refused_with_nothing_written(
        spread: Cluster, tmp_path: Path) -> None:
    cluster = spread
    pd = PdHandle(cluster)
    try:
        # A data dir that belongs to store 5 of another cluster.
        foreign = tmp_path / "foreign"
        engine = RocksEngine(db_path(foreign), foreign / "snap")
        batch = engine.batch()
        other_cluster = cluster.cluster_id ^ 0x5A5A
        batch.put(CF_META, STORE_IDENT_KEY,
                  raft_serverpb_pb2.StoreIdent(cluster_id=other_cluster, store_id=5).SerializeToString())
        engine.write(batch, sync=True)
        engine.close()
        before = files_of(foreign)

        result = run_store(cluster, foreign)
        assert result.returncode == 1
        line = one_error_line(result)
        assert f"belongs to store 5 of cluster {other_cluster}" in line and str(cluster.cluster_id) in line
        assert files_of(foreign) == before
        assert pd.stores() == {}  # nothing registered

        # --store-id other than the data dir's is refused as well (this cluster's dir this time).
        cluster.start(1)
        own = allocated_id(cluster.stores[1])
        assert cluster.stop(1) == 0
        before = files_of(cluster.stores[1].data_dir)
        result = run_store(cluster, cluster.stores[1].data_dir, "--store-id", str(own + 100))
        assert result.returncode == 1
        assert f"belongs to store {own}, not --store-id {own + 100}" in one_error_line(result)
        assert files_of(cluster.stores[1].data_dir) == before
        assert set(pd.stores()) == {own}
    finally:
        pd.close()


def test_a_wildcard_listen_without_an_advertise_address_is_refused_before_binding(tmp_path: Path) -> None:
    """Refused as bad usage (status 2, not 1: nothing was tried), before a data dir is created; PD
    is not even contacted (the endpoint named here does not exist)."""
    unused = f"127.0.0.2:{free_ports(1, '127.0.0.2')[0]}"
    for listen in ("0.0.0.0:0", "[::]:0", ":20160"):
        result = subprocess.run([sys.executable, "-m", "kvdb", "store", "--listen", listen, "--data-dir",
                                 str(tmp_path / "data"), "--pd", unused], capture_output=True, text=True,
                                timeout=60)
        assert result.returncode == 2
        line = one_error_line(result)
        assert "wildcard" in line and "--advertise-address" in line, line
        assert not os.path.exists(tmp_path / "data")

"""Roles on a real TLS cluster of processes (3 stores, one PD member, mutual TLS, loopback): what
a role may not do fails with a permission error, through the client library and the CLI, and
leaves the cluster as it was. docs/security.md "Roles"."""

from __future__ import annotations

import subprocess
import sys

import pytest

import kvdb
from kvdb.errors import PermissionDeniedError
from kvdb.net.tls import TlsFiles
from placement.admin_rpcs import ADMIN as ADMIN_ORIGIN
from tests.integration.conftest import MakePdCluster


def _kvdb(pd: str, tls: TlsFiles, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kvdb", *args, "--pd", pd, "--timeout", "20",
                           "--ca", str(tls.ca), "--cert", str(tls.cert), "--key", str(tls.key)],
                          capture_output=True, text=True, timeout=90)


def test_roles_on_a_tls_cluster_of_processes(make_pd_cluster: MakePdCluster) -> None:
    cluster, pd = make_pd_cluster(n_stores=3, n_pd=1, tls=True)
    first = pd.wait_voters(3)
    root, rw, ro = (cluster.client_tls("root", "admin"), cluster.client_tls("app", "readwrite"),
                    cluster.client_tls("grafana", "readonly"))
    endpoints = cluster.pd_endpoints
    with (kvdb.connect(endpoints, timeout=20, tls=root) as admin,
          kvdb.connect(endpoints, timeout=20, tls=ro) as reader):
        admin.put(b"k", b"old")
        denied = r"client 'grafana' \(role readonly\) .*needs readwrite"
        with pytest.raises(PermissionDeniedError, match=denied):
            reader.put(b"k", b"new")
        with pytest.raises(PermissionDeniedError, match="needs readwrite"):
            with reader.transaction() as txn:
                txn.put(b"k", b"new")
        assert reader.get(b"k") == admin.get(b"k") == b"old"

    refused = _kvdb(endpoints, ro, "put", "k", "new")
    assert refused.returncode == 1, refused.stderr
    assert refused.stderr.startswith("kvdb put: permission denied: ")

    for args in (["admin", "split", "m"], ["admin", "transfer-leader", str(first.descriptor.id), "2"],
                 ["admin", "config", "set", "replica_count", "5"]):
        refused = _kvdb(endpoints, rw, *args)
        assert refused.returncode == 1, (args, refused.stderr)
        assert "permission denied" in refused.stderr and "needs admin" in refused.stderr, refused.stderr
    assert len(pd.run(pd.client.scan_ranges(b""))) == 1
    assert pd.run(pd.client.get_config()).replica_count == 3
    operators = pd.run(pd.client.list_operators(include_finished=True))  # the replica checker's only
    assert [op for op in operators if op.origin == ADMIN_ORIGIN] == []

    done = _kvdb(endpoints, root, "admin", "split", "m")
    assert done.returncode == 0, done.stderr
    assert len(pd.run(pd.client.scan_ranges(b""))) == 2

"""The role table and certificate identities (kvdb.net.auth), without a server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2

from kvdb.cli import _build_parser, _subparser
from kvdb.net import certs, roles
from kvdb.net.auth import (
    KV_KIND_ROLES,
    NO_ROLE,
    REQUIRED,
    Identity,
    Role,
    identity_of,
    kv_request_role,
    refusal,
)
from kvdb.pb import adminpb_pb2, kvrpc_pb2, pdpb_pb2, raft_serverpb_pb2
from tests.net import raw_certs

SERVED = [(kvrpc_pb2, "Kv"), (pdpb_pb2, "PD"), (adminpb_pb2, "Admin"),
          (raft_serverpb_pb2, "RaftTransport"), (health_pb2, "Health"), (reflection_pb2, "ServerReflection")]


def _served_methods() -> set[str]:
    methods = set()
    for module, name in SERVED:
        service = module.DESCRIPTOR.services_by_name[name]
        methods.update(f"/{service.full_name}/{m.name}" for m in service.methods)
    return methods


def test_every_served_method_has_a_role_and_the_table_names_only_real_methods() -> None:
    served = _served_methods()
    missing = served - REQUIRED.keys()
    assert not missing, f"methods nobody may call (add them to REQUIRED): {missing}"
    assert not REQUIRED.keys() - served, f"stale entries: {REQUIRED.keys() - served}"


def test_every_kind_of_kv_request_has_a_role() -> None:
    kinds = {f.name for f in kvrpc_pb2.Request.DESCRIPTOR.oneofs_by_name["cmd"].fields}
    assert kinds == KV_KIND_ROLES.keys() - {None}


@pytest.mark.parametrize(("method", "role"), [
    ("/kvdb.raftserver.RaftTransport/RaftPort", Role.NODE), ("/kvdb.pd.PD/PutStore", Role.NODE),
    ("/kvdb.admin.Admin/TransferLeader", Role.ADMIN), ("/kvdb.pd.PD/SplitRanges", Role.ADMIN),
    ("/kvdb.pd.PD/SetConfig", Role.ADMIN), ("/kvdb.kv.Kv/RawPut", Role.READWRITE),
    ("/kvdb.kv.Kv/RawGet", Role.READONLY), ("/kvdb.kv.Kv/Batch", Role.READONLY),
    ("/kvdb.pd.PD/Tso", Role.READONLY),
    ("/grpc.health.v1.Health/Check", Role.READONLY),
])
def test_the_design_roles_of_a_few_methods(method: str, role: Role) -> None:
    assert REQUIRED[method] is role


@pytest.mark.parametrize(("kind", "role"), [
    ("get", Role.READONLY), ("txn_scan", Role.READONLY), ("resolve_lock", Role.READWRITE),
    ("check_txn_status", Role.READWRITE), ("check_secondary_locks", Role.READWRITE),
    ("put", Role.READWRITE), ("prewrite", Role.READWRITE), ("commit", Role.READWRITE),
    ("rollback", Role.READWRITE), ("scan_lock", Role.ADMIN),
])
def test_kv_request_roles(kind: str, role: Role) -> None:
    req = kvrpc_pb2.Request()
    getattr(req, kind).SetInParent()
    assert kv_request_role(req) is role


def test_role_parse_and_order() -> None:
    assert [Role.parse(name) for name in certs.ROLES] == sorted(Role)
    for wrong in ("root", "Admin", "NODE"):
        with pytest.raises(ValueError, match=f"unknown role '{wrong}'"):
            Role.parse(wrong)


def test_refusal_messages() -> None:
    alice = Identity("alice", Role.READONLY)
    assert refusal(alice, "call /kvdb.pd.PD/SplitRanges", Role.ADMIN) == (
        "client 'alice' (role readonly) may not call /kvdb.pd.PD/SplitRanges: needs admin")
    assert refusal(alice, "call /kvdb.pd.PD/GetRange", Role.READONLY) is None
    assert refusal(Identity("root", Role.ADMIN), "call /kvdb.pd.PD/SplitRanges", Role.ADMIN) is None
    assert "not in kvdb's role table" in refusal(Identity("n", Role.NODE), "call /x.Y/Z", None)
    assert NO_ROLE in refusal(Identity("bob", None), "call /kvdb.kv.Kv/RawGet", Role.READONLY)
    assert refusal(None, "call /kvdb.kv.Kv/RawGet", Role.READONLY) == "no client certificate"


class _Context:
    def __init__(self, auth: dict[str, list[bytes]]) -> None:
        self.auth = auth

    def auth_context(self) -> dict[str, list[bytes]]:
        return self.auth


def _context(pem: bytes) -> _Context:
    return _Context({"transport_security_type": [b"ssl"], "x509_pem_cert": [pem]})


def test_identity_of_client_and_node_certificates(tmp_path: Path) -> None:
    certs.create_ca(tmp_path)
    node = certs.create_node(tmp_path, ["127.0.0.1"])
    alice = certs.create_client(tmp_path, "alice", "readwrite")
    assert identity_of(_context(alice.cert.read_bytes())) == Identity("alice", Role.READWRITE)
    assert identity_of(_context(node.cert.read_bytes())) == Identity("node", Role.NODE)
    assert identity_of(_Context({"transport_security_type": [b"insecure"]})) is None


@pytest.mark.parametrize("units,organization", [
    ([], "kvdb"), (["root"], "kvdb"), (["readonly", "admin"], "kvdb"), (["Admin"], "kvdb"),
    (["NODE"], "kvdb"), (["admin"], "acme")],
    ids=["none", "unknown", "two", "case", "upper-node", "other-organization"])
def test_a_certificate_without_exactly_one_known_role_has_none(tmp_path: Path, units: list[str],
                                                               organization: str) -> None:
    certs.create_ca(tmp_path)
    pair = raw_certs.issue(tmp_path, "mallory", units, organization)
    assert identity_of(_context(pair.cert.read_bytes())) == Identity("mallory", None)
    control = raw_certs.issue(tmp_path, "alice", ["admin"])  # the same path with a role that counts
    assert identity_of(_context(control.cert.read_bytes())) == Identity("alice", Role.ADMIN)


def test_one_list_of_roles_for_certificates_the_cli_and_enforcement() -> None:
    """kvdb.net.roles is the only list: certificates, ``--role`` and the checks all follow it, and
    the certificate tools get it without loading gRPC."""
    assert Role is roles.Role
    assert certs.CLIENT_ROLES == ("readonly", "readwrite", "admin") and certs.NODE_NAME == "node"
    role_option = next(a for a in _subparser(_build_parser(), "certs")._actions
                       if a.dest == "action").choices["create-client"]._option_string_actions["--role"]
    assert tuple(role_option.choices) == certs.CLIENT_ROLES
    code = "import sys, kvdb.net.certs; assert 'grpc' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)

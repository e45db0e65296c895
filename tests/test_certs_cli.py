"""``kvdb certs``: the files it writes, what the certificates say, and its errors."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from kvdb.cli import main
from kvdb.net.auth import Identity, Role, _parse


def _subject(path: Path) -> tuple[str, str]:
    subject = x509.load_pem_x509_certificate(path.read_bytes()).subject
    return (subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value,
            subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value)


def test_create_ca_node_and_clients(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "certs"
    assert main(["certs", "create-ca", "--certs-dir", str(d)]) == 0
    assert main(["certs", "create-node", "--certs-dir", str(d), "--hosts", "127.0.0.1, localhost"]) == 0
    assert main(["certs", "create-client", "alice", "--certs-dir", str(d), "--role", "readwrite",
                 "--days", "7"]) == 0
    assert main(["certs", "create-client", "bob", "--certs-dir", str(d)]) == 0
    out = capsys.readouterr().out
    assert f"export KVDB_CA={d}/ca.crt KVDB_CERT={d}/client.alice.crt KVDB_KEY={d}/client.alice.key" in out
    assert sorted(p.name for p in d.iterdir()) == [
        "ca.crt", "ca.key", "client.alice.crt", "client.alice.key", "client.bob.crt", "client.bob.key",
        "node.crt", "node.key"]
    for key in d.glob("*.key"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    assert _subject(d / "node.crt") == ("node", "node")
    assert _subject(d / "client.alice.crt") == ("alice", "readwrite")
    assert _parse((d / "client.bob.crt").read_bytes()) == Identity("bob", Role.READONLY)  # the default
    node = x509.load_pem_x509_certificate((d / "node.crt").read_bytes())
    sans = node.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert sans.get_values_for_type(x509.DNSName) == ["localhost"]
    alice = x509.load_pem_x509_certificate((d / "client.alice.crt").read_bytes())
    assert (alice.not_valid_after_utc - alice.not_valid_before_utc).days == 7


def test_errors_are_one_line_and_change_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "certs"
    assert main(["certs", "create-node", "--certs-dir", str(d), "--hosts", "127.0.0.1"]) == 1
    assert "no CA in" in capsys.readouterr().err and not d.exists()
    assert main(["certs", "create-ca", "--certs-dir", str(d)]) == 0
    key = (d / "ca.key").read_bytes()
    assert main(["certs", "create-ca", "--certs-dir", str(d)]) == 1
    assert "ca.key exists: remove it first" in capsys.readouterr().err
    assert (d / "ca.key").read_bytes() == key
    assert main(["certs", "create-client", "carol", "--certs-dir", str(d), "--role", "admin"]) == 0
    assert main(["certs", "create-client", "carol", "--certs-dir", str(d), "--role", "readonly"]) == 1
    assert "client.carol.key exists" in capsys.readouterr().err
    assert _subject(d / "client.carol.crt") == ("carol", "admin")
    for argv, message in [
        (["create-client", "dave", "--role", "root"], "invalid choice: 'root'"),
        (["create-client", "dave", "--role", "node"], "invalid choice: 'node'"),
        (["create-node", "--hosts", " , "], "names no host"),
        (["create-ca", "--days", "0"], "must be 1..36500"),
    ]:
        with pytest.raises(SystemExit) as usage:
            main(["certs", *argv, "--certs-dir", str(d)])
        assert usage.value.code == 2
        assert message in capsys.readouterr().err
    assert main(["certs", "create-client", "node", "--certs-dir", str(d)]) == 1
    assert "bad client name 'node'" in capsys.readouterr().err
    assert not list(d.glob("client.dave.*")) and not (d / "client.node.key").exists()

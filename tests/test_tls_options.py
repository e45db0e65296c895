"""``--ca --cert --key``: where they come from (flags, TOML, environment) and how mistakes are refused.

The real-process side (servers and clients talking TLS, refusals) is in tests/integration/test_tls.py
and tests/playground/test_playground_tls.py.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kvdb.cli import _build_parser, _subparser
from kvdb.config_file import apply_config_file
from kvdb.net import certs
from kvdb.net.tls import ENV_CA, ENV_CERT, ENV_KEY, TlsFiles
from kvdb.net.tls_options import log_tls_mode, tls_from_args


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    d = tmp_path_factory.mktemp("certs")
    certs.create_ca(d)
    pair = certs.create_client(d, "alice", "readonly")
    return TlsFiles(d / certs.CA_CERT, pair.cert, pair.key)


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in (ENV_CA, ENV_CERT, ENV_KEY)}
    return subprocess.run([sys.executable, "-m", "kvdb", *args], capture_output=True, text=True, timeout=60,
                          env={**clean, **(env or {})})


def test_a_kv_commands_key_argument_is_not_the_key_file() -> None:
    args = _build_parser().parse_args(["get", "mykey", "--key", "client.key", "--cert", "c", "--ca", "a"])
    assert args.key == "mykey"
    assert (args.tls_ca, args.tls_cert, args.tls_key) == ("a", "c", "client.key")


def test_client_commands_default_to_the_environment(monkeypatch: pytest.MonkeyPatch, files: TlsFiles) -> None:
    monkeypatch.setenv(ENV_CA, str(files.ca))
    monkeypatch.setenv(ENV_CERT, str(files.cert))
    monkeypatch.setenv(ENV_KEY, str(files.key))
    for argv in (["put", "k", "v"], ["txn", "get", "k"], ["admin", "stores"], ["scan"]):
        assert tls_from_args(_build_parser().parse_args(argv)) == files
    # A server's files are its own configuration: the environment does not reach them.
    store = _build_parser().parse_args(["store", "--listen", "127.0.0.1:0"])
    assert tls_from_args(store) is None
    override = _build_parser().parse_args(["get", "k", "--ca", "/other/ca.crt"])
    assert override.tls_ca == "/other/ca.crt" and override.tls_cert == str(files.cert)


def test_server_tls_files_come_from_toml_keys_and_flags_win(tmp_path: Path) -> None:
    config = tmp_path / "store.toml"
    config.write_text('ca = "/etc/kvdb/ca.crt"\ncert = "/etc/kvdb/node.crt"\nkey = "/etc/kvdb/node.key"\n')
    argv = ["store", "--config", str(config), "--cert", "/other/node.crt"]
    parser = _build_parser()
    args = parser.parse_args(argv)
    apply_config_file(_subparser(parser, "store"), args, argv)
    assert (args.tls_ca, args.tls_cert, args.tls_key) == ("/etc/kvdb/ca.crt", "/other/node.crt",
                                                          "/etc/kvdb/node.key")


def test_a_client_with_a_partial_or_bad_set_fails_before_connecting(files: TlsFiles, tmp_path: Path) -> None:
    # No cluster at that address: a usage error (2) comes before any connection attempt (3).
    result = run("get", "k", "--pd", "127.0.0.1:1", env={ENV_CA: str(files.ca)})
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result
    assert "missing --cert, --key" in result.stderr
    other = tmp_path / "other"
    certs.create_ca(other)
    result = run("admin", "stores", "--pd", "127.0.0.1:1", "--ca", str(other / certs.CA_CERT),
                 "--cert", str(files.cert), "--key", str(files.key))
    assert result.returncode == 2 and "not signed by the CA" in result.stderr, result
    result = run("bench", "write", "--pd", "127.0.0.1:1", "--ca", str(files.ca))
    assert result.returncode == 2 and "missing --cert, --key" in result.stderr, result


def test_a_ca_bundle_accepts_a_certificate_of_either_ca(files: TlsFiles, tmp_path: Path) -> None:
    other = tmp_path / "other"
    certs.create_ca(other)
    bundle = tmp_path / "bundle.crt"
    bundle.write_bytes((other / certs.CA_CERT).read_bytes() + files.ca.read_bytes())
    TlsFiles(bundle, files.cert, files.key).check()
    with pytest.raises(ValueError, match="not signed"):
        TlsFiles(other / certs.CA_CERT, files.cert, files.key).check()


def test_the_start_up_line_says_whether_tls_is_on(caplog: pytest.LogCaptureFixture, files: TlsFiles) -> None:
    log = logging.getLogger("test.tls")
    with caplog.at_level(logging.INFO, logger="test.tls"):
        log_tls_mode(log, None, "0.0.0.0:20160")
        log_tls_mode(log, files, "0.0.0.0:20160")
    (plain, tls) = caplog.records
    assert plain.levelno == logging.WARNING
    assert plain.getMessage() == ("running WITHOUT TLS: anyone who can reach 0.0.0.0:20160 can read, write "
                                  "and administer this cluster (see docs/security.md)")
    assert tls.levelno == logging.INFO
    assert tls.getMessage() == f"mutual TLS on (CA {files.ca}): peers and clients need certificates from it"


def test_tls_files_are_exported_by_the_package_without_loading_grpc() -> None:
    code = ("import sys, kvdb; assert 'grpc' not in sys.modules; from kvdb.net.tls import TlsFiles; "
            "assert kvdb.TlsFiles is TlsFiles")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.parametrize(("details", "with_tls", "hint"), [
    # What grpc 1.85 reports in each case (captured from real connections).
    ("failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:1: Tls handshake failed "
     "(TSI_PROTOCOL_FAILURE): SSL_ERROR_SSL: certificate signature failure", True, "TLS handshake failed?"),
    ("failed to connect to all addresses; last error: UNAVAILABLE: ipv4:127.0.0.1:1: Socket closed", True,
     "TLS handshake failed?"),
    ("failed to connect to all addresses; last error: UNAVAILABLE: ipv4:127.0.0.1:1: Socket closed", False,
     "does the cluster require TLS?"),
    ("failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:1: Custom verification check "
     "failed with error: UNAUTHENTICATED: Hostname Verification Check failed.", True,
     "does not name the address"),
    ("failed to connect to all addresses; last error: UNAVAILABLE: ipv4:127.0.0.1:1: Connection refused",
     False, ""),
])
def test_an_unreachable_pd_gets_a_tls_hint_only_when_tls_is_the_likely_cause(
        details: str, with_tls: bool, hint: str) -> None:
    from kvdb.pdclient.client import tls_hint

    got = tls_hint(details, with_tls)
    assert (hint in got) if hint else got == ""


def test_every_ca_has_a_name_of_its_own(tmp_path: Path) -> None:
    """TLS looks a certificate's issuer up by name in the trusted bundle: alike names break CA rotation
    (tests/integration/test_tls.py::test_ca_rotation_through_a_bundle_keeps_the_cluster_serving)."""
    from cryptography import x509

    names = {x509.load_pem_x509_certificate(certs.create_ca(tmp_path / d).cert.read_bytes()).subject
             for d in ("a", "b")}
    assert len(names) == 2


def test_a_bench_command_with_its_own_cluster_forgets_the_environment(
        monkeypatch: pytest.MonkeyPatch, files: TlsFiles) -> None:
    from kvdb.net.tls_options import forget_tls_env

    for name, path in ((ENV_CA, files.ca), (ENV_CERT, files.cert), (ENV_KEY, files.key)):
        monkeypatch.setenv(name, str(path))
    assert TlsFiles.from_env() == files
    forget_tls_env()
    assert TlsFiles.from_env() is None


def test_a_playground_data_dir_remembers_tls(tmp_path: Path) -> None:
    import json
    from dataclasses import asdict

    from kvdb.playground import LAYOUT_FILE, resolve_layout

    assert resolve_layout(tmp_path, None, None, None).tls is False
    layout = resolve_layout(tmp_path, None, None, None, tls=True)
    (tmp_path / LAYOUT_FILE).write_text(json.dumps(asdict(layout)))
    assert resolve_layout(tmp_path, None, None, None).tls is True
    assert resolve_layout(tmp_path, None, None, None, tls=False).tls is False
    (tmp_path / LAYOUT_FILE).write_text('{"pd": 3, "stores": 3, "base_port": 2379, "labels": {}}')
    assert resolve_layout(tmp_path, None, None, None).tls is False  # a data dir from before --tls


def test_the_files_are_read_once_per_tls_files(files: TlsFiles, tmp_path: Path) -> None:
    """A node dials many channels (every Raft reconnect, snapshot, client): one read serves them all."""
    ca, cert, key = (tmp_path / name for name in ("ca.crt", "c.crt", "c.key"))
    for copy, original in ((ca, files.ca), (cert, files.cert), (key, files.key)):
        copy.write_bytes(original.read_bytes())
    tls = TlsFiles(ca, cert, key)
    tls.check()
    for path in (ca, cert, key):
        path.unlink()
    tls.server_credentials()
    tls.channel_credentials()
    with pytest.raises(ValueError, match="cannot read TLS file"):  # another TlsFiles reads anew
        TlsFiles(ca, cert, key).channel_credentials()

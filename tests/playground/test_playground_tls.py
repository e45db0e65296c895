"""``kvdb playground --tls`` end to end: the client library, the CLI, ``kvdb admin`` and ``kvdb bench``
over mutual TLS with the files the ready line exports, and the clients that must be refused.

One TLS playground serves the module; a refused client's write is looked for with a TLS client
afterwards (it must not be there). The last test restarts the playground: the certificates are
kept, so the exports printed the first time still connect.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import kvdb
from bench.compare import free_base_port
from kvdb.net import certs
from kvdb.net.tls import ENV_CA, ENV_CERT, ENV_KEY, TlsFiles
from tests.playground.test_playground import (
    CLI_TIMEOUT,
    PROCESSES,
    Playground,
    assert_one_line_error,
)

BENCH_TIMEOUT = 90.0


class TlsPlayground(Playground):
    """A ``--tls`` playground: after the ready line come the three exports, read into ``env``."""

    env: dict[str, str]

    def start(self, *extra: str) -> None:
        """``extra`` [] means ``--tls``; a restart may give other flags (the data dir remembers TLS)."""
        super().start(*(extra or ["--tls"]))
        # The playground writes them with the ready line, in one write: already read, or at hand.
        exports = [self.proc.stdout.readline().strip() for _ in range(3)]
        self.env = {}
        for line in exports:
            assert line.startswith("export "), exports
            name, _, value = line.removeprefix("export ").partition("=")
            self.env[name] = value
        assert sorted(self.env) == sorted([ENV_CA, ENV_CERT, ENV_KEY])

    @property
    def client_tls(self) -> TlsFiles:
        return TlsFiles.from_env(self.env)

    def run(self, *args: str, env: dict[str, str] | None = None, timeout: float = CLI_TIMEOUT
            ) -> subprocess.CompletedProcess[bytes]:
        """``kvdb ARGS --pd ...`` with the KVDB_* variables of ``env`` only (none: plaintext)."""
        clean = {k: v for k, v in os.environ.items() if k not in (ENV_CA, ENV_CERT, ENV_KEY)}
        return subprocess.run([sys.executable, "-m", "kvdb", *args, "--pd", self.endpoints],
                              capture_output=True, timeout=timeout, env={**clean, **(env or {})})

    def ok(self, *args: str) -> str:
        result = self.run(*args, env=self.env)
        assert result.returncode == 0 and not result.stderr, result
        return result.stdout.decode()


@pytest.fixture(scope="module")
def pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsPlayground]:
    playground = TlsPlayground(tmp_path_factory.mktemp("tls-playground") / "data", free_base_port(PROCESSES))
    playground.start()
    yield playground
    playground.kill_and_reap()


def foreign_client(root: Path, cluster_ca: Path) -> dict[str, str]:
    """An admin client certificate of another CA, whose owner trusts the cluster's CA as well."""
    d = root / "foreign"
    certs.create_ca(d)
    pair = certs.create_client(d, "eve", "admin")
    bundle = d / "trusted.crt"
    bundle.write_bytes(cluster_ca.read_bytes() + (d / certs.CA_CERT).read_bytes())
    return {ENV_CA: str(bundle), ENV_CERT: str(pair.cert), ENV_KEY: str(pair.key)}


def test_the_certificates_are_made_in_the_data_dir_and_exported(pg: TlsPlayground) -> None:
    certs_dir = (pg.data_dir / "certs").resolve()
    assert pg.env == {ENV_CA: str(certs_dir / "ca.crt"), ENV_CERT: str(certs_dir / "client.root.crt"),
                      ENV_KEY: str(certs_dir / "client.root.key")}
    for key in ("ca.key", "node.key", "client.root.key"):
        assert (certs_dir / key).stat().st_mode & 0o777 == 0o600
    for log in ("pd1", "store1"):
        text = (pg.data_dir / "logs" / f"{log}.log").read_text()
        assert f"mutual TLS on (CA {certs_dir / 'ca.crt'})" in text and "WITHOUT TLS" not in text


def test_client_library_and_cli_over_tls(pg: TlsPlayground) -> None:
    with kvdb.connect(pg.endpoints, timeout=CLI_TIMEOUT, tls=pg.client_tls) as client:
        client.put(b"lib-key", b"lib-value")
        assert client.get(b"lib-key") == b"lib-value"
    assert pg.ok("get", "lib-key") == "lib-value\n"
    pg.ok("put", "cli-key", "cli-value")
    pg.ok("txn", "put", "txn-key", "1")
    assert pg.ok("scan", "cli-", "cli.").splitlines() == ["cli-key\tcli-value"]
    assert pg.ok("txn", "get", "txn-key") == "txn-key\t1\n"
    with kvdb.connect(pg.endpoints, timeout=CLI_TIMEOUT, tls=pg.client_tls) as client:
        assert client.get(b"cli-key") == b"cli-value"


def test_admin_reads_and_splits_over_tls(pg: TlsPlayground) -> None:
    # Flags instead of the environment: the same files given as --ca --cert --key.
    flags = ["--ca", pg.env[ENV_CA], "--cert", pg.env[ENV_CERT], "--key", pg.env[ENV_KEY]]
    result = pg.run("admin", "stores", "--json", *flags)
    assert result.returncode == 0, result
    assert [s["state"] for s in json.loads(result.stdout)] == ["UP", "UP", "UP"]
    ranges = json.loads(pg.ok("admin", "split", "--json", "split-here"))
    assert [r["start"] for r in ranges] == [b"split-here".hex()]  # JSON keys are hex


def test_bench_runs_over_tls(pg: TlsPlayground) -> None:
    result = pg.run("bench", "write", "--duration", "1", "--warmup", "0.2", "--keys", "200",
                    "--no-progress", env=pg.env, timeout=BENCH_TIMEOUT)
    assert result.returncode == 0, result
    assert "errors: none" in result.stdout.decode(), result


def test_a_plaintext_client_is_refused_and_writes_nothing(pg: TlsPlayground) -> None:
    result = pg.run("put", "plain-key", "v", "--timeout", "1")
    assert_one_line_error(result, 3, "does the cluster require TLS?")
    assert_one_line_error(pg.run("get", "plain-key", env=pg.env), 1, "not found")


def test_a_client_of_another_ca_is_refused_and_writes_nothing(pg: TlsPlayground, tmp_path: Path) -> None:
    eve = foreign_client(tmp_path, Path(pg.env[ENV_CA]))
    result = pg.run("put", "eve-key", "v", "--timeout", "1", env=eve)
    assert_one_line_error(result, 3, "TLS handshake failed?")
    result = pg.run("admin", "split", "eve-split", "--timeout", "1", env=eve)
    assert_one_line_error(result, 3, "TLS handshake failed?")
    assert_one_line_error(pg.run("get", "eve-key", env=pg.env), 1, "not found")
    ranges = json.loads(pg.ok("admin", "ranges", "--json"))
    assert b"eve-split".hex() not in [r["start"] for r in ranges]


def test_a_restart_keeps_the_certificates(pg: TlsPlayground) -> None:
    certs_dir = pg.data_dir / "certs"
    before = {p.name: p.read_bytes() for p in certs_dir.iterdir()}
    exports = dict(pg.env)
    assert pg.stop() == 0
    pg.start("--ready-timeout", "60")  # no --tls: the data dir remembers it
    assert pg.env == exports
    assert {p.name: p.read_bytes() for p in certs_dir.iterdir()} == before
    assert pg.ok("get", "cli-key") == "cli-value\n"

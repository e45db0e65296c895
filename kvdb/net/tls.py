"""The three PEM files a node or client presents under TLS, and the gRPC credentials made from them.

With TLS every connection is mutual: a server asks for the peer's certificate and refuses one not
signed by the cluster CA, and a channel checks the server's certificate against the same CA and
the address it dialled (docs/security.md). The files are read once, when a server or channel is
made, so a node takes rotated certificates when it restarts.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc

ENV_CA, ENV_CERT, ENV_KEY = "KVDB_CA", "KVDB_CERT", "KVDB_KEY"


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    """The cluster CA's certificate: peers must present a certificate it signed."""
    cert: Path
    key: Path

    @classmethod
    def from_options(cls, ca: str | Path | None, cert: str | Path | None, key: str | Path | None
                     ) -> TlsFiles | None:
        """All three files, or None for plaintext; some but not all is a mistake worth refusing."""
        given = {"--ca": ca, "--cert": cert, "--key": key}
        if not any(given.values()):
            return None
        missing = [flag for flag, value in given.items() if not value]
        if missing:
            raise ValueError(f"TLS needs --ca, --cert and --key together; missing {', '.join(missing)}")
        return cls(Path(ca), Path(cert), Path(key))  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> TlsFiles | None:
        """``KVDB_CA``, ``KVDB_CERT``, ``KVDB_KEY``: how clients, the CLI and bench find their files."""
        return cls.from_options(environ.get(ENV_CA), environ.get(ENV_CERT), environ.get(ENV_KEY))

    def _read(self) -> tuple[bytes, bytes, bytes]:
        try:
            return self.ca.read_bytes(), self.cert.read_bytes(), self.key.read_bytes()
        except OSError as exc:
            raise ValueError(f"cannot read TLS file {exc.filename}: {exc.strerror}") from exc

    def server_credentials(self) -> grpc.ServerCredentials:
        ca, cert, key = self._read()
        return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=True)

    def channel_credentials(self) -> grpc.ChannelCredentials:
        ca, cert, key = self._read()
        return grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)

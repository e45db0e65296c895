"""The three PEM files a node or client presents under TLS, and the gRPC credentials made from them.

With TLS every connection is mutual: a server asks for the peer's certificate and refuses one not
signed by the cluster CA, and a channel checks the server's certificate against the same CA and
the address it dialled (docs/security.md). A ``TlsFiles`` reads its files once, at its first check,
server or channel (a store dials many channels: Raft reconnects, snapshots, clients), so a node
takes rotated certificates when it restarts.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

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

    def check(self) -> None:
        """ValueError naming the file when one is missing, not PEM, or does not fit the others.

        gRPC reports such mistakes late and vaguely (a handshake that fails, or a port that does
        not bind), so servers and the CLI check at start-up and refuse with a clear message.
        """
        ca_pem, cert_pem, key_pem = self.pems
        try:  # a bundle of several CAs is how a CA is rotated: the cert must come from one of them
            cas = x509.load_pem_x509_certificates(ca_pem)
        except ValueError:
            raise ValueError(f"{self.ca} is not a PEM certificate (--ca)") from None
        try:
            cert = x509.load_pem_x509_certificate(cert_pem)
        except ValueError:
            raise ValueError(f"{self.cert} is not a PEM certificate (--cert)") from None
        try:
            key = serialization.load_pem_private_key(key_pem, password=None)
        except (ValueError, TypeError):
            raise ValueError(f"{self.key} is not an unencrypted PEM private key (--key)") from None
        if key.public_key() != cert.public_key():
            raise ValueError(f"{self.key} is not the private key of {self.cert}")
        if not any(_issued_by(cert, ca) for ca in cas):
            raise ValueError(f"{self.cert} is not signed by the CA in {self.ca}")

    @functools.cached_property
    def pems(self) -> tuple[bytes, bytes, bytes]:
        """The CA, certificate and key bytes, read on first use and kept (a failed read is not kept)."""
        try:
            return self.ca.read_bytes(), self.cert.read_bytes(), self.key.read_bytes()
        except OSError as exc:
            raise ValueError(f"cannot read TLS file {exc.filename}: {exc.strerror}") from exc

    def server_credentials(self) -> grpc.ServerCredentials:
        ca, cert, key = self.pems
        return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=True)

    def channel_credentials(self) -> grpc.ChannelCredentials:
        ca, cert, key = self.pems
        return grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)


def _issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True

"""Certificates ``kvdb certs`` would not make (no role, an unknown role), signed by a test CA."""

from __future__ import annotations

import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kvdb.net import certs, roles


def issue(certs_dir: Path, name: str, units: list[str], organization: str = roles.KVDB_ORGANIZATION
          ) -> certs.Pair:
    """A client certificate for ``name`` whose subject has this organization and these
    organizational units, signed by the CA in ``certs_dir``; written as ``client.NAME.crt/.key``."""
    ca_cert = x509.load_pem_x509_certificate((certs_dir / certs.CA_CERT).read_bytes())
    ca_key = serialization.load_pem_private_key((certs_dir / certs.CA_KEY).read_bytes(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
               *(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, u) for u in units),
               x509.NameAttribute(NameOID.COMMON_NAME, name)]
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(x509.Name(subject)).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pair = certs.client_files(certs_dir, name)
    pair.key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return pair

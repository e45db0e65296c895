"""Certificates of a kvdb cluster: one CA, node certificates, client certificates with a role.

Layout of a certs directory (docs/security.md), as ``kvdb certs`` writes it:

    ca.crt  ca.key                      the cluster CA (keep ca.key offline in production)
    node.crt  node.key                  every store and PD member presents this (role ``node``)
    client.NAME.crt  client.NAME.key    a client called NAME with a role

A certificate's subject says who it is and what it may do: the common name is the identity
(``node`` for nodes), the organizational unit is the role (``kvdb.net.roles.Role``). Private keys
are written mode 0600 and never overwritten; certificates are public.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kvdb.net import roles

CA_CERT, CA_KEY = "ca.crt", "ca.key"
NODE_CERT, NODE_KEY = "node.crt", "node.key"
NODE_NAME = roles.Role.NODE.label
"""Common name and role of every node certificate."""
ROLES = tuple(r.label for r in roles.Role)
"""The roles a certificate can carry, weakest first (``kvdb.net.auth`` enforces them)."""
CLIENT_ROLES = tuple(r.label for r in roles.CLIENT_ROLES)
"""The roles a client certificate can carry (every one but ``node``)."""
DEFAULT_CA_DAYS = 3650
DEFAULT_CERT_DAYS = 365
MAX_DAYS = 100 * 365
"""Longer would run past what a certificate's dates can hold (year 9999) for large inputs."""


@dataclass(frozen=True)
class Pair:
    cert: Path
    key: Path


def client_files(certs_dir: Path, name: str) -> Pair:
    return Pair(certs_dir / f"client.{name}.crt", certs_dir / f"client.{name}.key")


def create_ca(certs_dir: Path, days: int = DEFAULT_CA_DAYS) -> Pair:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, roles.KVDB_ORGANIZATION),
                      # A name of its own: TLS finds a certificate's issuer among the trusted CAs by
                      # name, so two CAs named alike in one bundle (a CA rotation, docs/security.md)
                      # would have certificates checked against the wrong one and refused.
                      x509.NameAttribute(NameOID.COMMON_NAME, f"kvdb CA {secrets.token_hex(4)}")])
    cert = (_builder(name, name, key.public_key(), days)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    return _write(certs_dir, CA_CERT, CA_KEY, cert, key)


def create_node(certs_dir: Path, hosts: list[str], days: int = DEFAULT_CERT_DAYS) -> Pair:
    """The certificate every node presents, as server and as client; ``hosts`` are the names and
    IP addresses others dial it by (a channel checks the address against them)."""
    if not hosts:
        raise ValueError("a node certificate needs at least one host name or IP address (--hosts)")
    sans = [_san(h) for h in hosts]
    return _issue(certs_dir, NODE_CERT, NODE_KEY, NODE_NAME, NODE_NAME, days,
                  [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH], sans)


def create_client(certs_dir: Path, name: str, role: str, days: int = DEFAULT_CERT_DAYS) -> Pair:
    if role not in CLIENT_ROLES:
        raise ValueError(f"unknown client role {role!r}; one of {', '.join(CLIENT_ROLES)}")
    if not name or not all(c.isalnum() or c in "-_." for c in name) or name == NODE_NAME:
        raise ValueError(f"bad client name {name!r}: letters, digits, '-', '_', '.'; not 'node'")
    files = client_files(certs_dir, name)
    return _issue(certs_dir, files.cert.name, files.key.name, name, role, days,
                  [ExtendedKeyUsageOID.CLIENT_AUTH], [])


def _issue(certs_dir: Path, cert_file: str, key_file: str, common_name: str, role: str, days: int,
           usages: list[x509.ObjectIdentifier], sans: list[x509.GeneralName]) -> Pair:
    ca_cert, ca_key = _load_ca(certs_dir)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, roles.KVDB_ORGANIZATION),
                         x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role),
                         x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    builder = (_builder(subject, ca_cert.subject, key.public_key(), days)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage(usages), critical=False))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return _write(certs_dir, cert_file, key_file, builder.sign(ca_key, hashes.SHA256()), key)


def _builder(subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey,
             days: int) -> x509.CertificateBuilder:
    if not 0 < days <= MAX_DAYS:
        raise ValueError(f"validity must be 1..{MAX_DAYS} days, got {days}")
    now = datetime.datetime.now(datetime.UTC)
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))  # tolerate a little clock skew
            .not_valid_after(now + datetime.timedelta(days=days)))


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _load_ca(certs_dir: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    try:
        cert = x509.load_pem_x509_certificate((certs_dir / CA_CERT).read_bytes())
        key = serialization.load_pem_private_key((certs_dir / CA_KEY).read_bytes(), password=None)
    except FileNotFoundError as exc:
        raise ValueError(f"no CA in {certs_dir}: run 'kvdb certs create-ca' first ({exc.filename})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{certs_dir / CA_KEY} is not a key kvdb certs made")
    return cert, key


def _write(certs_dir: Path, cert_file: str, key_file: str, cert: x509.Certificate,
           key: ec.EllipticCurvePrivateKey) -> Pair:
    """The key first, created 0600 and never over an existing file, so a key is never readable by
    others, not even for a moment, and a second run cannot destroy the key a running node uses."""
    certs_dir.mkdir(parents=True, exist_ok=True)
    pair = Pair(certs_dir / cert_file, certs_dir / key_file)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    try:
        fd = os.open(pair.key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ValueError(f"{pair.key} exists: remove it first to replace it") from None
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return pair

"""What role checks add to the store's ``Kv.Batch`` stream (``kvdb.net.auth``).

A stream is checked once when it opens (``identity_of``: the certificate is parsed once per
distinct PEM, then cached) and each request inside by its kind (``kv_request_role``, a dict
lookup). Measured per batch of 64 requests (puts and gets): the check with a TLS identity against
the plaintext stream's no-op check, and the open-time identity lookup, cached and uncached.

Run: ``.venv/bin/pytest bench/micro/test_auth_bench.py --benchmark-only`` (numbers: docs/security.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kvdb.net import auth, certs
from kvdb.pb import kvrpc_pb2
from kvdb.server.services import _permission_check

BATCH = 64


class _Context:
    def __init__(self, pem: bytes | None) -> None:
        self.auth = {"x509_pem_cert": [pem]} if pem is not None else {}

    def auth_context(self) -> dict[str, list[bytes]]:
        return self.auth


@pytest.fixture(scope="module")
def pem(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    root: Path = tmp_path_factory.mktemp("certs")
    certs.create_ca(root)
    return certs.create_client(root, "bench", "readwrite").cert.read_bytes()


def _requests() -> list[kvrpc_pb2.Request]:
    reqs = []
    for i in range(BATCH):
        req = kvrpc_pb2.Request(id=i)
        if i % 2:
            req.put.key, req.put.value = b"k%d" % i, b"v" * 100
        else:
            req.get.key = b"k%d" % i
        reqs.append(req)
    return reqs


@pytest.mark.parametrize("tls", [False, True], ids=["plaintext", "tls"])
def test_batch_check_per_64_requests(benchmark, pem: bytes, tls: bool) -> None:
    check = _permission_check(_Context(pem if tls else None))
    reqs = _requests()

    def run() -> int:
        return sum(check(req) is None for req in reqs)

    assert benchmark(run) == BATCH


def test_identity_at_stream_open_cached(benchmark, pem: bytes) -> None:
    context = _Context(pem)
    assert benchmark(auth.identity_of, context).role is auth.Role.READWRITE


def test_identity_parse_uncached(benchmark, pem: bytes) -> None:
    assert benchmark(auth._parse.__wrapped__, pem).name == "bench"

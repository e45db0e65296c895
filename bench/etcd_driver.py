"""The etcd side of ``kvdb bench``: the same Driver operations over etcd's v3 gRPC API (``etcd3aio``).

etcd is the peer we compare against, so each operation asks etcd for the guarantee kvdb gives for
the same call: a get is linearizable (``serializable=False``, a ReadIndex round on etcd's leader),
a put is committed by a quorum before it returns, and a scan is one range request with a limit.
``etcd3aio`` is imported inside :meth:`EtcdDriver.open` so that the kvdb-only benchmark (and the
tests that only parse arguments) work without it installed.
"""

from __future__ import annotations

from typing import Any

from bench.drivers import TIMEOUT

OPEN_TIMEOUT = 10.0
"""Seconds to wait for the cluster to answer once at open: a wrong address fails here, not mid-run."""
SCAN_TO_END = b"\x00"
"""etcd's range_end meaning "every key from the start key on"."""


class EtcdUnavailable(Exception):
    """etcd cannot be used: the client library is missing or the cluster does not answer."""


class EtcdDriver:
    """One etcd client (a single gRPC channel, round robin over the members) shared by a process's workers."""

    name = "etcd"

    def __init__(self, client: Any) -> None:
        self._client = client
        self._kv = client.kv

    @classmethod
    async def open(cls, endpoints: str) -> EtcdDriver:
        """Connect to ``HOST:PORT,...`` and check the cluster answers a linearizable read."""
        try:
            from etcd3aio import Etcd3Client, EtcdError
        except ImportError as exc:
            raise EtcdUnavailable(
                "the etcd client is not installed: run scripts/setup (or pip install etcd3aio)"
            ) from exc
        members = [item.strip() for item in endpoints.split(",") if item.strip()]
        if not members:
            raise EtcdUnavailable(f"no etcd endpoints in {endpoints!r}")
        client = Etcd3Client(members)
        await client.connect()
        try:
            await client.kv.get(b"\x00", timeout=OPEN_TIMEOUT)
        except (EtcdError, TimeoutError) as exc:
            await client.close()
            raise EtcdUnavailable(f"etcd at {endpoints} does not answer: {exc}") from exc
        return cls(client)

    async def put(self, key: bytes, value: bytes) -> None:
        await self._kv.put(key, value, timeout=TIMEOUT)

    async def get(self, key: bytes) -> bytes | None:
        resp = await self._kv.get(key, serializable=False, timeout=TIMEOUT)
        return resp.kvs[0].value if resp.kvs else None

    async def scan(self, start: bytes, limit: int) -> int:
        """Pairs from ``start`` on, at most ``limit``: one linearizable range request, like kvdb's scan."""
        resp = await self._kv.get(start, SCAN_TO_END, serializable=False, limit=limit,
                                    timeout=TIMEOUT)
        return len(resp.kvs)

    async def close(self) -> None:
        await self._client.close()

"""What the benchmark runs against: one small async interface per target database.

The runner only calls ``put``, ``get`` and ``scan``, so adding a target (etcd is one) means one
class with these four methods, and the load generator's own cost is the same for every target.
A driver is shared by every worker task of a client process, so it must allow concurrent calls.
"""

from __future__ import annotations

from typing import Protocol

import kvdb.aio
from kvdb.client.aio import AsyncClient

TARGETS = ("kvdb", "etcd")
TIMEOUT = 10.0
"""Seconds per call: a call that takes longer counts as an error (DeadlineExceededError, ...)."""


class Driver(Protocol):
    name: str

    async def put(self, key: bytes, value: bytes) -> None: ...

    async def get(self, key: bytes) -> bytes | None:
        """Linearizable: a read that may be stale would flatter the target."""
        ...

    async def scan(self, start: bytes, limit: int) -> int:
        """Reads up to ``limit`` pairs from ``start`` on; returns how many were read."""
        ...

    async def close(self) -> None: ...


class KvdbDriver:
    """The Python client (``kvdb.aio``): routing, range cache and pipelining are part of what is measured."""

    name = "kvdb"

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    @classmethod
    async def open(cls, pd_endpoints: str) -> KvdbDriver:
        return cls(await kvdb.aio.connect(pd_endpoints, timeout=TIMEOUT))

    async def put(self, key: bytes, value: bytes) -> None:
        await self._client.put(key, value)

    async def get(self, key: bytes) -> bytes | None:
        return await self._client.get(key)

    async def scan(self, start: bytes, limit: int) -> int:
        return len(await self._client.scan(start, b"", limit=limit))

    async def close(self) -> None:
        await self._client.close()


async def open_driver(target: str, addresses: str) -> Driver:
    """``addresses`` are PD members for kvdb and cluster members for etcd (HOST:PORT,...)."""
    if target == "kvdb":
        return await KvdbDriver.open(addresses)
    if target == "etcd":
        from bench.etcd_driver import EtcdDriver  # its client library is optional

        return await EtcdDriver.open(addresses)
    raise ValueError(f"unknown target {target!r} (targets: {', '.join(TARGETS)})")

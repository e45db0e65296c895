"""What the benchmark runs against: one small async interface per target database.

The runner calls ``put``, ``get`` and ``scan`` for the YCSB workloads and the transactional
methods (``txn_put``, ``transfer``, ``read_modify_write``, ``txn_scan``) for ``bank`` and ``txn``,
so adding a target (etcd is one) means one class with these methods, and the load generator's own
cost is the same for every target.
A driver is shared by every worker task of a client process, so it must allow concurrent calls.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import kvdb.aio
from bench.bank import LOAD_BATCH, MAX_RETRIES, transfer_writes
from kvdb.client.aio import AsyncClient
from kvdb.net.tls import TlsFiles

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

    async def txn_put(self, pairs: list[tuple[bytes, bytes]]) -> None:
        """Writes ``pairs`` in one transaction (the preload of a transactional workload)."""
        ...

    async def transfer(self, src: bytes, dst: bytes, amount: int) -> int:
        """One bank transfer (see bench/bank.py), retried on conflicts; returns the retries."""
        ...

    async def read_modify_write(self, keys: list[bytes], value: bytes) -> int:
        """Reads ``keys`` and writes ``value`` to each in one transaction; returns the retries."""
        ...

    async def txn_scan(self, start: bytes, end: bytes) -> list[tuple[bytes, bytes]]:
        """Every pair in [start, end) of the transactional key space, from one snapshot."""
        ...

    async def close(self) -> None: ...


class KvdbDriver:
    """The Python client (``kvdb.aio``): routing, range cache and pipelining are part of what is measured."""

    name = "kvdb"

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    @classmethod
    async def open(cls, pd_endpoints: str, tls: TlsFiles | None = None) -> KvdbDriver:
        return cls(await kvdb.aio.connect(pd_endpoints, timeout=TIMEOUT, tls=tls))

    async def put(self, key: bytes, value: bytes) -> None:
        await self._client.put(key, value)

    async def get(self, key: bytes) -> bytes | None:
        return await self._client.get(key)

    async def scan(self, start: bytes, limit: int) -> int:
        return len(await self._client.scan(start, b"", limit=limit))

    async def txn_put(self, pairs: list[tuple[bytes, bytes]]) -> None:
        async def body(txn: Any) -> None:
            for key, value in pairs:
                await txn.put(key, value)

        await self._client.run_transaction(body, max_retries=MAX_RETRIES)

    async def transfer(self, src: bytes, dst: bytes, amount: int) -> int:
        async def body(txn: Any) -> None:
            seen = await txn.batch_get([src, dst])
            for key, value in transfer_writes(src, dst, seen.get(src), seen.get(dst), amount):
                await txn.put(key, value)

        return await self._retried(body)

    async def read_modify_write(self, keys: list[bytes], value: bytes) -> int:
        async def body(txn: Any) -> None:
            await txn.batch_get(keys)
            for key in keys:
                await txn.put(key, value)

        return await self._retried(body)

    async def _retried(self, body: Callable[[Any], Awaitable[None]]) -> int:
        """Runs ``body`` in a transaction, again after conflicts; how many times it was retried."""
        attempts = 0

        async def counted(txn: Any) -> None:
            nonlocal attempts
            attempts += 1
            await body(txn)

        await self._client.run_transaction(counted, max_retries=MAX_RETRIES)
        return attempts - 1

    async def txn_scan(self, start: bytes, end: bytes) -> list[tuple[bytes, bytes]]:
        async with self._client.transaction() as txn:  # one start_ts: every page reads the same snapshot
            pairs: list[tuple[bytes, bytes]] = []
            while True:
                page = await txn.scan(start, end, limit=LOAD_BATCH)
                pairs += page
                if len(page) < LOAD_BATCH:
                    return pairs
                start = page[-1][0] + b"\x00"

    async def close(self) -> None:
        await self._client.close()


async def open_driver(target: str, addresses: str, tls: TlsFiles | None = None) -> Driver:
    """``addresses`` are PD members for kvdb and cluster members for etcd (HOST:PORT,...); ``tls``
    is for kvdb (None: plaintext, or the KVDB_* environment variables)."""
    if target == "kvdb":
        return await KvdbDriver.open(addresses, tls)
    if target == "etcd":
        from bench.etcd_driver import EtcdDriver  # its client library is optional

        return await EtcdDriver.open(addresses)
    raise ValueError(f"unknown target {target!r} (targets: {', '.join(TARGETS)})")

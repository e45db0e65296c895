"""The etcd side of ``kvdb bench``: the same Driver operations over etcd's v3 gRPC API (``etcd3aio``).

etcd is the peer we compare against, so each operation asks etcd for the guarantee kvdb gives for
the same call: a get is linearizable (``serializable=False``, a ReadIndex round on etcd's leader),
a put is committed by a quorum before it returns, and a scan is one range request with a limit.
``etcd3aio`` is imported inside :meth:`EtcdDriver.open` so that the kvdb-only benchmark (and the
tests that only parse arguments) work without it installed.

Transactions are etcd's optimistic idiom: one Txn of range requests reads the keys at one
revision, a second Txn writes them only if every key's mod_revision is still the one read (0 for
a key that did not exist), and a failed comparison is an abort: read again and retry.
"""

from __future__ import annotations

from typing import Any

from bench.bank import MAX_RETRIES, TooManyConflicts, transfer_writes
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

    async def _read(self, keys: list[bytes]) -> list[tuple[bytes | None, int]]:
        """(value or None, mod_revision or 0) of each key, all at one revision."""
        kv = self._kv
        resp = await kv.txn([], [kv.txn_op_get(k) for k in keys], timeout=TIMEOUT)
        out: list[tuple[bytes | None, int]] = []
        for r in resp.responses:
            kvs = r.response_range.kvs
            out.append((kvs[0].value, kvs[0].mod_revision) if kvs else (None, 0))
        return out

    async def _write_if_unchanged(self, seen: dict[bytes, int], pairs: list[tuple[bytes, bytes]]) -> bool:
        from etcd3aio._protobuf import Compare

        kv = self._kv
        compare = [Compare(result=Compare.EQUAL, target=Compare.MOD, key=k, mod_revision=rev)
                   for k, rev in seen.items()]
        resp = await kv.txn(compare, [kv.txn_op_put(k, v) for k, v in pairs], timeout=TIMEOUT)
        return resp.succeeded

    async def _optimistic(self, keys: list[bytes], writes: Any) -> int:
        """Read ``keys``, write ``writes(values)`` if none changed meanwhile; the retries it took."""
        for attempt in range(MAX_RETRIES + 1):
            read = await self._read(keys)
            pairs = writes([value for value, _ in read])
            revisions = {k: rev for k, (_, rev) in zip(keys, read, strict=True)}
            if await self._write_if_unchanged(revisions, pairs):
                return attempt
        raise TooManyConflicts(f"{MAX_RETRIES + 1} conflicting attempts on {len(keys)} keys")

    async def txn_put(self, pairs: list[tuple[bytes, bytes]]) -> None:
        kv = self._kv
        await kv.txn([], [kv.txn_op_put(k, v) for k, v in pairs], timeout=TIMEOUT)

    async def transfer(self, src: bytes, dst: bytes, amount: int) -> int:
        return await self._optimistic([src, dst], lambda values: transfer_writes(src, dst, *values, amount))

    async def read_modify_write(self, keys: list[bytes], value: bytes) -> int:
        return await self._optimistic(keys, lambda _: [(k, value) for k in keys])

    async def txn_scan(self, start: bytes, end: bytes) -> list[tuple[bytes, bytes]]:
        """One linearizable range request: etcd answers it from a single revision."""
        resp = await self._kv.get(start, end, serializable=False, timeout=TIMEOUT)
        return [(kv.key, kv.value) for kv in resp.kvs]

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

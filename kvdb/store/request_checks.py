"""Validation shared by the raw and the transactional API: sizes, counts, and the range a
request's keys or bounds must lie in. Each check raises a ``StoreError`` answered to the client;
nothing that failed one is ever proposed or read."""

from __future__ import annotations

from collections.abc import Iterable

from kvdb.pb import kvrpc_pb2
from kvdb.store import keyspace
from kvdb.store.errors import InvalidArgumentError, KeyNotInRangeError
from kvdb.store.peer import Peer
from kvdb.store.store import Store


class RequestChecks:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.config = store.config

    def key(self, key: bytes) -> None:
        if not key:
            raise InvalidArgumentError("key is empty")
        if len(key) > self.config.max_key_size:
            raise InvalidArgumentError(f"key is {len(key)} bytes, the limit is {self.config.max_key_size}")

    def value(self, value: bytes) -> None:
        if len(value) > self.config.max_value_size:
            raise InvalidArgumentError(
                f"value is {len(value)} bytes, the limit is {self.config.max_value_size}"
            )

    def count(self, n: int) -> None:
        if n == 0:
            raise InvalidArgumentError("batch is empty")
        if n > self.config.max_batch_keys:
            raise InvalidArgumentError(f"batch has {n} keys, the limit is {self.config.max_batch_keys}")

    def range(self, ctx: kvrpc_pb2.Context, keys: Iterable[bytes]) -> Peer:
        """The range's replica here, once every key is valid and inside it."""
        peer = self.store.peer(ctx.range_id)
        peer.check_epoch(ctx.epoch)
        for key in keys:
            self.key(key)
            if not keyspace.contains(peer.desc, key):
                raise KeyNotInRangeError(key, peer.desc)
        return peer

    def bounds(self, ctx: kvrpc_pb2.Context, start: bytes, end: bytes) -> tuple[bytes, bytes]:
        """[start, end) clipped to the range (an empty ``end``: to its end)."""
        if end and start >= end:
            raise InvalidArgumentError(f"inverted bounds: start {start[:64].hex()} >= end {end[:64].hex()}")
        if len(start) > self.config.max_key_size or len(end) > self.config.max_key_size:
            raise InvalidArgumentError(f"a bound is longer than the key limit {self.config.max_key_size}")
        peer = self.store.peer(ctx.range_id)
        peer.check_epoch(ctx.epoch)
        bounds = keyspace.clip(peer.desc, start, end)
        if bounds is None:
            raise KeyNotInRangeError(start, peer.desc)
        return bounds

    def scan_limit(self, limit: int) -> int:
        """The limit a scan runs with (0: the store's most)."""
        limit = limit or self.config.max_scan_limit
        if limit > self.config.max_scan_limit:
            raise InvalidArgumentError(f"scan limit {limit} is above {self.config.max_scan_limit}")
        return limit

    def request_size(self, size: int) -> None:
        limit = self.config.max_request_bytes
        if size > limit:
            raise InvalidArgumentError(f"request is {size} bytes, the limit is {limit}")

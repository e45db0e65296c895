"""Sending transactional commands through the client's routing: by key, or split by range.

Transactional commands carry no session header: each is idempotent by its ``start_ts`` (a
re-sent prewrite finds its own lock, a re-sent commit its own commit record), so a retry after
an unknown outcome needs no deduplication. Routing errors are handled by the client's
``_attempt`` (cache update, backoff); a part whose range split is split again by the ranges it
covers now. What comes back are response bodies whose ``key_error``/``errors`` the caller reads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kvdb.client.aio import BATCH_CHUNK, _all, _chunks, _Op

if TYPE_CHECKING:
    from kvdb.client.aio import AsyncClient


async def on_key(client: AsyncClient, op: _Op, key: bytes, kind: str, request: Any) -> Any:
    """``request`` (a ``kind`` body) sent to the leader of ``key``'s range until it answers."""
    while True:
        loc = await client._locate(op, key)
        body = await client._attempt(op, loc, kind, request)
        if body is not None:
            return body


async def on_keys(client: AsyncClient, op: _Op, keys: list[bytes], kind: str,
                  make: Callable[[list[bytes]], Any]) -> list[tuple[list[bytes], Any]]:
    """``make(keys of one range)`` sent to each range concurrently: (those keys, body) per part.

    ``make`` is called again for every re-sent part, so it may depend on which keys a part holds
    (prewrite asks for 1PC only when a part holds every key of the transaction)."""
    while True:
        groups = [(loc, ks) for loc, group in await client._group(op, keys)
                  for ks in _chunks(group, BATCH_CHUNK)]
        if len(groups) > 1:
            parts = await _all(on_keys(client, op, ks, kind, make) for _, ks in groups)
            return [part for sub in parts for part in sub]
        loc, ks = groups[0]
        body = await client._attempt(op, loc, kind, make(ks))
        if body is not None:
            return [(ks, body)]

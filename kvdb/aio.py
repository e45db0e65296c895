"""The asyncio flavour of the client: ``async with await kvdb.aio.connect(...) as client``."""

from kvdb.client.aio import AsyncClient, connect

__all__ = ["AsyncClient", "connect"]

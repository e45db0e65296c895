"""The Python client library: ``kvdb.connect`` (sync) and ``kvdb.aio.connect`` (asyncio)."""

from kvdb.client.aio import AsyncClient
from kvdb.client.sync import Client, connect

__all__ = ["AsyncClient", "Client", "connect"]

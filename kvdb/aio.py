"""The asyncio flavour of the client: ``async with await kvdb.aio.connect(...) as client``."""

from kvdb.client.aio import AsyncClient, connect
from kvdb.client.txn import Transaction

__all__ = ["AsyncClient", "Transaction", "connect"]

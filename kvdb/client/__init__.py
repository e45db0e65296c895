"""The Python client library: ``kvdb.connect`` (sync) and ``kvdb.aio.connect`` (asyncio).

::

    with kvdb.connect("127.0.0.1:2379,127.0.0.1:2380", timeout=10.0) as client:
        client.put(b"k", b"v")
        client.scan(b"a", b"z", limit=0)
        with client.transaction() as txn:      # snapshot isolation, across ranges
            txn.put(b"k", txn.get(b"k") + b"!")

Calls hide routing (a moved leader, a split range, a busy or restarted store) until their
deadline and raise only ``kvdb.errors`` types. The sync client runs the async one on a loop
thread of its own, so both behave the same.
"""

from kvdb.client.aio import AsyncClient
from kvdb.client.sync import Client, Transaction, connect
from kvdb.client.txn import Transaction as AsyncTransaction

__all__ = ["AsyncClient", "AsyncTransaction", "Client", "Transaction", "connect"]

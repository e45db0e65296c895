"""The synchronous client: the asyncio client on an event loop in one daemon thread of its own.

Callers in any thread submit coroutines to that loop and wait for them, so a sync program shares
one set of store streams among all its threads, and the sync and async flavours cannot drift
apart in behaviour.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping
from typing import Any, TypeVar

from kvdb.client.aio import DEFAULT_TIMEOUT, AsyncClient, check_timeout
from kvdb.client.txn import RETRIED, check_retries, retry_delay
from kvdb.client.txn import Transaction as AsyncTransaction
from kvdb.errors import ClientClosedError, DeadlineExceededError, InvalidArgumentError
from kvdb.net.tls import TlsFiles

T = TypeVar("T")

GRACE = 5.0
"""Seconds past a call's own deadline before the caller stops waiting for the loop thread: the
async side enforces the deadline; this only guards against a wedged loop."""


class Client:
    """Use ``kvdb.connect(...)``; every method takes ``timeout`` (seconds, None: the client's)."""

    def __init__(self, endpoints: str | list[str], timeout: float = DEFAULT_TIMEOUT,
                 tls: TlsFiles | None = None) -> None:
        self.timeout = check_timeout(timeout)
        self._lock = threading.Lock()
        self._closed = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="kvdb-client", daemon=True)
        self._thread.start()
        self._async: AsyncClient | None = None
        try:
            self._async = self._call(self._open(endpoints, timeout, tls), timeout)
        except BaseException:
            self.close()
            raise

    async def _open(self, endpoints: str | list[str], timeout: float, tls: TlsFiles | None) -> AsyncClient:
        return await AsyncClient(endpoints, timeout, tls).connect()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Idempotent; returns once the loop thread has ended."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(GRACE + self.timeout)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    async def _shutdown(self) -> None:
        """Closes the async client, then ends calls other threads still run (one in a backoff
        would otherwise keep its caller waiting on a loop that no longer runs)."""
        if self._async is not None:
            await self._async.close()
        others = asyncio.all_tasks() - {asyncio.current_task()}
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float | None) -> T:
        try:
            wait = (self.timeout if timeout is None else check_timeout(timeout)) + GRACE
        except InvalidArgumentError:
            coro.close()
            raise
        with self._lock:  # so that close() cannot stop the loop between the check and the submit
            if self._closed:
                coro.close()
                raise ClientClosedError("the client is closed")
            future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(wait)
        except concurrent.futures.CancelledError:
            raise ClientClosedError("the client was closed during the call") from None
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise DeadlineExceededError(f"the client's loop did not answer within {wait}s") from None

    def _client(self) -> AsyncClient:
        if self._async is None or self._closed:
            raise ClientClosedError("the client is closed")
        return self._async

    @property
    def session_id(self) -> int:
        """This client's session, as errors and store debug logs name it (docs/client.md, "Sessions")."""
        return self._client().session_id

    def get(self, key: bytes, timeout: float | None = None) -> bytes | None:
        return self._call(self._client().get(key, timeout=timeout), timeout)

    def put(self, key: bytes, value: bytes, timeout: float | None = None) -> None:
        self._call(self._client().put(key, value, timeout=timeout), timeout)

    def delete(self, key: bytes, timeout: float | None = None) -> None:
        self._call(self._client().delete(key, timeout=timeout), timeout)

    def batch_get(self, keys: Iterable[bytes], timeout: float | None = None) -> dict[bytes, bytes]:
        return self._call(self._client().batch_get(keys, timeout=timeout), timeout)

    def batch_put(self, pairs: Mapping[bytes, bytes] | Iterable[tuple[bytes, bytes]],
                  timeout: float | None = None) -> None:
        self._call(self._client().batch_put(pairs, timeout=timeout), timeout)

    def delete_range(self, start: bytes, end: bytes, timeout: float | None = None) -> None:
        self._call(self._client().delete_range(start, end, timeout=timeout), timeout)

    def scan(self, start: bytes = b"", end: bytes = b"", limit: int = 100, reverse: bool = False,
             key_only: bool = False, timeout: float | None = None) -> list[tuple[bytes, bytes]]:
        return self._call(self._client().scan(start, end, limit, reverse, key_only, timeout=timeout), timeout)

    def compare_and_swap(self, key: bytes, expected: bytes | None, new: bytes,
                         timeout: float | None = None) -> tuple[bool, bytes | None]:
        return self._call(self._client().compare_and_swap(key, expected, new, timeout=timeout), timeout)

    def transaction(self, async_commit: bool = True, one_pc: bool = True, timeout: float | None = None
                    ) -> Transaction:
        """``with client.transaction() as txn:`` — as ``AsyncClient.transaction`` (docs/transactions.md)."""
        return Transaction(self, self._client().transaction(async_commit, one_pc, timeout))

    def run_transaction(self, fn: Callable[[Transaction], T], max_retries: int = 10,
                        async_commit: bool = True, one_pc: bool = True, timeout: float | None = None) -> T:
        """Runs ``fn(txn)`` in a transaction and commits it, again in a new one after a write
        conflict or an abort (at most ``max_retries`` times); as ``AsyncClient.run_transaction``."""
        for attempt in range(check_retries(max_retries) + 1):
            try:
                with self.transaction(async_commit, one_pc, timeout) as txn:
                    result = fn(txn)
                return result
            except RETRIED:
                if attempt == max_retries:
                    raise
            time.sleep(retry_delay(attempt))
        raise AssertionError("unreachable")


class Transaction:
    """The asyncio transaction driven from the caller's thread: ``with client.transaction() as txn``
    (start_ts on entry, commit on exit, rollback on an exception)."""

    def __init__(self, client: Client, txn: AsyncTransaction) -> None:
        self._client = client
        self._txn = txn

    @property
    def start_ts(self) -> int:
        return self._txn.start_ts

    @property
    def commit_ts(self) -> int:
        return self._txn.commit_ts

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._client._call(coro, self._txn.timeout)

    def begin(self) -> Transaction:
        self._call(self._txn.begin())
        return self

    def __enter__(self) -> Transaction:
        return self.begin()

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        self._call(self._txn.__aexit__(exc_type, *exc))

    def get(self, key: bytes) -> bytes | None:
        return self._call(self._txn.get(key))

    def get_for_update(self, key: bytes) -> bytes | None:
        return self._call(self._txn.get_for_update(key))

    def batch_get(self, keys: Iterable[bytes]) -> dict[bytes, bytes]:
        return self._call(self._txn.batch_get(keys))

    def scan(self, start: bytes = b"", end: bytes = b"", limit: int = 100) -> list[tuple[bytes, bytes]]:
        return self._call(self._txn.scan(start, end, limit))

    def put(self, key: bytes, value: bytes) -> None:
        self._call(self._txn.put(key, value))

    def delete(self, key: bytes) -> None:
        self._call(self._txn.delete(key))

    def commit(self) -> None:
        self._call(self._txn.commit())

    def rollback(self) -> None:
        self._call(self._txn.rollback())


def connect(endpoints: str | list[str], timeout: float = DEFAULT_TIMEOUT,
            tls: TlsFiles | None = None) -> Client:
    """A client connected to PD at ``endpoints`` (a comma-separated string or a list); ``tls``
    None takes the files named by KVDB_CA, KVDB_CERT and KVDB_KEY, if set (else plaintext)."""
    return Client(endpoints, timeout, tls)

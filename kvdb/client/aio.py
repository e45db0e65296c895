"""The asyncio client: routes each request to its range's leader and retries what routing errors
and failures allow, until the call's deadline.

Every call runs under one deadline (its ``timeout``, else the client's). Within it, an attempt
goes to the leader the range cache names; the store's answer is either the result or a routing
error that updates the cache (see ARCHITECTURE.md, "Routing errors are data"), after which the
attempt is repeated at once or after a backoff.

Writes belong to the client's session (a random id chosen at connect): each write request to one
range gets a sequence number, kept by its retries, so the range applies it at most once however
often it is re-sent (``kvdb.store.sessions``). That makes re-sending a write whose outcome is
unknown (no answer, a broken stream, a superseded command) safe, compare-and-swap included. If
the range has forgotten the session by then, or the call's deadline passes with the outcome
unknown, the call raises ``UncertainResultError`` rather than guess.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from kvdb.client.cache import CachedRange, RangeCache
from kvdb.client.deadlines import DeadlineQueue
from kvdb.client.transport import StoreConnection, StoreUnreachable
from kvdb.errors import (
    ClientClosedError,
    ClusterMismatchError,
    DeadlineExceededError,
    InvalidArgumentError,
    KvdbError,
    PermissionDeniedError,
    UnavailableError,
    UncertainResultError,
)
from kvdb.net.tls import TlsFiles
from kvdb.pb import kvrpc_pb2, metapb_pb2, pdpb_pb2
from kvdb.pdclient.client import PdClient, PdError, PdUnavailableError

if TYPE_CHECKING:
    from kvdb.client.lock_resolver import LockResolver
    from kvdb.client.txn import Transaction

T = TypeVar("T")
log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 10.0
CACHE_FILL = 64
"""Ranges fetched from PD per cache miss: a scan over many ranges asks PD once per this many."""
SCAN_PAGE = 1024
"""Pairs asked of a store per scan request; a range with more is read in several pages."""
BATCH_CHUNK = 4096
"""Keys per batch request (the store refuses more than 10k); bigger batches go in several requests."""
ATTEMPT_TIMEOUT = 5.0
"""Seconds one request may wait for its store: longer means the store hangs, try elsewhere."""
STORE_DOWN_SECONDS = 2.0
"""How long an unreachable store is skipped when another replica can be asked about the leader."""
MAX_HOPS = 3
"""not_leader hints followed without a pause; replicas disagreeing mid-election could bounce us."""
BACKOFF = (0.01, 0.1)
PD_GAP_RETRY = 0.02
"""Seconds between asking PD again for a key it knows no range for (``_Op.pause``)."""
CLOSE_WAIT = 2.0
"""Seconds close() waits for transactions' background commits before cancelling them (a
cancelled one leaves locks that readers roll forward)."""


WRITES = frozenset({"put", "delete", "batch_put", "delete_range", "cas"})


@dataclass
class _Write:
    """One write request to one range, across its attempts: its seq, and what its store knows."""

    seq: int
    ambiguous: bool = False
    """An attempt may have applied (sent, then no answer or a superseded command): retries say so."""
    in_flight: bool = False
    """The current attempt went out and is not answered yet."""
    done: bool = False


@dataclass
class _Op:
    """The state of one call across its attempts: what went wrong last, and the backoff."""

    name: str
    reached: bool = False
    """Whether any store answered: a deadline is then "too slow", not "unreachable"."""
    last: str = "nothing tried"
    hops: int = 0
    writes: list[_Write] = field(default_factory=list)
    _delay: float = 0.0

    @property
    def uncertain(self) -> bool:
        """Some write of this call may have applied, and its answer never came."""
        return any(w.in_flight or w.ambiguous for w in self.writes if not w.done)

    def retry(self, why: str, after: float = 0.0) -> None:
        """Records why the call tries again; at DEBUG the client logs each retry (a stall's cause
        shows in the client's log as the errors it retried)."""
        self.last = why
        log.debug("%s: retry in %.3fs: %s", self.name, after, why)

    async def backoff(self, why: str, at_least: float = 0.0) -> None:
        """Exponential with jitter, so clients that failed together do not retry in lockstep."""
        self.hops = 0
        low, high = BACKOFF
        self._delay = min(max(self._delay * 2, low), high)
        delay = max(self._delay * random.uniform(0.5, 1.0), at_least * random.uniform(1.0, 1.5))
        self.retry(why, delay)
        await asyncio.sleep(delay)

    async def pause(self, why: str) -> None:
        """A short wait that does not grow: PD's map has a hole for a moment while a split's new
        ranges report in (the shrunk parent may come first), and an exponential backoff made
        every client wait up to ``BACKOFF``'s top for a gap of milliseconds."""
        delay = PD_GAP_RETRY * random.uniform(0.5, 1.0)
        self.retry(why, delay)
        await asyncio.sleep(delay)

    def hop(self, why: str) -> bool:
        self.retry(why)
        self.hops += 1
        return self.hops <= MAX_HOPS


def _key(key: object, what: str = "key") -> bytes:
    if not isinstance(key, bytes | bytearray):
        raise InvalidArgumentError(f"{what} must be bytes, not {type(key).__name__}")
    if not key:
        raise InvalidArgumentError(f"{what} is empty")
    return bytes(key)


def _bound(key: object, what: str) -> bytes:
    if not isinstance(key, bytes | bytearray):
        raise InvalidArgumentError(f"{what} must be bytes, not {type(key).__name__}")
    return bytes(key)


def _value(value: object) -> bytes:
    if not isinstance(value, bytes | bytearray):
        raise InvalidArgumentError(f"value must be bytes, not {type(value).__name__}")
    return bytes(value)


def _bounds(start: object, end: object) -> tuple[bytes, bytes]:
    start, end = _bound(start, "start"), _bound(end, "end")
    if end and start >= end:
        raise InvalidArgumentError(f"start {start!r} is not below end {end!r}")
    return start, end


def check_timeout(timeout: object) -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise InvalidArgumentError(f"timeout must be a positive number of seconds, got {timeout!r}")
    return float(timeout)


def _chunks(keys: list[bytes], size: int) -> list[list[bytes]]:
    return [keys[i:i + size] for i in range(0, len(keys), size)]


class AsyncClient:
    """Use ``await kvdb.aio.connect(...)``; every method takes ``timeout`` (seconds, None: the client's)."""

    def __init__(self, endpoints: str | list[str], timeout: float = DEFAULT_TIMEOUT,
                 tls: TlsFiles | None = None) -> None:
        timeout = check_timeout(timeout)
        try:
            self._tls = tls if tls is not None else TlsFiles.from_env()
            self._pd = PdClient(endpoints, timeout=timeout, tls=self._tls)
        except ValueError as exc:
            raise InvalidArgumentError(str(exc)) from None
        self.timeout = timeout
        self._cache = RangeCache()
        self._addresses: dict[int, str] = {}
        self._connections: dict[str, StoreConnection] = {}
        self._down: dict[int, float] = {}
        """store id -> when it was last found unreachable (monotonic)."""
        self.session_id = random.SystemRandom().getrandbits(64) or 1
        """This client's session (never 0): shown in logs and errors to match a store's debug logs."""
        self._next_seq = 1
        self._incomplete: dict[int, None] = {}
        """Seqs of the writes still running, oldest first (allocated in increasing order)."""
        self.ambiguous_retries = 0
        """Write attempts re-sent after an attempt whose outcome was unknown (tests, debugging)."""
        self._deadlines = DeadlineQueue()
        """Every call's deadline (``_run``): it cancels the call's task when it passes."""
        self._closed = False
        self._background: set[asyncio.Task[None]] = set()
        """Transactions' background commits (``_track``)."""
        self._resolver: LockResolver | None = None

    async def connect(self) -> AsyncClient:
        try:
            await self._pd.connect()
        except PdUnavailableError as exc:
            await self.close()
            raise UnavailableError(str(exc)) from None
        except PermissionDeniedError:
            await self.close()
            raise
        return self

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Idempotent; closes every stream, channel and task the client opened."""
        if self._closed:
            return
        if self._background:  # before closing: they still send their commits
            _, late = await asyncio.wait(set(self._background), timeout=CLOSE_WAIT)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
            if self._closed:  # a concurrent close() finished meanwhile
                return
        self._closed = True
        connections, self._connections = list(self._connections.values()), {}
        for conn in connections:
            await conn.close()
        await self._pd.close()

    # ----------------------------------------------------------------------------------- API

    async def get(self, key: bytes, timeout: float | None = None) -> bytes | None:
        key = _key(key)

        async def run(op: _Op) -> bytes | None:
            body = await self._on_key(op, key, "get", lambda _: kvrpc_pb2.RawGetRequest(key=key))
            return None if body.not_found else body.value

        return await self._run("get", timeout, run)

    async def put(self, key: bytes, value: bytes, timeout: float | None = None) -> None:
        key, value = _key(key), _value(value)

        async def run(op: _Op) -> None:
            await self._on_key(op, key, "put", lambda _: kvrpc_pb2.RawPutRequest(key=key, value=value))

        await self._run("put", timeout, run)

    async def delete(self, key: bytes, timeout: float | None = None) -> None:
        key = _key(key)

        async def run(op: _Op) -> None:
            await self._on_key(op, key, "delete", lambda _: kvrpc_pb2.RawDeleteRequest(key=key))

        await self._run("delete", timeout, run)

    async def batch_get(self, keys: Iterable[bytes], timeout: float | None = None) -> dict[bytes, bytes]:
        """Only the keys that exist; the parts on different ranges are read concurrently."""
        wanted = list(dict.fromkeys(_key(k) for k in keys))

        async def run(op: _Op) -> dict[bytes, bytes]:
            bodies = await self._on_keys(op, wanted, "batch_get",
                                         lambda ks: kvrpc_pb2.RawBatchGetRequest(keys=ks))
            return {p.key: p.value for body in bodies for p in body.pairs}

        return await self._run("batch_get", timeout, run) if wanted else {}

    async def batch_put(self, pairs: Mapping[bytes, bytes] | Iterable[tuple[bytes, bytes]],
                        timeout: float | None = None) -> None:
        """Atomic per range only: the parts on different ranges are separate writes."""
        items = pairs.items() if isinstance(pairs, Mapping) else pairs
        values = {_key(k): _value(v) for k, v in items}

        def request(ks: list[bytes]) -> kvrpc_pb2.RawBatchPutRequest:
            return kvrpc_pb2.RawBatchPutRequest(pairs=[kvrpc_pb2.KvPair(key=k, value=values[k]) for k in ks])

        async def run(op: _Op) -> None:
            await self._on_keys(op, list(values), "batch_put", request)

        if values:
            await self._run("batch_put", timeout, run)

    async def delete_range(self, start: bytes, end: bytes, timeout: float | None = None) -> None:
        """Deletes [start, end) (end b"": to the end of the key space), range by range."""
        start, end = _bounds(start, end)

        async def run(op: _Op) -> None:
            cursor = start
            write = self._new_write(op)
            while True:
                loc = await self._locate(op, cursor)
                request = kvrpc_pb2.RawDeleteRangeRequest(start_key=cursor, end_key=end)
                if await self._attempt(op, loc, "delete_range", request, write) is None:
                    continue
                if not loc.end or (end and loc.end >= end):
                    return
                cursor = loc.end
                write = self._new_write(op)

        await self._run("delete_range", timeout, run)

    async def scan(self, start: bytes = b"", end: bytes = b"", limit: int = 100, reverse: bool = False,
                   key_only: bool = False, timeout: float | None = None) -> list[tuple[bytes, bytes]]:
        """Pairs in [start, end) in key order (descending when ``reverse``), across ranges; at most
        ``limit`` (0: all, fetched in pages). ``key_only`` leaves the values empty."""
        start, end = _bounds(start, end)
        if not isinstance(limit, int) or limit < 0:
            raise InvalidArgumentError(f"limit must be a non-negative int, got {limit!r}")

        async def run(op: _Op) -> list[tuple[bytes, bytes]]:
            walk = self._scan_reverse if reverse else self._scan_forward
            return await walk(op, start, end, limit, key_only)

        return await self._run("scan", timeout, run)

    async def compare_and_swap(self, key: bytes, expected: bytes | None, new: bytes,
                               timeout: float | None = None) -> tuple[bool, bytes | None]:
        """Sets ``key`` to ``new`` if its value is ``expected`` (None: absent); (swapped, previous value)."""
        key, new = _key(key), _value(new)
        if expected is not None:
            expected = _value(expected)

        def request(_: list[bytes]) -> kvrpc_pb2.RawCompareAndSwapRequest:
            return kvrpc_pb2.RawCompareAndSwapRequest(key=key, value=new, previous_value=expected or b"",
                                                      previous_not_exist=expected is None)

        async def run(op: _Op) -> tuple[bool, bytes | None]:
            body = await self._on_key(op, key, "cas", request)
            return body.succeed, None if body.previous_not_exist else body.previous_value

        return await self._run("compare_and_swap", timeout, run)

    # -------------------------------------------------------------------------- transactions

    def transaction(self, async_commit: bool = True, one_pc: bool = True, timeout: float | None = None
                    ) -> Transaction:
        """``async with client.transaction() as txn:`` — snapshot reads at the start_ts taken on
        entry, writes buffered and committed atomically on exit (rolled back on an exception).
        ``timeout`` bounds each read and the commit (None: the client's). docs/transactions.md."""
        from kvdb.client.txn import Transaction

        if self._closed:
            raise ClientClosedError("the client is closed")
        return Transaction(self, async_commit=async_commit, one_pc=one_pc, timeout=timeout)

    async def run_transaction(self, fn: Callable[[Transaction], Coroutine[Any, Any, T]],
                              max_retries: int = 10, async_commit: bool = True, one_pc: bool = True,
                              timeout: float | None = None) -> T:
        """Runs ``await fn(txn)`` in a transaction and commits it; on a write conflict or an abort
        by a lock resolver, runs it again in a new one (after a backoff), at most ``max_retries``
        times. ``UncertainResultError`` is never retried: the transaction may have committed."""
        from kvdb.client.txn import RETRIED, check_retries, retry_delay

        for attempt in range(check_retries(max_retries) + 1):
            try:
                async with self.transaction(async_commit, one_pc, timeout) as txn:
                    result = await fn(txn)
                return result
            except RETRIED:
                if attempt == max_retries:
                    raise
            await asyncio.sleep(retry_delay(attempt))
        raise AssertionError("unreachable")

    @property
    def _lock_resolver(self) -> LockResolver:
        """The client's lock resolver (it remembers which transactions it found finished)."""
        if self._resolver is None:
            from kvdb.client.lock_resolver import LockResolver

            self._resolver = LockResolver(self)
        return self._resolver

    def _track(self, coro: Coroutine[Any, Any, None]) -> None:
        """Runs a transaction's background work (committing its keys) as a task close() waits for."""
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ---------------------------------------------------------------------------- call frame

    async def _run(self, name: str, timeout: float | None,
                   body: Callable[[_Op], Coroutine[Any, Any, T]]) -> T:
        """Runs ``body`` under the call's deadline and turns what is left of failures into KvdbErrors."""
        if self._closed:
            raise ClientClosedError("the client is closed")
        timeout = self.timeout if timeout is None else check_timeout(timeout)
        op = _Op(name)
        task = asyncio.current_task()
        cancelling = task.cancelling()
        deadline = self._deadlines.add(timeout, task.cancel)
        try:
            return await body(op)
        except TimeoutError:
            raise self._deadline_error(op, timeout) from None
        except PdUnavailableError as exc:
            raise UnavailableError(f"{name}: {exc}") from None
        except PermissionDeniedError as exc:  # PD's or a store's refusal of the certificate's role
            raise PermissionDeniedError(f"{name}: {exc}") from None
        except PdError as exc:
            if self._closed:
                raise ClientClosedError("the client was closed during the call") from None
            raise KvdbError(f"{name}: {exc}") from None
        except asyncio.CancelledError:
            if deadline.expired and task.uncancel() <= cancelling:  # cancelled by the deadline
                raise self._deadline_error(op, timeout) from None
            if self._closed and not task.cancelling():
                raise ClientClosedError("the client was closed during the call") from None
            raise
        finally:
            deadline.finish()
            for w in op.writes:  # finished, one way or another: ranges may forget their results
                self._incomplete.pop(w.seq, None)

    def _deadline_error(self, op: _Op, timeout: float) -> KvdbError:
        if op.uncertain:
            return UncertainResultError(f"{op.name}: no answer within {timeout}s after it was sent "
                                        f"({op.last}; session {self.session_id:016x})")
        cls = DeadlineExceededError if op.reached else UnavailableError
        return cls(f"{op.name}: not done within {timeout}s ({op.last})")

    def _new_write(self, op: _Op, parent: _Write | None = None) -> _Write:
        """A write request of ``op`` to one range: a new seq, or the ``parent``'s for a part of a
        request re-split after its range changed (a split range's children keep its sessions)."""
        if parent is not None:
            write = _Write(parent.seq, ambiguous=parent.ambiguous)
        else:
            write = _Write(self._next_seq)
            self._incomplete[self._next_seq] = None
            self._next_seq += 1
        op.writes.append(write)
        return write

    def _session(self, write: _Write) -> kvrpc_pb2.SessionHeader:
        first_incomplete = next(iter(self._incomplete), self._next_seq)
        return kvrpc_pb2.SessionHeader(session_id=self.session_id, seq=write.seq,
                                       first_incomplete_seq=min(first_incomplete, write.seq),
                                       retry_after_ambiguous=write.ambiguous)

    # ------------------------------------------------------------------------------- routing

    async def _locate(self, op: _Op, key: bytes) -> CachedRange:
        """The range holding ``key``, from the cache or else PD (which fills the cache ahead)."""
        while (loc := self._cache.find(key)) is None:
            for info in await self._pd.scan_ranges(key, b"", CACHE_FILL):
                self._absorb(info)
            if self._cache.find(key) is None:
                await op.pause(f"PD knows no range for {key!r}")
        return loc

    async def _locate_before(self, op: _Op, start: bytes, end: bytes) -> CachedRange:
        """The range holding the keys just below ``end`` (b"": the last range)."""
        while (loc := self._cache.find_before(end)) is None:
            if end:
                info = await self._pd.get_range(end)
                if info is not None and info.descriptor.start_key < end:
                    self._absorb(info)
                    continue
            for info in await self._pd.scan_ranges(start, end, 0):
                self._absorb(info)
            if self._cache.find_before(end) is None:
                await op.pause(f"PD knows no range below {end!r}")
        return loc

    def _absorb(self, info: pdpb_pb2.RangeInfo) -> None:
        leader = info.leader.store_id if info.HasField("leader") and info.leader.store_id else None
        self._cache.insert(info.descriptor, leader)

    async def _group(self, op: _Op, keys: list[bytes]) -> list[tuple[CachedRange, list[bytes]]]:
        groups: dict[int, tuple[CachedRange, list[bytes]]] = {}
        for key in keys:
            loc = await self._locate(op, key)
            groups.setdefault(loc.id, (loc, []))[1].append(key)
        return list(groups.values())

    async def _on_key(self, op: _Op, key: bytes, kind: str, make: Callable[[list[bytes]], Any]) -> Any:
        write = self._new_write(op) if kind in WRITES else None
        while True:
            loc = await self._locate(op, key)
            body = await self._attempt(op, loc, kind, make([key]), write)
            if body is not None:
                return body

    async def _on_keys(self, op: _Op, keys: list[bytes], kind: str, make: Callable[[list[bytes]], Any],
                       parent: _Write | None = None) -> list[Any]:
        """Sends ``keys`` split by range (and in chunks), concurrently; a part whose range moved is
        split again by the ranges it covers now, its parts keeping its seq. (A part never exceeds
        one chunk, so its re-split parts all lie in different ranges.)"""
        write: _Write | None = None
        while True:
            groups = [(loc, chunk) for loc, ks in await self._group(op, keys)
                      for chunk in _chunks(ks, BATCH_CHUNK)]
            if len(groups) > 1:
                if write is not None:
                    write.done = True  # its parts carry on, and its uncertainty with them
                parts = await _all(self._on_keys(op, ks, kind, make, write or parent) for _, ks in groups)
                return [body for part in parts for body in part]
            if write is None and kind in WRITES:
                write = self._new_write(op, parent)
            loc, ks = groups[0]
            body = await self._attempt(op, loc, kind, make(ks), write)
            if body is not None:
                return [body]

    async def _scan_forward(self, op: _Op, start: bytes, end: bytes, limit: int, key_only: bool
                            ) -> list[tuple[bytes, bytes]]:
        out: list[tuple[bytes, bytes]] = []
        cursor = start
        while not limit or len(out) < limit:
            loc = await self._locate(op, cursor)
            page = min(SCAN_PAGE, limit - len(out)) if limit else SCAN_PAGE
            request = kvrpc_pb2.RawScanRequest(start_key=cursor, end_key=end, limit=page, key_only=key_only)
            body = await self._attempt(op, loc, "scan", request)
            if body is None:
                continue
            out.extend((p.key, p.value) for p in body.pairs)
            if len(body.pairs) == page:
                cursor = body.pairs[-1].key + b"\x00"  # the smallest key after the last one
            elif loc.end and (not end or loc.end < end):
                cursor = loc.end
            else:
                break
            if end and cursor >= end:
                break
        return out

    async def _scan_reverse(self, op: _Op, start: bytes, end: bytes, limit: int, key_only: bool
                            ) -> list[tuple[bytes, bytes]]:
        out: list[tuple[bytes, bytes]] = []
        cursor = end  # exclusive upper bound of what is left; b"": the end of the key space
        while not limit or len(out) < limit:
            loc = await self._locate_before(op, start, cursor)
            page = min(SCAN_PAGE, limit - len(out)) if limit else SCAN_PAGE
            request = kvrpc_pb2.RawScanRequest(start_key=max(start, loc.start), end_key=cursor, limit=page,
                                               reverse=True, key_only=key_only)
            body = await self._attempt(op, loc, "scan", request)
            if body is None:
                continue
            out.extend((p.key, p.value) for p in body.pairs)
            if len(body.pairs) == page:
                cursor = body.pairs[-1].key
            elif loc.start > start:
                cursor = loc.start
            else:
                break
            if cursor <= start:
                break
        return out

    # ------------------------------------------------------------------------------ attempts

    def _target(self, loc: CachedRange) -> int | None:
        """The store to ask: the cached leader unless it was just unreachable, else a replica that
        was not (it names the leader), else the leader anyway."""
        if loc.leader_store is not None and loc.leader_store not in self._down:
            return loc.leader_store
        now = time.monotonic()
        up = [s for s in loc.store_ids() if s not in self._down or now - self._down[s] >= STORE_DOWN_SECONDS]
        if loc.leader_store is not None and (loc.leader_store in up or not up):
            return loc.leader_store
        return up[0] if up else (loc.store_ids() or [None])[0]

    async def _connection(self, op: _Op, store_id: int) -> StoreConnection | None:
        address = self._addresses.get(store_id)
        if address is None:
            info = await self._pd.get_store(store_id)
            if info is None or not info.address or info.state == pdpb_pb2.TOMBSTONE:
                return None
            address = self._addresses[store_id] = info.address
        if self._closed:
            raise ClientClosedError("the client was closed during the call")
        conn = self._connections.get(address)
        if conn is None:
            conn = StoreConnection(address, self._pd.cluster_id, self._tls, ATTEMPT_TIMEOUT)
            self._connections[address] = conn
        return conn

    async def _attempt(self, op: _Op, loc: CachedRange, kind: str, request: Any, write: _Write | None = None
                       ) -> Any:
        """One try at ``loc``'s leader: the response body, or None once it is time to try again
        (the cache updated from the error and any backoff slept). A ``write`` carries its session
        header; an attempt whose outcome is unknown marks it ambiguous for the next."""
        store_id = self._target(loc)
        conn = await self._connection(op, store_id) if store_id is not None else None
        if conn is None:
            self._cache.invalidate(loc.id)
            await op.backoff(f"no reachable replica known for range {loc.id}")
            return None
        request.context.CopyFrom(loc.context(self._pd.cluster_id))
        on_sent = None
        if write is not None:
            request.context.session.CopyFrom(self._session(write))
            if write.ambiguous:
                self.ambiguous_retries += 1

            def on_sent() -> None:
                write.in_flight = True

        try:
            response = await conn.request(kvrpc_pb2.Request(**{kind: request}), on_sent)
        except (StoreUnreachable, TimeoutError) as exc:
            why = str(exc) if isinstance(exc, StoreUnreachable) else f"store {store_id}: no answer"
            if write is not None:
                sent = exc.sent if isinstance(exc, StoreUnreachable) else write.in_flight
                write.ambiguous |= sent
                write.in_flight = False
            self._down[store_id] = time.monotonic()
            self._addresses.pop(store_id, None)  # it may come back elsewhere: ask PD again
            self._cache.invalidate(loc.id)
            await op.backoff(why)
            return None
        op.reached = True
        if self._down:
            self._down.pop(store_id, None)
        body = getattr(response, kind)
        if write is not None:
            write.in_flight = False
        if not body.HasField("error"):
            self._cache.set_leader(loc.id, store_id)
            if write is not None:
                write.done = True
            return body
        await self._on_error(op, loc, store_id, body.error, write)
        return None

    async def _on_error(self, op: _Op, loc: CachedRange, store_id: int, error: kvrpc_pb2.Error,
                        write: _Write | None) -> None:
        """Acts on a store's error: updates the cache, backs off if waiting helps, or raises."""
        kind = error.WhichOneof("kind")
        why = f"store {store_id}: {kind} {error.message}"
        if kind == "not_leader":
            hint = error.not_leader
            if hint.HasField("leader") and hint.leader.store_id and hint.leader.store_id != store_id:
                if hint.leader_address:
                    self._addresses[hint.leader.store_id] = hint.leader_address
                self._cache.set_leader(loc.id, hint.leader.store_id)
                # A live replica vouches for it; if it is still down, the next try finds out quickly.
                self._down.pop(hint.leader.store_id, None)
                if op.hop(why):
                    return
            else:
                self._cache.invalidate(loc.id)  # PD may know better by now
            await op.backoff(why)
        elif kind == "epoch_not_match":
            current = error.epoch_not_match.current_ranges
            self._cache.invalidate(loc.id)
            for descriptor in current:
                self._cache.insert(descriptor, store_id if store_id in _stores(descriptor) else None)
            if not current or not op.hop(why):
                await op.backoff(why)
        elif kind in ("range_not_found", "key_not_in_range"):
            self._cache.invalidate(loc.id)
            await op.backoff(why)
        elif kind == "server_busy":
            await op.backoff(why, at_least=error.server_busy.backoff_ms / 1000)
        elif kind == "max_ts_not_synced":  # a new leader learns a TSO stamp before it takes async commits
            await op.backoff(why, at_least=error.max_ts_not_synced.backoff_ms / 1000)
        elif kind in ("stale_command", "timeout"):
            if write is not None:
                write.ambiguous = True  # it may still apply: the retry's session header says so
            op.retry(why)
        elif kind == "session_expired":
            raise UncertainResultError(f"{op.name}: an earlier attempt may have applied, and the range no "
                                       f"longer knows session {self.session_id:016x} to tell ({why})")
        elif kind == "invalid_argument":
            raise InvalidArgumentError(error.message)
        elif kind == "permission_denied":
            raise PermissionDeniedError(error.message)  # _run names the call
        elif kind == "wrong_cluster":
            raise ClusterMismatchError(f"store {store_id} is in cluster {error.wrong_cluster.cluster_id}, "
                                       f"PD's is {self._pd.cluster_id}: {error.message}")
        else:
            raise KvdbError(f"{op.name}: {why}")


def _stores(descriptor: metapb_pb2.RangeDescriptor) -> set[int]:
    return {p.store_id for p in descriptor.peers}


async def _all(coros: Iterable[Coroutine[Any, Any, T]]) -> list[T]:
    """Runs ``coros`` concurrently; the first failure cancels the rest and is raised as itself."""
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(c) for c in coros]
    except BaseExceptionGroup as eg:
        raise eg.exceptions[0] from None
    return [t.result() for t in tasks]


async def connect(endpoints: str | list[str], timeout: float = DEFAULT_TIMEOUT,
                  tls: TlsFiles | None = None) -> AsyncClient:
    """A client connected to PD at ``endpoints`` (a comma-separated string or a list); ``tls``
    None takes the files named by KVDB_CA, KVDB_CERT and KVDB_KEY, if set (else plaintext)."""
    return await AsyncClient(endpoints, timeout, tls).connect()

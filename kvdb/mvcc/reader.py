"""Reads of the transactional key space (docs/mvcc.md): locks, write records, values at a timestamp.

Works over anything with the engine's ``get`` and ``scan`` (``kvdb.storage.engine.Engine``). A
key's versions are adjacent in the ``write`` column family, newest first (``kvdb.mvcc.keys``), so
"the newest version at or below ts" is one bounded scan starting at ``version_key(key, ts)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from kvdb.mvcc import keys
from kvdb.pb import mvccpb_pb2
from kvdb.storage.engine import CF_LOCK, CF_WRITE, iter_in_chunks

_PUT = mvccpb_pb2.Write.PUT
_DELETE = mvccpb_pb2.Write.DELETE
_ROLLBACK = mvccpb_pb2.Write.ROLLBACK
_parse_lock = mvccpb_pb2.Lock.FromString
_parse_write = mvccpb_pb2.Write.FromString

_FIRST_CHUNK = 4
"""Records read by a first scan (then 16, 64, 256): most point reads stop at the newest one or
two versions, and a scan with a small limit needs few."""
_MAX_CHUNK = 256
_SEEK_AFTER = 8
"""Records of one key a scan steps over before it seeks past the rest."""


class ReadableEngine(Protocol):
    def get(self, cf: str, key: bytes) -> bytes | None: ...

    def scan(
        self, cf: str, start: bytes, end: bytes | None, limit: int, reverse: bool = False
    ) -> list[tuple[bytes, bytes]]: ...


@dataclass(frozen=True, slots=True)
class TxnStatus:
    """A transaction's fate as one key's write records tell it (no lock considered)."""

    committed_ts: int = 0
    """> 0: committed at this timestamp."""
    rolled_back: bool = False


UNKNOWN = TxnStatus()
ROLLED_BACK = TxnStatus(rolled_back=True)


def is_rollback_of(ts: int, write: mvccpb_pb2.Write, start_ts: int) -> bool:
    """Whether the record at ``ts`` says the transaction started at ``start_ts`` was rolled back:
    its own rollback record, or another transaction's commit record it was folded into."""
    return ts == start_ts and (
        (write.kind == _ROLLBACK and write.start_ts == start_ts) or write.has_overlapped_rollback
    )


class MvccReader:
    __slots__ = ("_engine",)

    def __init__(self, engine: ReadableEngine) -> None:
        self._engine = engine

    def load_lock(self, key: bytes) -> mvccpb_pb2.Lock | None:
        raw = self._engine.get(CF_LOCK, key)
        return None if raw is None else _parse_lock(raw)

    def load_write(self, key: bytes, ts: int) -> mvccpb_pb2.Write | None:
        """The record at exactly ``ts`` (a commit at commit_ts ``ts`` or a rollback of the txn
        started at ``ts``)."""
        raw = self._engine.get(CF_WRITE, keys.version_key(key, ts))
        return None if raw is None else _parse_write(raw)

    def versions(
        self, key: bytes, newest_ts: int = keys.MAX_TS, oldest_ts: int = 0
    ) -> Iterator[tuple[int, mvccpb_pb2.Write]]:
        """``key``'s records with ``oldest_ts <= ts <= newest_ts``, newest first, read in growing chunks."""
        start = keys.version_key(key, newest_ts)
        end = keys.version_key(key, oldest_ts) + b"\x00"
        chunk = _FIRST_CHUNK
        while True:
            pairs = self._engine.scan(CF_WRITE, start, end, chunk)
            for vkey, raw in pairs:
                yield keys.version_ts(vkey), _parse_write(raw)
            if len(pairs) < chunk:
                return
            start = pairs[-1][0] + b"\x00"
            chunk = min(chunk * 4, _MAX_CHUNK)

    def seek_write(self, key: bytes, ts: int) -> tuple[int, mvccpb_pb2.Write] | None:
        """The newest record with commit_ts <= ``ts``, of any kind."""
        pairs = self._engine.scan(CF_WRITE, keys.version_key(key, ts), keys.versions_of(key)[1], 1)
        if not pairs:
            return None
        vkey, raw = pairs[0]
        return keys.version_ts(vkey), _parse_write(raw)

    def get_value(self, key: bytes, ts: int) -> bytes | None:
        """The value a snapshot at ``ts`` sees (locks not considered): the newest PUT or DELETE
        at or below ``ts``; LOCK and ROLLBACK records say nothing about the value."""
        for _, write in self.versions(key, ts):
            if write.kind == _PUT:
                return write.value
            if write.kind == _DELETE:
                return None
        return None

    def txn_status(self, key: bytes, start_ts: int) -> TxnStatus:
        """What ``key``'s records say about the transaction started at ``start_ts``.

        Its commit record lies above ``start_ts``, its rollback exactly at it, so only the
        records at or above ``start_ts`` are read.
        """
        for ts, write in self.versions(key, keys.MAX_TS, start_ts):
            if write.start_ts == start_ts and write.kind != _ROLLBACK:
                return TxnStatus(committed_ts=ts)
            if is_rollback_of(ts, write, start_ts):
                return ROLLED_BACK
        return UNKNOWN

    def scan_values(self, start: bytes, end: bytes, ts: int, limit: int) -> list[tuple[bytes, bytes]]:
        """(user key, value) of each key in [start, end) with a value at ``ts``, in key order,
        at most ``limit`` of them (``limit <= 0``: all).

        Walks the records in key order, parsing only the one that answers for each key. After
        stepping over ``_SEEK_AFTER`` records of one key (versions above ``ts``, or below its
        answer) it seeks past them instead, and reads small chunks again: a hot key may hold
        thousands of versions until GC."""
        out: list[tuple[bytes, bytes]] = []
        pos, vend = keys.user_bounds_to_versions(start, end)
        done = b""  # the escaped key whose answer is known (escaped keys are never empty)
        skipping, skipped = b"", 0  # the escaped key being stepped over, and how many so far
        chunk = _FIRST_CHUNK
        while True:
            pairs = self._engine.scan(CF_WRITE, pos, vend, chunk)
            seek_to = None
            for vkey, raw in pairs:
                prefix = vkey[: -keys.TS_SIZE]
                if prefix == done or keys.version_ts(vkey) > ts:
                    if prefix != skipping:
                        skipping, skipped = prefix, 0
                    skipped += 1
                    if skipped > _SEEK_AFTER:
                        skipping = b""
                        if prefix == done:  # past every version of the key (as keys.versions_of)
                            seek_to = prefix + b"\xff" * (keys.TS_SIZE + 1)
                        else:
                            seek_to = keys.version_key(keys.unescape(prefix), ts)
                        break
                    continue
                write = _parse_write(raw)
                kind = write.kind
                if kind == _PUT:
                    out.append((keys.unescape(prefix), write.value))
                    if len(out) == limit:
                        return out
                elif kind != _DELETE:
                    continue
                done = prefix
            if seek_to is not None:
                pos, chunk = seek_to, _FIRST_CHUNK
            elif len(pairs) < chunk:
                return out
            else:
                pos, chunk = pairs[-1][0] + b"\x00", min(chunk * 4, _MAX_CHUNK)

    def scan_locks(
        self,
        start: bytes,
        end: bytes,
        limit: int,
        predicate: Callable[[mvccpb_pb2.Lock], bool] | None = None,
    ) -> list[tuple[bytes, mvccpb_pb2.Lock]]:
        """Locks on keys in [start, end) that ``predicate`` accepts, in key order, at most
        ``limit`` (``limit <= 0``: all)."""
        out: list[tuple[bytes, mvccpb_pb2.Lock]] = []
        for key, raw in iter_in_chunks(self._engine.scan, CF_LOCK, start, end):
            lock = _parse_lock(raw)
            if predicate is None or predicate(lock):
                out.append((key, lock))
                if len(out) == limit:
                    break
        return out

    def scan_versions(self, start: bytes, end: bytes) -> Iterator[tuple[bytes, int, mvccpb_pb2.Write]]:
        """(escaped user key, ts, record) of every record of user keys in [start, end), key
        order, newest version first."""
        vstart, vend = keys.user_bounds_to_versions(start, end)
        for vkey, raw in iter_in_chunks(self._engine.scan, CF_WRITE, vstart, vend):
            yield vkey[: -keys.TS_SIZE], keys.version_ts(vkey), _parse_write(raw)

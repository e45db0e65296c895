"""The transactional commands, evaluated when a Raft entry is applied (docs/mvcc.md, "Commands").

Every replica applies the same entries to the same data, so ``apply_txn`` must be a function of
the data and the command only (no clock, no randomness, no store state). A command decides
everything from the reader first and stages its writes last: when it answers with an error it
has staged nothing, and it never reads its own staged writes (the reader cannot see them).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from google.protobuf.message import Message

from kvdb.mvcc import keys
from kvdb.mvcc.reader import MvccReader, is_rollback_of
from kvdb.mvcc.records import below_safe_point, lock_expired, lock_info
from kvdb.mvcc.writer import MvccWriter
from kvdb.pb import kvrpc_pb2, metapb_pb2, mvccpb_pb2, raft_serverpb_pb2
from kvdb.store import keyspace

Write = mvccpb_pb2.Write
_ROLLBACK = Write.ROLLBACK
_OP_PUT = kvrpc_pb2.PUT
_Cmd = raft_serverpb_pb2.TxnCommand
_Desc = metapb_pb2.RangeDescriptor
_KIND_OF_OP = {kvrpc_pb2.PUT: Write.PUT, kvrpc_pb2.DELETE: Write.DELETE, kvrpc_pb2.LOCK: Write.LOCK}


def apply_txn(
    cmd: raft_serverpb_pb2.TxnCommand,
    reader: MvccReader,
    writer: MvccWriter,
    desc: metapb_pb2.RangeDescriptor,
    safe_point: int = 0,
) -> Message:
    """Evaluate ``cmd`` over the data ``reader`` sees, staging its writes in ``writer``, and
    return the kvrpc response to send (a ``GcCommand`` answers an empty ``ResolveLockResponse``).

    ``safe_point`` is the highest GC safe point the range's data was collected at (replicated
    state: ``ApplyState.gc_safe_point``). A prewrite at or below it is refused: GC may have
    dropped the record it would conflict with (a DELETE, a newer version's predecessor) or the
    rollback record that fences a late prewrite of a rolled-back transaction. The store refuses
    those before proposing too, but only by what it knew then (a new leader may not have heard
    of the safe point yet, a GC may apply while the prewrite waits for its latches)."""
    kind = cmd.WhichOneof("cmd")
    if kind is None:
        raise ValueError("TxnCommand without a command")
    if kind == "prewrite" and cmd.prewrite.start_ts <= safe_point:
        return kvrpc_pb2.PrewriteResponse(errors=[below_safe_point(cmd.prewrite.start_ts, safe_point)])
    return _COMMANDS[kind](cmd, reader, writer, desc)


def command_keys(cmd: raft_serverpb_pb2.TxnCommand) -> Sequence[bytes] | None:
    """The user keys whose records ``cmd`` reads and writes, or None when it walks a range
    (resolve_lock by transaction, gc): the store flushes its apply batch before a command only
    when the batch holds a write to one of these (``Store._apply_txn``)."""
    kind = cmd.WhichOneof("cmd")
    if kind == "prewrite":
        return [m.key for m in cmd.prewrite.mutations]
    if kind == "check_txn_status":
        return [cmd.check_txn_status.primary_key]
    if kind == "txn_heart_beat":
        return [cmd.txn_heart_beat.primary_lock]
    if kind in ("commit", "rollback", "check_secondary_locks"):
        return getattr(cmd, kind).keys
    if kind == "resolve_lock" and cmd.resolve_lock.keys:
        return cmd.resolve_lock.keys
    return None


# ------------------------------------------------------------------------------- shared steps


def _put_commit_record(
    reader: MvccReader, writer: MvccWriter, key: bytes, commit_ts: int, write: mvccpb_pb2.Write
) -> None:
    """Write a commit record at ``commit_ts``; a rollback record already there (of the txn
    started at ``commit_ts``) is folded into it as ``has_overlapped_rollback``."""
    existing = reader.load_write(key, commit_ts)
    if existing is not None and existing.kind == _ROLLBACK:
        write.has_overlapped_rollback = True
    writer.put_write(key, commit_ts, write)


def _commit_lock(
    reader: MvccReader, writer: MvccWriter, key: bytes, lock: mvccpb_pb2.Lock, commit_ts: int
) -> None:
    write = Write(kind=_KIND_OF_OP[lock.op], start_ts=lock.start_ts)
    if lock.op == _OP_PUT:
        write.value = lock.value
    _put_commit_record(reader, writer, key, commit_ts, write)
    writer.delete_lock(key)


def _rollback_key(reader: MvccReader, writer: MvccWriter, key: bytes, start_ts: int) -> None:
    """Leave a record at ``start_ts`` saying the txn started then is rolled back on ``key`` (so
    its prewrite can never lock the key later): a rollback record, or, when another txn's commit
    record already holds that key, the commit record marked ``has_overlapped_rollback``."""
    existing = reader.load_write(key, start_ts)
    if existing is None:
        writer.put_write(key, start_ts, Write(kind=_ROLLBACK, start_ts=start_ts))
    elif existing.kind != _ROLLBACK and not existing.has_overlapped_rollback:
        existing.has_overlapped_rollback = True
        writer.put_write(key, start_ts, existing)


def _too_early(commit_ts: int, lock: mvccpb_pb2.Lock) -> kvrpc_pb2.KeyError:
    return kvrpc_pb2.KeyError(
        message=f"commit_ts {commit_ts} is below the lock's min_commit_ts {lock.min_commit_ts}"
    )


def _lock_not_found(start_ts: int, key: bytes) -> kvrpc_pb2.KeyError:
    return kvrpc_pb2.KeyError(lock_not_found=kvrpc_pb2.TxnLockNotFound(start_ts=start_ts, key=key))


def _aborted(start_ts: int, key: bytes) -> kvrpc_pb2.KeyError:
    return kvrpc_pb2.KeyError(aborted=kvrpc_pb2.TxnAborted(start_ts=start_ts, key=key))


# ------------------------------------------------------------------------------------ prewrite


def _check_versions(
    reader: MvccReader, req: kvrpc_pb2.PrewriteRequest, key: bytes
) -> tuple[kvrpc_pb2.KeyError | None, int]:
    """(error, commit_ts) from ``key``'s records at or above start_ts S: S committed the key
    already → (None, its commit_ts), a late retry; S was rolled back → aborted; another txn
    committed after S → conflict (the newest such record). A commit at exactly S is in S's
    snapshot (a read at S sees commit_ts <= S), so it is no conflict: an async-commit/1PC
    commit_ts (max ts + 1) can equal the next TSO stamp. Rollbacks of other txns do not
    conflict: they wrote no data."""
    start_ts = req.start_ts
    conflict: tuple[int, int] | None = None
    for ts, write in reader.versions(key, keys.MAX_TS, start_ts):
        if write.start_ts == start_ts and write.kind != _ROLLBACK:
            return None, ts
        if is_rollback_of(ts, write, start_ts):
            return _aborted(start_ts, key), 0
        if conflict is None and write.kind != _ROLLBACK and ts > start_ts:
            conflict = (write.start_ts, ts)
    if conflict is None:
        return None, 0
    return (
        kvrpc_pb2.KeyError(
            conflict=kvrpc_pb2.WriteConflict(
                start_ts=start_ts,
                conflict_start_ts=conflict[0],
                conflict_commit_ts=conflict[1],
                key=key,
                primary=req.primary_lock,
            )
        ),
        0,
    )


def _prewrite(cmd: _Cmd, reader: MvccReader, writer: MvccWriter, desc: _Desc) -> kvrpc_pb2.PrewriteResponse:
    req = cmd.prewrite
    start_ts = req.start_ts
    errors: list[kvrpc_pb2.KeyError] = []
    todo: list[kvrpc_pb2.TxnMutation] = []
    known_min_commit = 0  # the highest min_commit_ts / commit_ts among keys S already holds
    own_locks = committed = False
    for mutation in req.mutations:
        key = mutation.key
        lock = reader.load_lock(key)
        if lock is not None:
            if lock.start_ts == start_ts:  # a retry: keep the lock as it is
                own_locks = True
                known_min_commit = max(known_min_commit, lock.min_commit_ts)
            else:
                errors.append(kvrpc_pb2.KeyError(locked=lock_info(key, lock)))
            continue
        error, commit_ts = _check_versions(reader, req, key)
        if error is not None:
            errors.append(error)
        elif commit_ts:
            committed = True
            known_min_commit = max(known_min_commit, commit_ts)
        else:
            todo.append(mutation)
    if errors:
        return kvrpc_pb2.PrewriteResponse(errors=errors)

    # 1PC only when no earlier attempt left locks or commit records: a txn has one commit_ts.
    one_pc = req.try_one_pc and not own_locks
    if not todo:  # every key was done by an earlier attempt of this prewrite
        # Committed keys and no lock of S: an earlier 1PC attempt committed them (a 2PC or async
        # commit never commits before its prewrites are answered), so answer its commit_ts even
        # if this retry, re-sent per range after a split, no longer asks for 1PC.
        return kvrpc_pb2.PrewriteResponse(
            min_commit_ts=known_min_commit if req.use_async_commit else 0,
            one_pc_commit_ts=known_min_commit if committed and not own_locks else 0,
        )
    one_pc = one_pc and not committed
    min_ts = max(cmd.max_read_ts, start_ts) + 1
    if one_pc:
        for mutation in todo:
            write = Write(kind=_KIND_OF_OP[mutation.op], start_ts=start_ts)
            if mutation.op == _OP_PUT:
                write.value = mutation.value
            _put_commit_record(reader, writer, mutation.key, min_ts, write)
        return kvrpc_pb2.PrewriteResponse(one_pc_commit_ts=min_ts)

    min_commit_ts = min_ts if req.use_async_commit else 0
    for mutation in todo:
        lock = mvccpb_pb2.Lock(
            op=mutation.op,
            primary=req.primary_lock,
            start_ts=start_ts,
            ttl_ms=req.lock_ttl_ms,
            txn_size=req.txn_size,
            use_async_commit=req.use_async_commit,
            min_commit_ts=min_commit_ts,
        )
        if mutation.op == _OP_PUT:
            lock.value = mutation.value
        if req.use_async_commit and mutation.key == req.primary_lock:
            lock.secondaries.extend(req.secondaries)
        writer.put_lock(mutation.key, lock)
    return kvrpc_pb2.PrewriteResponse(
        min_commit_ts=max(min_commit_ts, known_min_commit) if req.use_async_commit else 0
    )


# -------------------------------------------------------------------------- commit, rollback


def _commit(cmd: _Cmd, reader: MvccReader, writer: MvccWriter, desc: _Desc) -> kvrpc_pb2.CommitResponse:
    req = cmd.commit
    start_ts, commit_ts = req.start_ts, req.commit_ts
    staged: list[tuple[bytes, mvccpb_pb2.Lock]] = []
    for key in req.keys:
        lock = reader.load_lock(key)
        if lock is not None and lock.start_ts == start_ts:
            if lock.min_commit_ts > commit_ts:
                return kvrpc_pb2.CommitResponse(key_error=_too_early(commit_ts, lock))
            staged.append((key, lock))
            continue
        status = reader.txn_status(key, start_ts)
        if status.committed_ts:
            continue  # a retry of a commit that was applied
        if status.rolled_back:
            return kvrpc_pb2.CommitResponse(key_error=_aborted(start_ts, key))
        return kvrpc_pb2.CommitResponse(key_error=_lock_not_found(start_ts, key))
    for key, lock in staged:
        _commit_lock(reader, writer, key, lock, commit_ts)
    return kvrpc_pb2.CommitResponse()


def _rollback(
    cmd: _Cmd, reader: MvccReader, writer: MvccWriter, desc: _Desc
) -> kvrpc_pb2.BatchRollbackResponse:
    req = cmd.rollback
    start_ts = req.start_ts
    staged: list[tuple[bytes, bool]] = []  # (key, whether S's lock is on it)
    for key in req.keys:
        lock = reader.load_lock(key)
        if lock is not None and lock.start_ts == start_ts:
            staged.append((key, True))
            continue
        status = reader.txn_status(key, start_ts)
        if status.committed_ts:
            return kvrpc_pb2.BatchRollbackResponse(
                key_error=kvrpc_pb2.KeyError(message=f"already committed at {status.committed_ts}")
            )
        if not status.rolled_back:
            staged.append((key, False))
    for key, locked in staged:
        if locked:
            writer.delete_lock(key)
        _rollback_key(reader, writer, key, start_ts)
    return kvrpc_pb2.BatchRollbackResponse()


# ------------------------------------------------------------------------------- resolution


def _check_txn_status(
    cmd: _Cmd, reader: MvccReader, writer: MvccWriter, desc: _Desc
) -> kvrpc_pb2.CheckTxnStatusResponse:
    """The primary's state. An expired lock is rolled back, except an async-commit one: that
    txn may already be committed (its commit point is "every prewrite succeeded", which only
    the secondaries can tell), so it is returned for the resolver to check them."""
    req = cmd.check_txn_status
    primary, start_ts = req.primary_key, req.lock_ts
    lock = reader.load_lock(primary)
    if lock is not None and lock.start_ts == start_ts:
        if not lock.use_async_commit and lock_expired(lock, req.current_ts):
            writer.delete_lock(primary)
            _rollback_key(reader, writer, primary, start_ts)
            return kvrpc_pb2.CheckTxnStatusResponse(action=kvrpc_pb2.TTL_EXPIRE_ROLLBACK)
        return kvrpc_pb2.CheckTxnStatusResponse(lock_ttl_ms=lock.ttl_ms, lock=lock_info(primary, lock))
    status = reader.txn_status(primary, start_ts)
    if status.committed_ts:
        return kvrpc_pb2.CheckTxnStatusResponse(commit_ts=status.committed_ts)
    if status.rolled_back:
        return kvrpc_pb2.CheckTxnStatusResponse()
    if req.rollback_if_not_exist:
        _rollback_key(reader, writer, primary, start_ts)
        return kvrpc_pb2.CheckTxnStatusResponse(action=kvrpc_pb2.LOCK_NOT_EXIST_ROLLBACK)
    return kvrpc_pb2.CheckTxnStatusResponse(key_error=_lock_not_found(start_ts, primary))


def _check_secondary_locks(
    cmd: _Cmd, reader: MvccReader, writer: MvccWriter, desc: _Desc
) -> kvrpc_pb2.CheckSecondaryLocksResponse:
    req = cmd.check_secondary_locks
    start_ts = req.start_ts
    locks: list[kvrpc_pb2.LockInfo] = []
    for key in req.keys:
        lock = reader.load_lock(key)
        if lock is not None and lock.start_ts == start_ts:
            locks.append(lock_info(key, lock))
            continue
        status = reader.txn_status(key, start_ts)
        if status.committed_ts:
            return kvrpc_pb2.CheckSecondaryLocksResponse(commit_ts=status.committed_ts)
        if not status.rolled_back:  # never prewritten: make sure it never will be
            _rollback_key(reader, writer, key, start_ts)
        return kvrpc_pb2.CheckSecondaryLocksResponse(rolled_back=True)
    return kvrpc_pb2.CheckSecondaryLocksResponse(locks=locks)


def _resolve_lock(
    cmd: _Cmd, reader: MvccReader, writer: MvccWriter, desc: _Desc
) -> kvrpc_pb2.ResolveLockResponse:
    req = cmd.resolve_lock
    if req.keys:
        commit_ts_of = {req.start_ts: req.commit_ts}
        found = []
        for key in req.keys:
            lock = reader.load_lock(key)
            if lock is not None and lock.start_ts == req.start_ts:
                found.append((key, lock))
    else:
        commit_ts_of = {info.start_ts: info.commit_ts for info in req.txn_infos} or {
            req.start_ts: req.commit_ts
        }
        found = reader.scan_locks(
            desc.start_key, keyspace.data_end(desc), 0, lambda lock: lock.start_ts in commit_ts_of
        )
    for _key, lock in found:
        commit_ts = commit_ts_of[lock.start_ts]
        if commit_ts and lock.min_commit_ts > commit_ts:
            return kvrpc_pb2.ResolveLockResponse(key_error=_too_early(commit_ts, lock))
    for key, lock in found:
        commit_ts = commit_ts_of[lock.start_ts]
        if commit_ts:
            _commit_lock(reader, writer, key, lock, commit_ts)
        else:
            writer.delete_lock(key)
            _rollback_key(reader, writer, key, lock.start_ts)
    return kvrpc_pb2.ResolveLockResponse()


def _txn_heart_beat(
    cmd: _Cmd, reader: MvccReader, writer: MvccWriter, desc: _Desc
) -> kvrpc_pb2.TxnHeartBeatResponse:
    req = cmd.txn_heart_beat
    lock = reader.load_lock(req.primary_lock)
    if lock is None or lock.start_ts != req.start_ts:
        return kvrpc_pb2.TxnHeartBeatResponse(key_error=_lock_not_found(req.start_ts, req.primary_lock))
    if req.advise_lock_ttl_ms > lock.ttl_ms:
        lock.ttl_ms = req.advise_lock_ttl_ms
        writer.put_lock(req.primary_lock, lock)
    return kvrpc_pb2.TxnHeartBeatResponse(lock_ttl_ms=lock.ttl_ms)


# ------------------------------------------------------------------------------------------ gc


def _gc(cmd: _Cmd, reader: MvccReader, writer: MvccWriter, desc: _Desc) -> kvrpc_pb2.ResolveLockResponse:
    """Drop what no read at or above the safe point SP can see: per user key, every record at or
    below SP except the newest PUT among them (when no DELETE is newer). Rollback and LOCK records
    at or below SP go too: prewrites with start_ts <= SP are refused before they are proposed."""
    req = cmd.gc
    safe_point = req.safe_point
    bounds = keyspace.clip(desc, req.start_key, req.end_key)
    if bounds is None:
        return kvrpc_pb2.ResolveLockResponse()
    current = b""
    user_key = b""
    decided = False  # the current key's value at SP is known (its newest PUT/DELETE <= SP seen)
    for prefix, ts, write in reader.scan_versions(*bounds):
        if prefix != current:
            current, user_key, decided = prefix, keys.unescape(prefix), False
        if ts > safe_point:
            continue
        if not decided and write.kind == Write.PUT:
            decided = True
            continue
        if write.kind == Write.DELETE:
            decided = True
        writer.delete_write(user_key, ts)
    return kvrpc_pb2.ResolveLockResponse()


_COMMANDS: dict[str, Callable[[_Cmd, MvccReader, MvccWriter, _Desc], Message]] = {
    "prewrite": _prewrite,
    "commit": _commit,
    "rollback": _rollback,
    "check_txn_status": _check_txn_status,
    "check_secondary_locks": _check_secondary_locks,
    "resolve_lock": _resolve_lock,
    "txn_heart_beat": _txn_heart_beat,
    "gc": _gc,
}

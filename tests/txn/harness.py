"""One range's transactional data over a ``MemEngine``, driven through ``apply_txn`` exactly as a
store applies committed entries: each command sees every earlier command's writes and its own
staged writes land in one batch."""

from __future__ import annotations

from collections.abc import Iterable

from google.protobuf.message import Message

from kvdb.mvcc import keys
from kvdb.mvcc.reader import MvccReader
from kvdb.mvcc.writer import MvccWriter
from kvdb.pb import kvrpc_pb2, metapb_pb2, mvccpb_pb2, raft_serverpb_pb2
from kvdb.storage.engine import CF_LOCK, CF_WRITE
from kvdb.storage.memory import MemEngine
from kvdb.txn import reads
from kvdb.txn.actions import apply_txn

PUT, DELETE, LOCK = kvrpc_pb2.PUT, kvrpc_pb2.DELETE, kvrpc_pb2.LOCK
W = mvccpb_pb2.Write


def ts(physical_ms: int, logical: int = 0) -> int:
    return physical_ms << 18 | logical


class Db:
    def __init__(self, desc: metapb_pb2.RangeDescriptor | None = None) -> None:
        self.engine = MemEngine()
        self.reader = MvccReader(self.engine)
        self.desc = desc or metapb_pb2.RangeDescriptor(id=1)
        self.max_read_ts = 0

    def apply(self, **kw: Message) -> Message:
        cmd = raft_serverpb_pb2.TxnCommand(max_read_ts=self.max_read_ts, **kw)
        batch = self.engine.batch()
        resp = apply_txn(cmd, self.reader, MvccWriter(batch), self.desc)
        self.engine.write(batch, sync=False)
        return resp

    # ------------------------------------------------------------------- commands
    def prewrite(
        self,
        start_ts: int,
        mutations: Iterable[tuple],
        primary: bytes | None = None,
        ttl: int = 3000,
        async_commit: bool = False,
        secondaries: Iterable[bytes] = (),
        one_pc: bool = False,
    ) -> kvrpc_pb2.PrewriteResponse:
        muts = [
            kvrpc_pb2.TxnMutation(op=m[0], key=m[1], value=m[2] if len(m) > 2 else b"") for m in mutations
        ]
        req = kvrpc_pb2.PrewriteRequest(
            mutations=muts,
            primary_lock=primary if primary is not None else muts[0].key,
            start_ts=start_ts,
            lock_ttl_ms=ttl,
            txn_size=len(muts),
            use_async_commit=async_commit,
            secondaries=list(secondaries),
            try_one_pc=one_pc,
        )
        return self.apply(prewrite=req)

    def commit(self, start_ts: int, keys_: Iterable[bytes], commit_ts: int) -> kvrpc_pb2.CommitResponse:
        return self.apply(
            commit=kvrpc_pb2.CommitRequest(start_ts=start_ts, keys=list(keys_), commit_ts=commit_ts)
        )

    def rollback(self, start_ts: int, keys_: Iterable[bytes]) -> kvrpc_pb2.BatchRollbackResponse:
        return self.apply(rollback=kvrpc_pb2.BatchRollbackRequest(start_ts=start_ts, keys=list(keys_)))

    def check_txn_status(
        self, primary: bytes, lock_ts: int, current_ts: int, rollback_if_not_exist: bool = False
    ) -> kvrpc_pb2.CheckTxnStatusResponse:
        return self.apply(
            check_txn_status=kvrpc_pb2.CheckTxnStatusRequest(
                primary_key=primary,
                lock_ts=lock_ts,
                current_ts=current_ts,
                rollback_if_not_exist=rollback_if_not_exist,
            )
        )

    def check_secondary_locks(
        self, keys_: Iterable[bytes], start_ts: int
    ) -> kvrpc_pb2.CheckSecondaryLocksResponse:
        return self.apply(
            check_secondary_locks=kvrpc_pb2.CheckSecondaryLocksRequest(keys=list(keys_), start_ts=start_ts)
        )

    def resolve_lock(
        self,
        start_ts: int = 0,
        commit_ts: int = 0,
        keys_: Iterable[bytes] = (),
        txn_infos: Iterable[tuple[int, int]] = (),
    ) -> kvrpc_pb2.ResolveLockResponse:
        return self.apply(
            resolve_lock=kvrpc_pb2.ResolveLockRequest(
                start_ts=start_ts,
                commit_ts=commit_ts,
                keys=list(keys_),
                txn_infos=[kvrpc_pb2.TxnInfo(start_ts=s, commit_ts=c) for s, c in txn_infos],
            )
        )

    def heart_beat(self, primary: bytes, start_ts: int, advise_ttl: int) -> kvrpc_pb2.TxnHeartBeatResponse:
        return self.apply(
            txn_heart_beat=kvrpc_pb2.TxnHeartBeatRequest(
                primary_lock=primary, start_ts=start_ts, advise_lock_ttl_ms=advise_ttl
            )
        )

    def gc(self, safe_point: int, start: bytes = b"", end: bytes = b"") -> Message:
        return self.apply(gc=raft_serverpb_pb2.GcCommand(safe_point=safe_point, start_key=start, end_key=end))

    # ---------------------------------------------------------------------- reads
    def get(self, key: bytes, read_ts: int) -> kvrpc_pb2.TxnGetResponse:
        return reads.txn_get(self.reader, key, read_ts)

    def value(self, key: bytes, read_ts: int) -> bytes | None:
        """The value at ``read_ts``; fails the test if the read met a lock."""
        resp = self.get(key, read_ts)
        assert not resp.HasField("key_error"), resp
        return None if resp.not_found else resp.value

    def put_committed(self, key: bytes, value: bytes, start_ts: int, commit_ts: int) -> None:
        """A committed PUT through prewrite + commit."""
        assert not self.prewrite(start_ts, [(PUT, key, value)]).errors
        assert not self.commit(start_ts, [key], commit_ts).HasField("key_error")

    # ---------------------------------------------------------------- inspection
    def lock(self, key: bytes) -> mvccpb_pb2.Lock | None:
        return self.reader.load_lock(key)

    def records(self, key: bytes) -> list[tuple[int, mvccpb_pb2.Write]]:
        """Every record of ``key``, newest first."""
        return list(self.reader.versions(key))

    def raw_write_cf(self) -> list[tuple[bytes, bytes]]:
        return self.engine.scan(CF_WRITE, b"", None, 0)

    def raw_lock_cf(self) -> list[tuple[bytes, bytes]]:
        return self.engine.scan(CF_LOCK, b"", None, 0)


def record_kinds(db: Db, key: bytes) -> list[tuple[int, int, int]]:
    """(ts, kind, start_ts) of ``key``'s records, newest first."""
    return [(t, w.kind, w.start_ts) for t, w in db.records(key)]


__all__ = ["Db", "keys", "ts", "record_kinds", "PUT", "DELETE", "LOCK", "W"]

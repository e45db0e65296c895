"""Stages MVCC records into a write batch (the store's apply batch): no reads, no encoding choices
beyond ``kvdb.mvcc.keys``."""

from __future__ import annotations

from kvdb.mvcc import keys
from kvdb.pb import mvccpb_pb2
from kvdb.storage.engine import CF_LOCK, CF_WRITE, WriteBatch


class MvccWriter:
    """Puts and deletes of locks and write records, staged in ``batch``.

    What is staged here is not visible to an ``MvccReader`` of the engine until the batch is
    written; a command therefore decides everything from the reader first, then stages.
    """

    __slots__ = ("batch",)

    def __init__(self, batch: WriteBatch) -> None:
        self.batch = batch

    def put_lock(self, key: bytes, lock: mvccpb_pb2.Lock) -> None:
        self.batch.put(CF_LOCK, key, lock.SerializeToString())

    def delete_lock(self, key: bytes) -> None:
        self.batch.delete(CF_LOCK, key)

    def put_write(self, key: bytes, ts: int, write: mvccpb_pb2.Write) -> None:
        self.batch.put(CF_WRITE, keys.version_key(key, ts), write.SerializeToString())

    def delete_write(self, key: bytes, ts: int) -> None:
        self.batch.delete(CF_WRITE, keys.version_key(key, ts))

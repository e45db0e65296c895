"""Key bounds of ranges: membership tests and the exclusive end used for deletes and scans."""

from __future__ import annotations

from kvdb.mvcc import keys as mvcc_keys
from kvdb.pb import metapb_pb2
from kvdb.storage.engine import CF_DEFAULT, CF_LOCK, CF_WRITE, WriteBatch

DATA_CFS = (CF_DEFAULT, CF_LOCK, CF_WRITE)
"""The column families holding a range's data: raw pairs, transaction locks, MVCC versions."""

MAX_KEY_SIZE_LIMIT = 64 * 1024
"""No configuration may allow keys longer than this, so ``KEY_SPACE_END`` sorts after them all."""

KEY_SPACE_END = b"\xff" * (MAX_KEY_SIZE_LIMIT + 1)
"""An exclusive bound above every valid key: the end of a range whose ``end_key`` is empty."""


def contains(desc: metapb_pb2.RangeDescriptor, key: bytes) -> bool:
    return desc.start_key <= key and (not desc.end_key or key < desc.end_key)


def data_end(desc: metapb_pb2.RangeDescriptor) -> bytes:
    return desc.end_key or KEY_SPACE_END


def clip(desc: metapb_pb2.RangeDescriptor, start: bytes, end: bytes) -> tuple[bytes, bytes] | None:
    """[start, end) ∩ the range (an empty ``end`` is unbounded), or None when they do not overlap."""
    lo = max(start, desc.start_key)
    hi = min(end or KEY_SPACE_END, data_end(desc))
    return (lo, hi) if lo < hi else None


def data_bounds(desc: metapb_pb2.RangeDescriptor) -> list[tuple[str, bytes, bytes]]:
    """(column family, start, end) of every key the range owns, in ``DATA_CFS`` order: what
    deleting, snapshotting or sizing a range must cover. ``default`` and ``lock`` are keyed by
    user key; ``write`` by version key, whose range bounds are the escaped user-key bounds."""
    end = data_end(desc)
    return [(CF_DEFAULT, desc.start_key, end), (CF_LOCK, desc.start_key, end),
            (CF_WRITE, *mvcc_keys.version_bounds(desc))]


def delete_data(batch: WriteBatch, desc: metapb_pb2.RangeDescriptor) -> None:
    """Stage the deletion of every key the range owns, in every data column family."""
    for cf, start, end in data_bounds(desc):
        batch.delete_range(cf, start, end)

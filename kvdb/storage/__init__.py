"""Store-local persistence: the engine (RocksDB, or in memory for the simulator), the key layout
of the store's local state, and each range's Raft log on top of the engine."""

from kvdb.storage.engine import (
    ALL_CFS,
    CF_DEFAULT,
    CF_LOCK,
    CF_META,
    CF_RAFT,
    CF_WRITE,
    Engine,
    WriteBatch,
)
from kvdb.storage.memory import MemEngine
from kvdb.storage.raft_log import RaftLogStorage
from kvdb.storage.rocks import RocksEngine

__all__ = [
    "ALL_CFS",
    "CF_DEFAULT",
    "CF_LOCK",
    "CF_META",
    "CF_RAFT",
    "CF_WRITE",
    "Engine",
    "MemEngine",
    "RaftLogStorage",
    "RocksEngine",
    "WriteBatch",
]

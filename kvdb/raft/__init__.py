"""The Raft consensus core: pure and deterministic (no I/O, clocks, threads or asyncio).

See docs/raft-api.md for how an application drives it and docs/raft.md for the design.
"""

from kvdb.raft.config import Config
from kvdb.raft.errors import (
    CompactedError,
    ConfChangeError,
    ProposalDroppedError,
    RaftError,
    SnapshotOutOfDateError,
    SnapshotTemporarilyUnavailableError,
    StepError,
    StorageError,
    UnavailableError,
)
from kvdb.raft.rawnode import RawNode, Ready, Status
from kvdb.raft.storage import MemoryStorage, Storage
from kvdb.raft.types import (
    NONE,
    ConfChange,
    ConfChangeSingle,
    ConfChangeTransition,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    ReadState,
    Role,
    Snapshot,
    SnapshotMetadata,
    SoftState,
)

__all__ = [
    "NONE",
    "CompactedError",
    "Config",
    "ConfChange",
    "ConfChangeError",
    "ConfChangeSingle",
    "ConfChangeTransition",
    "ConfChangeType",
    "ConfState",
    "Entry",
    "EntryType",
    "HardState",
    "MemoryStorage",
    "Message",
    "MessageType",
    "ProposalDroppedError",
    "RaftError",
    "RawNode",
    "ReadState",
    "Ready",
    "Role",
    "Snapshot",
    "SnapshotMetadata",
    "SnapshotOutOfDateError",
    "SnapshotTemporarilyUnavailableError",
    "SoftState",
    "StepError",
    "Status",
    "Storage",
    "StorageError",
    "UnavailableError",
]

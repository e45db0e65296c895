"""Errors the core raises. Storage errors are part of the ``Storage`` contract."""


class RaftError(Exception):
    """Base class of every error raised by the Raft core."""


class ProposalDroppedError(RaftError):
    """A proposal was not appended: no leader known, a leader transfer is in flight, or limits."""


class StepError(RaftError):
    """A message that must not be stepped: a local-only type, or a response from an unknown peer."""


class ConfChangeError(RaftError):
    """A membership change that would leave the configuration invalid; nothing was changed."""


class FlowControlError(RaftError):
    """An append was accounted into a full in-flight window: a bug in the caller, never input."""


class StorageError(RaftError):
    """Base class of errors a ``Storage`` may raise."""


class CompactedError(StorageError):
    """The requested index is older than the first index still in the log."""


class UnavailableError(StorageError):
    """The requested index is newer than the last index in the log."""


class SnapshotOutOfDateError(StorageError):
    """A snapshot older than the one already held was offered."""


class SnapshotTemporarilyUnavailableError(StorageError):
    """The snapshot is being produced; ask again later."""

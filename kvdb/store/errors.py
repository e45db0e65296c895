"""Errors a store answers with, as exceptions inside the store and as ``kvrpc.Error`` on the wire.

Routing errors (not leader, epoch not match, range not found, key not in range, server busy,
stale command) are data the client acts on; the others say the request itself was wrong or
could not finish in time.
"""

from __future__ import annotations

from collections.abc import Sequence

from kvdb.pb import kvrpc_pb2, metapb_pb2


class StoreError(Exception):
    """Base of every error a store answers with; ``to_pb`` gives its wire form."""

    def to_pb(self) -> kvrpc_pb2.Error:
        err = kvrpc_pb2.Error(message=str(self))
        self._fill(err)
        return err

    def _fill(self, err: kvrpc_pb2.Error) -> None:
        raise NotImplementedError


class NotLeaderError(StoreError):
    def __init__(self, range_id: int, leader: metapb_pb2.Peer | None, leader_address: str = "") -> None:
        hint = f"peer {leader.id} on store {leader.store_id}" if leader is not None else "unknown"
        super().__init__(f"range {range_id}: not leader (leader: {hint})")
        self.range_id = range_id
        self.leader = leader
        self.leader_address = leader_address

    def _fill(self, err: kvrpc_pb2.Error) -> None:
        err.not_leader.range_id = self.range_id
        err.not_leader.leader_address = self.leader_address
        if self.leader is not None:
            err.not_leader.leader.CopyFrom(self.leader)


class EpochNotMatchError(StoreError):
    def __init__(self, message: str, current: Sequence[metapb_pb2.RangeDescriptor]) -> None:
        super().__init__(message)
        self.current = list(current)

    def _fill(self, err: kvrpc_pb2.Error) -> None:
        err.epoch_not_match.current_ranges.extend(self.current)


class RangeNotFoundError(StoreError):
    def __init__(self, range_id: int) -> None:
        super().__init__(f"range {range_id} not found on this store")
        self.range_id = range_id

    def _fill(self, err: kvrpc_pb2.Error) -> None:
        err.range_not_found.range_id = self.range_id


class KeyNotInRangeError(StoreError):
    def __init__(self, key: bytes, desc: metapb_pb2.RangeDescriptor) -> None:
        end = desc.end_key.hex() if desc.end_key else "+inf"
        super().__init__(f"key {key[:64].hex()} not in range {desc.id} [{desc.start_key.hex()}, {end})")
        self.key = key
        self.desc = desc

    def _fill(self, err: kvrpc_pb2.Error) -> None:
        e = err.key_not_in_range
        e.key = self.key
        e.range_id = self.desc.id
        e.start_key = self.desc.start_key
        e.end_key = self.desc.end_key


class ServerBusyError(StoreError):
    def __init__(self, reason: str, backoff_ms: int) -> None:
        super().__init__(f"server busy: {reason}; retry in {backoff_ms} ms")
        self.reason = reason
        self.backoff_ms = backoff_ms

    def _fill(self, err: kvrpc_pb2.Error) -> None:
        err.server_busy.reason = self.reason
        err.server_busy.backoff_ms = self.backoff_ms


class StaleCommandError(StoreError):
    def __init__(self, range_id: int) -> None:
        super().__init__(f"range {range_id}: command superseded before it applied; it may not have applied")

    def _fill(self, err: kvrpc_pb2.Error) -> None:
        err.stale_command.SetInParent()


class InvalidArgumentError(StoreError):
    def _fill(self, err: kvrpc_pb2.Error) -> None:
        err.invalid_argument.SetInParent()


class WrongClusterError(StoreError):
    def __init__(self, got: int, ours: int) -> None:
        super().__init__(f"request for cluster {got} reached a store of cluster {ours}")
        self.cluster_id = ours

    def _fill(self, err: kvrpc_pb2.Error) -> None:
        err.wrong_cluster.cluster_id = self.cluster_id


class DeadlineError(StoreError):
    def __init__(self, what: str) -> None:
        super().__init__(f"deadline exceeded: {what}; a write may still take effect")

    def _fill(self, err: kvrpc_pb2.Error) -> None:
        err.timeout.SetInParent()


class DamagedStateError(ValueError):
    """The store's persisted state contradicts itself; raised at start-up, never answered.

    A ValueError, so ``kvdb store`` reports it in one line and exits instead of serving on it.
    """

class SessionExpiredError(StoreError):
    """A retry of an ambiguous write reached a range that does not know its session (any more)."""

    def __init__(self, range_id: int, session_id: int) -> None:
        super().__init__(f"range {range_id}: session {session_id:016x} is unknown here (expired?); "
                         "the earlier attempt may or may not have applied")
        self.session_id = session_id

    def _fill(self, err: kvrpc_pb2.Error) -> None:
        err.session_expired.session_id = self.session_id


class DuplicateRequestError(StoreError):
    """A stale copy of a request its client has finished with (seq below the session's floor)."""

    def __init__(self, range_id: int, session_id: int, seq: int) -> None:
        super().__init__(f"range {range_id}: session {session_id:016x} seq {seq} was already completed; "
                         "not applied again")
        self.session_id = session_id
        self.seq = seq

    def _fill(self, err: kvrpc_pb2.Error) -> None:
        err.duplicate_request.session_id = self.session_id
        err.duplicate_request.seq = self.seq


class MaxTimestampNotSyncedError(StoreError):
    """A new leader has not yet learned a timestamp above the reads its predecessors served, so it
    cannot pick an async-commit or 1PC commit timestamp safely (``kvdb.txn.concurrency``)."""

    def __init__(self, range_id: int, backoff_ms: int) -> None:
        super().__init__(f"range {range_id}: max timestamp not synced with the TSO yet; "
                         f"retry in {backoff_ms} ms")
        self.backoff_ms = backoff_ms

    def _fill(self, err: kvrpc_pb2.Error) -> None:
        err.max_ts_not_synced.backoff_ms = self.backoff_ms


class PermissionDeniedError(StoreError):
    """A request on a ``Kv.Batch`` stream whose caller's role is below what its kind needs
    (``kvdb.net.auth``); it was not run."""

    def __init__(self, why: str, identity: str, role: str, required: str) -> None:
        super().__init__(why)
        self.identity = identity
        self.role = role
        self.required = required

    def _fill(self, err: kvrpc_pb2.Error) -> None:
        e = err.permission_denied
        e.identity = self.identity
        e.role = self.role
        e.required = self.required

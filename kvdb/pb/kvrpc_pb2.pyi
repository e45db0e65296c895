from kvdb.pb import metapb_pb2 as _metapb_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class MutationOp(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PUT: _ClassVar[MutationOp]
    DELETE: _ClassVar[MutationOp]
    LOCK: _ClassVar[MutationOp]

class TxnAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NO_ACTION: _ClassVar[TxnAction]
    TTL_EXPIRE_ROLLBACK: _ClassVar[TxnAction]
    LOCK_NOT_EXIST_ROLLBACK: _ClassVar[TxnAction]
PUT: MutationOp
DELETE: MutationOp
LOCK: MutationOp
NO_ACTION: TxnAction
TTL_EXPIRE_ROLLBACK: TxnAction
LOCK_NOT_EXIST_ROLLBACK: TxnAction

class NotLeader(_message.Message):
    __slots__ = ("range_id", "leader", "leader_address")
    RANGE_ID_FIELD_NUMBER: _ClassVar[int]
    LEADER_FIELD_NUMBER: _ClassVar[int]
    LEADER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    range_id: int
    leader: _metapb_pb2.Peer
    leader_address: str
    def __init__(self, range_id: _Optional[int] = ..., leader: _Optional[_Union[_metapb_pb2.Peer, _Mapping]] = ..., leader_address: _Optional[str] = ...) -> None: ...

class EpochNotMatch(_message.Message):
    __slots__ = ("current_ranges",)
    CURRENT_RANGES_FIELD_NUMBER: _ClassVar[int]
    current_ranges: _containers.RepeatedCompositeFieldContainer[_metapb_pb2.RangeDescriptor]
    def __init__(self, current_ranges: _Optional[_Iterable[_Union[_metapb_pb2.RangeDescriptor, _Mapping]]] = ...) -> None: ...

class RangeNotFound(_message.Message):
    __slots__ = ("range_id",)
    RANGE_ID_FIELD_NUMBER: _ClassVar[int]
    range_id: int
    def __init__(self, range_id: _Optional[int] = ...) -> None: ...

class KeyNotInRange(_message.Message):
    __slots__ = ("key", "range_id", "start_key", "end_key")
    KEY_FIELD_NUMBER: _ClassVar[int]
    RANGE_ID_FIELD_NUMBER: _ClassVar[int]
    START_KEY_FIELD_NUMBER: _ClassVar[int]
    END_KEY_FIELD_NUMBER: _ClassVar[int]
    key: bytes
    range_id: int
    start_key: bytes
    end_key: bytes
    def __init__(self, key: _Optional[bytes] = ..., range_id: _Optional[int] = ..., start_key: _Optional[bytes] = ..., end_key: _Optional[bytes] = ...) -> None: ...

class ServerBusy(_message.Message):
    __slots__ = ("reason", "backoff_ms")
    REASON_FIELD_NUMBER: _ClassVar[int]
    BACKOFF_MS_FIELD_NUMBER: _ClassVar[int]
    reason: str
    backoff_ms: int
    def __init__(self, reason: _Optional[str] = ..., backoff_ms: _Optional[int] = ...) -> None: ...

class StaleCommand(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class InvalidArgument(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WrongCluster(_message.Message):
    __slots__ = ("cluster_id",)
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    cluster_id: int
    def __init__(self, cluster_id: _Optional[int] = ...) -> None: ...

class Timeout(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SessionExpired(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: int
    def __init__(self, session_id: _Optional[int] = ...) -> None: ...

class DuplicateRequest(_message.Message):
    __slots__ = ("session_id", "seq")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    session_id: int
    seq: int
    def __init__(self, session_id: _Optional[int] = ..., seq: _Optional[int] = ...) -> None: ...

class MaxTimestampNotSynced(_message.Message):
    __slots__ = ("backoff_ms",)
    BACKOFF_MS_FIELD_NUMBER: _ClassVar[int]
    backoff_ms: int
    def __init__(self, backoff_ms: _Optional[int] = ...) -> None: ...

class PermissionDenied(_message.Message):
    __slots__ = ("identity", "role", "required")
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_FIELD_NUMBER: _ClassVar[int]
    identity: str
    role: str
    required: str
    def __init__(self, identity: _Optional[str] = ..., role: _Optional[str] = ..., required: _Optional[str] = ...) -> None: ...

class Error(_message.Message):
    __slots__ = ("message", "not_leader", "epoch_not_match", "range_not_found", "key_not_in_range", "server_busy", "stale_command", "invalid_argument", "wrong_cluster", "timeout", "session_expired", "duplicate_request", "max_ts_not_synced", "permission_denied")
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    NOT_LEADER_FIELD_NUMBER: _ClassVar[int]
    EPOCH_NOT_MATCH_FIELD_NUMBER: _ClassVar[int]
    RANGE_NOT_FOUND_FIELD_NUMBER: _ClassVar[int]
    KEY_NOT_IN_RANGE_FIELD_NUMBER: _ClassVar[int]
    SERVER_BUSY_FIELD_NUMBER: _ClassVar[int]
    STALE_COMMAND_FIELD_NUMBER: _ClassVar[int]
    INVALID_ARGUMENT_FIELD_NUMBER: _ClassVar[int]
    WRONG_CLUSTER_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    SESSION_EXPIRED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_REQUEST_FIELD_NUMBER: _ClassVar[int]
    MAX_TS_NOT_SYNCED_FIELD_NUMBER: _ClassVar[int]
    PERMISSION_DENIED_FIELD_NUMBER: _ClassVar[int]
    message: str
    not_leader: NotLeader
    epoch_not_match: EpochNotMatch
    range_not_found: RangeNotFound
    key_not_in_range: KeyNotInRange
    server_busy: ServerBusy
    stale_command: StaleCommand
    invalid_argument: InvalidArgument
    wrong_cluster: WrongCluster
    timeout: Timeout
    session_expired: SessionExpired
    duplicate_request: DuplicateRequest
    max_ts_not_synced: MaxTimestampNotSynced
    permission_denied: PermissionDenied
    def __init__(self, message: _Optional[str] = ..., not_leader: _Optional[_Union[NotLeader, _Mapping]] = ..., epoch_not_match: _Optional[_Union[EpochNotMatch, _Mapping]] = ..., range_not_found: _Optional[_Union[RangeNotFound, _Mapping]] = ..., key_not_in_range: _Optional[_Union[KeyNotInRange, _Mapping]] = ..., server_busy: _Optional[_Union[ServerBusy, _Mapping]] = ..., stale_command: _Optional[_Union[StaleCommand, _Mapping]] = ..., invalid_argument: _Optional[_Union[InvalidArgument, _Mapping]] = ..., wrong_cluster: _Optional[_Union[WrongCluster, _Mapping]] = ..., timeout: _Optional[_Union[Timeout, _Mapping]] = ..., session_expired: _Optional[_Union[SessionExpired, _Mapping]] = ..., duplicate_request: _Optional[_Union[DuplicateRequest, _Mapping]] = ..., max_ts_not_synced: _Optional[_Union[MaxTimestampNotSynced, _Mapping]] = ..., permission_denied: _Optional[_Union[PermissionDenied, _Mapping]] = ...) -> None: ...

class SessionHeader(_message.Message):
    __slots__ = ("session_id", "seq", "first_incomplete_seq", "retry_after_ambiguous")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    FIRST_INCOMPLETE_SEQ_FIELD_NUMBER: _ClassVar[int]
    RETRY_AFTER_AMBIGUOUS_FIELD_NUMBER: _ClassVar[int]
    session_id: int
    seq: int
    first_incomplete_seq: int
    retry_after_ambiguous: bool
    def __init__(self, session_id: _Optional[int] = ..., seq: _Optional[int] = ..., first_incomplete_seq: _Optional[int] = ..., retry_after_ambiguous: _Optional[bool] = ...) -> None: ...

class Context(_message.Message):
    __slots__ = ("cluster_id", "range_id", "epoch", "session")
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    RANGE_ID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    cluster_id: int
    range_id: int
    epoch: _metapb_pb2.RangeEpoch
    session: SessionHeader
    def __init__(self, cluster_id: _Optional[int] = ..., range_id: _Optional[int] = ..., epoch: _Optional[_Union[_metapb_pb2.RangeEpoch, _Mapping]] = ..., session: _Optional[_Union[SessionHeader, _Mapping]] = ...) -> None: ...

class KvPair(_message.Message):
    __slots__ = ("key", "value")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    key: bytes
    value: bytes
    def __init__(self, key: _Optional[bytes] = ..., value: _Optional[bytes] = ...) -> None: ...

class RawGetRequest(_message.Message):
    __slots__ = ("context", "key")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    context: Context
    key: bytes
    def __init__(self, context: _Optional[_Union[Context, _Mapping]] = ..., key: _Optional[bytes] = ...) -> None: ...

class RawGetResponse(_message.Message):
    __slots__ = ("error", "value", "not_found")
    ERROR_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    NOT_FOUND_FIELD_NUMBER: _ClassVar[int]
    error: Error
    value: bytes
    not_found: bool
    def __init__(self, error: _Optional[_Union[Error, _Mapping]] = ..., value: _Optional[bytes] = ..., not_found: _Optional[bool] = ...) -> None: ...

class RawBatchGetRequest(_message.Message):
    __slots__ = ("context", "keys")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    context: Context
    keys: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, context: _Optional[_Union[Context, _Mapping]] = ..., keys: _Optional[_Iterable[bytes]] = ...) -> None: ...

class RawBatchGetResponse(_message.Message):
    __slots__ = ("error", "pairs")
    ERROR_FIELD_NUMBER: _ClassVar[int]
    PAIRS_FIELD_NUMBER: _ClassVar[int]
    error: Error
    pairs: _containers.RepeatedCompositeFieldContainer[KvPair]
    def __init__(self, error: _Optional[_Union[Error, _Mapping]] = ..., pairs: _Optional[_Iterable[_Union[KvPair, _Mapping]]] = ...) -> None: ...

class RawPutRequest(_message.Message):
    __slots__ = ("context", "key", "value")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    context: Context
    key: bytes
    value: bytes
    def __init__(self, context: _Optional[_Union[Context, _Mapping]] = ..., key: _Optional[bytes] = ..., value: _Optional[bytes] = ...) -> None: ...

class RawPutResponse(_message.Message):
    __slots__ = ("error",)
    ERROR_FIELD_NUMBER: _ClassVar[int]
    error: Error
    def __init__(self, error: _Optional[_Union[Error, _Mapping]] = ...) -> None: ...

class RawBatchPutRequest(_message.Message):
    __slots__ = ("context", "pairs")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    PAIRS_FIELD_NUMBER: _ClassVar[int]
    context: Context
    pairs: _containers.RepeatedCompositeFieldContainer[KvPair]
    def __init__(self, context: _Optional[_Union[Context, _Mapping]] = ..., pairs: _Optional[_Iterable[_Union[KvPair, _Mapping]]] = ...) -> None: ...

class RawBatchPutResponse(_message.Message):
    __slots__ = ("error",)
    ERROR_FIELD_NUMBER: _ClassVar[int]
    error: Error
    def __init__(self, error: _Optional[_Union[Error, _Mapping]] = ...) -> None: ...

class RawDeleteRequest(_message.Message):
    __slots__ = ("context", "key")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    context: Context
    key: bytes
    def __init__(self, context: _Optional[_Union[Context, _Mapping]] = ..., key: _Optional[bytes] = ...) -> None: ...

class RawDeleteResponse(_message.Message):
    __slots__ = ("error",)
    ERROR_FIELD_NUMBER: _ClassVar[int]
    error: Error
    def __init__(self, error: _Optional[_Union[Error, _Mapping]] = ...) -> None: ...

class RawDeleteRangeRequest(_message.Message):
    __slots__ = ("context", "start_key", "end_key")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    START_KEY_FIELD_NUMBER: _ClassVar[int]
    END_KEY_FIELD_NUMBER: _ClassVar[int]
    context: Context
    start_key: bytes
    end_key: bytes
    def __init__(self, context: _Optional[_Union[Context, _Mapping]] = ..., start_key: _Optional[bytes] = ..., end_key: _Optional[bytes] = ...) -> None: ...

class RawDeleteRangeResponse(_message.Message):
    __slots__ = ("error",)
    ERROR_FIELD_NUMBER: _ClassVar[int]
    error: Error
    def __init__(self, error: _Optional[_Union[Error, _Mapping]] = ...) -> None: ...

class RawScanRequest(_message.Message):
    __slots__ = ("context", "start_key", "end_key", "limit", "reverse", "key_only")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    START_KEY_FIELD_NUMBER: _ClassVar[int]
    END_KEY_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    REVERSE_FIELD_NUMBER: _ClassVar[int]
    KEY_ONLY_FIELD_NUMBER: _ClassVar[int]
    context: Context
    start_key: bytes
    end_key: bytes
    limit: int
    reverse: bool
    key_only: bool
    def __init__(self, context: _Optional[_Union[Context, _Mapping]] = ..., start_key: _Optional[bytes] = ..., end_key: _Optional[bytes] = ..., limit: _Optional[int] = ..., reverse: _Optional[bool] = ..., key_only: _Optional[bool] = ...) -> None: ...

class RawScanResponse(_message.Message):
    __slots__ = ("error", "pairs")
    ERROR_FIELD_NUMBER: _ClassVar[int]
    PAIRS_FIELD_NUMBER: _ClassVar[int]
    error: Error
    pairs: _containers.RepeatedCompositeFieldContainer[KvPair]
    def __init__(self, error: _Optional[_Union[Error, _Mapping]] = ..., pairs: _Optional[_Iterable[_Union[KvPair, _Mapping]]] = ...) -> None: ...

class RawCompareAndSwapRequest(_message.Message):
    __slots__ = ("context", "key", "value", "previous_value", "previous_not_exist")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_VALUE_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_NOT_EXIST_FIELD_NUMBER: _ClassVar[int]
    context: Context
    key: bytes
    value: bytes
    previous_value: bytes
    previous_not_exist: bool
    def __init__(self, context: _Optional[_Union[Context, _Mapping]] = ..., key: _Optional[bytes] = ..., value: _Optional[bytes] = ..., previous_value: _Optional[bytes] = ..., previous_not_exist: _Optional[bool] = ...) -> None: ...

class RawCompareAndSwapResponse(_message.Message):
    __slots__ = ("error", "succeed", "previous_value", "previous_not_exist")
    ERROR_FIELD_NUMBER: _ClassVar[int]
    SUCCEED_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_VALUE_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_NOT_EXIST_FIELD_NUMBER: _ClassVar[int]
    error: Error
    succeed: bool
    previous_value: bytes
    previous_not_exist: bool
    def __init__(self, error: _Optional[_Union[Error, _Mapping]] = ..., succeed: _Optional[bool] = ..., previous_value: _Optional[bytes] = ..., previous_not_exist: _Optional[bool] = ...) -> None: ...

class TxnMutation(_message.Message):
    __slots__ = ("op", "key", "value")
    OP_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    op: MutationOp
    key: bytes
    value: bytes
    def __init__(self, op: _Optional[_Union[MutationOp, str]] = ..., key: _Optional[bytes] = ..., value: _Optional[bytes] = ...) -> None: ...

class LockInfo(_message.Message):
    __slots__ = ("key", "primary", "start_ts", "ttl_ms", "op", "txn_size", "use_async_commit", "secondaries", "min_commit_ts")
    KEY_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_FIELD_NUMBER: _ClassVar[int]
    START_TS_FIELD_NUMBER: _ClassVar[int]
    TTL_MS_FIELD_NUMBER: _ClassVar[int]
    OP_FIELD_NUMBER: _ClassVar[int]
    TXN_SIZE_FIELD_NUMBER: _ClassVar[int]
    USE_ASYNC_COMMIT_FIELD_NUMBER: _ClassVar[int]
    SECONDARIES_FIELD_NUMBER: _ClassVar[int]
    MIN_COMMIT_TS_FIELD_NUMBER: _ClassVar[int]
    key: bytes
    primary: bytes
    start_ts: int
    ttl_ms: int
    op: MutationOp
    txn_size: int
    use_async_commit: bool
    secondaries: _containers.RepeatedScalarFieldContainer[bytes]
    min_commit_ts: int
    def __init__(self, key: _Optional[bytes] = ..., primary: _Optional[bytes] = ..., start_ts: _Optional[int] = ..., ttl_ms: _Optional[int] = ..., op: _Optional[_Union[MutationOp, str]] = ..., txn_size: _Optional[int] = ..., use_async_commit: _Optional[bool] = ..., secondaries: _Optional[_Iterable[bytes]] = ..., min_commit_ts: _Optional[int] = ...) -> None: ...

class WriteConflict(_message.Message):
    __slots__ = ("start_ts", "conflict_start_ts", "conflict_commit_ts", "key", "primary")
    START_TS_FIELD_NUMBER: _ClassVar[int]
    CONFLICT_START_TS_FIELD_NUMBER: _ClassVar[int]
    CONFLICT_COMMIT_TS_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_FIELD_NUMBER: _ClassVar[int]
    start_ts: int
    conflict_start_ts: int
    conflict_commit_ts: int
    key: bytes
    primary: bytes
    def __init__(self, start_ts: _Optional[int] = ..., conflict_start_ts: _Optional[int] = ..., conflict_commit_ts: _Optional[int] = ..., key: _Optional[bytes] = ..., primary: _Optional[bytes] = ...) -> None: ...

class TxnAborted(_message.Message):
    __slots__ = ("start_ts", "key")
    START_TS_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    start_ts: int
    key: bytes
    def __init__(self, start_ts: _Optional[int] = ..., key: _Optional[bytes] = ...) -> None: ...

class TxnLockNotFound(_message.Message):
    __slots__ = ("start_ts", "key")
    START_TS_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    start_ts: int
    key: bytes
    def __init__(self, start_ts: _Optional[int] = ..., key: _Optional[bytes] = ...) -> None: ...

class TsBelowSafePoint(_message.Message):
    __slots__ = ("ts", "safe_point")
    TS_FIELD_NUMBER: _ClassVar[int]
    SAFE_POINT_FIELD_NUMBER: _ClassVar[int]
    ts: int
    safe_point: int
    def __init__(self, ts: _Optional[int] = ..., safe_point: _Optional[int] = ...) -> None: ...

class KeyError(_message.Message):
    __slots__ = ("message", "locked", "conflict", "aborted", "lock_not_found", "below_safe_point")
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    LOCKED_FIELD_NUMBER: _ClassVar[int]
    CONFLICT_FIELD_NUMBER: _ClassVar[int]
    ABORTED_FIELD_NUMBER: _ClassVar[int]
    LOCK_NOT_FOUND_FIELD_NUMBER: _ClassVar[int]
    BELOW_SAFE_POINT_FIELD_NUMBER: _ClassVar[int]
    message: str
    locked: LockInfo
    conflict: WriteConflict
    aborted: TxnAborted
    lock_not_found: TxnLockNotFound
    below_safe_point: TsBelowSafePoint
    def __init__(self, message: _Optional[str] = ..., locked: _Optional[_Union[LockInfo, _Mapping]] = ..., conflict: _Optional[_Union[WriteConflict, _Mapping]] = ..., aborted: _Optional[_Union[TxnAborted, _Mapping]] = ..., lock_not_found: _Optional[_Union[TxnLockNotFound, _Mapping]] = ..., below_safe_point: _Optional[_Union[TsBelowSafePoint, _Mapping]] = ...) -> None: ...

class TxnGetRequest(_message.Message):
    __slots__ = ("context", "key", "version")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    context: Context
    key: bytes
    version: int
    def __init__(self, context: _Optional[_Union[Context, _Mapping]] = ..., key: _Optional[bytes] = ..., version: _Optional[int] = ...) -> None: ...

class TxnGetResponse(_message.Message):
    __slots__ = ("error", "key_error", "value", "not_found")
    ERROR_FIELD_NUMBER: _ClassVar[int]
    KEY_ERROR_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    NOT_FOUND_FIELD_NUMBER: _ClassVar[int]
    error: Error
    key_error: KeyError
    value: bytes
    not_found: bool
    def __init__(self, error: _Optional[_Union[Error, _Mapping]] = ..., key_error: _Optional[_Union[KeyError, _Mapping]] = ..., value: _Optional[bytes] = ..., not_found: _Optional[bool] = ...) -> None: ...

class TxnBatchGetRequest(_message.Message):
    __slots__ = ("context", "keys", "version")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    context: Context
    keys: _containers.RepeatedScalarFieldContainer[bytes]
    version: int
    def __init__(self, context: _Optional[_Union[Context, _Mapping]] = ..., keys: _Optional[_Iterable[bytes]] = ..., version: _Optional[int] = ...) -> None: ...

class TxnBatchGetResponse(_message.Message):
    __slots__ = ("error", "key_error", "pairs", "locks")
    ERROR_FIELD_NUMBER: _ClassVar[int]
    KEY_ERROR_FIELD_NUMBER: _ClassVar[int]
    PAIRS_FIELD_NUMBER: _ClassVar[int]
    LOCKS_FIELD_NUMBER: _ClassVar[int]
    error: Error
    key_error: KeyError
    pairs: _containers.RepeatedCompositeFieldContainer[KvPair]
    locks: _containers.RepeatedCompositeFieldContainer[LockInfo]
    def __init__(self, error: _Optional[_Union[Error, _Mapping]] = ..., key_error: _Optional[_Union[KeyError, _Mapping]] = ..., pairs: _Optional[_Iterable[_Union[KvPair, _Mapping]]] = ..., locks: _Optional[_Iterable[_Union[LockInfo, _Mapping]]] = ...) -> None: ...

class TxnScanRequest(_message.Message):
    __slots__ = ("context", "start_key", "end_key", "limit", "version", "key_only")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    START_KEY_FIELD_NUMBER: _ClassVar[int]
    END_KEY_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    KEY_ONLY_FIELD_NUMBER: _ClassVar[int]
    context: Context
    start_key: bytes
    end_key: bytes
    limit: int
    version: int
    key_only: bool
    def __init__(self, context: _Optional[_Union[Context, _Mapping]] = ..., start_key: _Optional[bytes] = ..., end_key: _Optional[bytes] = ..., limit: _Optional[int] = ..., version: _Optional[int] = ..., key_only: _Optional[bool] = ...) -> None: ...

class TxnScanResponse(_message.Message):
    __slots__ = ("error", "key_error", "pairs", "locks")
    ERROR_FIELD_NUMBER: _ClassVar[int]
    KEY_ERROR_FIELD_NUMBER: _ClassVar[int]
    PAIRS_FIELD_NUMBER: _ClassVar[int]
    LOCKS_FIELD_NUMBER: _ClassVar[int]
    error: Error
    key_error: KeyError
    pairs: _containers.RepeatedCompositeFieldContainer[KvPair]
    locks: _containers.RepeatedCompositeFieldContainer[LockInfo]
    def __init__(self, error: _Optional[_Union[Error, _Mapping]] = ..., key_error: _Optional[_Union[KeyError, _Mapping]] = ..., pairs: _Optional[_Iterable[_Union[KvPair, _Mapping]]] = ..., locks: _Optional[_Iterable[_Union[LockInfo, _Mapping]]] = ...) -> None: ...

class PrewriteRequest(_message.Message):
    __slots__ = ("context", "mutations", "primary_lock", "start_ts", "lock_ttl_ms", "txn_size", "use_async_commit", "secondaries", "try_one_pc")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    MUTATIONS_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_LOCK_FIELD_NUMBER: _ClassVar[int]
    START_TS_FIELD_NUMBER: _ClassVar[int]
    LOCK_TTL_MS_FIELD_NUMBER: _ClassVar[int]
    TXN_SIZE_FIELD_NUMBER: _ClassVar[int]
    USE_ASYNC_COMMIT_FIELD_NUMBER: _ClassVar[int]
    SECONDARIES_FIELD_NUMBER: _ClassVar[int]
    TRY_ONE_PC_FIELD_NUMBER: _ClassVar[int]
    context: Context
    mutations: _containers.RepeatedCompositeFieldContainer[TxnMutation]
    primary_lock: bytes
    start_ts: int
    lock_ttl_ms: int
    txn_size: int
    use_async_commit: bool
    secondaries: _containers.RepeatedScalarFieldContainer[bytes]
    try_one_pc: bool
    def __init__(self, context: _Optional[_Union[Context, _Mapping]] = ..., mutations: _Optional[_Iterable[_Union[TxnMutation, _Mapping]]] = ..., primary_lock: _Optional[bytes] = ..., start_ts: _Optional[int] = ..., lock_ttl_ms: _Optional[int] = ..., txn_size: _Optional[int] = ..., use_async_commit: _Optional[bool] = ..., secondaries: _Optional[_Iterable[bytes]] = ..., try_one_pc: _Optional[bool] = ...) -> None: ...

class PrewriteResponse(_message.Message):
    __slots__ = ("error", "errors", "min_commit_ts", "one_pc_commit_ts")
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    MIN_COMMIT_TS_FIELD_NUMBER: _ClassVar[int]
    ONE_PC_COMMIT_TS_FIELD_NUMBER: _ClassVar[int]
    error: Error
    errors: _containers.RepeatedCompositeFieldContainer[KeyError]
    min_commit_ts: int
    one_pc_commit_ts: int
    def __init__(self, error: _Optional[_Union[Error, _Mapping]] = ..., errors: _Optional[_Iterable[_Union[KeyError, _Mapping]]] = ..., min_commit_ts: _Optional[int] = ..., one_pc_commit_ts: _Optional[int] = ...) -> None: ...

class CommitRequest(_message.Message):
    __slots__ = ("context", "start_ts", "keys", "commit_ts")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    START_TS_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    COMMIT_TS_FIELD_NUMBER: _ClassVar[int]
    context: Context
    start_ts: int
    keys: _containers.RepeatedScalarFieldContainer[bytes]
    commit_ts: int
    def __init__(self, context: _Optional[_Union[Context, _Mapping]] = ..., start_ts: _Optional[int] = ..., keys: _Optional[_Iterable[bytes]] = ..., commit_ts: _Optional[int] = ...) -> None: ...

class CommitResponse(_message.Message):
    __slots__ = ("error", "key_error")
    ERROR_FIELD_NUMBER: _ClassVar[int]
    KEY_ERROR_FIELD_NUMBER: _ClassVar[int]
    error: Error
    key_error: KeyError
    def __init__(self, error: _Optional[_Union[Error, _Mapping]] = ..., key_error: _Optional[_Union[KeyError, _Mapping]] = ...) -> None: ...

class BatchRollbackRequest(_message.Message):
    __slots__ = ("context", "start_ts", "keys")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    START_TS_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    context: Context
    start_ts: int
    keys: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, context: _Optional[_Union[Context, _Mapping]] = ..., start_ts: _Optional[int] = ..., keys: _Optional[_Iterable[bytes]] = ...) -> None: ...

class BatchRollbackResponse(_message.Message):
    __slots__ = ("error", "key_error")
    ERROR_FIELD_NUMBER: _ClassVar[int]
    KEY_ERROR_FIELD_NUMBER: _ClassVar[int]
    error: Error
    key_error: KeyError
    def __init__(self, error: _Optional[_Union[Error, _Mapping]] = ..., key_error: _Optional[_Union[KeyError, _Mapping]] = ...) -> None: ...

class CheckTxnStatusRequest(_message.Message):
    __slots__ = ("context", "primary_key", "lock_ts", "caller_start_ts", "current_ts", "rollback_if_not_exist")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_KEY_FIELD_NUMBER: _ClassVar[int]
    LOCK_TS_FIELD_NUMBER: _ClassVar[int]
    CALLER_START_TS_FIELD_NUMBER: _ClassVar[int]
    CURRENT_TS_FIELD_NUMBER: _ClassVar[int]
    ROLLBACK_IF_NOT_EXIST_FIELD_NUMBER: _ClassVar[int]
    context: Context
    primary_key: bytes
    lock_ts: int
    caller_start_ts: int
    current_ts: int
    rollback_if_not_exist: bool
    def __init__(self, context: _Optional[_Union[Context, _Mapping]] = ..., primary_key: _Optional[bytes] = ..., lock_ts: _Optional[int] = ..., caller_start_ts: _Optional[int] = ..., current_ts: _Optional[int] = ..., rollback_if_not_exist: _Optional[bool] = ...) -> None: ...

class CheckTxnStatusResponse(_message.Message):
    __slots__ = ("error", "key_error", "lock_ttl_ms", "commit_ts", "action", "lock")
    ERROR_FIELD_NUMBER: _ClassVar[int]
    KEY_ERROR_FIELD_NUMBER: _ClassVar[int]
    LOCK_TTL_MS_FIELD_NUMBER: _ClassVar[int]
    COMMIT_TS_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    LOCK_FIELD_NUMBER: _ClassVar[int]
    error: Error
    key_error: KeyError
    lock_ttl_ms: int
    commit_ts: int
    action: TxnAction
    lock: LockInfo
    def __init__(self, error: _Optional[_Union[Error, _Mapping]] = ..., key_error: _Optional[_Union[KeyError, _Mapping]] = ..., lock_ttl_ms: _Optional[int] = ..., commit_ts: _Optional[int] = ..., action: _Optional[_Union[TxnAction, str]] = ..., lock: _Optional[_Union[LockInfo, _Mapping]] = ...) -> None: ...

class CheckSecondaryLocksRequest(_message.Message):
    __slots__ = ("context", "keys", "start_ts")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    START_TS_FIELD_NUMBER: _ClassVar[int]
    context: Context
    keys: _containers.RepeatedScalarFieldContainer[bytes]
    start_ts: int
    def __init__(self, context: _Optional[_Union[Context, _Mapping]] = ..., keys: _Optional[_Iterable[bytes]] = ..., start_ts: _Optional[int] = ...) -> None: ...

class CheckSecondaryLocksResponse(_message.Message):
    __slots__ = ("error", "key_error", "locks", "commit_ts", "rolled_back")
    ERROR_FIELD_NUMBER: _ClassVar[int]
    KEY_ERROR_FIELD_NUMBER: _ClassVar[int]
    LOCKS_FIELD_NUMBER: _ClassVar[int]
    COMMIT_TS_FIELD_NUMBER: _ClassVar[int]
    ROLLED_BACK_FIELD_NUMBER: _ClassVar[int]
    error: Error
    key_error: KeyError
    locks: _containers.RepeatedCompositeFieldContainer[LockInfo]
    commit_ts: int
    rolled_back: bool
    def __init__(self, error: _Optional[_Union[Error, _Mapping]] = ..., key_error: _Optional[_Union[KeyError, _Mapping]] = ..., locks: _Optional[_Iterable[_Union[LockInfo, _Mapping]]] = ..., commit_ts: _Optional[int] = ..., rolled_back: _Optional[bool] = ...) -> None: ...

class TxnInfo(_message.Message):
    __slots__ = ("start_ts", "commit_ts")
    START_TS_FIELD_NUMBER: _ClassVar[int]
    COMMIT_TS_FIELD_NUMBER: _ClassVar[int]
    start_ts: int
    commit_ts: int
    def __init__(self, start_ts: _Optional[int] = ..., commit_ts: _Optional[int] = ...) -> None: ...

class ResolveLockRequest(_message.Message):
    __slots__ = ("context", "start_ts", "commit_ts", "keys", "txn_infos")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    START_TS_FIELD_NUMBER: _ClassVar[int]
    COMMIT_TS_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    TXN_INFOS_FIELD_NUMBER: _ClassVar[int]
    context: Context
    start_ts: int
    commit_ts: int
    keys: _containers.RepeatedScalarFieldContainer[bytes]
    txn_infos: _containers.RepeatedCompositeFieldContainer[TxnInfo]
    def __init__(self, context: _Optional[_Union[Context, _Mapping]] = ..., start_ts: _Optional[int] = ..., commit_ts: _Optional[int] = ..., keys: _Optional[_Iterable[bytes]] = ..., txn_infos: _Optional[_Iterable[_Union[TxnInfo, _Mapping]]] = ...) -> None: ...

class ResolveLockResponse(_message.Message):
    __slots__ = ("error", "key_error")
    ERROR_FIELD_NUMBER: _ClassVar[int]
    KEY_ERROR_FIELD_NUMBER: _ClassVar[int]
    error: Error
    key_error: KeyError
    def __init__(self, error: _Optional[_Union[Error, _Mapping]] = ..., key_error: _Optional[_Union[KeyError, _Mapping]] = ...) -> None: ...

class TxnHeartBeatRequest(_message.Message):
    __slots__ = ("context", "primary_lock", "start_ts", "advise_lock_ttl_ms")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_LOCK_FIELD_NUMBER: _ClassVar[int]
    START_TS_FIELD_NUMBER: _ClassVar[int]
    ADVISE_LOCK_TTL_MS_FIELD_NUMBER: _ClassVar[int]
    context: Context
    primary_lock: bytes
    start_ts: int
    advise_lock_ttl_ms: int
    def __init__(self, context: _Optional[_Union[Context, _Mapping]] = ..., primary_lock: _Optional[bytes] = ..., start_ts: _Optional[int] = ..., advise_lock_ttl_ms: _Optional[int] = ...) -> None: ...

class TxnHeartBeatResponse(_message.Message):
    __slots__ = ("error", "key_error", "lock_ttl_ms")
    ERROR_FIELD_NUMBER: _ClassVar[int]
    KEY_ERROR_FIELD_NUMBER: _ClassVar[int]
    LOCK_TTL_MS_FIELD_NUMBER: _ClassVar[int]
    error: Error
    key_error: KeyError
    lock_ttl_ms: int
    def __init__(self, error: _Optional[_Union[Error, _Mapping]] = ..., key_error: _Optional[_Union[KeyError, _Mapping]] = ..., lock_ttl_ms: _Optional[int] = ...) -> None: ...

class ScanLockRequest(_message.Message):
    __slots__ = ("context", "max_version", "start_key", "end_key", "limit")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    MAX_VERSION_FIELD_NUMBER: _ClassVar[int]
    START_KEY_FIELD_NUMBER: _ClassVar[int]
    END_KEY_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    context: Context
    max_version: int
    start_key: bytes
    end_key: bytes
    limit: int
    def __init__(self, context: _Optional[_Union[Context, _Mapping]] = ..., max_version: _Optional[int] = ..., start_key: _Optional[bytes] = ..., end_key: _Optional[bytes] = ..., limit: _Optional[int] = ...) -> None: ...

class ScanLockResponse(_message.Message):
    __slots__ = ("error", "key_error", "locks")
    ERROR_FIELD_NUMBER: _ClassVar[int]
    KEY_ERROR_FIELD_NUMBER: _ClassVar[int]
    LOCKS_FIELD_NUMBER: _ClassVar[int]
    error: Error
    key_error: KeyError
    locks: _containers.RepeatedCompositeFieldContainer[LockInfo]
    def __init__(self, error: _Optional[_Union[Error, _Mapping]] = ..., key_error: _Optional[_Union[KeyError, _Mapping]] = ..., locks: _Optional[_Iterable[_Union[LockInfo, _Mapping]]] = ...) -> None: ...

class Request(_message.Message):
    __slots__ = ("id", "get", "batch_get", "put", "batch_put", "delete", "delete_range", "scan", "cas", "txn_get", "txn_batch_get", "txn_scan", "prewrite", "commit", "rollback", "check_txn_status", "check_secondary_locks", "resolve_lock", "txn_heart_beat", "scan_lock")
    ID_FIELD_NUMBER: _ClassVar[int]
    GET_FIELD_NUMBER: _ClassVar[int]
    BATCH_GET_FIELD_NUMBER: _ClassVar[int]
    PUT_FIELD_NUMBER: _ClassVar[int]
    BATCH_PUT_FIELD_NUMBER: _ClassVar[int]
    DELETE_FIELD_NUMBER: _ClassVar[int]
    DELETE_RANGE_FIELD_NUMBER: _ClassVar[int]
    SCAN_FIELD_NUMBER: _ClassVar[int]
    CAS_FIELD_NUMBER: _ClassVar[int]
    TXN_GET_FIELD_NUMBER: _ClassVar[int]
    TXN_BATCH_GET_FIELD_NUMBER: _ClassVar[int]
    TXN_SCAN_FIELD_NUMBER: _ClassVar[int]
    PREWRITE_FIELD_NUMBER: _ClassVar[int]
    COMMIT_FIELD_NUMBER: _ClassVar[int]
    ROLLBACK_FIELD_NUMBER: _ClassVar[int]
    CHECK_TXN_STATUS_FIELD_NUMBER: _ClassVar[int]
    CHECK_SECONDARY_LOCKS_FIELD_NUMBER: _ClassVar[int]
    RESOLVE_LOCK_FIELD_NUMBER: _ClassVar[int]
    TXN_HEART_BEAT_FIELD_NUMBER: _ClassVar[int]
    SCAN_LOCK_FIELD_NUMBER: _ClassVar[int]
    id: int
    get: RawGetRequest
    batch_get: RawBatchGetRequest
    put: RawPutRequest
    batch_put: RawBatchPutRequest
    delete: RawDeleteRequest
    delete_range: RawDeleteRangeRequest
    scan: RawScanRequest
    cas: RawCompareAndSwapRequest
    txn_get: TxnGetRequest
    txn_batch_get: TxnBatchGetRequest
    txn_scan: TxnScanRequest
    prewrite: PrewriteRequest
    commit: CommitRequest
    rollback: BatchRollbackRequest
    check_txn_status: CheckTxnStatusRequest
    check_secondary_locks: CheckSecondaryLocksRequest
    resolve_lock: ResolveLockRequest
    txn_heart_beat: TxnHeartBeatRequest
    scan_lock: ScanLockRequest
    def __init__(self, id: _Optional[int] = ..., get: _Optional[_Union[RawGetRequest, _Mapping]] = ..., batch_get: _Optional[_Union[RawBatchGetRequest, _Mapping]] = ..., put: _Optional[_Union[RawPutRequest, _Mapping]] = ..., batch_put: _Optional[_Union[RawBatchPutRequest, _Mapping]] = ..., delete: _Optional[_Union[RawDeleteRequest, _Mapping]] = ..., delete_range: _Optional[_Union[RawDeleteRangeRequest, _Mapping]] = ..., scan: _Optional[_Union[RawScanRequest, _Mapping]] = ..., cas: _Optional[_Union[RawCompareAndSwapRequest, _Mapping]] = ..., txn_get: _Optional[_Union[TxnGetRequest, _Mapping]] = ..., txn_batch_get: _Optional[_Union[TxnBatchGetRequest, _Mapping]] = ..., txn_scan: _Optional[_Union[TxnScanRequest, _Mapping]] = ..., prewrite: _Optional[_Union[PrewriteRequest, _Mapping]] = ..., commit: _Optional[_Union[CommitRequest, _Mapping]] = ..., rollback: _Optional[_Union[BatchRollbackRequest, _Mapping]] = ..., check_txn_status: _Optional[_Union[CheckTxnStatusRequest, _Mapping]] = ..., check_secondary_locks: _Optional[_Union[CheckSecondaryLocksRequest, _Mapping]] = ..., resolve_lock: _Optional[_Union[ResolveLockRequest, _Mapping]] = ..., txn_heart_beat: _Optional[_Union[TxnHeartBeatRequest, _Mapping]] = ..., scan_lock: _Optional[_Union[ScanLockRequest, _Mapping]] = ...) -> None: ...

class Response(_message.Message):
    __slots__ = ("id", "get", "batch_get", "put", "batch_put", "delete", "delete_range", "scan", "cas", "txn_get", "txn_batch_get", "txn_scan", "prewrite", "commit", "rollback", "check_txn_status", "check_secondary_locks", "resolve_lock", "txn_heart_beat", "scan_lock")
    ID_FIELD_NUMBER: _ClassVar[int]
    GET_FIELD_NUMBER: _ClassVar[int]
    BATCH_GET_FIELD_NUMBER: _ClassVar[int]
    PUT_FIELD_NUMBER: _ClassVar[int]
    BATCH_PUT_FIELD_NUMBER: _ClassVar[int]
    DELETE_FIELD_NUMBER: _ClassVar[int]
    DELETE_RANGE_FIELD_NUMBER: _ClassVar[int]
    SCAN_FIELD_NUMBER: _ClassVar[int]
    CAS_FIELD_NUMBER: _ClassVar[int]
    TXN_GET_FIELD_NUMBER: _ClassVar[int]
    TXN_BATCH_GET_FIELD_NUMBER: _ClassVar[int]
    TXN_SCAN_FIELD_NUMBER: _ClassVar[int]
    PREWRITE_FIELD_NUMBER: _ClassVar[int]
    COMMIT_FIELD_NUMBER: _ClassVar[int]
    ROLLBACK_FIELD_NUMBER: _ClassVar[int]
    CHECK_TXN_STATUS_FIELD_NUMBER: _ClassVar[int]
    CHECK_SECONDARY_LOCKS_FIELD_NUMBER: _ClassVar[int]
    RESOLVE_LOCK_FIELD_NUMBER: _ClassVar[int]
    TXN_HEART_BEAT_FIELD_NUMBER: _ClassVar[int]
    SCAN_LOCK_FIELD_NUMBER: _ClassVar[int]
    id: int
    get: RawGetResponse
    batch_get: RawBatchGetResponse
    put: RawPutResponse
    batch_put: RawBatchPutResponse
    delete: RawDeleteResponse
    delete_range: RawDeleteRangeResponse
    scan: RawScanResponse
    cas: RawCompareAndSwapResponse
    txn_get: TxnGetResponse
    txn_batch_get: TxnBatchGetResponse
    txn_scan: TxnScanResponse
    prewrite: PrewriteResponse
    commit: CommitResponse
    rollback: BatchRollbackResponse
    check_txn_status: CheckTxnStatusResponse
    check_secondary_locks: CheckSecondaryLocksResponse
    resolve_lock: ResolveLockResponse
    txn_heart_beat: TxnHeartBeatResponse
    scan_lock: ScanLockResponse
    def __init__(self, id: _Optional[int] = ..., get: _Optional[_Union[RawGetResponse, _Mapping]] = ..., batch_get: _Optional[_Union[RawBatchGetResponse, _Mapping]] = ..., put: _Optional[_Union[RawPutResponse, _Mapping]] = ..., batch_put: _Optional[_Union[RawBatchPutResponse, _Mapping]] = ..., delete: _Optional[_Union[RawDeleteResponse, _Mapping]] = ..., delete_range: _Optional[_Union[RawDeleteRangeResponse, _Mapping]] = ..., scan: _Optional[_Union[RawScanResponse, _Mapping]] = ..., cas: _Optional[_Union[RawCompareAndSwapResponse, _Mapping]] = ..., txn_get: _Optional[_Union[TxnGetResponse, _Mapping]] = ..., txn_batch_get: _Optional[_Union[TxnBatchGetResponse, _Mapping]] = ..., txn_scan: _Optional[_Union[TxnScanResponse, _Mapping]] = ..., prewrite: _Optional[_Union[PrewriteResponse, _Mapping]] = ..., commit: _Optional[_Union[CommitResponse, _Mapping]] = ..., rollback: _Optional[_Union[BatchRollbackResponse, _Mapping]] = ..., check_txn_status: _Optional[_Union[CheckTxnStatusResponse, _Mapping]] = ..., check_secondary_locks: _Optional[_Union[CheckSecondaryLocksResponse, _Mapping]] = ..., resolve_lock: _Optional[_Union[ResolveLockResponse, _Mapping]] = ..., txn_heart_beat: _Optional[_Union[TxnHeartBeatResponse, _Mapping]] = ..., scan_lock: _Optional[_Union[ScanLockResponse, _Mapping]] = ...) -> None: ...

class BatchRequest(_message.Message):
    __slots__ = ("requests",)
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[Request]
    def __init__(self, requests: _Optional[_Iterable[_Union[Request, _Mapping]]] = ...) -> None: ...

class BatchResponse(_message.Message):
    __slots__ = ("responses",)
    RESPONSES_FIELD_NUMBER: _ClassVar[int]
    responses: _containers.RepeatedCompositeFieldContainer[Response]
    def __init__(self, responses: _Optional[_Iterable[_Union[Response, _Mapping]]] = ...) -> None: ...

class KvPortRequest(_message.Message):
    __slots__ = ("cluster_id",)
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    cluster_id: int
    def __init__(self, cluster_id: _Optional[int] = ...) -> None: ...

class KvPortResponse(_message.Message):
    __slots__ = ("port", "error")
    PORT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    port: int
    error: Error
    def __init__(self, port: _Optional[int] = ..., error: _Optional[_Union[Error, _Mapping]] = ...) -> None: ...

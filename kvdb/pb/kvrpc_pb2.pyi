from kvdb.pb import metapb_pb2 as _metapb_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

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

class Error(_message.Message):
    __slots__ = ("message", "not_leader", "epoch_not_match", "range_not_found", "key_not_in_range", "server_busy", "stale_command", "invalid_argument", "wrong_cluster", "timeout", "session_expired", "duplicate_request")
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
    def __init__(self, message: _Optional[str] = ..., not_leader: _Optional[_Union[NotLeader, _Mapping]] = ..., epoch_not_match: _Optional[_Union[EpochNotMatch, _Mapping]] = ..., range_not_found: _Optional[_Union[RangeNotFound, _Mapping]] = ..., key_not_in_range: _Optional[_Union[KeyNotInRange, _Mapping]] = ..., server_busy: _Optional[_Union[ServerBusy, _Mapping]] = ..., stale_command: _Optional[_Union[StaleCommand, _Mapping]] = ..., invalid_argument: _Optional[_Union[InvalidArgument, _Mapping]] = ..., wrong_cluster: _Optional[_Union[WrongCluster, _Mapping]] = ..., timeout: _Optional[_Union[Timeout, _Mapping]] = ..., session_expired: _Optional[_Union[SessionExpired, _Mapping]] = ..., duplicate_request: _Optional[_Union[DuplicateRequest, _Mapping]] = ...) -> None: ...

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

class Request(_message.Message):
    __slots__ = ("id", "get", "batch_get", "put", "batch_put", "delete", "delete_range", "scan", "cas")
    ID_FIELD_NUMBER: _ClassVar[int]
    GET_FIELD_NUMBER: _ClassVar[int]
    BATCH_GET_FIELD_NUMBER: _ClassVar[int]
    PUT_FIELD_NUMBER: _ClassVar[int]
    BATCH_PUT_FIELD_NUMBER: _ClassVar[int]
    DELETE_FIELD_NUMBER: _ClassVar[int]
    DELETE_RANGE_FIELD_NUMBER: _ClassVar[int]
    SCAN_FIELD_NUMBER: _ClassVar[int]
    CAS_FIELD_NUMBER: _ClassVar[int]
    id: int
    get: RawGetRequest
    batch_get: RawBatchGetRequest
    put: RawPutRequest
    batch_put: RawBatchPutRequest
    delete: RawDeleteRequest
    delete_range: RawDeleteRangeRequest
    scan: RawScanRequest
    cas: RawCompareAndSwapRequest
    def __init__(self, id: _Optional[int] = ..., get: _Optional[_Union[RawGetRequest, _Mapping]] = ..., batch_get: _Optional[_Union[RawBatchGetRequest, _Mapping]] = ..., put: _Optional[_Union[RawPutRequest, _Mapping]] = ..., batch_put: _Optional[_Union[RawBatchPutRequest, _Mapping]] = ..., delete: _Optional[_Union[RawDeleteRequest, _Mapping]] = ..., delete_range: _Optional[_Union[RawDeleteRangeRequest, _Mapping]] = ..., scan: _Optional[_Union[RawScanRequest, _Mapping]] = ..., cas: _Optional[_Union[RawCompareAndSwapRequest, _Mapping]] = ...) -> None: ...

class Response(_message.Message):
    __slots__ = ("id", "get", "batch_get", "put", "batch_put", "delete", "delete_range", "scan", "cas")
    ID_FIELD_NUMBER: _ClassVar[int]
    GET_FIELD_NUMBER: _ClassVar[int]
    BATCH_GET_FIELD_NUMBER: _ClassVar[int]
    PUT_FIELD_NUMBER: _ClassVar[int]
    BATCH_PUT_FIELD_NUMBER: _ClassVar[int]
    DELETE_FIELD_NUMBER: _ClassVar[int]
    DELETE_RANGE_FIELD_NUMBER: _ClassVar[int]
    SCAN_FIELD_NUMBER: _ClassVar[int]
    CAS_FIELD_NUMBER: _ClassVar[int]
    id: int
    get: RawGetResponse
    batch_get: RawBatchGetResponse
    put: RawPutResponse
    batch_put: RawBatchPutResponse
    delete: RawDeleteResponse
    delete_range: RawDeleteRangeResponse
    scan: RawScanResponse
    cas: RawCompareAndSwapResponse
    def __init__(self, id: _Optional[int] = ..., get: _Optional[_Union[RawGetResponse, _Mapping]] = ..., batch_get: _Optional[_Union[RawBatchGetResponse, _Mapping]] = ..., put: _Optional[_Union[RawPutResponse, _Mapping]] = ..., batch_put: _Optional[_Union[RawBatchPutResponse, _Mapping]] = ..., delete: _Optional[_Union[RawDeleteResponse, _Mapping]] = ..., delete_range: _Optional[_Union[RawDeleteRangeResponse, _Mapping]] = ..., scan: _Optional[_Union[RawScanResponse, _Mapping]] = ..., cas: _Optional[_Union[RawCompareAndSwapResponse, _Mapping]] = ...) -> None: ...

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

from kvdb.pb import kvrpc_pb2 as _kvrpc_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Lock(_message.Message):
    __slots__ = ("op", "primary", "start_ts", "ttl_ms", "txn_size", "use_async_commit", "secondaries", "min_commit_ts", "value")
    OP_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_FIELD_NUMBER: _ClassVar[int]
    START_TS_FIELD_NUMBER: _ClassVar[int]
    TTL_MS_FIELD_NUMBER: _ClassVar[int]
    TXN_SIZE_FIELD_NUMBER: _ClassVar[int]
    USE_ASYNC_COMMIT_FIELD_NUMBER: _ClassVar[int]
    SECONDARIES_FIELD_NUMBER: _ClassVar[int]
    MIN_COMMIT_TS_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    op: _kvrpc_pb2.MutationOp
    primary: bytes
    start_ts: int
    ttl_ms: int
    txn_size: int
    use_async_commit: bool
    secondaries: _containers.RepeatedScalarFieldContainer[bytes]
    min_commit_ts: int
    value: bytes
    def __init__(self, op: _Optional[_Union[_kvrpc_pb2.MutationOp, str]] = ..., primary: _Optional[bytes] = ..., start_ts: _Optional[int] = ..., ttl_ms: _Optional[int] = ..., txn_size: _Optional[int] = ..., use_async_commit: _Optional[bool] = ..., secondaries: _Optional[_Iterable[bytes]] = ..., min_commit_ts: _Optional[int] = ..., value: _Optional[bytes] = ...) -> None: ...

class Write(_message.Message):
    __slots__ = ("kind", "start_ts", "value", "has_overlapped_rollback")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        PUT: _ClassVar[Write.Kind]
        DELETE: _ClassVar[Write.Kind]
        LOCK: _ClassVar[Write.Kind]
        ROLLBACK: _ClassVar[Write.Kind]
    PUT: Write.Kind
    DELETE: Write.Kind
    LOCK: Write.Kind
    ROLLBACK: Write.Kind
    KIND_FIELD_NUMBER: _ClassVar[int]
    START_TS_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    HAS_OVERLAPPED_ROLLBACK_FIELD_NUMBER: _ClassVar[int]
    kind: Write.Kind
    start_ts: int
    value: bytes
    has_overlapped_rollback: bool
    def __init__(self, kind: _Optional[_Union[Write.Kind, str]] = ..., start_ts: _Optional[int] = ..., value: _Optional[bytes] = ..., has_overlapped_rollback: _Optional[bool] = ...) -> None: ...

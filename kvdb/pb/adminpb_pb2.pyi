from kvdb.pb import kvrpc_pb2 as _kvrpc_pb2
from kvdb.pb import metapb_pb2 as _metapb_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RangeStatusRequest(_message.Message):
    __slots__ = ("range_id",)
    RANGE_ID_FIELD_NUMBER: _ClassVar[int]
    range_id: int
    def __init__(self, range_id: _Optional[int] = ...) -> None: ...

class RangeStatus(_message.Message):
    __slots__ = ("descriptor", "peer_id", "role", "term", "leader_id", "commit_index", "applied_index", "first_index", "last_index", "lease_valid", "lease_remaining_ms", "lease_reads", "read_index_reads", "proposals", "snapshots_sent", "snapshots_applied", "duplicates_answered", "duplicates_rejected", "sessions_expired", "hibernated")
    DESCRIPTOR_FIELD_NUMBER: _ClassVar[int]
    PEER_ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    LEADER_ID_FIELD_NUMBER: _ClassVar[int]
    COMMIT_INDEX_FIELD_NUMBER: _ClassVar[int]
    APPLIED_INDEX_FIELD_NUMBER: _ClassVar[int]
    FIRST_INDEX_FIELD_NUMBER: _ClassVar[int]
    LAST_INDEX_FIELD_NUMBER: _ClassVar[int]
    LEASE_VALID_FIELD_NUMBER: _ClassVar[int]
    LEASE_REMAINING_MS_FIELD_NUMBER: _ClassVar[int]
    LEASE_READS_FIELD_NUMBER: _ClassVar[int]
    READ_INDEX_READS_FIELD_NUMBER: _ClassVar[int]
    PROPOSALS_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOTS_SENT_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOTS_APPLIED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_ANSWERED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_REJECTED_FIELD_NUMBER: _ClassVar[int]
    SESSIONS_EXPIRED_FIELD_NUMBER: _ClassVar[int]
    HIBERNATED_FIELD_NUMBER: _ClassVar[int]
    descriptor: _metapb_pb2.RangeDescriptor
    peer_id: int
    role: str
    term: int
    leader_id: int
    commit_index: int
    applied_index: int
    first_index: int
    last_index: int
    lease_valid: bool
    lease_remaining_ms: float
    lease_reads: int
    read_index_reads: int
    proposals: int
    snapshots_sent: int
    snapshots_applied: int
    duplicates_answered: int
    duplicates_rejected: int
    sessions_expired: int
    hibernated: bool
    def __init__(self, descriptor: _Optional[_Union[_metapb_pb2.RangeDescriptor, _Mapping]] = ..., peer_id: _Optional[int] = ..., role: _Optional[str] = ..., term: _Optional[int] = ..., leader_id: _Optional[int] = ..., commit_index: _Optional[int] = ..., applied_index: _Optional[int] = ..., first_index: _Optional[int] = ..., last_index: _Optional[int] = ..., lease_valid: _Optional[bool] = ..., lease_remaining_ms: _Optional[float] = ..., lease_reads: _Optional[int] = ..., read_index_reads: _Optional[int] = ..., proposals: _Optional[int] = ..., snapshots_sent: _Optional[int] = ..., snapshots_applied: _Optional[int] = ..., duplicates_answered: _Optional[int] = ..., duplicates_rejected: _Optional[int] = ..., sessions_expired: _Optional[int] = ..., hibernated: _Optional[bool] = ...) -> None: ...

class RangeStatusResponse(_message.Message):
    __slots__ = ("error", "store_id", "ranges")
    ERROR_FIELD_NUMBER: _ClassVar[int]
    STORE_ID_FIELD_NUMBER: _ClassVar[int]
    RANGES_FIELD_NUMBER: _ClassVar[int]
    error: _kvrpc_pb2.Error
    store_id: int
    ranges: _containers.RepeatedCompositeFieldContainer[RangeStatus]
    def __init__(self, error: _Optional[_Union[_kvrpc_pb2.Error, _Mapping]] = ..., store_id: _Optional[int] = ..., ranges: _Optional[_Iterable[_Union[RangeStatus, _Mapping]]] = ...) -> None: ...

class ChangePeerRequest(_message.Message):
    __slots__ = ("cluster_id", "range_id", "change_type", "peer")
    class ChangeType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        ADD_LEARNER: _ClassVar[ChangePeerRequest.ChangeType]
        ADD_VOTER: _ClassVar[ChangePeerRequest.ChangeType]
        REMOVE: _ClassVar[ChangePeerRequest.ChangeType]
    ADD_LEARNER: ChangePeerRequest.ChangeType
    ADD_VOTER: ChangePeerRequest.ChangeType
    REMOVE: ChangePeerRequest.ChangeType
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    RANGE_ID_FIELD_NUMBER: _ClassVar[int]
    CHANGE_TYPE_FIELD_NUMBER: _ClassVar[int]
    PEER_FIELD_NUMBER: _ClassVar[int]
    cluster_id: int
    range_id: int
    change_type: ChangePeerRequest.ChangeType
    peer: _metapb_pb2.Peer
    def __init__(self, cluster_id: _Optional[int] = ..., range_id: _Optional[int] = ..., change_type: _Optional[_Union[ChangePeerRequest.ChangeType, str]] = ..., peer: _Optional[_Union[_metapb_pb2.Peer, _Mapping]] = ...) -> None: ...

class UnsafeConfChange(_message.Message):
    __slots__ = ("reason", "unreachable_peer_ids")
    class Reason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        REMOVES_LEADER: _ClassVar[UnsafeConfChange.Reason]
        LOSES_QUORUM: _ClassVar[UnsafeConfChange.Reason]
    REMOVES_LEADER: UnsafeConfChange.Reason
    LOSES_QUORUM: UnsafeConfChange.Reason
    REASON_FIELD_NUMBER: _ClassVar[int]
    UNREACHABLE_PEER_IDS_FIELD_NUMBER: _ClassVar[int]
    reason: UnsafeConfChange.Reason
    unreachable_peer_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, reason: _Optional[_Union[UnsafeConfChange.Reason, str]] = ..., unreachable_peer_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class ChangePeerResponse(_message.Message):
    __slots__ = ("error", "descriptor", "unsafe")
    ERROR_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTOR_FIELD_NUMBER: _ClassVar[int]
    UNSAFE_FIELD_NUMBER: _ClassVar[int]
    error: _kvrpc_pb2.Error
    descriptor: _metapb_pb2.RangeDescriptor
    unsafe: UnsafeConfChange
    def __init__(self, error: _Optional[_Union[_kvrpc_pb2.Error, _Mapping]] = ..., descriptor: _Optional[_Union[_metapb_pb2.RangeDescriptor, _Mapping]] = ..., unsafe: _Optional[_Union[UnsafeConfChange, _Mapping]] = ...) -> None: ...

class TransferLeaderRequest(_message.Message):
    __slots__ = ("cluster_id", "range_id", "to_peer_id")
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    RANGE_ID_FIELD_NUMBER: _ClassVar[int]
    TO_PEER_ID_FIELD_NUMBER: _ClassVar[int]
    cluster_id: int
    range_id: int
    to_peer_id: int
    def __init__(self, cluster_id: _Optional[int] = ..., range_id: _Optional[int] = ..., to_peer_id: _Optional[int] = ...) -> None: ...

class TransferLeaderResponse(_message.Message):
    __slots__ = ("error",)
    ERROR_FIELD_NUMBER: _ClassVar[int]
    error: _kvrpc_pb2.Error
    def __init__(self, error: _Optional[_Union[_kvrpc_pb2.Error, _Mapping]] = ...) -> None: ...

class SetFailpointRequest(_message.Message):
    __slots__ = ("kind", "store_id", "value")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        DROP_TO_STORE: _ClassVar[SetFailpointRequest.Kind]
        DELAY_TO_STORE: _ClassVar[SetFailpointRequest.Kind]
        CLOCK_OFFSET: _ClassVar[SetFailpointRequest.Kind]
        CLOCK_RATE: _ClassVar[SetFailpointRequest.Kind]
        DROP_WRITE_RESPONSES: _ClassVar[SetFailpointRequest.Kind]
        CRASH_TICK_LOOP: _ClassVar[SetFailpointRequest.Kind]
    DROP_TO_STORE: SetFailpointRequest.Kind
    DELAY_TO_STORE: SetFailpointRequest.Kind
    CLOCK_OFFSET: SetFailpointRequest.Kind
    CLOCK_RATE: SetFailpointRequest.Kind
    DROP_WRITE_RESPONSES: SetFailpointRequest.Kind
    CRASH_TICK_LOOP: SetFailpointRequest.Kind
    KIND_FIELD_NUMBER: _ClassVar[int]
    STORE_ID_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    kind: SetFailpointRequest.Kind
    store_id: int
    value: float
    def __init__(self, kind: _Optional[_Union[SetFailpointRequest.Kind, str]] = ..., store_id: _Optional[int] = ..., value: _Optional[float] = ...) -> None: ...

class SetFailpointResponse(_message.Message):
    __slots__ = ("error",)
    ERROR_FIELD_NUMBER: _ClassVar[int]
    error: _kvrpc_pb2.Error
    def __init__(self, error: _Optional[_Union[_kvrpc_pb2.Error, _Mapping]] = ...) -> None: ...

class CompactLogRequest(_message.Message):
    __slots__ = ("range_id",)
    RANGE_ID_FIELD_NUMBER: _ClassVar[int]
    range_id: int
    def __init__(self, range_id: _Optional[int] = ...) -> None: ...

class CompactLogResponse(_message.Message):
    __slots__ = ("error", "first_index")
    ERROR_FIELD_NUMBER: _ClassVar[int]
    FIRST_INDEX_FIELD_NUMBER: _ClassVar[int]
    error: _kvrpc_pb2.Error
    first_index: int
    def __init__(self, error: _Optional[_Union[_kvrpc_pb2.Error, _Mapping]] = ..., first_index: _Optional[int] = ...) -> None: ...

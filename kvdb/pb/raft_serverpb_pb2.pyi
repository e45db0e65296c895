from kvdb.pb import kvrpc_pb2 as _kvrpc_pb2
from kvdb.pb import metapb_pb2 as _metapb_pb2
from kvdb.pb import raft_pb2 as _raft_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RaftMessage(_message.Message):
    __slots__ = ("range_id", "from_peer", "to_peer", "epoch", "message", "start_key", "end_key", "hibernate", "store_heartbeat", "tombstone")
    RANGE_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_PEER_FIELD_NUMBER: _ClassVar[int]
    TO_PEER_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    START_KEY_FIELD_NUMBER: _ClassVar[int]
    END_KEY_FIELD_NUMBER: _ClassVar[int]
    HIBERNATE_FIELD_NUMBER: _ClassVar[int]
    STORE_HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    TOMBSTONE_FIELD_NUMBER: _ClassVar[int]
    range_id: int
    from_peer: _metapb_pb2.Peer
    to_peer: _metapb_pb2.Peer
    epoch: _metapb_pb2.RangeEpoch
    message: _raft_pb2.Message
    start_key: bytes
    end_key: bytes
    hibernate: bool
    store_heartbeat: bool
    tombstone: bool
    def __init__(self, range_id: _Optional[int] = ..., from_peer: _Optional[_Union[_metapb_pb2.Peer, _Mapping]] = ..., to_peer: _Optional[_Union[_metapb_pb2.Peer, _Mapping]] = ..., epoch: _Optional[_Union[_metapb_pb2.RangeEpoch, _Mapping]] = ..., message: _Optional[_Union[_raft_pb2.Message, _Mapping]] = ..., start_key: _Optional[bytes] = ..., end_key: _Optional[bytes] = ..., hibernate: _Optional[bool] = ..., store_heartbeat: _Optional[bool] = ..., tombstone: _Optional[bool] = ...) -> None: ...

class RaftMessageBatch(_message.Message):
    __slots__ = ("cluster_id", "from_store", "messages")
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_STORE_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    cluster_id: int
    from_store: int
    messages: _containers.RepeatedCompositeFieldContainer[RaftMessage]
    def __init__(self, cluster_id: _Optional[int] = ..., from_store: _Optional[int] = ..., messages: _Optional[_Iterable[_Union[RaftMessage, _Mapping]]] = ...) -> None: ...

class Done(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RaftPortRequest(_message.Message):
    __slots__ = ("cluster_id",)
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    cluster_id: int
    def __init__(self, cluster_id: _Optional[int] = ...) -> None: ...

class RaftPortResponse(_message.Message):
    __slots__ = ("port",)
    PORT_FIELD_NUMBER: _ClassVar[int]
    port: int
    def __init__(self, port: _Optional[int] = ...) -> None: ...

class SnapshotChunk(_message.Message):
    __slots__ = ("cluster_id", "message", "data")
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    cluster_id: int
    message: RaftMessage
    data: bytes
    def __init__(self, cluster_id: _Optional[int] = ..., message: _Optional[_Union[RaftMessage, _Mapping]] = ..., data: _Optional[bytes] = ...) -> None: ...

class SnapshotCfFile(_message.Message):
    __slots__ = ("cf", "size", "key_count")
    CF_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    KEY_COUNT_FIELD_NUMBER: _ClassVar[int]
    cf: str
    size: int
    key_count: int
    def __init__(self, cf: _Optional[str] = ..., size: _Optional[int] = ..., key_count: _Optional[int] = ...) -> None: ...

class SnapshotHeader(_message.Message):
    __slots__ = ("descriptor", "data_size", "key_count", "checksum", "sessions", "cf_files", "gc_safe_point")
    DESCRIPTOR_FIELD_NUMBER: _ClassVar[int]
    DATA_SIZE_FIELD_NUMBER: _ClassVar[int]
    KEY_COUNT_FIELD_NUMBER: _ClassVar[int]
    CHECKSUM_FIELD_NUMBER: _ClassVar[int]
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    CF_FILES_FIELD_NUMBER: _ClassVar[int]
    GC_SAFE_POINT_FIELD_NUMBER: _ClassVar[int]
    descriptor: _metapb_pb2.RangeDescriptor
    data_size: int
    key_count: int
    checksum: int
    sessions: RangeSessions
    cf_files: _containers.RepeatedCompositeFieldContainer[SnapshotCfFile]
    gc_safe_point: int
    def __init__(self, descriptor: _Optional[_Union[_metapb_pb2.RangeDescriptor, _Mapping]] = ..., data_size: _Optional[int] = ..., key_count: _Optional[int] = ..., checksum: _Optional[int] = ..., sessions: _Optional[_Union[RangeSessions, _Mapping]] = ..., cf_files: _Optional[_Iterable[_Union[SnapshotCfFile, _Mapping]]] = ..., gc_safe_point: _Optional[int] = ...) -> None: ...

class Mutation(_message.Message):
    __slots__ = ("kind", "key", "value")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        PUT: _ClassVar[Mutation.Kind]
        DELETE: _ClassVar[Mutation.Kind]
        DELETE_RANGE: _ClassVar[Mutation.Kind]
    PUT: Mutation.Kind
    DELETE: Mutation.Kind
    DELETE_RANGE: Mutation.Kind
    KIND_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    kind: Mutation.Kind
    key: bytes
    value: bytes
    def __init__(self, kind: _Optional[_Union[Mutation.Kind, str]] = ..., key: _Optional[bytes] = ..., value: _Optional[bytes] = ...) -> None: ...

class CompareAndSwap(_message.Message):
    __slots__ = ("key", "value", "previous_value", "previous_not_exist")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_VALUE_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_NOT_EXIST_FIELD_NUMBER: _ClassVar[int]
    key: bytes
    value: bytes
    previous_value: bytes
    previous_not_exist: bool
    def __init__(self, key: _Optional[bytes] = ..., value: _Optional[bytes] = ..., previous_value: _Optional[bytes] = ..., previous_not_exist: _Optional[bool] = ...) -> None: ...

class SplitRequest(_message.Message):
    __slots__ = ("split_key", "new_range_id", "new_peer_ids")
    SPLIT_KEY_FIELD_NUMBER: _ClassVar[int]
    NEW_RANGE_ID_FIELD_NUMBER: _ClassVar[int]
    NEW_PEER_IDS_FIELD_NUMBER: _ClassVar[int]
    split_key: bytes
    new_range_id: int
    new_peer_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, split_key: _Optional[bytes] = ..., new_range_id: _Optional[int] = ..., new_peer_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class BatchSplitRequest(_message.Message):
    __slots__ = ("requests",)
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[SplitRequest]
    def __init__(self, requests: _Optional[_Iterable[_Union[SplitRequest, _Mapping]]] = ...) -> None: ...

class RaftCommand(_message.Message):
    __slots__ = ("range_id", "epoch", "mutations", "cas", "session", "log_time_ms", "split", "txn")
    RANGE_ID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    MUTATIONS_FIELD_NUMBER: _ClassVar[int]
    CAS_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    LOG_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    TXN_FIELD_NUMBER: _ClassVar[int]
    range_id: int
    epoch: _metapb_pb2.RangeEpoch
    mutations: _containers.RepeatedCompositeFieldContainer[Mutation]
    cas: CompareAndSwap
    session: _kvrpc_pb2.SessionHeader
    log_time_ms: int
    split: BatchSplitRequest
    txn: TxnCommand
    def __init__(self, range_id: _Optional[int] = ..., epoch: _Optional[_Union[_metapb_pb2.RangeEpoch, _Mapping]] = ..., mutations: _Optional[_Iterable[_Union[Mutation, _Mapping]]] = ..., cas: _Optional[_Union[CompareAndSwap, _Mapping]] = ..., session: _Optional[_Union[_kvrpc_pb2.SessionHeader, _Mapping]] = ..., log_time_ms: _Optional[int] = ..., split: _Optional[_Union[BatchSplitRequest, _Mapping]] = ..., txn: _Optional[_Union[TxnCommand, _Mapping]] = ...) -> None: ...

class TxnCommand(_message.Message):
    __slots__ = ("prewrite", "commit", "rollback", "check_txn_status", "check_secondary_locks", "resolve_lock", "txn_heart_beat", "gc", "max_read_ts")
    PREWRITE_FIELD_NUMBER: _ClassVar[int]
    COMMIT_FIELD_NUMBER: _ClassVar[int]
    ROLLBACK_FIELD_NUMBER: _ClassVar[int]
    CHECK_TXN_STATUS_FIELD_NUMBER: _ClassVar[int]
    CHECK_SECONDARY_LOCKS_FIELD_NUMBER: _ClassVar[int]
    RESOLVE_LOCK_FIELD_NUMBER: _ClassVar[int]
    TXN_HEART_BEAT_FIELD_NUMBER: _ClassVar[int]
    GC_FIELD_NUMBER: _ClassVar[int]
    MAX_READ_TS_FIELD_NUMBER: _ClassVar[int]
    prewrite: _kvrpc_pb2.PrewriteRequest
    commit: _kvrpc_pb2.CommitRequest
    rollback: _kvrpc_pb2.BatchRollbackRequest
    check_txn_status: _kvrpc_pb2.CheckTxnStatusRequest
    check_secondary_locks: _kvrpc_pb2.CheckSecondaryLocksRequest
    resolve_lock: _kvrpc_pb2.ResolveLockRequest
    txn_heart_beat: _kvrpc_pb2.TxnHeartBeatRequest
    gc: GcCommand
    max_read_ts: int
    def __init__(self, prewrite: _Optional[_Union[_kvrpc_pb2.PrewriteRequest, _Mapping]] = ..., commit: _Optional[_Union[_kvrpc_pb2.CommitRequest, _Mapping]] = ..., rollback: _Optional[_Union[_kvrpc_pb2.BatchRollbackRequest, _Mapping]] = ..., check_txn_status: _Optional[_Union[_kvrpc_pb2.CheckTxnStatusRequest, _Mapping]] = ..., check_secondary_locks: _Optional[_Union[_kvrpc_pb2.CheckSecondaryLocksRequest, _Mapping]] = ..., resolve_lock: _Optional[_Union[_kvrpc_pb2.ResolveLockRequest, _Mapping]] = ..., txn_heart_beat: _Optional[_Union[_kvrpc_pb2.TxnHeartBeatRequest, _Mapping]] = ..., gc: _Optional[_Union[GcCommand, _Mapping]] = ..., max_read_ts: _Optional[int] = ...) -> None: ...

class GcCommand(_message.Message):
    __slots__ = ("safe_point", "start_key", "end_key")
    SAFE_POINT_FIELD_NUMBER: _ClassVar[int]
    START_KEY_FIELD_NUMBER: _ClassVar[int]
    END_KEY_FIELD_NUMBER: _ClassVar[int]
    safe_point: int
    start_key: bytes
    end_key: bytes
    def __init__(self, safe_point: _Optional[int] = ..., start_key: _Optional[bytes] = ..., end_key: _Optional[bytes] = ...) -> None: ...

class ChangePeerContext(_message.Message):
    __slots__ = ("epoch", "peers")
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    PEERS_FIELD_NUMBER: _ClassVar[int]
    epoch: _metapb_pb2.RangeEpoch
    peers: _containers.RepeatedCompositeFieldContainer[_metapb_pb2.Peer]
    def __init__(self, epoch: _Optional[_Union[_metapb_pb2.RangeEpoch, _Mapping]] = ..., peers: _Optional[_Iterable[_Union[_metapb_pb2.Peer, _Mapping]]] = ...) -> None: ...

class RangeLocalState(_message.Message):
    __slots__ = ("state", "descriptor")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        NORMAL: _ClassVar[RangeLocalState.State]
        TOMBSTONE: _ClassVar[RangeLocalState.State]
    NORMAL: RangeLocalState.State
    TOMBSTONE: RangeLocalState.State
    STATE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTOR_FIELD_NUMBER: _ClassVar[int]
    state: RangeLocalState.State
    descriptor: _metapb_pb2.RangeDescriptor
    def __init__(self, state: _Optional[_Union[RangeLocalState.State, str]] = ..., descriptor: _Optional[_Union[_metapb_pb2.RangeDescriptor, _Mapping]] = ...) -> None: ...

class ApplyState(_message.Message):
    __slots__ = ("applied_index", "conf_state", "gc_safe_point")
    APPLIED_INDEX_FIELD_NUMBER: _ClassVar[int]
    CONF_STATE_FIELD_NUMBER: _ClassVar[int]
    GC_SAFE_POINT_FIELD_NUMBER: _ClassVar[int]
    applied_index: int
    conf_state: _raft_pb2.ConfState
    gc_safe_point: int
    def __init__(self, applied_index: _Optional[int] = ..., conf_state: _Optional[_Union[_raft_pb2.ConfState, _Mapping]] = ..., gc_safe_point: _Optional[int] = ...) -> None: ...

class SessionResult(_message.Message):
    __slots__ = ("seq", "is_cas", "succeed", "previous_value", "previous_not_exist")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    IS_CAS_FIELD_NUMBER: _ClassVar[int]
    SUCCEED_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_VALUE_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_NOT_EXIST_FIELD_NUMBER: _ClassVar[int]
    seq: int
    is_cas: bool
    succeed: bool
    previous_value: bytes
    previous_not_exist: bool
    def __init__(self, seq: _Optional[int] = ..., is_cas: _Optional[bool] = ..., succeed: _Optional[bool] = ..., previous_value: _Optional[bytes] = ..., previous_not_exist: _Optional[bool] = ...) -> None: ...

class SessionState(_message.Message):
    __slots__ = ("session_id", "last_active_ms", "floor", "results")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    LAST_ACTIVE_MS_FIELD_NUMBER: _ClassVar[int]
    FLOOR_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    session_id: int
    last_active_ms: int
    floor: int
    results: _containers.RepeatedCompositeFieldContainer[SessionResult]
    def __init__(self, session_id: _Optional[int] = ..., last_active_ms: _Optional[int] = ..., floor: _Optional[int] = ..., results: _Optional[_Iterable[_Union[SessionResult, _Mapping]]] = ...) -> None: ...

class SessionClock(_message.Message):
    __slots__ = ("log_time_ms", "next_expiry_check_ms")
    LOG_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    NEXT_EXPIRY_CHECK_MS_FIELD_NUMBER: _ClassVar[int]
    log_time_ms: int
    next_expiry_check_ms: int
    def __init__(self, log_time_ms: _Optional[int] = ..., next_expiry_check_ms: _Optional[int] = ...) -> None: ...

class RangeSessions(_message.Message):
    __slots__ = ("clock", "sessions")
    CLOCK_FIELD_NUMBER: _ClassVar[int]
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    clock: SessionClock
    sessions: _containers.RepeatedCompositeFieldContainer[SessionState]
    def __init__(self, clock: _Optional[_Union[SessionClock, _Mapping]] = ..., sessions: _Optional[_Iterable[_Union[SessionState, _Mapping]]] = ...) -> None: ...

class StoreIdent(_message.Message):
    __slots__ = ("cluster_id", "store_id")
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    STORE_ID_FIELD_NUMBER: _ClassVar[int]
    cluster_id: int
    store_id: int
    def __init__(self, cluster_id: _Optional[int] = ..., store_id: _Optional[int] = ...) -> None: ...

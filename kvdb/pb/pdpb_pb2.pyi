from kvdb.pb import metapb_pb2 as _metapb_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StoreState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    UP: _ClassVar[StoreState]
    DISCONNECTED: _ClassVar[StoreState]
    DOWN: _ClassVar[StoreState]
    OFFLINE: _ClassVar[StoreState]
    TOMBSTONE: _ClassVar[StoreState]
UP: StoreState
DISCONNECTED: StoreState
DOWN: StoreState
OFFLINE: StoreState
TOMBSTONE: StoreState

class Member(_message.Message):
    __slots__ = ("id", "address", "learner")
    ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    LEARNER_FIELD_NUMBER: _ClassVar[int]
    id: int
    address: str
    learner: bool
    def __init__(self, id: _Optional[int] = ..., address: _Optional[str] = ..., learner: _Optional[bool] = ...) -> None: ...

class NotLeader(_message.Message):
    __slots__ = ("leader_address", "leader_id")
    LEADER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    LEADER_ID_FIELD_NUMBER: _ClassVar[int]
    leader_address: str
    leader_id: int
    def __init__(self, leader_address: _Optional[str] = ..., leader_id: _Optional[int] = ...) -> None: ...

class Error(_message.Message):
    __slots__ = ("message", "not_leader", "not_bootstrapped", "already_bootstrapped", "invalid_argument", "unavailable_backoff_ms", "wrong_cluster", "timed_out")
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    NOT_LEADER_FIELD_NUMBER: _ClassVar[int]
    NOT_BOOTSTRAPPED_FIELD_NUMBER: _ClassVar[int]
    ALREADY_BOOTSTRAPPED_FIELD_NUMBER: _ClassVar[int]
    INVALID_ARGUMENT_FIELD_NUMBER: _ClassVar[int]
    UNAVAILABLE_BACKOFF_MS_FIELD_NUMBER: _ClassVar[int]
    WRONG_CLUSTER_FIELD_NUMBER: _ClassVar[int]
    TIMED_OUT_FIELD_NUMBER: _ClassVar[int]
    message: str
    not_leader: NotLeader
    not_bootstrapped: bool
    already_bootstrapped: bool
    invalid_argument: bool
    unavailable_backoff_ms: int
    wrong_cluster: int
    timed_out: bool
    def __init__(self, message: _Optional[str] = ..., not_leader: _Optional[_Union[NotLeader, _Mapping]] = ..., not_bootstrapped: _Optional[bool] = ..., already_bootstrapped: _Optional[bool] = ..., invalid_argument: _Optional[bool] = ..., unavailable_backoff_ms: _Optional[int] = ..., wrong_cluster: _Optional[int] = ..., timed_out: _Optional[bool] = ...) -> None: ...

class RequestHeader(_message.Message):
    __slots__ = ("cluster_id",)
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    cluster_id: int
    def __init__(self, cluster_id: _Optional[int] = ...) -> None: ...

class ResponseHeader(_message.Message):
    __slots__ = ("cluster_id", "error")
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    cluster_id: int
    error: Error
    def __init__(self, cluster_id: _Optional[int] = ..., error: _Optional[_Union[Error, _Mapping]] = ...) -> None: ...

class StoreLabel(_message.Message):
    __slots__ = ("key", "value")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    key: str
    value: str
    def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class StoreStats(_message.Message):
    __slots__ = ("capacity_bytes", "used_bytes", "available_bytes", "range_count", "leader_count")
    CAPACITY_BYTES_FIELD_NUMBER: _ClassVar[int]
    USED_BYTES_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_BYTES_FIELD_NUMBER: _ClassVar[int]
    RANGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    LEADER_COUNT_FIELD_NUMBER: _ClassVar[int]
    capacity_bytes: int
    used_bytes: int
    available_bytes: int
    range_count: int
    leader_count: int
    def __init__(self, capacity_bytes: _Optional[int] = ..., used_bytes: _Optional[int] = ..., available_bytes: _Optional[int] = ..., range_count: _Optional[int] = ..., leader_count: _Optional[int] = ...) -> None: ...

class StoreInfo(_message.Message):
    __slots__ = ("id", "address", "labels", "state", "last_heartbeat_ms", "stats")
    ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    LAST_HEARTBEAT_MS_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    id: int
    address: str
    labels: _containers.RepeatedCompositeFieldContainer[StoreLabel]
    state: StoreState
    last_heartbeat_ms: int
    stats: StoreStats
    def __init__(self, id: _Optional[int] = ..., address: _Optional[str] = ..., labels: _Optional[_Iterable[_Union[StoreLabel, _Mapping]]] = ..., state: _Optional[_Union[StoreState, str]] = ..., last_heartbeat_ms: _Optional[int] = ..., stats: _Optional[_Union[StoreStats, _Mapping]] = ...) -> None: ...

class RangeStats(_message.Message):
    __slots__ = ("approximate_size", "approximate_keys", "written_bytes_per_sec", "read_bytes_per_sec", "written_keys_per_sec", "read_keys_per_sec")
    APPROXIMATE_SIZE_FIELD_NUMBER: _ClassVar[int]
    APPROXIMATE_KEYS_FIELD_NUMBER: _ClassVar[int]
    WRITTEN_BYTES_PER_SEC_FIELD_NUMBER: _ClassVar[int]
    READ_BYTES_PER_SEC_FIELD_NUMBER: _ClassVar[int]
    WRITTEN_KEYS_PER_SEC_FIELD_NUMBER: _ClassVar[int]
    READ_KEYS_PER_SEC_FIELD_NUMBER: _ClassVar[int]
    approximate_size: int
    approximate_keys: int
    written_bytes_per_sec: int
    read_bytes_per_sec: int
    written_keys_per_sec: int
    read_keys_per_sec: int
    def __init__(self, approximate_size: _Optional[int] = ..., approximate_keys: _Optional[int] = ..., written_bytes_per_sec: _Optional[int] = ..., read_bytes_per_sec: _Optional[int] = ..., written_keys_per_sec: _Optional[int] = ..., read_keys_per_sec: _Optional[int] = ...) -> None: ...

class RangeInfo(_message.Message):
    __slots__ = ("descriptor", "leader", "stats", "down_peer_ids", "pending_peer_ids", "term", "joint")
    DESCRIPTOR_FIELD_NUMBER: _ClassVar[int]
    LEADER_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    DOWN_PEER_IDS_FIELD_NUMBER: _ClassVar[int]
    PENDING_PEER_IDS_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    JOINT_FIELD_NUMBER: _ClassVar[int]
    descriptor: _metapb_pb2.RangeDescriptor
    leader: _metapb_pb2.Peer
    stats: RangeStats
    down_peer_ids: _containers.RepeatedScalarFieldContainer[int]
    pending_peer_ids: _containers.RepeatedScalarFieldContainer[int]
    term: int
    joint: bool
    def __init__(self, descriptor: _Optional[_Union[_metapb_pb2.RangeDescriptor, _Mapping]] = ..., leader: _Optional[_Union[_metapb_pb2.Peer, _Mapping]] = ..., stats: _Optional[_Union[RangeStats, _Mapping]] = ..., down_peer_ids: _Optional[_Iterable[int]] = ..., pending_peer_ids: _Optional[_Iterable[int]] = ..., term: _Optional[int] = ..., joint: _Optional[bool] = ...) -> None: ...

class ScheduleConfig(_message.Message):
    __slots__ = ("replica_count", "max_range_size", "store_down_ms", "operator_timeout_ms", "store_limit", "region_schedule_limit", "leader_schedule_limit", "hot_region_schedule_limit", "location_labels", "paused_schedulers", "evict_leader_stores", "balance_tolerance_percent", "hot_bytes_per_sec", "schedule_interval_ms")
    REPLICA_COUNT_FIELD_NUMBER: _ClassVar[int]
    MAX_RANGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    STORE_DOWN_MS_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    STORE_LIMIT_FIELD_NUMBER: _ClassVar[int]
    REGION_SCHEDULE_LIMIT_FIELD_NUMBER: _ClassVar[int]
    LEADER_SCHEDULE_LIMIT_FIELD_NUMBER: _ClassVar[int]
    HOT_REGION_SCHEDULE_LIMIT_FIELD_NUMBER: _ClassVar[int]
    LOCATION_LABELS_FIELD_NUMBER: _ClassVar[int]
    PAUSED_SCHEDULERS_FIELD_NUMBER: _ClassVar[int]
    EVICT_LEADER_STORES_FIELD_NUMBER: _ClassVar[int]
    BALANCE_TOLERANCE_PERCENT_FIELD_NUMBER: _ClassVar[int]
    HOT_BYTES_PER_SEC_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    replica_count: int
    max_range_size: int
    store_down_ms: int
    operator_timeout_ms: int
    store_limit: int
    region_schedule_limit: int
    leader_schedule_limit: int
    hot_region_schedule_limit: int
    location_labels: _containers.RepeatedScalarFieldContainer[str]
    paused_schedulers: _containers.RepeatedScalarFieldContainer[str]
    evict_leader_stores: _containers.RepeatedScalarFieldContainer[int]
    balance_tolerance_percent: int
    hot_bytes_per_sec: int
    schedule_interval_ms: int
    def __init__(self, replica_count: _Optional[int] = ..., max_range_size: _Optional[int] = ..., store_down_ms: _Optional[int] = ..., operator_timeout_ms: _Optional[int] = ..., store_limit: _Optional[int] = ..., region_schedule_limit: _Optional[int] = ..., leader_schedule_limit: _Optional[int] = ..., hot_region_schedule_limit: _Optional[int] = ..., location_labels: _Optional[_Iterable[str]] = ..., paused_schedulers: _Optional[_Iterable[str]] = ..., evict_leader_stores: _Optional[_Iterable[int]] = ..., balance_tolerance_percent: _Optional[int] = ..., hot_bytes_per_sec: _Optional[int] = ..., schedule_interval_ms: _Optional[int] = ...) -> None: ...

class GetMembersRequest(_message.Message):
    __slots__ = ("header",)
    HEADER_FIELD_NUMBER: _ClassVar[int]
    header: RequestHeader
    def __init__(self, header: _Optional[_Union[RequestHeader, _Mapping]] = ...) -> None: ...

class GetMembersResponse(_message.Message):
    __slots__ = ("header", "members", "leader", "raft_group_id")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    LEADER_FIELD_NUMBER: _ClassVar[int]
    RAFT_GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    members: _containers.RepeatedCompositeFieldContainer[Member]
    leader: Member
    raft_group_id: int
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., members: _Optional[_Iterable[_Union[Member, _Mapping]]] = ..., leader: _Optional[_Union[Member, _Mapping]] = ..., raft_group_id: _Optional[int] = ...) -> None: ...

class BootstrapRequest(_message.Message):
    __slots__ = ("header", "store", "first_range")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    STORE_FIELD_NUMBER: _ClassVar[int]
    FIRST_RANGE_FIELD_NUMBER: _ClassVar[int]
    header: RequestHeader
    store: StoreInfo
    first_range: _metapb_pb2.RangeDescriptor
    def __init__(self, header: _Optional[_Union[RequestHeader, _Mapping]] = ..., store: _Optional[_Union[StoreInfo, _Mapping]] = ..., first_range: _Optional[_Union[_metapb_pb2.RangeDescriptor, _Mapping]] = ...) -> None: ...

class BootstrapResponse(_message.Message):
    __slots__ = ("header", "bootstrap_store_id", "first_range")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    BOOTSTRAP_STORE_ID_FIELD_NUMBER: _ClassVar[int]
    FIRST_RANGE_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    bootstrap_store_id: int
    first_range: _metapb_pb2.RangeDescriptor
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., bootstrap_store_id: _Optional[int] = ..., first_range: _Optional[_Union[_metapb_pb2.RangeDescriptor, _Mapping]] = ...) -> None: ...

class IsBootstrappedRequest(_message.Message):
    __slots__ = ("header",)
    HEADER_FIELD_NUMBER: _ClassVar[int]
    header: RequestHeader
    def __init__(self, header: _Optional[_Union[RequestHeader, _Mapping]] = ...) -> None: ...

class IsBootstrappedResponse(_message.Message):
    __slots__ = ("header", "bootstrapped")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    BOOTSTRAPPED_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    bootstrapped: bool
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., bootstrapped: _Optional[bool] = ...) -> None: ...

class PutStoreRequest(_message.Message):
    __slots__ = ("header", "store")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    STORE_FIELD_NUMBER: _ClassVar[int]
    header: RequestHeader
    store: StoreInfo
    def __init__(self, header: _Optional[_Union[RequestHeader, _Mapping]] = ..., store: _Optional[_Union[StoreInfo, _Mapping]] = ...) -> None: ...

class PutStoreResponse(_message.Message):
    __slots__ = ("header",)
    HEADER_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ...) -> None: ...

class GetStoreRequest(_message.Message):
    __slots__ = ("header", "store_id")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    STORE_ID_FIELD_NUMBER: _ClassVar[int]
    header: RequestHeader
    store_id: int
    def __init__(self, header: _Optional[_Union[RequestHeader, _Mapping]] = ..., store_id: _Optional[int] = ...) -> None: ...

class GetStoreResponse(_message.Message):
    __slots__ = ("header", "store")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    STORE_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    store: StoreInfo
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., store: _Optional[_Union[StoreInfo, _Mapping]] = ...) -> None: ...

class GetAllStoresRequest(_message.Message):
    __slots__ = ("header", "exclude_tombstones")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_TOMBSTONES_FIELD_NUMBER: _ClassVar[int]
    header: RequestHeader
    exclude_tombstones: bool
    def __init__(self, header: _Optional[_Union[RequestHeader, _Mapping]] = ..., exclude_tombstones: _Optional[bool] = ...) -> None: ...

class GetAllStoresResponse(_message.Message):
    __slots__ = ("header", "stores")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    STORES_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    stores: _containers.RepeatedCompositeFieldContainer[StoreInfo]
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., stores: _Optional[_Iterable[_Union[StoreInfo, _Mapping]]] = ...) -> None: ...

class StoreHeartbeatRequest(_message.Message):
    __slots__ = ("header", "store_id", "stats")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    STORE_ID_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    header: RequestHeader
    store_id: int
    stats: StoreStats
    def __init__(self, header: _Optional[_Union[RequestHeader, _Mapping]] = ..., store_id: _Optional[int] = ..., stats: _Optional[_Union[StoreStats, _Mapping]] = ...) -> None: ...

class StoreHeartbeatResponse(_message.Message):
    __slots__ = ("header", "config", "state", "gc_safe_point")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    GC_SAFE_POINT_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    config: ScheduleConfig
    state: StoreState
    gc_safe_point: int
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., config: _Optional[_Union[ScheduleConfig, _Mapping]] = ..., state: _Optional[_Union[StoreState, str]] = ..., gc_safe_point: _Optional[int] = ...) -> None: ...

class RangeHeartbeatRequest(_message.Message):
    __slots__ = ("header", "store_id", "ranges")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    STORE_ID_FIELD_NUMBER: _ClassVar[int]
    RANGES_FIELD_NUMBER: _ClassVar[int]
    header: RequestHeader
    store_id: int
    ranges: _containers.RepeatedCompositeFieldContainer[RangeInfo]
    def __init__(self, header: _Optional[_Union[RequestHeader, _Mapping]] = ..., store_id: _Optional[int] = ..., ranges: _Optional[_Iterable[_Union[RangeInfo, _Mapping]]] = ...) -> None: ...

class RangeDecision(_message.Message):
    __slots__ = ("range_id", "epoch", "operator")
    RANGE_ID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_FIELD_NUMBER: _ClassVar[int]
    range_id: int
    epoch: _metapb_pb2.RangeEpoch
    operator: Operator
    def __init__(self, range_id: _Optional[int] = ..., epoch: _Optional[_Union[_metapb_pb2.RangeEpoch, _Mapping]] = ..., operator: _Optional[_Union[Operator, _Mapping]] = ...) -> None: ...

class Operator(_message.Message):
    __slots__ = ("kind", "peer", "split_keys", "demote_peer", "split_ids")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        ADD_LEARNER: _ClassVar[Operator.Kind]
        PROMOTE_LEARNER: _ClassVar[Operator.Kind]
        REMOVE_PEER: _ClassVar[Operator.Kind]
        TRANSFER_LEADER: _ClassVar[Operator.Kind]
        SPLIT: _ClassVar[Operator.Kind]
        REPLACE_VOTER: _ClassVar[Operator.Kind]
    ADD_LEARNER: Operator.Kind
    PROMOTE_LEARNER: Operator.Kind
    REMOVE_PEER: Operator.Kind
    TRANSFER_LEADER: Operator.Kind
    SPLIT: Operator.Kind
    REPLACE_VOTER: Operator.Kind
    KIND_FIELD_NUMBER: _ClassVar[int]
    PEER_FIELD_NUMBER: _ClassVar[int]
    SPLIT_KEYS_FIELD_NUMBER: _ClassVar[int]
    DEMOTE_PEER_FIELD_NUMBER: _ClassVar[int]
    SPLIT_IDS_FIELD_NUMBER: _ClassVar[int]
    kind: Operator.Kind
    peer: _metapb_pb2.Peer
    split_keys: _containers.RepeatedScalarFieldContainer[bytes]
    demote_peer: _metapb_pb2.Peer
    split_ids: _containers.RepeatedCompositeFieldContainer[SplitID]
    def __init__(self, kind: _Optional[_Union[Operator.Kind, str]] = ..., peer: _Optional[_Union[_metapb_pb2.Peer, _Mapping]] = ..., split_keys: _Optional[_Iterable[bytes]] = ..., demote_peer: _Optional[_Union[_metapb_pb2.Peer, _Mapping]] = ..., split_ids: _Optional[_Iterable[_Union[SplitID, _Mapping]]] = ...) -> None: ...

class SplitID(_message.Message):
    __slots__ = ("new_range_id", "new_peer_ids")
    NEW_RANGE_ID_FIELD_NUMBER: _ClassVar[int]
    NEW_PEER_IDS_FIELD_NUMBER: _ClassVar[int]
    new_range_id: int
    new_peer_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, new_range_id: _Optional[int] = ..., new_peer_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class RangeHeartbeatResponse(_message.Message):
    __slots__ = ("header", "decisions")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    DECISIONS_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    decisions: _containers.RepeatedCompositeFieldContainer[RangeDecision]
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., decisions: _Optional[_Iterable[_Union[RangeDecision, _Mapping]]] = ...) -> None: ...

class GetRangeRequest(_message.Message):
    __slots__ = ("header", "key")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    header: RequestHeader
    key: bytes
    def __init__(self, header: _Optional[_Union[RequestHeader, _Mapping]] = ..., key: _Optional[bytes] = ...) -> None: ...

class GetRangeByIDRequest(_message.Message):
    __slots__ = ("header", "range_id")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    RANGE_ID_FIELD_NUMBER: _ClassVar[int]
    header: RequestHeader
    range_id: int
    def __init__(self, header: _Optional[_Union[RequestHeader, _Mapping]] = ..., range_id: _Optional[int] = ...) -> None: ...

class GetRangeResponse(_message.Message):
    __slots__ = ("header", "range")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    RANGE_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    range: RangeInfo
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., range: _Optional[_Union[RangeInfo, _Mapping]] = ...) -> None: ...

class ScanRangesRequest(_message.Message):
    __slots__ = ("header", "start_key", "end_key", "limit")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    START_KEY_FIELD_NUMBER: _ClassVar[int]
    END_KEY_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    header: RequestHeader
    start_key: bytes
    end_key: bytes
    limit: int
    def __init__(self, header: _Optional[_Union[RequestHeader, _Mapping]] = ..., start_key: _Optional[bytes] = ..., end_key: _Optional[bytes] = ..., limit: _Optional[int] = ...) -> None: ...

class ScanRangesResponse(_message.Message):
    __slots__ = ("header", "ranges")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    RANGES_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    ranges: _containers.RepeatedCompositeFieldContainer[RangeInfo]
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., ranges: _Optional[_Iterable[_Union[RangeInfo, _Mapping]]] = ...) -> None: ...

class AllocIDRequest(_message.Message):
    __slots__ = ("header",)
    HEADER_FIELD_NUMBER: _ClassVar[int]
    header: RequestHeader
    def __init__(self, header: _Optional[_Union[RequestHeader, _Mapping]] = ...) -> None: ...

class AllocIDResponse(_message.Message):
    __slots__ = ("header", "id")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    id: int
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., id: _Optional[int] = ...) -> None: ...

class TsoRequest(_message.Message):
    __slots__ = ("header", "count")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    header: RequestHeader
    count: int
    def __init__(self, header: _Optional[_Union[RequestHeader, _Mapping]] = ..., count: _Optional[int] = ...) -> None: ...

class TsoResponse(_message.Message):
    __slots__ = ("header", "timestamp", "count")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    timestamp: int
    count: int
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., timestamp: _Optional[int] = ..., count: _Optional[int] = ...) -> None: ...

class AskBatchSplitRequest(_message.Message):
    __slots__ = ("header", "range", "split_count")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    RANGE_FIELD_NUMBER: _ClassVar[int]
    SPLIT_COUNT_FIELD_NUMBER: _ClassVar[int]
    header: RequestHeader
    range: _metapb_pb2.RangeDescriptor
    split_count: int
    def __init__(self, header: _Optional[_Union[RequestHeader, _Mapping]] = ..., range: _Optional[_Union[_metapb_pb2.RangeDescriptor, _Mapping]] = ..., split_count: _Optional[int] = ...) -> None: ...

class AskBatchSplitResponse(_message.Message):
    __slots__ = ("header", "ids")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    ids: _containers.RepeatedCompositeFieldContainer[SplitID]
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., ids: _Optional[_Iterable[_Union[SplitID, _Mapping]]] = ...) -> None: ...

class SplitRangesRequest(_message.Message):
    __slots__ = ("header", "split_keys", "timeout_ms")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    SPLIT_KEYS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    header: RequestHeader
    split_keys: _containers.RepeatedScalarFieldContainer[bytes]
    timeout_ms: int
    def __init__(self, header: _Optional[_Union[RequestHeader, _Mapping]] = ..., split_keys: _Optional[_Iterable[bytes]] = ..., timeout_ms: _Optional[int] = ...) -> None: ...

class SplitRangesResponse(_message.Message):
    __slots__ = ("header", "ranges")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    RANGES_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    ranges: _containers.RepeatedCompositeFieldContainer[RangeInfo]
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., ranges: _Optional[_Iterable[_Union[RangeInfo, _Mapping]]] = ...) -> None: ...

class OperatorInfo(_message.Message):
    __slots__ = ("id", "range_id", "kind", "origin", "description", "step", "steps", "status", "created_ms", "finished_ms", "current")
    ID_FIELD_NUMBER: _ClassVar[int]
    RANGE_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CREATED_MS_FIELD_NUMBER: _ClassVar[int]
    FINISHED_MS_FIELD_NUMBER: _ClassVar[int]
    CURRENT_FIELD_NUMBER: _ClassVar[int]
    id: int
    range_id: int
    kind: str
    origin: str
    description: str
    step: int
    steps: int
    status: str
    created_ms: int
    finished_ms: int
    current: Operator
    def __init__(self, id: _Optional[int] = ..., range_id: _Optional[int] = ..., kind: _Optional[str] = ..., origin: _Optional[str] = ..., description: _Optional[str] = ..., step: _Optional[int] = ..., steps: _Optional[int] = ..., status: _Optional[str] = ..., created_ms: _Optional[int] = ..., finished_ms: _Optional[int] = ..., current: _Optional[_Union[Operator, _Mapping]] = ...) -> None: ...

class MoveReplica(_message.Message):
    __slots__ = ("from_store", "to_store")
    FROM_STORE_FIELD_NUMBER: _ClassVar[int]
    TO_STORE_FIELD_NUMBER: _ClassVar[int]
    from_store: int
    to_store: int
    def __init__(self, from_store: _Optional[int] = ..., to_store: _Optional[int] = ...) -> None: ...

class TransferLeaderTo(_message.Message):
    __slots__ = ("to_store",)
    TO_STORE_FIELD_NUMBER: _ClassVar[int]
    to_store: int
    def __init__(self, to_store: _Optional[int] = ...) -> None: ...

class AddOperatorRequest(_message.Message):
    __slots__ = ("header", "range_id", "move_replica", "transfer_leader")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    RANGE_ID_FIELD_NUMBER: _ClassVar[int]
    MOVE_REPLICA_FIELD_NUMBER: _ClassVar[int]
    TRANSFER_LEADER_FIELD_NUMBER: _ClassVar[int]
    header: RequestHeader
    range_id: int
    move_replica: MoveReplica
    transfer_leader: TransferLeaderTo
    def __init__(self, header: _Optional[_Union[RequestHeader, _Mapping]] = ..., range_id: _Optional[int] = ..., move_replica: _Optional[_Union[MoveReplica, _Mapping]] = ..., transfer_leader: _Optional[_Union[TransferLeaderTo, _Mapping]] = ...) -> None: ...

class AddOperatorResponse(_message.Message):
    __slots__ = ("header", "operator")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    operator: OperatorInfo
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., operator: _Optional[_Union[OperatorInfo, _Mapping]] = ...) -> None: ...

class ListOperatorsRequest(_message.Message):
    __slots__ = ("header", "include_finished")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_FINISHED_FIELD_NUMBER: _ClassVar[int]
    header: RequestHeader
    include_finished: bool
    def __init__(self, header: _Optional[_Union[RequestHeader, _Mapping]] = ..., include_finished: _Optional[bool] = ...) -> None: ...

class ListOperatorsResponse(_message.Message):
    __slots__ = ("header", "operators")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    OPERATORS_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    operators: _containers.RepeatedCompositeFieldContainer[OperatorInfo]
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., operators: _Optional[_Iterable[_Union[OperatorInfo, _Mapping]]] = ...) -> None: ...

class CancelOperatorRequest(_message.Message):
    __slots__ = ("header", "operator_id")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_ID_FIELD_NUMBER: _ClassVar[int]
    header: RequestHeader
    operator_id: int
    def __init__(self, header: _Optional[_Union[RequestHeader, _Mapping]] = ..., operator_id: _Optional[int] = ...) -> None: ...

class CancelOperatorResponse(_message.Message):
    __slots__ = ("header", "operator")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    operator: OperatorInfo
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., operator: _Optional[_Union[OperatorInfo, _Mapping]] = ...) -> None: ...

class SetStoreStateRequest(_message.Message):
    __slots__ = ("header", "store_id", "state")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    STORE_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    header: RequestHeader
    store_id: int
    state: StoreState
    def __init__(self, header: _Optional[_Union[RequestHeader, _Mapping]] = ..., store_id: _Optional[int] = ..., state: _Optional[_Union[StoreState, str]] = ...) -> None: ...

class SetStoreStateResponse(_message.Message):
    __slots__ = ("header", "store")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    STORE_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    store: StoreInfo
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., store: _Optional[_Union[StoreInfo, _Mapping]] = ...) -> None: ...

class SetStoreLabelsRequest(_message.Message):
    __slots__ = ("header", "store_id", "labels")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    STORE_ID_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    header: RequestHeader
    store_id: int
    labels: _containers.RepeatedCompositeFieldContainer[StoreLabel]
    def __init__(self, header: _Optional[_Union[RequestHeader, _Mapping]] = ..., store_id: _Optional[int] = ..., labels: _Optional[_Iterable[_Union[StoreLabel, _Mapping]]] = ...) -> None: ...

class SetStoreLabelsResponse(_message.Message):
    __slots__ = ("header", "store")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    STORE_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    store: StoreInfo
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., store: _Optional[_Union[StoreInfo, _Mapping]] = ...) -> None: ...

class GetConfigRequest(_message.Message):
    __slots__ = ("header",)
    HEADER_FIELD_NUMBER: _ClassVar[int]
    header: RequestHeader
    def __init__(self, header: _Optional[_Union[RequestHeader, _Mapping]] = ...) -> None: ...

class GetConfigResponse(_message.Message):
    __slots__ = ("header", "config")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    config: ScheduleConfig
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., config: _Optional[_Union[ScheduleConfig, _Mapping]] = ...) -> None: ...

class SetConfigRequest(_message.Message):
    __slots__ = ("header", "key", "value")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    header: RequestHeader
    key: str
    value: str
    def __init__(self, header: _Optional[_Union[RequestHeader, _Mapping]] = ..., key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class SetConfigResponse(_message.Message):
    __slots__ = ("header", "config")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    config: ScheduleConfig
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., config: _Optional[_Union[ScheduleConfig, _Mapping]] = ...) -> None: ...

class SchedulerInfo(_message.Message):
    __slots__ = ("name", "paused", "created", "running")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    name: str
    paused: bool
    created: int
    running: int
    def __init__(self, name: _Optional[str] = ..., paused: _Optional[bool] = ..., created: _Optional[int] = ..., running: _Optional[int] = ...) -> None: ...

class ListSchedulersRequest(_message.Message):
    __slots__ = ("header",)
    HEADER_FIELD_NUMBER: _ClassVar[int]
    header: RequestHeader
    def __init__(self, header: _Optional[_Union[RequestHeader, _Mapping]] = ...) -> None: ...

class ListSchedulersResponse(_message.Message):
    __slots__ = ("header", "schedulers")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    SCHEDULERS_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    schedulers: _containers.RepeatedCompositeFieldContainer[SchedulerInfo]
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., schedulers: _Optional[_Iterable[_Union[SchedulerInfo, _Mapping]]] = ...) -> None: ...

class PauseSchedulerRequest(_message.Message):
    __slots__ = ("header", "name", "resume")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    RESUME_FIELD_NUMBER: _ClassVar[int]
    header: RequestHeader
    name: str
    resume: bool
    def __init__(self, header: _Optional[_Union[RequestHeader, _Mapping]] = ..., name: _Optional[str] = ..., resume: _Optional[bool] = ...) -> None: ...

class PauseSchedulerResponse(_message.Message):
    __slots__ = ("header", "scheduler")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    SCHEDULER_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    scheduler: SchedulerInfo
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., scheduler: _Optional[_Union[SchedulerInfo, _Mapping]] = ...) -> None: ...

class AddMemberRequest(_message.Message):
    __slots__ = ("header", "address")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    header: RequestHeader
    address: str
    def __init__(self, header: _Optional[_Union[RequestHeader, _Mapping]] = ..., address: _Optional[str] = ...) -> None: ...

class AddMemberResponse(_message.Message):
    __slots__ = ("header", "member", "members")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    member: Member
    members: _containers.RepeatedCompositeFieldContainer[Member]
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., member: _Optional[_Union[Member, _Mapping]] = ..., members: _Optional[_Iterable[_Union[Member, _Mapping]]] = ...) -> None: ...

class RemoveMemberRequest(_message.Message):
    __slots__ = ("header", "member_id")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    header: RequestHeader
    member_id: int
    def __init__(self, header: _Optional[_Union[RequestHeader, _Mapping]] = ..., member_id: _Optional[int] = ...) -> None: ...

class RemoveMemberResponse(_message.Message):
    __slots__ = ("header", "members")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    members: _containers.RepeatedCompositeFieldContainer[Member]
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., members: _Optional[_Iterable[_Union[Member, _Mapping]]] = ...) -> None: ...

class GetClusterStatusRequest(_message.Message):
    __slots__ = ("header",)
    HEADER_FIELD_NUMBER: _ClassVar[int]
    header: RequestHeader
    def __init__(self, header: _Optional[_Union[RequestHeader, _Mapping]] = ...) -> None: ...

class GetClusterStatusResponse(_message.Message):
    __slots__ = ("header", "members", "leader", "stores", "range_count", "operators", "config", "schedulers")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    LEADER_FIELD_NUMBER: _ClassVar[int]
    STORES_FIELD_NUMBER: _ClassVar[int]
    RANGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    OPERATORS_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    SCHEDULERS_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    members: _containers.RepeatedCompositeFieldContainer[Member]
    leader: Member
    stores: _containers.RepeatedCompositeFieldContainer[StoreInfo]
    range_count: int
    operators: _containers.RepeatedCompositeFieldContainer[OperatorInfo]
    config: ScheduleConfig
    schedulers: _containers.RepeatedCompositeFieldContainer[SchedulerInfo]
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., members: _Optional[_Iterable[_Union[Member, _Mapping]]] = ..., leader: _Optional[_Union[Member, _Mapping]] = ..., stores: _Optional[_Iterable[_Union[StoreInfo, _Mapping]]] = ..., range_count: _Optional[int] = ..., operators: _Optional[_Iterable[_Union[OperatorInfo, _Mapping]]] = ..., config: _Optional[_Union[ScheduleConfig, _Mapping]] = ..., schedulers: _Optional[_Iterable[_Union[SchedulerInfo, _Mapping]]] = ...) -> None: ...

class ClusterMeta(_message.Message):
    __slots__ = ("cluster_id", "config", "gc_safe_point")
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    GC_SAFE_POINT_FIELD_NUMBER: _ClassVar[int]
    cluster_id: int
    config: ScheduleConfig
    gc_safe_point: int
    def __init__(self, cluster_id: _Optional[int] = ..., config: _Optional[_Union[ScheduleConfig, _Mapping]] = ..., gc_safe_point: _Optional[int] = ...) -> None: ...

class GetGcSafePointRequest(_message.Message):
    __slots__ = ("header",)
    HEADER_FIELD_NUMBER: _ClassVar[int]
    header: RequestHeader
    def __init__(self, header: _Optional[_Union[RequestHeader, _Mapping]] = ...) -> None: ...

class GetGcSafePointResponse(_message.Message):
    __slots__ = ("header", "safe_point")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    SAFE_POINT_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    safe_point: int
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., safe_point: _Optional[int] = ...) -> None: ...

class UpdateGcSafePointRequest(_message.Message):
    __slots__ = ("header", "safe_point")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    SAFE_POINT_FIELD_NUMBER: _ClassVar[int]
    header: RequestHeader
    safe_point: int
    def __init__(self, header: _Optional[_Union[RequestHeader, _Mapping]] = ..., safe_point: _Optional[int] = ...) -> None: ...

class UpdateGcSafePointResponse(_message.Message):
    __slots__ = ("header", "new_safe_point")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    NEW_SAFE_POINT_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    new_safe_point: int
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., new_safe_point: _Optional[int] = ...) -> None: ...

class Window(_message.Message):
    __slots__ = ("upper",)
    UPPER_FIELD_NUMBER: _ClassVar[int]
    upper: int
    def __init__(self, upper: _Optional[int] = ...) -> None: ...

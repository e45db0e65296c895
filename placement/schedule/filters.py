"""Which stores may take a replica or a leader: the rules every checker and scheduler applies.

**Isolation by labels** (TiKV's distinct score). ``config.location_labels`` names failure domains
outermost first, e.g. ``["zone", "host"]``. A store's location is its values for those labels. A
candidate store scores, against each other replica of the range, by the outermost label at which
their locations differ: differing by zone outweighs any number of replicas differing only by
host, and identical locations score nothing. The best place for a replica is the one with the
highest score, so a range spreads over as many zones as there are, then hosts within them. With
no location labels every score is 0 and only load decides.

Only replicas on healthy stores (UP or DISCONNECTED) count as "other replicas": one on a DOWN or
OFFLINE store is about to be replaced, and its location must not steer its replacement away
from where it was.
"""

from __future__ import annotations

from collections.abc import Container, Iterable

from kvdb.pb import metapb_pb2, pdpb_pb2
from placement.cluster import HEALTHY, ClusterModel

LEVEL_WEIGHT = 1000
"""A difference at one label level outweighs this many differences at the level below."""


def location(model: ClusterModel, store_id: int) -> tuple[str, ...]:
    """The store's values of the location labels (a missing label is the empty string)."""
    labels = model.labels(store_id)
    return tuple(labels.get(key, "") for key in model.config.location_labels)


def distinct_score(model: ClusterModel, store_id: int, others: Iterable[int]) -> int:
    """How well a replica on ``store_id`` is isolated from replicas on ``others`` (higher: better)."""
    mine = location(model, store_id)
    depth = len(mine)
    score = 0
    for other in others:
        theirs = location(model, other)
        for level in range(depth):
            if mine[level] != theirs[level]:
                score += LEVEL_WEIGHT ** (depth - level - 1)
                break
    return score


def peer_stores(model: ClusterModel, info: pdpb_pb2.RangeInfo, now_ms: int,
                without: int | None = None) -> list[int]:
    """Stores of the range's replicas that count for isolation: healthy ones, ``without`` left out."""
    return [p.store_id for p in info.descriptor.peers
            if p.store_id != without and model.state(p.store_id, now_ms) in HEALTHY]


def replica_score(model: ClusterModel, info: pdpb_pb2.RangeInfo, store_id: int, now_ms: int,
                  source: int | None = None) -> int:
    """The distinct score a replica of the range on ``store_id`` has (or would have, taking the
    place of the one on ``source``) against the range's other replicas."""
    others = [s for s in peer_stores(model, info, now_ms, without=source) if s != store_id]
    return distinct_score(model, store_id, others)


def isolation_gain(model: ClusterModel, info: pdpb_pb2.RangeInfo, from_store: int, to_store: int,
                   now_ms: int) -> int:
    """How much moving the range's replica from one store to the other raises its isolation
    (negative: the move makes it worse)."""
    return (replica_score(model, info, to_store, now_ms, source=from_store)
            - replica_score(model, info, from_store, now_ms, source=from_store))


def valid_target(model: ClusterModel, info: pdpb_pb2.RangeInfo, store_id: int, now_ms: int) -> bool:
    """UP and holding no replica of the range."""
    return (model.state(store_id, now_ms) == pdpb_pb2.UP
            and all(p.store_id != store_id for p in info.descriptor.peers))


def pick_target(model: ClusterModel, info: pdpb_pb2.RangeInfo, now_ms: int,
                exclude: Container[int] = (), source: int | None = None) -> int | None:
    """The store to place a new replica of the range on (replacing the one on ``source``, if
    given): UP, holding no replica of it, not excluded; the best isolated, then the one with
    the fewest ranges, then the lowest id. None if there is none."""
    spare = [sid for sid in model.stores
             if sid not in exclude and valid_target(model, info, sid, now_ms)]
    return min(spare, default=None, key=lambda sid: (
        -replica_score(model, info, sid, now_ms, source=source), model.range_count(sid), sid))


def range_settled(info: pdpb_pb2.RangeInfo) -> bool:
    """Whether a scheduler may touch the range: not mid-change (joint, a learner catching up or
    not yet promoted) and no replica the leader reports down. A range that is not settled is the
    checkers' business first."""
    return (not info.joint and not info.pending_peer_ids and not info.down_peer_ids
            and all(p.role == metapb_pb2.VOTER for p in info.descriptor.peers))


def is_hot(info: pdpb_pb2.RangeInfo, threshold: int) -> bool:
    """Whether the range writes or reads at least ``threshold`` bytes per second: the hot-region
    scheduler's business, which the balance schedulers leave alone (else balance-leader, counting
    only leaders, would hand a hot leader straight back to the store hot-region moved it off)."""
    stats = info.stats
    return max(stats.written_bytes_per_sec, stats.read_bytes_per_sec) >= threshold


def may_lead(model: ClusterModel, store_id: int, now_ms: int) -> bool:
    """Whether a store may take leaderships: UP and not being emptied of leaders (evict-leader)."""
    return (model.state(store_id, now_ms) == pdpb_pb2.UP
            and store_id not in model.config.evict_leader_stores)


def leader_candidates(model: ClusterModel, info: pdpb_pb2.RangeInfo, now_ms: int,
                      exclude: Container[int] = ()) -> list[metapb_pb2.Peer]:
    """Voters of the range, other than its leader, that may take over its leadership."""
    down = set(info.down_peer_ids)
    return [p for p in info.descriptor.peers
            if p.role == metapb_pb2.VOTER and p.id != info.leader.id and p.id not in down
            and p.store_id not in exclude and may_lead(model, p.store_id, now_ms)]


def pick_leader_target(model: ClusterModel, info: pdpb_pb2.RangeInfo, now_ms: int,
                       exclude: Container[int] = ()) -> metapb_pb2.Peer | None:
    """The voter to hand the range's leadership to: the one on the store leading fewest ranges."""
    return min(leader_candidates(model, info, now_ms, exclude), default=None,
               key=lambda p: (model.leader_count(p.store_id), p.store_id))

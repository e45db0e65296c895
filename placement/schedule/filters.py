"""Which stores may take a replica: the rules every checker and scheduler applies when it picks one."""

from __future__ import annotations

from collections.abc import Container

from kvdb.pb import pdpb_pb2
from placement.cluster import ClusterModel


def pick_target(model: ClusterModel, info: pdpb_pb2.RangeInfo, now_ms: int,
                exclude: Container[int] = ()) -> int | None:
    """The store to place a new replica of the range on: UP, holding no replica of it, not
    excluded, the one with the fewest ranges (then the lowest id); None if there is none."""
    occupied = {p.store_id for p in info.descriptor.peers}
    spare = [sid for sid in model.stores
             if sid not in occupied and sid not in exclude and model.state(sid, now_ms) == pdpb_pb2.UP]
    return min(spare, key=lambda sid: (model.range_count(sid), sid), default=None)

"""The placement checker: no two replicas of a range in one failure domain while there are
enough domains for them all (``config.location_labels``, e.g. zones).

For each voter it asks whether another store would isolate that replica better from the range's
other replicas (``filters.replica_score``, TiKV's distinct score) and, for the worst isolated
replica that can be improved, moves it there. A move is made only when it strictly improves the
replica's score, so isolation never gets worse and two ranges never swap stores back and forth;
when there are fewer zones than replicas no store scores better and nothing happens.
"""

from __future__ import annotations

from collections.abc import Callable

from kvdb.pb import metapb_pb2, pdpb_pb2
from placement.cluster import ClusterModel
from placement.schedule import filters
from placement.schedule.operator import Operator, Priority, move_replica


class PlacementChecker:
    name = "placement-checker"

    def __init__(self, model: ClusterModel, new_id: Callable[[], int]) -> None:
        self.model = model
        self.new_id = new_id

    def check(self, info: pdpb_pb2.RangeInfo, now_ms: int) -> Operator | None:
        model = self.model
        if not model.config.location_labels or not filters.range_settled(info):
            return None  # a range mid-change is the replica checker's first

        def order(peer: metapb_pb2.Peer) -> tuple[int, bool, int]:
            # Worst isolated first; of equals, a follower (moving a leader costs a transfer first).
            score = filters.replica_score(model, info, peer.store_id, now_ms, source=peer.store_id)
            return score, peer.id == info.leader.id, peer.store_id

        for peer in sorted(info.descriptor.peers, key=order):
            target = filters.pick_target(model, info, now_ms, source=peer.store_id)
            if target is None or filters.isolation_gain(model, info, peer.store_id, target, now_ms) <= 0:
                continue  # nowhere strictly better for this replica
            leader_to = None
            if peer.id == info.leader.id:
                leader_to = filters.pick_leader_target(model, info, now_ms)
                if leader_to is None:
                    continue
            return move_replica(info, peer.store_id, target, self.new_id(), self.name, Priority.REPAIR,
                                leader_to)
        return None

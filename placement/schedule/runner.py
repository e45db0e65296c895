"""The PD leader's scheduling state and its I/O: what turns the sans-I/O scheduling code
(model, controller, coordinator) into a running placement driver.

Built afresh each time the views are loaded (a new leadership, or after a write whose outcome is
unknown): the replicated store and range records become the model, and the in-memory liveness of
the previous model carries over, so a reload does not make stores look silent. Operators in
flight live only in memory: after a PD failover the new leader starts with none, and the checkers
decide afresh from the ranges as they are (steps are idempotent, the old ones end as stale).

The coordinator task runs every effective ``schedule_interval_ms`` while this member leads in
the term it was started for: it tops up the id pool (the only await before a run), runs the
coordinator, and persists TOMBSTONE for decommissioned stores that hold no replica any more.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kvdb.pb import pdpb_pb2
from placement import metadata as md
from placement.cluster import ClusterModel
from placement.config import effective
from placement.schedule.controller import OperatorController
from placement.schedule.coordinator import Coordinator, default_coordinator
from placement.state import NotServingError, Update

if TYPE_CHECKING:
    from placement.server import PdMember

log = logging.getLogger(__name__)


@dataclass
class Scheduling:
    """One leadership's (one load's) model, controller and coordinator."""

    cluster: ClusterModel
    controller: OperatorController
    coordinator: Coordinator


def build(config: pdpb_pb2.ScheduleConfig, disconnect_ms: int, stores: list[pdpb_pb2.StoreInfo],
          ranges: list[pdpb_pb2.RangeInfo], serving_since_ms: int, new_id: Callable[[], int],
          previous: ClusterModel | None = None) -> Scheduling:
    """The scheduling state over the replicated records; ``previous``'s liveness carries over."""
    cluster = ClusterModel(effective(config), disconnect_ms, stores, ranges, serving_since_ms)
    if previous is not None:
        for store_id, known in previous.stores.items():
            mine = cluster.stores.get(store_id)
            if mine is not None and known.last_heartbeat_ms > mine.last_heartbeat_ms:
                cluster.store_heartbeat(store_id, known.stats, known.last_heartbeat_ms)
    controller = OperatorController(cluster)
    return Scheduling(cluster, controller, default_coordinator(cluster, controller, new_id))


Modify = Callable[[bytes | None], Awaitable[Update | None]]


async def update_store(member: PdMember, store_id: int, modify: Modify) -> pdpb_pb2.StoreInfo | None:
    """A conditional update of a store's record (read, modify, compare-and-write); the model
    follows what was written (keeping its in-memory liveness). Returns the new record. Store
    records change rarely (registration, labels, a state set by an operator, a tombstone), so
    the read costs nothing that matters; heartbeats never come here."""
    written = await member.state.update(md.store_key(store_id), modify)
    if written is None:
        return None
    member.cluster.put_store(pdpb_pb2.StoreInfo.FromString(written))
    return pdpb_pb2.StoreInfo.FromString(written)


async def update_config(member: PdMember, modify: Callable[[pdpb_pb2.ScheduleConfig], None]
                        ) -> pdpb_pb2.ScheduleConfig:
    """Change the replicated schedule config: ``modify`` edits a copy of it in place (and may
    raise to refuse); written only if it changed, conditional on the record read. The model
    acts on the effective config (unset fields at their defaults) from then on."""

    async def change(raw: bytes | None) -> Update | None:
        if raw is None:
            raise NotServingError("the cluster meta is missing", backoff_ms=50)
        meta = pdpb_pb2.ClusterMeta.FromString(raw)
        config = pdpb_pb2.ScheduleConfig()
        config.CopyFrom(meta.config)
        modify(config)
        if config == meta.config:
            return None
        meta.config.CopyFrom(config)
        return meta.SerializeToString(), {}, []

    written = await member.state.update(md.CLUSTER_META, change)
    if written is not None:
        member.schedule = pdpb_pb2.ClusterMeta.FromString(written).config
        member.cluster.config = effective(member.schedule)
        log.info("schedule config is now %s", member.schedule)
    return member.schedule


async def persist_tombstones(member: PdMember, now_ms: int) -> None:
    """OFFLINE stores with no replica left become TOMBSTONE in their records."""
    for store_id in member.coordinator.tombstones(now_ms):

        async def bury(raw: bytes | None, store_id: int = store_id) -> Update | None:
            if raw is None:
                return None
            info = pdpb_pb2.StoreInfo.FromString(raw)
            if info.state != pdpb_pb2.OFFLINE:
                return None  # the decommission was cancelled meanwhile
            info.state = pdpb_pb2.TOMBSTONE
            return info.SerializeToString(), {}, []

        if await update_store(member, store_id, bury) is not None:
            log.warning("store %d is decommissioned and holds no replica: TOMBSTONE", store_id)


IDS_PER_RUN = 32
"""Ids the coordinator may take in one run without I/O (reserved before each run)."""


async def coordinate(member: PdMember, term: int, clock: Callable[[], int]) -> None:
    """The coordinator loop of one leadership: ends when the member no longer leads in ``term``."""
    while True:
        try:
            if member.state.check_serving() != term:
                return
            await member.ensure_leader_ready()
            await member.ids.reserve(IDS_PER_RUN)
            now = clock()
            for op in member.coordinator.run_once(now):
                log.info("operator %d: %s (%s)", op.id, op.description, op.origin)
            await persist_tombstones(member, now)
        except NotServingError as exc:
            if not exc.backoff_ms:
                return  # not the leader any more: the next leader runs its own loop
        await asyncio.sleep(member.cluster.config.schedule_interval_ms / 1000)

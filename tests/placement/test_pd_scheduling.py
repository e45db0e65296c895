"""The scheduling wired into a real one-member PD (in process): the coordinator task persists
tombstones for decommissioned stores that hold no replica, a store heartbeat answers the store's
state, and runtime config changes are replicated and acted on."""

from __future__ import annotations

from pathlib import Path

import pytest

from kvdb.pb import pdpb_pb2
from placement import metadata as md
from placement.schedule.runner import update_store
from placement.state import Update
from tests.placement.test_client import async_test, until
from tests.placement.test_conditional_updates import _bootstrap, _header, _service, _stored, one_member_pd


async def _set_state(member, store_id: int, state: int) -> None:
    async def modify(raw: bytes | None) -> Update:
        info = pdpb_pb2.StoreInfo.FromString(raw)
        info.state = state
        return info.SerializeToString(), {}, []

    await update_store(member, store_id, modify)


def test_an_offline_store_without_replicas_becomes_a_tombstone_and_is_told_so(tmp_path: Path) -> None:
    @async_test
    async def run() -> None:
        async with one_member_pd(tmp_path) as member:
            service = _service(member)
            await _bootstrap(member, service)  # range 10, one replica, on store 1
            put = await service.PutStore(pdpb_pb2.PutStoreRequest(
                header=_header(member), store=pdpb_pb2.StoreInfo(id=2, address="127.0.0.1:2")), None)
            assert not put.header.HasField("error"), put.header.error
            await _set_state(member, 1, pdpb_pb2.OFFLINE)  # still holds range 10: stays OFFLINE
            await _set_state(member, 2, pdpb_pb2.OFFLINE)
            tombstones = []

            def buried() -> bool:
                tombstones[:] = [s for s in (1, 2) if member.cluster.stores[s].state == pdpb_pb2.TOMBSTONE]
                return bool(tombstones)

            await until(buried, "the coordinator to bury store 2")
            assert tombstones == [2]
            assert (await _stored(member, md.store_key(2), pdpb_pb2.StoreInfo)).state == pdpb_pb2.TOMBSTONE
            assert (await _stored(member, md.store_key(1), pdpb_pb2.StoreInfo)).state == pdpb_pb2.OFFLINE
            for store_id, state in ((1, pdpb_pb2.OFFLINE), (2, pdpb_pb2.TOMBSTONE)):
                resp = await service.StoreHeartbeat(pdpb_pb2.StoreHeartbeatRequest(
                    header=_header(member), store_id=store_id), None)
                assert resp.state == state

    run()


def test_update_config_is_replicated_and_the_model_acts_on_the_effective_config(tmp_path: Path) -> None:
    @async_test
    async def run() -> None:
        async with one_member_pd(tmp_path) as member:
            service = _service(member)
            await _bootstrap(member, service)
            writes = 0
            real = member.state.write

            async def counted(*args: object, **kwargs: object) -> bool:
                nonlocal writes
                writes += 1
                return await real(*args, **kwargs)

            member.state.write = counted

            def pause(config: pdpb_pb2.ScheduleConfig) -> None:
                config.store_limit = 9
                config.paused_schedulers.append("balance-region")

            new = await member.update_config(pause)
            assert (new.store_limit, list(new.paused_schedulers), writes) == (9, ["balance-region"], 1)
            meta = await _stored(member, md.CLUSTER_META, pdpb_pb2.ClusterMeta)
            assert meta.config == new and meta.config.region_schedule_limit == 0  # unset stays unset
            model = member.cluster.config
            assert (model.store_limit, model.region_schedule_limit, model.replica_count) == (9, 8, 3)
            resp = await service.StoreHeartbeat(pdpb_pb2.StoreHeartbeatRequest(
                header=_header(member), store_id=1), None)
            assert resp.config.store_limit == 9
            assert await member.update_config(lambda config: None) == new
            assert writes == 1  # nothing changed: nothing written

            def refuse(config: pdpb_pb2.ScheduleConfig) -> None:
                config.store_limit = 1
                raise ValueError("refused")

            with pytest.raises(ValueError, match="refused"):
                await member.update_config(refuse)
            assert (writes, member.cluster.config.store_limit) == (1, 9)

    run()

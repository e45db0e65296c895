"""PD's GC safe point on a real one-member PD (in process): raised only, never above PD's current
timestamp, kept across a restart, and handed to stores in the store heartbeat's answer; a
concurrent config change and a safe point update both survive (one conditional update each)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from kvdb.pb import pdpb_pb2
from kvdb.pdclient.client import PdClient, PdError
from placement import metadata as md
from placement.service import PdService
from tests.placement.test_client import async_test
from tests.placement.test_conditional_updates import (
    WriteGate,
    _bootstrap,
    _header,
    _stored,
    one_member_pd,
)


async def _update(service: PdService, member: object, safe_point: int) -> pdpb_pb2.UpdateGcSafePointResponse:
    return await service.UpdateGcSafePoint(pdpb_pb2.UpdateGcSafePointRequest(
        header=_header(member), safe_point=safe_point), None)


async def _get(service: PdService, member: object) -> int:
    resp = await service.GetGcSafePoint(pdpb_pb2.GetGcSafePointRequest(header=_header(member)), None)
    assert not resp.header.HasField("error"), resp.header.error
    return resp.safe_point


async def _beat(service: PdService, member: object) -> pdpb_pb2.StoreHeartbeatResponse:
    resp = await service.StoreHeartbeat(pdpb_pb2.StoreHeartbeatRequest(
        header=_header(member), store_id=1, stats=pdpb_pb2.StoreStats()), None)
    assert not resp.header.HasField("error"), resp.header.error
    return resp


def test_the_safe_point_only_rises_and_stores_learn_it(tmp_path: Path) -> None:
    @async_test
    async def run() -> None:
        async with one_member_pd(tmp_path) as member:
            service = PdService(member)
            await _bootstrap(member, service)
            assert await _get(service, member) == 0
            assert (await _beat(service, member)).gc_safe_point == 0
            ts = await member.tso.get(1)
            raised = await _update(service, member, ts - 1000)
            assert not raised.header.HasField("error"), raised.header.error
            assert raised.new_safe_point == ts - 1000
            assert await _get(service, member) == ts - 1000
            assert (await _beat(service, member)).gc_safe_point == ts - 1000
            # Lower or equal: nothing written, the one in force answered.
            for lower in (ts - 5000, ts - 1000):
                assert (await _update(service, member, lower)).new_safe_point == ts - 1000
            assert (await _stored(member, md.CLUSTER_META, pdpb_pb2.ClusterMeta)).gc_safe_point == ts - 1000
            # Above every timestamp PD handed out: refused, nothing changes.
            ahead = await _update(service, member, (await member.tso.get(1)) + (60_000 << 18))
            assert ahead.header.error.invalid_argument
            assert "above PD's current timestamp" in ahead.header.error.message
            zero = await _update(service, member, 0)
            assert zero.header.error.invalid_argument and "positive" in zero.header.error.message
            assert await _get(service, member) == ts - 1000

    run()


def test_the_safe_point_survives_a_restart(tmp_path: Path) -> None:
    @async_test
    async def run() -> None:
        async with one_member_pd(tmp_path) as member:
            service = PdService(member)
            await _bootstrap(member, service)
            ts = await member.tso.get(1)
            assert (await _update(service, member, ts)).new_safe_point == ts
        async with one_member_pd(tmp_path) as member:
            service = PdService(member)
            assert await _get(service, member) == ts
            assert member.gc_safe_point == ts  # the heartbeats' copy, loaded as it became leader
            assert (await _beat(service, member)).gc_safe_point == ts

    run()


def test_a_config_change_racing_a_safe_point_update_keeps_both(tmp_path: Path) -> None:
    """The config change reads the cluster meta, then its write is held while the safe point is
    raised: its compare fails, it reads again, and writes the new config over the new safe point
    (a plain read-then-write would have put the old safe point back)."""

    @async_test
    async def run() -> None:
        async with one_member_pd(tmp_path) as member:
            service = PdService(member)
            await _bootstrap(member, service)
            gate = WriteGate(member)
            gate.armed = True

            def set_replicas(config: pdpb_pb2.ScheduleConfig) -> None:
                config.replica_count = 5

            change = asyncio.ensure_future(member.update_config(set_replicas))
            await asyncio.wait_for(gate.held.wait(), 5)
            ts = await member.tso.get(1)
            assert (await _update(service, member, ts)).new_safe_point == ts
            gate.release.set()
            await change
            meta = await _stored(member, md.CLUSTER_META, pdpb_pb2.ClusterMeta)
            assert (meta.gc_safe_point, meta.config.replica_count) == (ts, 5)

    run()


def test_the_pd_client_raises_and_reads_the_safe_point(tmp_path: Path) -> None:
    @async_test
    async def run() -> None:
        async with one_member_pd(tmp_path) as member:
            await _bootstrap(member, PdService(member))
            async with PdClient(member.config.listen, timeout=5) as pd:
                ts = await pd.get_ts()
                assert await pd.update_gc_safe_point(ts) == ts
                assert await pd.update_gc_safe_point(ts - 1) == ts
                assert await pd.get_gc_safe_point() == ts
                with pytest.raises(PdError, match="above PD's current timestamp") as caught:
                    await pd.update_gc_safe_point(ts + (3600_000 << 18))
                assert caught.value.error.invalid_argument

    run()

"""PD's read-modify-write updates (and Bootstrap's answer) against the real service on a real
one-member PD (in process): two updates of one record interleaved the racy way (both read, then
both write) must not let the later write bring back what the earlier one replaced.

The interleaving is forced, not hoped for: the first update's replicated write is held at a gate
until the second update has finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path

from kvdb.pb import metapb_pb2, pdpb_pb2
from placement import metadata as md
from placement.server import PdConfig, PdMember
from placement.service import PdService
from placement.state import NotServingError
from tests.placement.test_client import async_test, until


def _free_address() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


class WriteGate:
    """Holds the next metadata write (when armed) until released; later writes pass."""

    def __init__(self, member: PdMember) -> None:
        self.armed = False
        self.held = asyncio.Event()
        self.release = asyncio.Event()
        real = member.state.write

        async def write(*args: object, **kwargs: object) -> bool:
            if self.armed:
                self.armed = False
                self.held.set()
                await self.release.wait()
            return await real(*args, **kwargs)

        member.state.write = write


@contextlib.asynccontextmanager
async def one_member_pd(tmp: Path) -> AsyncIterator[PdMember]:
    address = _free_address()
    member = PdMember(PdConfig(member_id=1, listen=address, data_dir=tmp, initial_members={1: address}))
    await member.start()
    try:
        async def ready() -> bool:
            try:
                await member.ensure_leader_ready()
            except NotServingError:
                return False
            return True

        deadline = asyncio.get_running_loop().time() + 8
        while not await ready():
            assert asyncio.get_running_loop().time() < deadline, "the PD member never led"
            await asyncio.sleep(0.02)
        yield member
    finally:
        await member.stop()


def _header(member: PdMember) -> pdpb_pb2.RequestHeader:
    return pdpb_pb2.RequestHeader(cluster_id=member.cluster_id)


async def _bootstrap(member: PdMember, service: PdService) -> None:
    first = metapb_pb2.RangeDescriptor(id=10, epoch=metapb_pb2.RangeEpoch(conf_ver=1, version=1),
                                       peers=[metapb_pb2.Peer(id=11, store_id=1)])
    resp = await service.Bootstrap(pdpb_pb2.BootstrapRequest(
        store=pdpb_pb2.StoreInfo(id=1, address="127.0.0.1:1"), first_range=first), None)
    assert not resp.header.HasField("error"), resp.header.error


async def _stored(member: PdMember, key: bytes, cls: type) -> object:
    return cls.FromString(await member.state.get(key))


def _service(member: PdMember) -> PdService:
    return PdService(member)


async def _heartbeat(service: PdService, header: pdpb_pb2.RequestHeader, info: pdpb_pb2.RangeInfo
                     ) -> pdpb_pb2.RangeHeartbeatResponse:
    async def one() -> AsyncIterator[pdpb_pb2.RangeHeartbeatRequest]:
        yield pdpb_pb2.RangeHeartbeatRequest(header=header, range=info)

    responses = service.RangeHeartbeat(one(), None)
    resp = await anext(responses)
    await responses.aclose()
    assert not resp.header.HasField("error"), resp.header.error
    return resp


def _range(conf_ver: int, leader: int, term: int) -> pdpb_pb2.RangeInfo:
    desc = metapb_pb2.RangeDescriptor(id=10, epoch=metapb_pb2.RangeEpoch(conf_ver=conf_ver, version=1))
    for peer_id in (11, 12, 13):
        desc.peers.add(id=peer_id, store_id=peer_id - 10)
    return pdpb_pb2.RangeInfo(descriptor=desc, leader=desc.peers[leader - 11], term=term)


def test_store_heartbeat_racing_put_store_keeps_the_new_address(tmp_path: Path) -> None:
    """A store heartbeat reads the record, PutStore moves the store to a new address, and the
    heartbeat's write lands last: it used to write the old address back, for good."""

    @async_test
    async def run() -> None:
        async with one_member_pd(tmp_path) as member:
            service = _service(member)
            await _bootstrap(member, service)
            gate = WriteGate(member)
            gate.armed = True
            beat = asyncio.ensure_future(service.StoreHeartbeat(pdpb_pb2.StoreHeartbeatRequest(
                header=_header(member), store_id=1, stats=pdpb_pb2.StoreStats(range_count=7)), None))
            await until(gate.held.is_set, "the heartbeat to read and reach its write")
            put = await service.PutStore(pdpb_pb2.PutStoreRequest(
                header=_header(member), store=pdpb_pb2.StoreInfo(id=1, address="127.0.0.1:2")), None)
            assert not put.header.HasField("error"), put.header.error
            gate.release.set()
            resp = await beat
            assert not resp.header.HasField("error"), resp.header.error
            info = await _stored(member, md.store_key(1), pdpb_pb2.StoreInfo)
            assert (info.address, info.stats.range_count) == ("127.0.0.1:2", 7)

    run()


def test_range_heartbeat_with_an_older_epoch_landing_last_is_ignored(tmp_path: Path) -> None:
    """Two leaders' heartbeats (conf_ver 2 and 3) both read PD's record at conf_ver 1; the older
    one writes last. It used to overwrite the newer epoch (then PD planned on a membership gone)."""

    @async_test
    async def run() -> None:
        async with one_member_pd(tmp_path) as member:
            service = _service(member)
            await _bootstrap(member, service)
            header = _header(member)
            await _heartbeat(service, header, _range(conf_ver=1, leader=11, term=5))
            gate = WriteGate(member)
            gate.armed = True
            older = asyncio.ensure_future(_heartbeat(service, header, _range(conf_ver=2, leader=11, term=5)))
            await until(gate.held.is_set, "the older heartbeat to read and reach its write")
            newer = _range(conf_ver=3, leader=12, term=6)
            assert (await _heartbeat(service, header, newer)).epoch.conf_ver == 3
            gate.release.set()
            assert (await older).epoch.conf_ver == 3  # told it is stale
            assert await _stored(member, md.range_key(10), pdpb_pb2.RangeInfo) == newer

    run()


def test_range_heartbeat_of_a_deposed_leader_does_not_replace_the_new_one(tmp_path: Path) -> None:
    """Same epoch, older term: the deposed leader's report (it has not heard of the election yet)
    must not make PD route to it again."""

    @async_test
    async def run() -> None:
        async with one_member_pd(tmp_path) as member:
            service = _service(member)
            await _bootstrap(member, service)
            header = _header(member)
            new = _range(conf_ver=2, leader=12, term=7)
            await _heartbeat(service, header, new)
            await _heartbeat(service, header, _range(conf_ver=2, leader=11, term=6))
            assert await _stored(member, md.range_key(10), pdpb_pb2.RangeInfo) == new
            newer = _range(conf_ver=2, leader=13, term=8)
            await _heartbeat(service, header, newer)
            assert await _stored(member, md.range_key(10), pdpb_pb2.RangeInfo) == newer

    run()


def test_bootstrap_answers_already_bootstrapped_with_the_recorded_range(tmp_path: Path) -> None:
    """The compare-and-set of Bootstrap, retried or lost to another store, says what it recorded,
    so ``PdClient.bootstrap`` can tell its own earlier try from another store's."""

    @async_test
    async def run() -> None:
        async with one_member_pd(tmp_path) as member:
            service = _service(member)
            await _bootstrap(member, service)
            other = metapb_pb2.RangeDescriptor(id=20, epoch=metapb_pb2.RangeEpoch(conf_ver=1, version=1),
                                               peers=[metapb_pb2.Peer(id=21, store_id=2)])
            resp = await service.Bootstrap(pdpb_pb2.BootstrapRequest(
                store=pdpb_pb2.StoreInfo(id=2, address="127.0.0.1:2"), first_range=other), None)
            assert resp.header.error.already_bootstrapped
            assert (resp.bootstrap_store_id, resp.first_range.id) == (1, 10)
            assert (await _stored(member, md.range_key(10), pdpb_pb2.RangeInfo)).descriptor.id == 10
            assert await member.state.get(md.range_key(20)) is None

    run()

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
    await member.ensure_leader_ready()  # as any next request would: the views now hold the range


async def _stored(member: PdMember, key: bytes, cls: type) -> object:
    return cls.FromString(await member.state.get(key))


def _service(member: PdMember) -> PdService:
    return PdService(member)


async def _heartbeat(service: PdService, header: pdpb_pb2.RequestHeader, *infos: pdpb_pb2.RangeInfo
                     ) -> pdpb_pb2.RangeHeartbeatResponse:
    async def one() -> AsyncIterator[pdpb_pb2.RangeHeartbeatRequest]:
        yield pdpb_pb2.RangeHeartbeatRequest(header=header, store_id=1, ranges=infos)

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


def test_store_heartbeat_touches_no_metadata_and_keeps_the_registered_address(tmp_path: Path) -> None:
    """A store heartbeat used to read the store's record and write it back through Raft: a cost
    per heartbeat, and a race with PutStore (the heartbeat's write landing last brought the old
    address back, for good). Now it only refreshes the cluster model: with every metadata read
    and write refused it still answers, with the config and the store's state, and a PutStore
    after it keeps its new address while the liveness stays."""

    @async_test
    async def run() -> None:
        async with one_member_pd(tmp_path) as member:
            service = _service(member)
            await _bootstrap(member, service)
            real_read, real_write = member.state.read, member.state.write

            async def refuse(*args: object, **kwargs: object) -> object:
                raise AssertionError("a store heartbeat went through the metadata range")

            member.state.read = member.state.write = refuse
            resp = await service.StoreHeartbeat(pdpb_pb2.StoreHeartbeatRequest(
                header=_header(member), store_id=1, stats=pdpb_pb2.StoreStats(range_count=7)), None)
            assert not resp.header.HasField("error"), resp.header.error
            assert (resp.state, resp.config.replica_count) == (pdpb_pb2.UP, 3)
            beat_ms = member.cluster.stores[1].last_heartbeat_ms
            unknown = await service.StoreHeartbeat(pdpb_pb2.StoreHeartbeatRequest(
                header=_header(member), store_id=9), None)
            assert "unknown" in unknown.header.error.message
            member.state.read, member.state.write = real_read, real_write
            put = await service.PutStore(pdpb_pb2.PutStoreRequest(
                header=_header(member), store=pdpb_pb2.StoreInfo(id=1, address="127.0.0.1:2")), None)
            assert not put.header.HasField("error"), put.header.error
            assert (await _stored(member, md.store_key(1), pdpb_pb2.StoreInfo)).address == "127.0.0.1:2"
            got = await service.GetStore(pdpb_pb2.GetStoreRequest(header=_header(member), store_id=1), None)
            assert (got.store.address, got.store.state) == ("127.0.0.1:2", pdpb_pb2.UP)
            assert got.store.last_heartbeat_ms >= beat_ms

    run()


def test_range_heartbeats_racing_write_in_the_order_decided(tmp_path: Path) -> None:
    """Two leaders' heartbeats (conf_ver 2 and 3) arrive while the first one's write is held: the
    second waits for it (decisions and writes keep one order), so the newer epoch lands last. A
    read-then-write without that order let the older one write last, and PD planned on a
    membership gone."""

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
            await until(gate.held.is_set, "the older heartbeat to reach its write")
            newer = _range(conf_ver=3, leader=12, term=6)
            newer_beat = asyncio.ensure_future(_heartbeat(service, header, newer))
            gate.release.set()
            await older
            await newer_beat
            assert await _stored(member, md.range_key(10), pdpb_pb2.RangeInfo) == newer
            assert member.cluster.ranges.get_by_id(10) == newer
            await _heartbeat(service, header, _range(conf_ver=2, leader=11, term=5))  # late and stale
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


class WriteCounter:
    """Counts the metadata writes of range records the member makes."""

    def __init__(self, member: PdMember) -> None:
        self.count = 0
        real = member.state.write

        async def write(puts: dict[bytes, bytes], deletes: list[bytes] = (), **kwargs: object) -> bool:
            self.count += any(key.startswith(md.RANGE_PREFIX) for key in [*puts, *deletes])
            return await real(puts, deletes, **kwargs)

        member.state.write = write


def test_a_batched_heartbeat_writes_only_what_changed_in_one_write(tmp_path: Path) -> None:
    """Many changed ranges: one write (below the per-write cap); an unchanged batch: no write."""

    @async_test
    async def run() -> None:
        async with one_member_pd(tmp_path) as member:
            service = _service(member)
            await _bootstrap(member, service)
            header = _header(member)
            ranges = []
            for i in range(200):  # the bootstrapped range 10 keeps [-inf, "k001"), then 199 more
                desc = metapb_pb2.RangeDescriptor(
                    id=10 if i == 0 else 1000 + i, start_key=b"" if i == 0 else b"k%03d" % i,
                    end_key=b"" if i == 199 else b"k%03d" % (i + 1),
                    epoch=metapb_pb2.RangeEpoch(conf_ver=1, version=2))
                desc.peers.add(id=desc.id + 1, store_id=1)
                ranges.append(pdpb_pb2.RangeInfo(descriptor=desc, leader=desc.peers[0], term=1))
            writes = WriteCounter(member)
            await _heartbeat(service, header, *ranges)
            assert writes.count == 1
            assert len(member.cluster.ranges) == 200
            await _heartbeat(service, header, *ranges)
            assert writes.count == 1, "an unchanged report must not be written"
            ranges[5].term = 2
            await _heartbeat(service, header, *ranges)
            assert writes.count == 2
            stored = await _stored(member, md.range_key(ranges[5].descriptor.id), pdpb_pb2.RangeInfo)
            assert stored == ranges[5]
            # A new leader's tree comes from the records: the same ranges.
            member.views_stale()
            await member.ensure_leader_ready()
            assert member.cluster.ranges.scan(b"") == ranges

    run()


def test_ask_batch_split_validates_and_allocates_ids(tmp_path: Path) -> None:
    @async_test
    async def run() -> None:
        async with one_member_pd(tmp_path) as member:
            service = _service(member)
            await _bootstrap(member, service)
            desc = member.cluster.ranges.get_by_id(10).descriptor

            async def ask(rng: metapb_pb2.RangeDescriptor, count: int) -> pdpb_pb2.AskBatchSplitResponse:
                return await service.AskBatchSplit(pdpb_pb2.AskBatchSplitRequest(
                    header=_header(member), range=rng, split_count=count), None)

            resp = await ask(desc, 3)
            assert not resp.header.HasField("error"), resp.header.error
            assert [len(ids.new_peer_ids) for ids in resp.ids] == [1, 1, 1]
            all_ids = [i for ids in resp.ids for i in (ids.new_range_id, *ids.new_peer_ids)]
            assert len(set(all_ids)) == 6 and min(all_ids) > 0
            unknown = metapb_pb2.RangeDescriptor(id=99, peers=desc.peers, epoch=desc.epoch)
            older = metapb_pb2.RangeDescriptor()
            older.CopyFrom(desc)
            older.epoch.version = 0
            for rng, count, words in ((desc, 0, "split_count"), (desc, 100_000, "split_count"),
                                      (unknown, 1, "unknown"), (older, 1, "older")):
                error = (await ask(rng, count)).header.error
                assert error.invalid_argument and words in error.message, error

    run()


def test_split_ranges_hands_the_leader_an_operator_and_answers_when_reports_show_it(tmp_path: Path) -> None:
    """The leader's part is played by hand: SplitRanges answers only after the children's and
    the shrunk parent's reports arrived (a child first), with the ranges at the keys."""

    @async_test
    async def run() -> None:
        async with one_member_pd(tmp_path) as member:
            service = _service(member)
            await _bootstrap(member, service)
            header = _header(member)
            parent = member.cluster.ranges.get_by_id(10)
            split = asyncio.ensure_future(service.SplitRanges(pdpb_pb2.SplitRangesRequest(
                header=header, split_keys=[b"m", b"f", b"m", b""], timeout_ms=20_000), None))
            await until(lambda: member.controller.get(10) is not None, "the split operator to be handed out")
            # The store's next heartbeat carries nothing new; PD still hands over the operator.
            decisions = (await _heartbeat(service, header)).decisions
            assert len(decisions) == 1 and decisions[0].range_id == 10
            op = decisions[0].operator
            assert op.kind == pdpb_pb2.Operator.SPLIT and list(op.split_keys) == [b"f", b"m"]
            assert len(op.split_ids) == 2 and all(len(i.new_peer_ids) == 1 for i in op.split_ids)

            def child(start: bytes, end: bytes, ids: pdpb_pb2.SplitID | None) -> pdpb_pb2.RangeInfo:
                info = pdpb_pb2.RangeInfo()
                info.CopyFrom(parent)
                desc = info.descriptor
                desc.start_key, desc.end_key = start, end
                desc.epoch.version = parent.descriptor.epoch.version + 2
                if ids is not None:
                    desc.id, desc.peers[0].id = ids.new_range_id, ids.new_peer_ids[0]
                    info.leader.CopyFrom(desc.peers[0])
                return info

            right = child(b"m", b"", op.split_ids[1])
            await _heartbeat(service, header, right)
            assert not split.done()
            middle, shrunk = child(b"f", b"m", op.split_ids[0]), child(b"", b"f", None)
            await _heartbeat(service, header, middle, shrunk)
            resp = await asyncio.wait_for(split, 5)
            assert not resp.header.HasField("error"), resp.header.error
            assert list(resp.ranges) == [shrunk, middle, right]
            assert not (await _heartbeat(service, header, shrunk)).decisions, "the split is done"
            assert member.controller.get(10) is None

    run()


def test_split_ranges_times_out_with_a_clear_error(tmp_path: Path) -> None:
    @async_test
    async def run() -> None:
        async with one_member_pd(tmp_path) as member:
            service = _service(member)
            await _bootstrap(member, service)
            resp = await service.SplitRanges(pdpb_pb2.SplitRangesRequest(
                header=_header(member), split_keys=[b"k"], timeout_ms=200), None)
            error = resp.header.error
            assert error.timed_out and "1 of 1 split keys" in error.message and "b'k'" in error.message
            resp = await service.SplitRanges(pdpb_pb2.SplitRangesRequest(header=_header(member)), None)
            assert resp.header.error.invalid_argument

    run()


def test_heartbeats_read_no_metadata(tmp_path: Path) -> None:
    """Store and range heartbeats are served from the leader's cluster model: no Raft read each,
    and a store heartbeat writes nothing either."""

    @async_test
    async def run() -> None:
        async with one_member_pd(tmp_path) as member:
            service = _service(member)
            await _bootstrap(member, service)
            header = _header(member)
            reads = 0
            real = member.state.read

            async def read(fn: object) -> object:
                nonlocal reads
                reads += 1
                return await real(fn)

            member.state.read = read
            for term in (5, 6):
                resp = await service.StoreHeartbeat(pdpb_pb2.StoreHeartbeatRequest(
                    header=header, store_id=1, stats=pdpb_pb2.StoreStats(range_count=term)), None)
                assert not resp.header.HasField("error"), resp.header.error
                assert resp.config.replica_count == 3, "the answer carries the schedule config"
                await _heartbeat(service, header, _range(conf_ver=2, leader=11, term=term))
            assert reads == 0
            assert member.cluster.stores[1].stats.range_count == 6  # kept in memory, not written
            assert (await _stored(member, md.store_key(1), pdpb_pb2.StoreInfo)).stats.range_count == 0

    run()

"""PD's CPU time for one batched range heartbeat of many ranges (issue 11: 10,000 idle ranges).

Runs a one-member PD in this process (real Raft metadata range on RocksDB in a temporary
directory), bootstraps it, and calls the service's RangeHeartbeat handler directly (no gRPC, so
the number is PD's own work): first a report of every range (all new: written in batches), then
reports where nothing changed (what a store sends for its unchanged ranges every few intervals),
then the typical steady-state batch (a tenth of the ranges, unchanged). Prints process CPU
seconds per request.

With ``--store``, measures the store's side instead: building the batched request
(``HeartbeatBatcher``) for ranges all led by one store of ``bench.idle_ranges``' in-process
cluster, once every range hibernated.

    .venv/bin/python -m bench.pd_heartbeat [--ranges 10000] [--repeat 5] [--store]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

from kvdb.pb import metapb_pb2, pdpb_pb2
from placement.server import PdConfig, PdMember
from placement.service import PdService
from placement.state import NotServingError


def _ranges(n: int, first_id: int) -> list[pdpb_pb2.RangeInfo]:
    """``n`` ranges covering all keys on stores 1-3, the first one keeping the bootstrap id."""
    out = []
    for i in range(n):
        desc = metapb_pb2.RangeDescriptor(
            id=first_id if i == 0 else 1_000_000 + i, start_key=b"" if i == 0 else b"r%08d" % i,
            end_key=b"" if i == n - 1 else b"r%08d" % (i + 1),
            epoch=metapb_pb2.RangeEpoch(conf_ver=5, version=n))
        for store_id in (1, 2, 3):
            desc.peers.add(id=desc.id * 10 + store_id, store_id=store_id, role=metapb_pb2.VOTER)
        out.append(pdpb_pb2.RangeInfo(descriptor=desc, leader=desc.peers[0], term=3))
    return out


async def _heartbeat(service: PdService, request: pdpb_pb2.RangeHeartbeatRequest) -> float:
    async def one() -> AsyncIterator[pdpb_pb2.RangeHeartbeatRequest]:
        yield request

    deadline = time.monotonic() + 30
    while True:
        started = time.process_time()
        responses = service.RangeHeartbeat(one(), None)
        resp = await anext(responses)
        spent = time.process_time() - started
        await responses.aclose()
        if not resp.header.error.unavailable_backoff_ms or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)  # e.g. the lease lapsed while a big first report was written
    assert not resp.header.HasField("error"), resp.header.error
    return spent


async def _ready(member: PdMember) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            await member.ensure_leader_ready()
            return
        except NotServingError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.02)


async def run(n: int, repeat: int) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{sock.getsockname()[1]}"
    with tempfile.TemporaryDirectory() as tmp:
        config = PdConfig(member_id=1, listen=address, data_dir=Path(tmp), initial_members={1: address})
        member = PdMember(config)
        await member.start()
        try:
            await _ready(member)
            service = PdService(member)
            header = pdpb_pb2.RequestHeader(cluster_id=member.cluster_id)
            first = metapb_pb2.RangeDescriptor(id=10, epoch=metapb_pb2.RangeEpoch(conf_ver=1, version=1),
                                               peers=[metapb_pb2.Peer(id=101, store_id=1)])
            boot = await service.Bootstrap(pdpb_pb2.BootstrapRequest(
                header=header, store=pdpb_pb2.StoreInfo(id=1, address="127.0.0.1:1"), first_range=first),
                None)
            assert not boot.header.HasField("error"), boot.header.error
            for store_id in (2, 3):
                store = pdpb_pb2.StoreInfo(id=store_id, address=f"127.0.0.1:{store_id}")
                await service.PutStore(pdpb_pb2.PutStoreRequest(header=header, store=store), None)
            ranges = _ranges(n, 10)
            full = pdpb_pb2.RangeHeartbeatRequest(header=header, store_id=1, ranges=ranges)
            tenth = pdpb_pb2.RangeHeartbeatRequest(header=header, store_id=1, ranges=ranges[::10])
            spent = await _heartbeat(service, full)
            print(f"{n} ranges; first report (all new, written): {spent * 1000:.0f} ms CPU")
            unchanged = [await _heartbeat(service, full) for _ in range(repeat)]
            print(f"report of all {n}, unchanged: {min(unchanged) * 1000:.1f} ms CPU "
                  f"(min of {repeat}; {min(unchanged) / n * 1e6:.1f} us per range)")
            steady = [await _heartbeat(service, tenth) for _ in range(repeat)]
            print(f"steady batch ({len(tenth.ranges)} unchanged ranges due this interval): "
                  f"{min(steady) * 1000:.1f} ms CPU")
        finally:
            await member.stop()


def store_side(n: int, repeat: int) -> None:
    from bench.idle_ranges import build, tick_all
    from kvdb.server.pd_worker import HeartbeatBatcher

    cluster = build(n, hibernate=True)
    for _ in range(cluster.config.hibernate_idle_ticks + 2 * cluster.config.election_tick):
        tick_all(cluster)
    store = cluster.stores[1]
    asleep = store.hibernation.asleep
    batcher = HeartbeatBatcher(store.store_id)

    def beat() -> tuple[float, int]:
        started = time.process_time()
        leaders = [p for p in store.peers.values() if p.is_leader and p.initialized]
        request = batcher.next_request(leaders, 0, asleep)
        return time.process_time() - started, len(request.ranges)

    spent, carried = beat()
    print(f"{n} ranges led by one store ({len(asleep)} hibernated); first request ({carried} ranges): "
          f"{spent * 1000:.0f} ms CPU")
    steady = [beat() for _ in range(repeat)]
    print(f"steady request ({steady[-1][1]} ranges due): {min(t for t, _ in steady) * 1000:.1f} ms CPU")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranges", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--store", action="store_true", help="measure the store's side")
    args = parser.parse_args()
    if args.store:
        store_side(args.ranges, args.repeat)
    else:
        asyncio.run(run(args.ranges, args.repeat))


if __name__ == "__main__":
    main()

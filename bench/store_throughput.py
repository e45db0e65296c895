"""Put/get throughput of a 3-store cluster (static bootstrap) through the batched KV stream.

Usage: python -m bench.store_throughput [--seconds 5] [--streams 4] [--batch 64] [--window 4]

Starts three ``kvdb store`` processes on loopback in a temporary directory, finds the leader of
the first range, then drives it from this process: ``--streams`` Batch streams, each keeping
``--window`` messages of ``--batch`` requests in flight. Prints puts/s and lease gets/s and the
leader's lease/ReadIndex counters. Numbers depend on the machine and what else runs on it; the
client shares the cores with the stores.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

from kvdb.net import grpc_factory
from kvdb.pb import adminpb_pb2, adminpb_pb2_grpc, kvrpc_pb2, kvrpc_pb2_grpc
from kvdb.playground import free_ports

VALUE = b"x" * 100


def start_stores(root: Path) -> tuple[list[subprocess.Popen], list[str]]:
    ports = free_ports(3)
    addresses = [f"127.0.0.1:{p}" for p in ports]
    spec = ",".join(f"{i + 1}={a}" for i, a in enumerate(addresses))
    procs = []
    for i, address in enumerate(addresses):
        ready = root / f"ready{i + 1}"
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "kvdb", "store", "--store-id", str(i + 1), "--listen", address,
             "--data-dir", str(root / f"s{i + 1}"), "--static-cluster", spec, "--ready-file", str(ready),
             "--log-level", "WARNING"],
        ))
    deadline = time.monotonic() + 30
    while not all((root / f"ready{i + 1}").exists() for i in range(3)):
        if time.monotonic() > deadline:
            raise TimeoutError("stores did not start")
        time.sleep(0.05)
    return procs, addresses


async def find_leader(addresses: list[str]) -> tuple[str, adminpb_pb2.RangeStatus]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for address in addresses:
            async with grpc_factory.channel(address, None) as channel:
                st = await adminpb_pb2_grpc.AdminStub(channel).RangeStatus(adminpb_pb2.RangeStatusRequest())
            if st.ranges and st.ranges[0].role == "leader" and st.ranges[0].lease_valid:
                return address, st.ranges[0]
        await asyncio.sleep(0.1)
    raise TimeoutError("no leader with a lease")


async def drive(stub: kvrpc_pb2_grpc.KvStub, make: callable, seconds: float, batch: int, window: int) -> int:
    """One stream: keep ``window`` batches in flight until time is up; returns requests answered."""
    deadline = time.monotonic() + seconds
    credits = asyncio.Semaphore(window)
    next_id = 0
    errors = 0

    async def requests() -> AsyncIterator[kvrpc_pb2.BatchRequest]:
        nonlocal next_id
        while time.monotonic() < deadline:
            await credits.acquire()
            reqs = [make(next_id + i) for i in range(batch)]
            next_id += batch
            yield kvrpc_pb2.BatchRequest(requests=reqs)

    done = 0
    outstanding = 0
    call = stub.Batch(requests())
    async for resp in call:
        for r in resp.responses:
            body = getattr(r, r.WhichOneof("resp"))
            errors += body.HasField("error")
        done += len(resp.responses)
        outstanding += len(resp.responses)
        while outstanding >= batch:
            outstanding -= batch
            credits.release()
        if time.monotonic() >= deadline and done >= next_id:
            break
    call.cancel()
    if errors:
        print(f"  {errors} errors", file=sys.stderr)
    return done


async def run(args: argparse.Namespace, addresses: list[str]) -> None:
    leader, status = await find_leader(addresses)
    ctx = kvrpc_pb2.Context(cluster_id=1, range_id=1, epoch=status.descriptor.epoch)
    key_space = 100_000

    def put(i: int) -> kvrpc_pb2.Request:
        key = b"key%08d" % (i % key_space)
        return kvrpc_pb2.Request(id=i, put=kvrpc_pb2.RawPutRequest(context=ctx, key=key, value=VALUE))

    def get(i: int) -> kvrpc_pb2.Request:
        key = b"key%08d" % (i % key_space)
        return kvrpc_pb2.Request(id=i, get=kvrpc_pb2.RawGetRequest(context=ctx, key=key))

    async with grpc_factory.channel(leader, None) as channel:
        stub = kvrpc_pb2_grpc.KvStub(channel)
        for name, make in (("put", put), ("get", get)):
            t0 = time.monotonic()
            counts = await asyncio.gather(*(drive(stub, make, args.seconds, args.batch, args.window)
                                            for _ in range(args.streams)))
            elapsed = time.monotonic() - t0
            print(f"{name}: {sum(counts) / elapsed:,.0f} ops/s ({sum(counts)} in {elapsed:.1f} s)")
        admin = adminpb_pb2_grpc.AdminStub(channel)
        st = (await admin.RangeStatus(adminpb_pb2.RangeStatusRequest(range_id=1))).ranges[0]
        print(f"leader counters: lease_reads={st.lease_reads} read_index_reads={st.read_index_reads} "
              f"proposals={st.proposals} applied={st.applied_index}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--window", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kvdb-bench-") as tmp:
        procs, addresses = start_stores(Path(tmp))
        try:
            import uvloop

            uvloop.run(run(args, addresses))
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(timeout=30)


if __name__ == "__main__":
    main()

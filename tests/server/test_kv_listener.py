"""The store's raw KV stream (``KvListener``) on a real TLS store in process: each request is
checked by its kind against the connection's certificate, a duplicate in-flight id is refused,
and a frame that is not a ``BatchRequest`` ends only its own connection."""

from __future__ import annotations

import asyncio
import logging

from kvdb.net import grpc_factory, wire
from kvdb.pb import kvrpc_pb2, kvrpc_pb2_grpc
from tests.integration.test_roles import TlsCluster, cluster_test

DEADLINE = 10.0


class RawStream:
    """A client of the listener by hand: frames out, every answer collected in arrival order."""

    def __init__(self) -> None:
        self.conn: wire.FramedConnection | None = None
        self.answers: list[kvrpc_pb2.Response] = []
        self.frames: list[list[int]] = []
        """The request ids answered by each frame, in arrival order."""
        self.arrived = asyncio.Event()

    @classmethod
    async def open(cls, cluster: TlsCluster, name: str) -> RawStream:
        tls = cluster.tls(name)
        async with grpc_factory.channel(cluster.store, tls) as channel:
            reply = await kvrpc_pb2_grpc.KvStub(channel).KvPort(
                kvrpc_pb2.KvPortRequest(cluster_id=cluster.store_node.store.cluster_id))
        assert reply.port and not reply.HasField("error")
        stream = cls()
        stream.conn = await wire.connect("127.0.0.1", reply.port, tls, stream._on_frame)
        return stream

    def _on_frame(self, _: wire.FramedConnection, payload: bytes) -> None:
        responses = kvrpc_pb2.BatchResponse.FromString(payload).responses
        self.answers += responses
        self.frames.append([r.id for r in responses])
        self.arrived.set()

    async def send(self, *requests: kvrpc_pb2.Request, frames: int = 1) -> list[kvrpc_pb2.Response]:
        """One batch in ``frames`` frames written at once; as many answers as it had requests
        (waited for with a deadline)."""
        start = len(self.answers)
        size = -(-len(requests) // frames)
        self.conn.transport.write(b"".join(
            wire.frame(kvrpc_pb2.BatchRequest(requests=requests[i:i + size]).SerializeToString())
            for i in range(0, len(requests), size)))

        async def all_answered() -> None:
            while len(self.answers) < start + len(requests):
                self.arrived.clear()
                await self.arrived.wait()

        await asyncio.wait_for(all_answered(), DEADLINE)
        return self.answers[start:]


def context(cluster: TlsCluster) -> kvrpc_pb2.Context:
    store = cluster.store_node.store
    (peer,) = store.peers.values()
    return kvrpc_pb2.Context(cluster_id=store.cluster_id, range_id=peer.desc.id, epoch=peer.desc.epoch)


def put(req_id: int, ctx: kvrpc_pb2.Context, key: bytes, value: bytes) -> kvrpc_pb2.Request:
    return kvrpc_pb2.Request(id=req_id, put=kvrpc_pb2.RawPutRequest(context=ctx, key=key, value=value))


def get(req_id: int, ctx: kvrpc_pb2.Context, key: bytes) -> kvrpc_pb2.Request:
    return kvrpc_pb2.Request(id=req_id, get=kvrpc_pb2.RawGetRequest(context=ctx, key=key))


@cluster_test
async def test_a_readonly_connection_may_read_but_its_writes_are_refused(cluster: TlsCluster) -> None:
    async with cluster.client("root") as root:
        await root.put(b"k", b"old")  # the range has a leader
    ctx = context(cluster)
    ro = await RawStream.open(cluster, "ro")
    try:
        denied, = await ro.send(put(1, ctx, b"k", b"new"))
        assert denied.put.error.WhichOneof("kind") == "permission_denied", denied
        why = denied.put.error.message
        assert "client 'ro' (role readonly) may not send put requests: needs readwrite" in why
        read, = await ro.send(get(2, ctx, b"k"))
        assert not read.get.HasField("error") and read.get.value == b"old", read
    finally:
        ro.conn.close()


@cluster_test
async def test_a_duplicate_in_flight_id_gets_invalid_argument_and_the_first_is_served(
        cluster: TlsCluster) -> None:
    async with cluster.client("root") as root:
        await root.put(b"k", b"old")
    ctx = context(cluster)
    rw = await RawStream.open(cluster, "rw")
    try:
        # A put waits for Raft, so the second request with its id comes while it is in flight.
        first, second = await rw.send(put(5, ctx, b"k", b"new"), put(5, ctx, b"k", b"other"))
        answers = sorted([first, second], key=lambda r: r.put.HasField("error"))
        assert not answers[0].put.HasField("error"), answers
        assert answers[1].put.error.WhichOneof("kind") == "invalid_argument"
        assert "request id 5 is already in flight" in answers[1].put.error.message
        read, = await rw.send(get(6, ctx, b"k"))
        assert read.get.value == b"new"
    finally:
        rw.conn.close()


@cluster_test
async def test_a_frame_that_is_not_a_batch_request_closes_only_its_connection(cluster: TlsCluster) -> None:
    async with cluster.client("root") as root:
        await root.put(b"k", b"v")
    ctx = context(cluster)
    good = await RawStream.open(cluster, "ro")
    bad = await RawStream.open(cluster, "ro")
    try:
        with_warning = logging.getLogger("kvdb.net.wire")
        records: list[logging.LogRecord] = []
        handler = logging.Handler()
        handler.emit = records.append  # type: ignore[method-assign]
        with_warning.addHandler(handler)
        try:
            bad.conn.send(b"\xff\xff\xff")  # not a protobuf message
            await asyncio.wait_for(bad.conn.closed, DEADLINE)
        finally:
            with_warning.removeHandler(handler)
        assert any("a frame that is not a BatchRequest" in r.getMessage() for r in records), records
        read, = await good.send(get(1, ctx, b"k"))
        assert read.get.value == b"v"
    finally:
        good.conn.close()
        bad.conn.close()


@cluster_test
async def test_each_frame_of_lease_reads_is_answered_before_the_next_frame_is_served(
        cluster: TlsCluster) -> None:
    """A client splits a burst into frames so that it handles the first answers while the store
    serves the rest (kvdb/client/transport.py FRAME_PARTS): each frame's lease reads must leave
    as their own frame even when the frames arrive in one read."""
    async with cluster.client("root") as root:
        await root.put(b"k", b"v")
    ctx = context(cluster)
    (peer,) = cluster.store_node.store.peers.values()
    ro = await RawStream.open(cluster, "ro")
    try:
        lease_reads = peer.counters["lease_reads"]
        answers = await ro.send(*(get(i, ctx, b"k") for i in range(1, 9)), frames=2)
        assert [a.get.value for a in answers] == [b"v"] * 8
        assert peer.counters["lease_reads"] == lease_reads + 8  # served at once, not by ReadIndex
        assert ro.frames == [[1, 2, 3, 4], [5, 6, 7, 8]]
    finally:
        ro.conn.close()

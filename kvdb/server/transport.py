"""Raft messages between stores over raw TCP: one long-lived connection per destination store.

A connect attempt asks the peer's advertised gRPC address for its Raft port
(``RaftTransport.RaftPort``), then opens a framed connection (``kvdb.net.wire``) to that port on
the same host; the peer's ``RaftListener`` reads it. Messages a loop iteration produces for one
store leave as one ``RaftMessageBatch`` frame; if the connection is busy (its write buffer is
full), everything queued meanwhile is coalesced into the next batch. The queue is bounded: when a
peer store is down or slow, the oldest messages are dropped (Raft retries), so a dead store never
costs unbounded memory. Snapshots take their own gRPC stream, in chunks read from the snapshot's
file.

Failpoints (tests only) sit here: drop or delay everything sent to a store.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

import grpc

from kvdb.net import grpc_factory, wire
from kvdb.net.tls import TlsFiles
from kvdb.pb import raft_serverpb_pb2, raft_serverpb_pb2_grpc
from kvdb.server.addresses import split_host_port
from kvdb.server.supervisor import spawn
from kvdb.store.snapshot import Built

log = logging.getLogger(__name__)

MAX_QUEUED_MESSAGES = 100_000
RECONNECT_BACKOFF = (0.05, 1.0)
CONNECT_TIMEOUT = 5.0
"""Seconds for one connect attempt (RaftPort and the TCP/TLS connect); a peer that does not
answer in that time is tried again after the backoff."""


class _Connection:
    """The connection to one store and the messages waiting for it.

    One task per destination runs connect attempts one after the other, and sends from the queue
    only on the attempt's own connection: nothing of a failed attempt outlives it to take the next
    connection's batches (issue 10, item 8, when each attempt was a gRPC stream).
    """

    def __init__(self, transport: StoreTransport, store_id: int) -> None:
        self.transport = transport
        self.store_id = store_id
        self.queue: list[raft_serverpb_pb2.RaftMessage] = []
        self.wakeup = asyncio.Event()
        """Set when messages were queued or the connection was lost."""
        self.delivered = False
        """The current attempt wrote a batch: the connection was up, so the next connect may be quick."""
        self.live: wire.FramedConnection | None = None
        """The current attempt's connection while its sender runs; None between attempts."""
        self.task = spawn(self._run(), f"raft connection to store {store_id}")

    def push(self, messages: list[raft_serverpb_pb2.RaftMessage]) -> None:
        """Send ``messages`` at once when nothing waits before them and the peer keeps up; else
        queue them for the sender task. Waiting for the task delayed a follower's ack behind the
        rest of its loop iteration (apply, answers, the next ``begin``): ~100-300 µs on the
        critical path of every write."""
        live = self.live
        if live is not None and not self.queue and live.writable:
            self._write(live, messages)
            return
        self.queue.extend(messages)
        overflow = len(self.queue) - MAX_QUEUED_MESSAGES
        if overflow > 0:
            del self.queue[:overflow]
            log.warning("to store %d: queue full, dropped %d messages", self.store_id, overflow)
        self.wakeup.set()

    async def _connect(self, address: str) -> wire.FramedConnection:
        t = self.transport
        async with grpc_factory.channel(address, t.tls) as channel:
            reply = await raft_serverpb_pb2_grpc.RaftTransportStub(channel).RaftPort(
                raft_serverpb_pb2.RaftPortRequest(cluster_id=t.cluster_id), timeout=CONNECT_TIMEOUT)
        host, _ = split_host_port(address, "store address")
        return await asyncio.wait_for(wire.connect(host, reply.port, t.tls), CONNECT_TIMEOUT)

    async def _send(self, conn: wire.FramedConnection) -> None:
        """Send batches from the queue until the connection is lost."""
        conn.closed.add_done_callback(lambda _: self.wakeup.set())
        while True:
            await self.wakeup.wait()
            self.wakeup.clear()
            if conn.closed.done():
                return
            if not self.queue:
                continue
            messages, self.queue = self.queue, []
            self._write(conn, messages)
            await conn.drain()  # a slow peer holds us here; meanwhile the queue coalesces
            if self.queue:
                self.wakeup.set()

    def _write(self, conn: wire.FramedConnection, messages: list[raft_serverpb_pb2.RaftMessage]) -> None:
        t = self.transport
        conn.send(raft_serverpb_pb2.RaftMessageBatch(
            cluster_id=t.cluster_id, from_store=t.store_id, messages=messages).SerializeToString())
        self.delivered = True

    async def _run(self) -> None:
        backoff = RECONNECT_BACKOFF[0]
        while True:
            address = self.transport.resolve(self.store_id)
            if not address:  # being resolved (through PD): look again soon
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, RECONNECT_BACKOFF[1])
                continue
            self.delivered = False
            conn: wire.FramedConnection | None = None
            try:
                conn = await self._connect(address)
                self.live = conn
                await self._send(conn)
            except asyncio.CancelledError:
                raise
            except grpc.aio.AioRpcError as exc:
                log.debug("raft port of store %d (%s): %s", self.store_id, address, exc.code())
            except (OSError, TimeoutError) as exc:  # refused, reset, timed out, TLS refused
                log.debug("raft connection to store %d (%s) ended: %r", self.store_id, address, exc)
            except Exception:
                log.exception("raft connection to store %d failed", self.store_id)
            finally:
                self.live = None
                if conn is not None:
                    conn.close()
            # Whatever was queued for a dead connection is as good as lost: Raft resends.
            self.queue.clear()
            self.wakeup.clear()
            if self.delivered:  # it was up: the peer likely restarted, so try again at once
                backoff = RECONNECT_BACKOFF[0]
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, RECONNECT_BACKOFF[1])


class StoreTransport:
    """The store's ``Transport``: sends to other stores by id, resolving addresses on demand."""

    def __init__(self, cluster_id: int, store_id: int, resolve: Callable[[int], str],
                 chunk_bytes: int = 1 << 20, tls: TlsFiles | None = None) -> None:
        self.cluster_id = cluster_id
        self.tls = tls
        self.store_id = store_id
        self.resolve = resolve
        self.chunk_bytes = chunk_bytes
        self._connections: dict[int, _Connection] = {}
        self._snapshot_tasks: set[asyncio.Task] = set()
        # Failpoints: store id -> drop everything / seconds of delay.
        self.drop_to: set[int] = set()
        self.delay_to: dict[int, float] = {}

    def send(self, store_id: int, messages: list[raft_serverpb_pb2.RaftMessage]) -> None:
        if store_id in self.drop_to:
            return
        delay = self.delay_to.get(store_id)
        if delay:
            asyncio.get_running_loop().call_later(delay, self._push, store_id, messages)
        else:
            self._push(store_id, messages)

    def _push(self, store_id: int, messages: list[raft_serverpb_pb2.RaftMessage]) -> None:
        conn = self._connections.get(store_id)
        if conn is None:
            conn = self._connections[store_id] = _Connection(self, store_id)
        conn.push(messages)

    def send_snapshot(self, store_id: int, message: raft_serverpb_pb2.RaftMessage, data: Built,
                      done: Callable[[bool], None]) -> None:
        task = spawn(self._stream_snapshot(store_id, message, data, done), f"snapshot to store {store_id}")
        self._snapshot_tasks.add(task)
        task.add_done_callback(self._snapshot_tasks.discard)

    async def _stream_snapshot(self, store_id: int, message: raft_serverpb_pb2.RaftMessage, data: Built,
                               done: Callable[[bool], None]) -> None:
        ok = False
        try:
            if store_id in self.drop_to:
                return
            address = self.resolve(store_id)
            if not address:
                return

            async def chunks() -> AsyncIterator[raft_serverpb_pb2.SnapshotChunk]:
                # One chunk read from the file at a time; grpc asks for the next once this one
                # is written, so a slow receiver holds back the reads (bounded memory).
                yield raft_serverpb_pb2.SnapshotChunk(cluster_id=self.cluster_id, message=message)
                for piece in data.chunks(self.chunk_bytes):
                    yield raft_serverpb_pb2.SnapshotChunk(data=piece)

            async with grpc_factory.channel(address, self.tls) as channel:
                await raft_serverpb_pb2_grpc.RaftTransportStub(channel).Snapshot(chunks(), timeout=300)
            ok = True
        except grpc.aio.AioRpcError as exc:
            log.warning("snapshot to store %d failed: %s %s", store_id, exc.code(), exc.details())
        except OSError as exc:  # the file went (the store is stopping)
            log.warning("snapshot to store %d failed: %s", store_id, exc)
        finally:
            done(ok)

    async def close(self) -> None:
        tasks = [c.task for c in self._connections.values()] + list(self._snapshot_tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._connections.clear()

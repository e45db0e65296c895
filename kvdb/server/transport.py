"""Raft messages between stores over gRPC: one long-lived stream per destination store.

Messages a loop iteration produces for one store leave as one ``RaftMessageBatch``; if the
stream is busy, everything queued meanwhile is coalesced into the next batch. The queue is
bounded: when a peer store is down or slow, the oldest messages are dropped (Raft retries), so a
dead store never costs unbounded memory. Snapshots take their own stream, in chunks read from
the snapshot's file.

Failpoints (tests only) sit here: drop or delay everything sent to a store.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

import grpc

from kvdb.net import grpc_factory
from kvdb.net.tls import TlsFiles
from kvdb.pb import raft_serverpb_pb2, raft_serverpb_pb2_grpc
from kvdb.server.supervisor import spawn
from kvdb.store.snapshot import Built

log = logging.getLogger(__name__)

MAX_QUEUED_MESSAGES = 100_000
RECONNECT_BACKOFF = (0.05, 1.0)


class _Attempt:
    """One connect attempt's stream: the wake-up of its request generator, and what it achieved.

    grpc.aio keeps consuming a stream's request generator after the call has failed (only a local
    cancel stops that), so a generator parked on a wake-up shared by every attempt would outlive
    its call: once messages came, it would take the queue and write it to the finished call. Each
    attempt therefore has its own wake-up, and retiring the attempt ends its generator.
    """

    def __init__(self) -> None:
        self.wakeup = asyncio.Event()
        self.retired = False
        self.delivered = False
        """A batch reached the transport: the stream was up, so the next connect may be quick."""

    def retire(self) -> None:
        self.retired = True
        self.wakeup.set()  # a generator still parked wakes, sees it is retired and ends


class _Connection:
    """The stream to one store and the messages waiting for it."""

    def __init__(self, transport: GrpcTransport, store_id: int) -> None:
        self.transport = transport
        self.store_id = store_id
        self.queue: list[raft_serverpb_pb2.RaftMessage] = []
        self.attempt: _Attempt | None = None
        """The stream being connected or up; None between attempts."""
        self.task = spawn(self._run(), f"raft stream to store {store_id}")

    def push(self, messages: list[raft_serverpb_pb2.RaftMessage]) -> None:
        self.queue.extend(messages)
        overflow = len(self.queue) - MAX_QUEUED_MESSAGES
        if overflow > 0:
            del self.queue[:overflow]
            log.warning("to store %d: queue full, dropped %d messages", self.store_id, overflow)
        if self.attempt is not None:
            self.attempt.wakeup.set()

    async def _batches(self, attempt: _Attempt) -> AsyncIterator[raft_serverpb_pb2.RaftMessageBatch]:
        t = self.transport
        while True:
            await attempt.wakeup.wait()
            attempt.wakeup.clear()
            if attempt.retired:  # its call has ended: the queue belongs to the next stream
                return
            if not self.queue:
                continue
            messages, self.queue = self.queue, []
            yield raft_serverpb_pb2.RaftMessageBatch(
                cluster_id=t.cluster_id, from_store=t.store_id, messages=messages
            )
            attempt.delivered = True  # grpc asks for the next batch only once this one was written

    async def _run(self) -> None:
        backoff = RECONNECT_BACKOFF[0]
        while True:
            address = self.transport.resolve(self.store_id)
            if not address:  # being resolved (through PD): look again soon
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, RECONNECT_BACKOFF[1])
                continue
            attempt = self.attempt = _Attempt()
            if self.queue:
                attempt.wakeup.set()
            try:
                async with grpc_factory.channel(address, self.transport.tls) as channel:
                    stub = raft_serverpb_pb2_grpc.RaftTransportStub(channel)
                    await stub.Raft(self._batches(attempt))
            except asyncio.CancelledError:
                raise
            except grpc.aio.AioRpcError as exc:
                log.debug("raft stream to store %d (%s) ended: %s", self.store_id, address, exc.code())
            except Exception:
                log.exception("raft stream to store %d failed", self.store_id)
            finally:
                attempt.retire()
                self.attempt = None
            # Whatever was queued for a dead stream is as good as lost: Raft resends.
            self.queue.clear()
            if attempt.delivered:  # it was up: the peer likely restarted, so try again at once
                backoff = RECONNECT_BACKOFF[0]
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, RECONNECT_BACKOFF[1])


class GrpcTransport:
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

"""The simulated network between stores (and PD): latency, loss, duplication, reordering and
partitions.

Every Raft message crosses it as bytes (``SerializeToString`` on send, ``FromString`` on
arrival), so no two stores ever share a protobuf object, as over gRPC. Each message gets its
own latency, which reorders them. Snapshots travel as one stream per send: the receiver gets
``on_snapshot`` after a transfer time and the sender hears ``done(ok)`` after the answer comes
back; a partition, a loss or a crash of either side fails the stream with ``done(False)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from kvdb.pb import raft_serverpb_pb2
from kvdb.store.snapshot import Built
from tests.sim.network import LinkCuts
from tests.sim.world import World

if TYPE_CHECKING:
    from tests.storesim.node import SimStore

RaftMessage = raft_serverpb_pb2.RaftMessage
PD_NODE = 0
"""PD's end of the network in PD mode (store ids start at 1), so partitions can cut stores off it."""
SNAPSHOT_BYTES_PER_US = 50
"""Transfer speed of a snapshot stream (50 MB/s), so bigger snapshots take longer."""
SNAPSHOT_CHUNK = 64 * 1024
"""Bytes per chunk the receiver's ``Incoming`` is fed, as the gRPC transport's chunks."""


class SimNetwork(LinkCuts):
    """Links between store ids; ``blocked`` holds directed pairs (from, to) that are cut.

    A message is checked against ``blocked`` when sent and again when it arrives, so a partition
    also cuts what is already on the wire.
    """

    def __init__(self, world: World) -> None:
        super().__init__(world)
        self.rng = world.child_rng()
        self.stores: dict[int, SimStore] = {}
        self.drop_rate = 0.0
        self.dup_rate = 0.0
        self.slow_rate = 0.02
        self.sent = 0
        self.pd_sent = 0
        self.slow_to: dict[int, int] = {}  # store id -> extra latency (µs) of Raft messages to it
        # Sees every Raft message as it reaches a live store (the nemesis's aimed schedules).
        self.on_arrive: Callable[[int, int, RaftMessage], None] | None = None
        self.pd_stalls: dict[int, int] = {}  # store id -> extra latency (µs) of its PD link, up to
        self.lose_notices_to: set[int] = set()  # stores whose hibernate notices are lost
        self.dropped = 0
        self.snapshots_delivered = 0
        # Streams that reached a paused receiver, by receiver: handled when it resumes, or failed
        # if it dies first (the connection resets), so that the sender always hears back.
        self._queued_snapshots: dict[int, list[_SnapshotStream]] = {}
        self.snapshots_failed = 0

    def latency(self) -> int:
        if self.rng.random() < self.slow_rate:
            return self.rng.randint(5_000, 40_000)
        return self.rng.randint(200, 2_000)

    # -- Raft messages ------------------------------------------------------------------------

    def send(self, frm: int, to: int, data: bytes) -> None:
        self.sent += 1
        rng = self.rng
        if (frm, to) in self.blocked or (self.drop_rate and rng.random() < self.drop_rate):
            self.dropped += 1
            return
        copies = 2 if self.dup_rate and rng.random() < self.dup_rate else 1
        extra = self.slow_to.get(to, 0) if self.slow_to else 0
        for _ in range(copies):
            self.world.after(self.latency() + extra, self._arrive, frm, to, data)

    def _arrive(self, frm: int, to: int, data: bytes) -> None:
        target = self.stores[to]
        if (frm, to) in self.blocked or not target.alive:
            self.dropped += 1
            return
        msg = RaftMessage.FromString(data)
        if msg.hibernate and to in self.lose_notices_to:
            self.dropped += 1
            return
        if self.on_arrive is not None:
            self.on_arrive(frm, to, msg)
        target.deliver(("raft", frm), target.store.on_raft_messages, [msg])

    # -- PD traffic ---------------------------------------------------------------------------

    def send_pd(self, frm: int, to: int, data: bytes, handle: Callable[[bytes], None]) -> None:
        """A heartbeat to PD or PD's reply (PD is endpoint ``PD_NODE``): the same latency, loss,
        duplication and cuts as Raft messages, plus a stalled link's extra latency (which reorders
        much more: an old leader's heartbeat can reach PD after its successor's);
        ``handle`` gets the bytes on arrival."""
        self.pd_sent += 1
        rng = self.rng
        if (frm, to) in self.blocked or (self.drop_rate and rng.random() < self.drop_rate):
            self.dropped += 1
            return
        copies = 2 if self.dup_rate and rng.random() < self.dup_rate else 1
        stall = self.pd_stalls.get(frm if to == PD_NODE else to, 0)
        for _ in range(copies):
            self.world.after(self.latency() + rng.randint(0, stall), self._arrive_pd, frm, to, data, handle)

    def _arrive_pd(self, frm: int, to: int, data: bytes, handle: Callable[[bytes], None]) -> None:
        if (frm, to) in self.blocked:
            self.dropped += 1
            return
        handle(data)

    # -- snapshots ----------------------------------------------------------------------------

    def send_snapshot(
        self, frm: int, to: int, header: bytes, blob: bytes, done: Callable[[bool], None]
    ) -> None:
        stream = _SnapshotStream(frm, to, header, blob, done, self.stores[frm].incarnation)
        self.world.after(self.latency() + len(blob) // SNAPSHOT_BYTES_PER_US, self._snapshot_arrives, stream)

    def _cut(self, a: int, b: int) -> bool:
        """A stream needs both directions."""
        return (a, b) in self.blocked or (b, a) in self.blocked

    def _snapshot_arrives(self, stream: _SnapshotStream) -> None:
        target = self.stores[stream.to]
        lost = self.drop_rate and self.rng.random() < self.drop_rate
        if not lost and not self._cut(stream.frm, stream.to) and target.alive:
            if target.paused:
                self._queued_snapshots.setdefault(stream.to, []).append(stream)
            target.deliver(("snapshot", stream.frm), self._snapshot_received, target, stream)
        else:
            self._snapshot_answered(stream, False)

    def receiver_died(self, store_id: int) -> None:
        """Fail the streams a paused store died without handling."""
        for stream in self._queued_snapshots.pop(store_id, []):
            self._snapshot_answered(stream, False)

    def _snapshot_received(self, target: SimStore, stream: _SnapshotStream) -> None:
        queued = self._queued_snapshots.get(stream.to)
        if queued and stream in queued:
            queued.remove(stream)
        msg = RaftMessage.FromString(stream.header)
        incoming = target.store.receive_snapshot(msg)
        for pos in range(0, len(stream.blob), SNAPSHOT_CHUNK):
            incoming.write(stream.blob[pos : pos + SNAPSHOT_CHUNK])
        ok = target.store.on_snapshot(msg, incoming)
        self.world.trace("snapshot %d -> %d delivered (accepted: %s)", stream.frm, stream.to, ok)
        self._snapshot_answered(stream, ok)

    def _snapshot_answered(self, stream: _SnapshotStream, ok: bool) -> None:
        if ok:
            self.snapshots_delivered += 1
        else:
            self.snapshots_failed += 1
        self.world.after(self.latency(), self._snapshot_reported, stream, ok)

    def _snapshot_reported(self, stream: _SnapshotStream, ok: bool) -> None:
        sender = self.stores[stream.frm]
        if sender.incarnation == stream.incarnation and sender.store is not None:
            sender.deliver(("snapshot done",), stream.done, ok)

    # -- faults -------------------------------------------------------------------------------

    def heal(self) -> None:
        """No partitions, no loss, no duplication, no stalls: the network of the liveness phase."""
        super().heal()
        self.pd_stalls.clear()
        self.slow_to.clear()
        self.drop_rate = self.dup_rate = 0.0
        self.world.trace("net heal")


class _SnapshotStream:
    """One snapshot send: what travels, and whom to tell how it went (if still the same life)."""

    __slots__ = ("frm", "to", "header", "blob", "done", "incarnation")

    def __init__(self, frm: int, to: int, header: bytes, blob: bytes, done: Callable[[bool], None],
                 incarnation: int) -> None:
        self.frm = frm
        self.to = to
        self.header = header
        self.blob = blob
        self.done = done
        self.incarnation = incarnation


class SimTransport:
    """The ``kvdb.store.store.Transport`` of one store: serializes and hands over to the network."""

    def __init__(self, network: SimNetwork, store_id: int) -> None:
        self.network = network
        self.store_id = store_id

    def send(self, store_id: int, messages: list[RaftMessage]) -> None:
        for msg in messages:
            self.network.send(self.store_id, store_id, msg.SerializeToString())

    def send_snapshot(
        self, store_id: int, message: RaftMessage, data: Built, done: Callable[[bool], None]
    ) -> None:
        blob = b"".join(data.chunks(SNAPSHOT_CHUNK))  # read at once: the sender may delete the file
        self.network.send_snapshot(self.store_id, store_id, message.SerializeToString(), blob, done)

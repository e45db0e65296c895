"""The simulated network: latency, loss, duplication, reordering and partitions.

Messages are copied on send, as a real transport would serialize them, so that no two nodes ever
share a mutable object (an aliasing bug in the core must not be hidden, nor invented, by the
simulator). Reordering needs no special code: every copy gets its own random latency.
"""

from __future__ import annotations

from collections.abc import Callable

from kvdb.raft.types import ConfState, Entry, Message, Snapshot, SnapshotMetadata
from tests.sim.world import World


class LinkCuts:
    """Directed links ``(frm, to)`` that partitions have cut, shared by both simulators' networks."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.blocked: set[tuple[int, int]] = set()

    def partition(self, side_a: list[int], side_b: list[int]) -> list[tuple[int, int]]:
        """Cut every link between the two sides, both ways; returns the cut links."""
        links = [(a, b) for a in side_a for b in side_b] + [(b, a) for a in side_a for b in side_b]
        self.blocked.update(links)
        self.world.trace("net partition %s | %s", side_a, side_b)
        return links

    def block_one_way(self, frm: int, to: int) -> list[tuple[int, int]]:
        """``frm`` can no longer reach ``to``; ``to`` still reaches ``frm``. Returns the cut link."""
        self.blocked.add((frm, to))
        self.world.trace("net one-way cut %d -> %d", frm, to)
        return [(frm, to)]

    def restore(self, links: list[tuple[int, int]]) -> None:
        """Reconnect ``links`` (as returned by ``partition`` or ``block_one_way``)."""
        self.blocked.difference_update(links)
        self.world.trace("net restore %s", links)

    def heal(self) -> None:
        """Remove every partition (loss and duplication rates are left alone)."""
        self.blocked.clear()
        self.world.trace("net heal")


class Network(LinkCuts):
    """Delivers messages between node ids through ``deliver`` unless a fault eats them.

    ``blocked`` holds directed pairs ``(frm, to)``: a symmetric partition blocks both directions,
    a one-way partition only one. A message is checked against it when sent and again when it
    arrives, so a partition also cuts what was already on the wire. ``on_drop`` hears about every
    message lost here, so the owner can report it to the sender as a real transport would.
    """

    def __init__(
        self,
        world: World,
        deliver: Callable[[Message], None],
        on_drop: Callable[[Message], None],
    ) -> None:
        super().__init__(world)
        self.rng = world.child_rng()
        self.deliver = deliver
        self.on_drop = on_drop
        self.drop_rate = 0.0
        self.dup_rate = 0.0
        self.slow_rate = 0.05
        self.latency_us = (200, 3_000)  # an ordinary message's latency range
        self.slow_to: dict[int, int] = {}  # node id -> extra latency (µs) of every message to it
        self.sent = 0
        self.dropped = 0

    def send(self, msg: Message) -> None:
        """Put ``msg`` on the wire: maybe lose it, maybe deliver it twice, after a random latency."""
        self.sent += 1
        rng = self.rng
        if (msg.frm, msg.to) in self.blocked or (self.drop_rate and rng.random() < self.drop_rate):
            self._drop(msg, "dropped")
            return
        copies = 2 if self.dup_rate and rng.random() < self.dup_rate else 1
        for _ in range(copies):
            self.world.after(self._latency(msg.to), self._arrive, clone_message(msg))

    def _latency(self, to: int) -> int:
        extra = self.slow_to.get(to, 0) if self.slow_to else 0
        if self.rng.random() < self.slow_rate:
            return extra + self.rng.randint(5_000, 40_000)
        return extra + self.rng.randint(*self.latency_us)

    def _arrive(self, msg: Message) -> None:
        if (msg.frm, msg.to) in self.blocked:
            self._drop(msg, "cut in flight")
            return
        self.deliver(msg)

    def _drop(self, msg: Message, why: str) -> None:
        self.dropped += 1
        self.world.trace("net %s: %r", why, msg)
        self.on_drop(msg)


def clone_message(msg: Message) -> Message:
    """A deep enough copy of ``msg``: fresh entries, snapshot and conf state, shared bytes."""
    copy = Message.__new__(Message)
    for name in Message.__slots__:
        setattr(copy, name, getattr(msg, name))
    copy.entries = [Entry(e.term, e.index, e.data, e.type) for e in msg.entries]
    if msg.snapshot is not None:
        meta = msg.snapshot.metadata
        cs = meta.conf_state
        copy.snapshot = Snapshot(
            SnapshotMetadata(
                meta.index,
                meta.term,
                ConfState(cs.voters, cs.learners, cs.voters_outgoing, cs.learners_next, cs.auto_leave),
            ),
            msg.snapshot.data,
        )
    return copy

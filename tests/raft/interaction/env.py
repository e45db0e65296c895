"""The test environment: a few RawNodes, their storages and a fully deterministic network.

Nothing happens by itself. Messages leave a node only when its Ready is handled, wait in the
recipient's inbox, and are stepped only when a command delivers them; a partition drops them at
delivery. Every action appends human-readable lines to ``Env.out``, which the command layer
returns as the case's output.
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from kvdb.raft import (
    Config,
    ConfState,
    Entry,
    EntryType,
    HardState,
    MemoryStorage,
    Message,
    RawNode,
    ReadState,
    Snapshot,
    SnapshotMetadata,
    StepError,
)
from kvdb.raft.codec import decode_conf_change

from . import fmt


class Node:
    """One member: its RawNode, its storage and a toy state machine.

    The state machine is the list of applied ``(index, payload)`` pairs (no-ops excluded), so a
    snapshot's data can be checked against what the leader had applied. ``conf_states`` is the
    membership history, needed to build a snapshot of the configuration as of a given index.
    """

    def __init__(self, config: Config, storage: MemoryStorage) -> None:
        self.id = config.id
        self.config = config
        self.storage = storage
        self.raw = RawNode(config)
        self.applied: list[tuple[int, str]] = []
        self.applied_index = config.applied
        snap = storage.snapshot().metadata
        self.conf_states: list[tuple[int, ConfState]] = [(snap.index, snap.conf_state)]
        self.read_states: list[ReadState] = []
        self.lease_rounds_started: list[int] = []
        self.lease_rounds_acked: list[int] = []

    def conf_state_at(self, index: int) -> ConfState:
        return [cs for at, cs in self.conf_states if at <= index][-1]

    def snapshot_data(self, index: int) -> bytes:
        return json.dumps([[i, d] for i, d in self.applied if i <= index]).encode()

    def restart(self) -> None:
        """Crash and restart: storage and state machine survive, everything volatile is lost."""
        self.config = dataclasses.replace(self.config, rng=random.Random(self.id), applied=self.applied_index)
        self.raw = RawNode(self.config)

    def restore(self, snap: Snapshot) -> None:
        self.applied = [(i, d) for i, d in json.loads(snap.data)] if snap.data else []
        self.applied_index = snap.metadata.index
        self.conf_states = [(snap.metadata.index, snap.metadata.conf_state)]


class Env:
    """Nodes by id, one inbox per node, the set of cut links, and every message delivered
    (so that tests can assert on the traffic, not only on the outcome)."""

    def __init__(self) -> None:
        self.nodes: dict[int, Node] = {}
        # Messages waiting for each node, with the node that sent them: a forwarded message may
        # name someone else in ``frm``, but a partition cuts the link it actually travels.
        self.inbox: dict[int, list[tuple[int, Message]]] = {}
        self.cut: set[frozenset[int]] = set()
        self.delivered: list[Message] = []
        self.out: list[str] = []

    # -- setup -------------------------------------------------------------------------------

    def add_node(self, conf_state: ConfState | None, index: int, **options: object) -> Node:
        """Start the next node id.

        With a ``conf_state`` it is a founding member: its storage starts from the bootstrap
        snapshot (index 1, term 1), or from a term-1 snapshot at ``index`` if that is later, so
        that nodes can start with different amounts of history. Without one it starts empty,
        as a node about to be added to a running group does, and learns the membership from
        the snapshot the leader sends it.
        """
        node_id = len(self.nodes) + 1
        storage = MemoryStorage(conf_state)
        cs = storage.snapshot().metadata.conf_state
        applied = storage.snapshot().metadata.index
        if index > applied:
            storage.apply_snapshot(Snapshot(SnapshotMetadata(index=index, term=1, conf_state=cs)))
            storage.set_hard_state(HardState(term=1, commit=index))
            applied = index
        config = Config(id=node_id, storage=storage, rng=random.Random(node_id), applied=applied, **options)
        node = Node(config, storage)
        self.nodes[node_id] = node
        self.inbox[node_id] = []
        return node

    # -- output ------------------------------------------------------------------------------

    def emit(self, line: str) -> None:
        self.out.append(line)

    def take_output(self) -> str:
        out, self.out = "\n".join(self.out), []
        return out

    @contextmanager
    def watch(self, node: Node, indent: str = "") -> Iterator[None]:
        """Report a change of role or term caused by the wrapped action (etcd's "became ...")."""
        r = node.raw.raft
        before = (r.role, r.term)
        yield
        if (r.role, r.term) != before:
            self.emit(f"{indent}{node.id} became {fmt.ROLE[r.role]} at term {r.term}")

    # -- network -----------------------------------------------------------------------------

    def reachable(self, a: int, b: int) -> bool:
        return frozenset((a, b)) not in self.cut

    def partition(self, groups: list[list[int]]) -> None:
        """Cut every link between two different groups; links within a group are left alone."""
        for i, group in enumerate(groups):
            for other in groups[i + 1 :]:
                self.cut |= {frozenset((a, b)) for a in group for b in other}

    def heal(self) -> None:
        self.cut.clear()

    def deliver(self, node_id: int) -> bool:
        """Step every message waiting for ``node_id``; return whether there were any."""
        msgs, self.inbox[node_id] = self.inbox[node_id], []
        if not msgs:
            return False
        self.emit(f"> {node_id} receiving messages")
        node = self.nodes.get(node_id)
        for sender, m in msgs:
            if node is None or not self.reachable(sender, node_id):
                self.emit(f"  dropped: {fmt.message(m)}")
                continue
            self.emit(f"  {fmt.message(m)}")
            self.delivered.append(m)
            with self.watch(node, indent="  "):
                try:
                    node.raw.step(m)
                except StepError as e:
                    self.emit(f"  error: StepError: {e}")
        return True

    def drop(self, node_id: int) -> None:
        for _, m in self.inbox[node_id]:
            self.emit(f"dropped: {fmt.message(m)}")
        self.inbox[node_id] = []

    def _send(self, sender: int, msgs: Iterable[Message]) -> None:
        for m in msgs:
            self.inbox.setdefault(m.to, []).append((sender, m))

    # -- Ready -------------------------------------------------------------------------------

    def handle_ready(self, node: Node) -> bool:
        """Handle one Ready in the order docs/raft-api.md prescribes, printing what it held."""
        if not node.raw.has_ready():
            return False
        rd = node.raw.ready()
        emit = self.emit
        emit(f"> {node.id} handling Ready")
        if rd.soft_state is not None:
            ss = rd.soft_state
            emit(f"  soft_state: leader={ss.leader_id} role={fmt.ROLE[ss.role]}")
        if rd.hard_state is not None:
            hs = rd.hard_state
            emit(f"  hard_state: term={hs.term} vote={hs.vote} commit={hs.commit}")
        self._list("messages", [fmt.message(m) for m in rd.messages])
        self._send(node.id, rd.messages)
        if rd.snapshot is not None and not rd.snapshot.is_empty():
            md = rd.snapshot.metadata
            emit(f"  snapshot: {md.term}/{md.index} {fmt.conf_state(md.conf_state)}")
            node.storage.apply_snapshot(rd.snapshot)
            node.restore(rd.snapshot)
        self._list("entries", [fmt.entry(e) for e in rd.entries])
        node.storage.append(rd.entries)
        if rd.hard_state is not None:
            node.storage.set_hard_state(rd.hard_state)
        self._list("messages_after_persist", [fmt.message(m) for m in rd.messages_after_persist])
        self._send(node.id, rd.messages_after_persist)
        self._list("committed_entries", [fmt.entry(e) for e in rd.committed_entries])
        for e in rd.committed_entries:
            self._apply(node, e)
        self._list("read_states", [f"index={r.index} ctx={fmt.data(r.request_ctx)}" for r in rd.read_states])
        node.read_states += rd.read_states
        if rd.lease_round_started:
            emit(f"  lease_round_started={rd.lease_round_started}")
            node.lease_rounds_started.append(rd.lease_round_started)
        if rd.lease_round_acked:
            emit(f"  lease_round_acked={rd.lease_round_acked}")
            node.lease_rounds_acked.append(rd.lease_round_acked)
        node.raw.advance(rd)
        return True

    def _list(self, title: str, items: list[str]) -> None:
        if items:
            self.emit(f"  {title}:")
            self.out += [f"    {item}" for item in items]

    def _apply(self, node: Node, e: Entry) -> None:
        node.applied_index = e.index
        if e.type == EntryType.CONF_CHANGE:
            cs = node.raw.apply_conf_change(decode_conf_change(e.data))
            node.conf_states.append((e.index, cs))
            self.emit(f"  applied {e.term}/{e.index}: conf_state {fmt.conf_state(cs)}")
        elif e.data:
            node.applied.append((e.index, e.data.decode()))

    # -- composite steps ---------------------------------------------------------------------

    def stabilize(self, ids: list[int]) -> None:
        """Handle Readies and deliver messages among ``ids`` until nothing is left to do."""
        while True:
            moved = False
            for i in ids:
                moved |= self.handle_ready(self.nodes[i])
            for i in ids:
                moved |= self.deliver(i)
            if not moved:
                return

"""A minimal in-memory Raft group for benchmarks: no faults, no checks, just the core's work.

The persist step writes to ``MemoryStorage`` and messages are handed over in memory, so what a
benchmark measures is the core (plus this thin loop), not I/O.
"""

from __future__ import annotations

import random

from kvdb.raft import Config, ConfState, MemoryStorage, Message, RawNode


class RaftGroup:
    def __init__(self, size: int = 3, max_inflight_msgs: int = 256) -> None:
        ids = list(range(1, size + 1))
        self.storages = {i: MemoryStorage(ConfState(voters=ids)) for i in ids}
        self.nodes = {
            i: RawNode(
                Config(
                    id=i, storage=self.storages[i], rng=random.Random(i), max_inflight_msgs=max_inflight_msgs
                )
            )
            for i in ids
        }
        self.applied = 0
        self.messages_stepped = 0
        self._queue: list[Message] = []
        self.nodes[1].campaign()
        self.settle()

    @property
    def leader(self) -> RawNode:
        return self.nodes[1]

    def settle(self) -> None:
        """Handle Readys and deliver messages until the group is quiet."""
        nodes = self.nodes
        queue = self._queue
        while True:
            moved = False
            for node_id, node in nodes.items():
                if not node.has_ready():
                    continue
                moved = True
                rd = node.ready()
                queue.extend(rd.messages)
                storage = self.storages[node_id]
                if rd.entries:
                    storage.append(rd.entries)
                if rd.hard_state is not None:
                    storage.set_hard_state(rd.hard_state)
                queue.extend(rd.messages_after_persist)
                if node_id == 1:
                    self.applied += len(rd.committed_entries)
                node.advance(rd)
            if queue:
                moved = True
                batch, self._queue = queue, []
                queue = self._queue
                self.messages_stepped += len(batch)
                for m in batch:
                    nodes[m.to].step(m)
            if not moved:
                return

    def compact(self) -> None:
        """Keep the in-memory logs short so long runs measure steady state, not list growth."""
        for node_id, storage in self.storages.items():
            applied = self.nodes[node_id].raft.raft_log.applied
            if applied - storage.first_index() > 4096:
                storage.create_snapshot(applied, None, b"")
                storage.compact(applied)

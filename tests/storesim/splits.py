"""Splits in the nemesis: a range's leader splits it at 1-3 random keys inside it, with ids from
the simulator's allocator (range and peer ids only grow), at random times and aimed at the
dangerous windows:

- ``split_isolated_follower``: cut a follower off, split, compact the logs, heal later: the
  follower catches up by a snapshot of the parent (which then splits on it) or of a child (which
  the store must refuse while its parent still holds the keys);
- ``split_crash_leader``: split, then crash the leader around the write of the split (before it
  proposed, mid-write, or just after it applied; MemEngine loses what was not synced);
- ``split_transfer``: split while leadership is being handed over (before or after the transfer);
- ``split_churn``: split the first range while churn replaces one of its replicas (in PD mode
  a direct ``Store.split`` too: the simulated PD does not send SPLIT operators yet).

Clock skew (the ``splits`` profile runs clocks at the drift bound) puts the parent's lease and the
children's first leases as close as the lease rules allow. New ranges join the simulator's
``range_ids`` when any store applied the split (``Store.on_split``): from then on every check
covers them and the run only settles once they did.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from kvdb.pb import metapb_pb2, raft_serverpb_pb2
from kvdb.store.errors import StoreError
from kvdb.store.split import derive

if TYPE_CHECKING:
    from tests.storesim.faults import Nemesis
    from tests.storesim.node import SimStore

SPLIT_FAULTS = ("split", "split_isolated_follower", "split_crash_leader", "split_transfer", "split_churn")


def split_keys(desc: metapb_pb2.RangeDescriptor, keys: list[bytes]) -> list[bytes]:
    """Candidate split keys strictly inside ``desc``: the client keys and a key just after each."""
    out = []
    for key in keys:
        for candidate in (key, key + b"-"):
            if candidate > desc.start_key and (not desc.end_key or candidate < desc.end_key):
                out.append(candidate)
    return out


class Splitter:
    """The nemesis's split events (each method is one fault)."""

    def __init__(self, nemesis: Nemesis) -> None:
        self.nemesis = nemesis
        self.sim = nemesis.sim
        self.world = nemesis.world
        self.rng = nemesis.rng
        self.stats = nemesis.stats
        self.tick_us = nemesis.tick_us

    def split(self, range_id: int | None = None, then: Callable[[list[int]], None] | None = None
              ) -> SimStore | None:
        """Ask the leader of ``range_id`` (default: a random range) to split it; the leader's store
        if the split was proposed. ``then`` gets the new ranges' ids once the split applied there."""
        range_id = self.nemesis._some_range() if range_id is None else range_id
        leader = self.sim.leader(range_id)
        if leader is None:
            return None
        peer = leader.store.peers[range_id]
        candidates = split_keys(peer.desc, self.sim.split_candidates)
        if not candidates:
            return None
        keys = sorted(self.rng.sample(candidates, self.rng.randint(1, min(3, len(candidates)))))
        requests = []
        for key in keys:
            req = raft_serverpb_pb2.SplitRequest(split_key=key, new_range_id=self.sim.alloc_id())
            req.new_peer_ids.extend(self.sim.alloc_id() for _ in peer.desc.peers)
            requests.append(req)
        desc = metapb_pb2.RangeDescriptor()
        desc.CopyFrom(peer.desc)

        def done(result: object) -> None:
            if isinstance(result, list):
                if result != derive(desc, requests):
                    raise SplitMisreported(f"split of range {desc.id} answered {result}")
                self.stats.splits_applied += 1
                if then is not None:
                    then([d.id for d in result[1:]])
            self.world.trace("split of range %d at %r: %s", range_id, keys,
                             "applied" if isinstance(result, list) else result)

        try:
            leader.store.split(range_id, peer.desc.epoch, requests, done)
        except StoreError as exc:
            self.world.trace("split of range %d refused: %s", range_id, exc)
            return None
        self.stats.splits_proposed += 1
        self.world.trace("%r: split range %d at %r into %s", leader, range_id, keys,
                         [r.new_range_id for r in requests])
        return leader

    def split_isolated_follower(self) -> None:
        range_id = self.nemesis._some_range()
        leader = self.sim.leader(range_id)
        if leader is None:
            return
        others = [i for i in sorted(self.sim.stores) if i != leader.id]
        follower = self.rng.choice(others)
        self.stats.aimed_faults += 1
        self.world.trace("split isolated follower: store %d cut off, range %d splits", follower, range_id)
        rest = [i for i in sorted(self.sim.stores) if i != follower]
        self.nemesis._heal_later(self.sim.network.partition([follower], rest), (30, 90))
        self.world.after(self.rng.randint(2, 8) * self.tick_us, self._split_and_compact, range_id)

    def _split_and_compact(self, range_id: int) -> None:
        if self.split(range_id) is not None:
            # Once applied, compact the parent's and children's logs so the follower needs snapshots.
            self.world.after(self.rng.randint(5, 15) * self.tick_us, self._compact_all)

    def _compact_all(self) -> None:
        for node in self.sim.stores.values():
            if not node.alive:
                continue
            for range_id, peer in list(node.store.peers.items()):
                if peer.is_leader:
                    try:
                        node.store.compact_log(range_id)
                    except StoreError:
                        continue
                    self.stats.compactions += 1

    def split_crash_leader(self) -> None:
        when = self.rng.choice(["before", "mid_write", "after"])
        range_id = self.nemesis._some_range()
        leader = self.sim.leader(range_id)
        if leader is None or self.nemesis._down() >= self.nemesis.max_down:
            return
        self.stats.aimed_faults += 1
        self.world.trace("split crash leader (%s): %r, range %d", when, leader, range_id)
        if when == "before":  # the proposal may be in the leader's unsynced write, or lost
            self.split(range_id)
            self.world.after(self.rng.randint(0, 2_000), self._crash_if, leader, leader.incarnation)
        elif when == "mid_write":
            if self.split(range_id) is not None:
                leader.crash_on_next_write = True
        else:
            self.split(range_id)
            delay = self.rng.randint(1, 6) * self.tick_us
            self.world.after(delay, self._crash_if, leader, leader.incarnation)

    def _crash_if(self, node: SimStore, incarnation: int) -> None:
        nemesis = self.nemesis
        if nemesis.active and node.incarnation == incarnation and nemesis._down() < nemesis.max_down:
            nemesis._crash(node)

    def split_transfer(self) -> None:
        """Hand the parent's leadership over around its split, or a new range's right after it
        applied (cutting the old leader off from the transferee after its TIMEOUT_NOW, sometimes):
        a new range's first leader must have no lease it did not earn itself."""
        range_id = self.nemesis._some_range()
        self.stats.aimed_faults += 1
        if self.rng.random() < 0.4:
            self.split(range_id, then=self._transfer_child)
        elif self.rng.random() < 0.5:
            self.split(range_id)
            self.nemesis._transfer_leader(range_id)
        else:
            self.nemesis._transfer_leader(range_id)
            self.world.after(self.rng.randint(0, 2) * self.tick_us, self.split, range_id)

    def _transfer_child(self, new_ids: list[int]) -> None:
        if self.nemesis.active:
            self.nemesis.cut_on_timeout_now = self.rng.random() < 0.5
            self.world.after(self.rng.randint(0, 2) * self.tick_us, self.nemesis._transfer_leader,
                             self.rng.choice(new_ids))

    def split_churn(self) -> None:
        range_id = self.sim.range_ids[0]
        self.stats.aimed_faults += 1
        self.nemesis._churn()
        self.world.after(self.rng.randint(0, 10) * self.tick_us, self.split, range_id)


class SplitMisreported(AssertionError):
    """``Store.split`` answered descriptors other than those its requests produce."""

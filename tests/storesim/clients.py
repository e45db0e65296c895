"""Clients of the raw KV API, and the history they record for the linearizability checker.

Each client runs one call at a time over a few keys: get, batch get and scan; put, batch put,
delete and delete range (every written value is unique, so a read names the write it saw); and
cas against a value recently seen (or absence). A call covers one range: the client routes by
key through the production client's ``RangeCache`` (seeded with the founding ranges, as if from
PD), and a call on several keys keeps to the keys, or clips its bounds to, one cached range. It
goes to the store the cache names as that range's leader, through ``KvHandler.handle``, with
network latency each way. Routing errors update the cache as the production client does
(``kvdb/client/aio.py``): ``epoch_not_match`` brings the new descriptors, ``not_leader`` a hint,
``key_not_in_range`` evicts the entry; a key the cache misses is looked up on a random live
store (the simulator's stand-in for PD, which may be as stale as PD's view). Readers are clients bound to
one store (as a client of one node): they only get, with a short timeout, so they keep asking a
leader that was paused or cut off, right up to when it wakes up; that is where a lease that
outlives its promise answers stale reads.

The checker knows single-key registers, so a call on several keys is recorded as one operation
per key, all with the call's interval: each key's part did take effect somewhere inside it, so
this is weaker than the call's atomicity but never wrong. Every attempt is classified by its
answer:

- a result: complete at the time the answer arrived;
- an error that means the command never ran (not leader, epoch not match, range not found,
  server busy): dropped, as nothing happened;
- stale command (a write superseded before it applied, it may have applied), or no answer
  within the timeout (the store crashed, or the write never committed): the write is
  indeterminate (``complete=None``) and a read tells nothing.
"""

from __future__ import annotations

import random
from collections import deque
from typing import TYPE_CHECKING

from kvdb.client.cache import CachedRange, RangeCache
from kvdb.pb import kvrpc_pb2
from kvdb.store import keyspace
from kvdb.testing.linearizability import Operation
from tests.storesim.node import CLUSTER_ID

if TYPE_CHECKING:
    from tests.storesim.cluster import StoreSimulation
    from tests.storesim.node import SimStore

NOT_EXECUTED = frozenset({"not_leader", "epoch_not_match", "range_not_found", "key_not_in_range",
                          "server_busy"})
"""Errors that mean the command was refused before it could take effect."""

KINDS = ("get", "batch_get", "scan", "put", "batch_put", "cas", "delete", "delete_range")
KIND_WEIGHTS = (35, 5, 5, 25, 5, 20, 4, 1)
READS = frozenset({"get", "batch_get", "scan"})
RANGED = frozenset({"scan", "delete_range"})

READER_TIMEOUT_US = 50_000
"""Half an election timeout: a reader blocked on a stalled store asks again soon."""

EXPLORE = 0.1
"""Share of calls a client sends to a random store rather than to the leader it believes in."""


class WrongAnswer(AssertionError):
    """A store answered a valid request with an error it has no reason to give, or with a
    result that does not fit the request."""


def check_read_in_bounds(node: SimStore, range_id: int, call: Call, body: object) -> None:
    """A store answers a read only for keys its replica of the range holds when it answers: a read
    that waited (for ReadIndex) while a split moved its keys away must be refused, as those keys'
    writes now go to another range (issue 11, item 1)."""
    if body.HasField("error"):
        return
    keys = [p.key for p in body.pairs] if call.kind == "scan" else call.keys
    peer = node.store.peers.get(range_id)
    outside = [k for k in keys if peer is None or not keyspace.contains(peer.desc, k)]
    if outside:
        where = "gone" if peer is None else f"[{peer.desc.start_key!r}, {peer.desc.end_key!r})"
        raise WrongAnswer(f"{node!r} answered {call.kind} #{call.seq} on range {range_id} for keys {outside} "
                          f"outside the range ({where}, version {peer.desc.epoch.version if peer else '-'})")


def locate(sim: StoreSimulation, cache: RangeCache, rng: random.Random, key: bytes) -> CachedRange | None:
    """The cached range of ``key``; on a miss, whatever a random live store holds for it (the
    simulator's stand-in for PD)."""
    loc = cache.find(key)
    if loc is not None:
        return loc
    nodes = [n for n in sim.stores.values() if n.alive]
    rng.shuffle(nodes)
    for node in nodes:
        desc = next((p.desc for p in node.store.peers.values()
                     if p.initialized and keyspace.contains(p.desc, key)), None)
        if desc is not None:
            entry = cache.insert(desc, node.id if node.store.peers[desc.id].is_leader else None)
            # A newer cached range kept out this store's stale one: ask another store next time.
            return entry if entry.contains(key) else None
    return None


def leader_of(sim: StoreSimulation, loc: CachedRange, rng: random.Random) -> int:
    """The cached leader of ``loc``, else a random replica of it (it will name the leader)."""
    if loc.leader_store is None:
        loc.leader_store = rng.choice(sorted(loc.store_ids() or sim.stores))
    return loc.leader_store


def follow_routing_error(sim: StoreSimulation, cache: RangeCache, loc: CachedRange, store_id: int,
                         err: kvrpc_pb2.Error, rng: random.Random) -> None:
    """Update the cache from a routing error as the production client does."""
    kind = err.WhichOneof("kind")
    if kind == "not_leader" and err.not_leader.HasField("leader"):
        loc.leader_store = err.not_leader.leader.store_id
    elif kind == "epoch_not_match" and err.epoch_not_match.current_ranges:
        cache.invalidate(loc.id)
        for desc in err.epoch_not_match.current_ranges:
            cache.insert(desc, store_id if any(p.store_id == store_id for p in desc.peers) else None)
    elif kind == "key_not_in_range":
        cache.invalidate(loc.id)  # the next call on its keys looks them up afresh
    elif kind != "stale_command":
        # Kept cached (unlike the production client, which asks PD again): the store lacks
        # a replica or is not sure who leads; another replica will tell.
        loc.leader_store = rng.choice([s for s in sorted(sim.stores) if s != store_id])


class Clients:
    """All clients of a run and what they saw: the history, and per key the recent values."""

    def __init__(self, sim: StoreSimulation, count: int, readers: int, keys: int, timeout_us: int) -> None:
        self.sim = sim
        self.world = sim.world
        self.rng = sim.world.child_rng()
        self.keys = [b"k%d" % i for i in range(keys)]
        self.timeout_us = timeout_us
        self.history: list[Operation] = []
        self.recent: dict[bytes, deque[bytes | None]] = {k: deque([None], maxlen=3) for k in self.keys}
        self.active = False
        self.quiet_until = 0
        """World time (µs) before which no client starts a call (the hibernate profile's quiet spells)."""
        stores = sorted(sim.stores)
        self.clients = [Client(self, i, None, timeout_us) for i in range(count)]
        for i in range(readers):
            self.clients.append(Client(self, count + i, stores[i % len(stores)], READER_TIMEOUT_US))
        self.outstanding = 0
        self.last_write_ok = -1  # world time (µs) of the latest acknowledged write's invocation
        self.counts = {"ok": 0, "not_executed": 0, "indeterminate": 0, "timeouts": 0}

    def start(self) -> None:
        self.active = True
        for client in self.clients:
            self.world.after(self.rng.randint(0, 5_000), client.next_call)

    def resume(self) -> None:
        """End a quiet spell now."""
        self.quiet_until = 0
        for client in self.clients:
            client.next_call()

    def finish_history(self) -> list[Operation]:
        """The history so far, with every unanswered write as indeterminate."""
        ops = list(self.history)
        for client in self.clients:
            if client.call is not None:
                ops += client.call.indeterminate()
        return ops


class Call:
    """One attempt in flight: what was asked, when, and how to record it once it ends.

    ``keys`` are the keys the call covers (for a scan or delete range, every client key in its
    bounds); ``values`` the values written to them, in order.
    """

    __slots__ = ("client", "kind", "keys", "values", "expected", "bounds", "invoke", "seq")

    def __init__(self, client: int, kind: str, keys: list[bytes], values: list[bytes], expected: bytes | None,
                 bounds: tuple[bytes, bytes], invoke: int, seq: int) -> None:
        self.client = client
        self.kind = kind
        self.keys = keys
        self.values = values
        self.expected = expected
        self.bounds = bounds
        self.invoke = invoke
        self.seq = seq

    def writes(self, complete: int | None) -> list[Operation]:
        """The call's effect on each key, as the checker's single-key operations."""
        if self.kind in ("delete", "delete_range"):
            return [Operation(self.client, "delete", k, self.invoke, complete) for k in self.keys]
        pairs = zip(self.keys, self.values, strict=True)
        return [Operation(self.client, "put", k, self.invoke, complete, v) for k, v in pairs]

    def indeterminate(self) -> list[Operation]:
        """No answer: a write may have taken effect at any time since, a read tells nothing."""
        if self.kind in READS:
            return []
        if self.kind == "cas":
            key, value = self.keys[0], self.values[0]
            return [Operation(self.client, "cas", key, self.invoke, None, value, self.expected)]
        return self.writes(None)


class Client:
    def __init__(self, clients: Clients, client_id: int, home: int | None, timeout_us: int) -> None:
        self.clients = clients
        self.sim = clients.sim
        self.world = clients.world
        self.rng = clients.sim.world.child_rng()
        self.id = client_id
        guess = self.rng.choice(sorted(self.sim.stores))
        self.cache = RangeCache()
        for desc in self.sim.founding:
            self.cache.insert(desc, guess)
        self.home = home  # a reader's store
        self.timeout_us = timeout_us
        self.call: Call | None = None
        self.loc: CachedRange | None = None  # the cached range the call in flight went to
        self.seq = 0

    # -- issuing ------------------------------------------------------------------------------

    def next_call(self) -> None:
        if not self.clients.active or self.call is not None:
            return
        if self.world.now < self.clients.quiet_until:
            self.world.after(self.clients.quiet_until - self.world.now, self.next_call)
            return
        self.seq += 1
        drawn = self._draw()
        if drawn is None:  # no live store knows the key's range now: try again later
            self.world.after(self.rng.randint(1_000, 10_000), self.next_call)
            return
        call, self.loc = drawn
        self.call = call
        self.clients.outstanding += 1
        req = self._request(call, self.loc)
        # Now and then ask another store: that is how clients of a cut-off leader learn of its
        # successor while the old one still answers them, the window a broken lease would show in.
        target = self._leader(self.loc) if self.home is None else self.home
        if self.home is None and self.rng.random() < EXPLORE:
            target = self.rng.choice(sorted(self.sim.stores))
        self.world.after(self.sim.client_latency(), self._deliver, target, req, call)
        self.world.after(self.timeout_us, self._timed_out, call.seq)

    def _locate(self, key: bytes) -> CachedRange | None:
        return locate(self.sim, self.cache, self.rng, key)

    def _leader(self, loc: CachedRange) -> int:
        return leader_of(self.sim, loc, self.rng)

    def _draw(self) -> tuple[Call, CachedRange] | None:
        rng, all_keys = self.rng, self.clients.keys
        kind = "get" if self.home is not None else rng.choices(KINDS, KIND_WEIGHTS)[0]
        bounds = (b"", b"")
        if kind in RANGED:
            lo = rng.randrange(len(all_keys))
            hi = rng.randrange(lo + 1, len(all_keys) + 1)
            # An empty end is the range's end: past every client key.
            loc = self._locate(all_keys[lo])
            if loc is None:
                return None
            clipped = keyspace.clip(loc.descriptor, all_keys[lo], all_keys[hi] if hi < len(all_keys) else b"")
            bounds = (clipped[0], b"" if clipped[1] == keyspace.KEY_SPACE_END else clipped[1])
            keys = [k for k in all_keys[lo:hi] if loc.contains(k)]
        elif kind.startswith("batch"):
            # Keys of one range: all of them while the cache knows one range for everything.
            candidates = all_keys
            loc = self.cache.find(all_keys[0]) if len(self.cache) == 1 else None
            if loc is None or loc.start or loc.end:
                loc = self._locate(rng.choice(all_keys))
                if loc is None:
                    return None
                candidates = [k for k in all_keys if loc.contains(k)]
            keys = rng.sample(candidates, rng.randint(1, min(3, len(candidates))))
        else:
            keys = [rng.choice(all_keys)]
            loc = self._locate(keys[0])
            if loc is None:
                return None
        values = []
        if kind in ("put", "batch_put", "cas"):
            values = [b"c%d-%d-%d" % (self.id, self.seq, i) for i in range(len(keys))]
        expected = None
        if kind == "cas":
            recent = self.clients.recent[keys[0]]
            expected = recent[-1] if rng.random() < 0.7 else rng.choice([*recent, None])
        return Call(self.id, kind, keys, values, expected, bounds, self.world.now, self.seq), loc

    def _request(self, call: Call, loc: CachedRange) -> kvrpc_pb2.Request:
        req = kvrpc_pb2.Request(id=call.seq)
        body = getattr(req, call.kind)
        body.context.cluster_id = CLUSTER_ID
        body.context.range_id = loc.id
        body.context.epoch.CopyFrom(loc.descriptor.epoch)
        kind = call.kind
        if kind in RANGED:
            body.start_key, body.end_key = call.bounds
            if kind == "scan":
                body.reverse = self.rng.random() < 0.5
        elif kind == "batch_get":
            body.keys.extend(call.keys)
        elif kind == "batch_put":
            for key, value in zip(call.keys, call.values, strict=True):
                body.pairs.add(key=key, value=value)
        else:
            body.key = call.keys[0]
        if kind in ("put", "cas"):
            body.value = call.values[0]
        if kind == "cas":
            if call.expected is None:
                body.previous_not_exist = True
            else:
                body.previous_value = call.expected
        return req

    def _deliver(self, store_id: int, req: kvrpc_pb2.Request, call: Call) -> None:
        """The request reaches the store; a store that is down never answers."""
        node = self.sim.stores[store_id]
        if node.handler is None:
            return
        self.world.trace("client %d -> %r: #%d %s %r %r", self.id, node, call.seq, call.kind, call.keys,
                         call.values)
        seq, range_id = call.seq, self.loc.id

        def answered(resp: kvrpc_pb2.Response) -> None:
            if call.kind in READS:
                check_read_in_bounds(node, range_id, call, getattr(resp, call.kind))
            self.world.after(self.sim.client_latency(), self._answer, store_id, resp.SerializeToString(), seq)

        node.deliver(("client", self.id), node.handler.handle, req, answered)

    # -- outcomes -----------------------------------------------------------------------------

    def _done(self, delay_us: int) -> None:
        self.call = None
        self.clients.outstanding -= 1
        self.world.after(delay_us, self.next_call)

    def _timed_out(self, seq: int) -> None:
        call = self.call
        if call is None or call.seq != seq:
            return
        counts = self.clients.counts
        counts["timeouts"] += 1
        if call.kind not in READS:
            self.clients.history += call.indeterminate()
            counts["indeterminate"] += 1
        self.loc.leader_store = self.rng.choice(sorted(self.sim.stores))
        self._done(0)

    def _answer(self, store_id: int, data: bytes, seq: int) -> None:
        call = self.call
        if call is None or call.seq != seq:
            return  # the answer came after the timeout: the call is already indeterminate
        resp = kvrpc_pb2.Response.FromString(data)
        body = getattr(resp, call.kind)
        if body.HasField("error"):
            self._error(call, store_id, body.error)
            return
        now = self.world.now
        self.clients.counts["ok"] += 1
        if call.kind in READS:
            self._record_read(call, body, now)
        elif call.kind == "cas":
            self._record_cas(call, body, now)
        else:
            for op in call.writes(now):
                self.clients.history.append(op)
                self.clients.recent[op.key].append(op.value)
        if call.kind not in READS:
            self.clients.last_write_ok = max(self.clients.last_write_ok, call.invoke)
        self.cache.set_leader(self.loc.id, store_id)
        self._done(self.rng.randint(0, 2_000))

    def _record_read(self, call: Call, body: object, now: int) -> None:
        if call.kind == "get":
            found = {} if body.not_found else {call.keys[0]: body.value}
        else:
            found = {p.key: p.value for p in body.pairs}
            if set(found) - set(call.keys):
                raise WrongAnswer(f"{call.kind} #{call.seq} over {call.keys} answered keys {sorted(found)}")
        for key in call.keys:
            value = found.get(key)
            self.clients.history.append(Operation(self.id, "get", key, call.invoke, now, value))
            self.clients.recent[key].append(value)

    def _record_cas(self, call: Call, body: kvrpc_pb2.RawCompareAndSwapResponse, now: int) -> None:
        key, value = call.keys[0], call.values[0]
        history, recent = self.clients.history, self.clients.recent[key]
        history.append(Operation(self.id, "cas", key, call.invoke, now, value, call.expected, body.succeed))
        if body.succeed:
            recent.append(value)
        else:
            # A failed compare read the register somewhere inside the same interval.
            previous = None if body.previous_not_exist else body.previous_value
            history.append(Operation(self.id, "get", key, call.invoke, now, previous))
            recent.append(previous)

    def _error(self, call: Call, store_id: int, err: kvrpc_pb2.Error) -> None:
        kind = err.WhichOneof("kind")
        self.world.trace("client %d: #%d on store %d: %s", self.id, call.seq, store_id, kind)
        counts = self.clients.counts
        if kind == "stale_command" and call.kind not in READS:
            self.clients.history += call.indeterminate()
            counts["indeterminate"] += 1
        elif kind in NOT_EXECUTED:
            counts["not_executed"] += 1
        else:
            raise WrongAnswer(f"store {store_id} answered a valid {call.kind} with {kind}: {err.message}")
        follow_routing_error(self.sim, self.cache, self.loc, store_id, err, self.rng)
        # A reader asking a follower is told so every time: it need not ask that often.
        self._done(self.rng.randint(1_000, 10_000) * (1 if self.home is None else 3))

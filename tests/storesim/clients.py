"""Clients of the raw KV API, and the history they record for the linearizability checker.

Each client runs one call at a time over a few keys: get, batch get and scan; put, batch put,
delete and delete range (every written value is unique, so a read names the write it saw); and
cas against a value recently seen (or absence). A call goes to the store the client believes
leads, through ``KvHandler.handle``, with network latency each way. Readers are clients bound to
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

from collections import deque
from typing import TYPE_CHECKING

from kvdb.pb import kvrpc_pb2, metapb_pb2
from kvdb.testing.linearizability import Operation
from tests.storesim.node import CLUSTER_ID

if TYPE_CHECKING:
    from tests.storesim.cluster import StoreSimulation

NOT_EXECUTED = frozenset({"not_leader", "epoch_not_match", "range_not_found", "server_busy"})
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
        self.leader_guess = self.rng.choice(sorted(self.sim.stores))
        self.home = home  # a reader's store
        self.timeout_us = timeout_us
        self.epoch = metapb_pb2.RangeEpoch(conf_ver=1, version=1)
        self.call: Call | None = None
        self.seq = 0

    # -- issuing ------------------------------------------------------------------------------

    def next_call(self) -> None:
        if not self.clients.active or self.call is not None:
            return
        if self.world.now < self.clients.quiet_until:
            self.world.after(self.clients.quiet_until - self.world.now, self.next_call)
            return
        self.seq += 1
        call = self._draw()
        self.call = call
        self.clients.outstanding += 1
        req = self._request(call)
        # Now and then ask another store: that is how clients of a cut-off leader learn of its
        # successor while the old one still answers them, the window a broken lease would show in.
        target = self.leader_guess if self.home is None else self.home
        if self.home is None and self.rng.random() < EXPLORE:
            target = self.rng.choice(sorted(self.sim.stores))
        self.world.after(self.sim.client_latency(), self._deliver, target, req, call)
        self.world.after(self.timeout_us, self._timed_out, call.seq)

    def _draw(self) -> Call:
        rng, all_keys = self.rng, self.clients.keys
        kind = "get" if self.home is not None else rng.choices(KINDS, KIND_WEIGHTS)[0]
        bounds = (b"", b"")
        if kind in RANGED:
            lo = rng.randrange(len(all_keys))
            hi = rng.randrange(lo + 1, len(all_keys) + 1)
            # An empty end is the range's end: past every client key.
            bounds = (all_keys[lo], all_keys[hi] if hi < len(all_keys) else b"")
            keys = all_keys[lo:hi]
        elif kind.startswith("batch"):
            keys = rng.sample(all_keys, rng.randint(1, min(3, len(all_keys))))
        else:
            keys = [rng.choice(all_keys)]
        values = []
        if kind in ("put", "batch_put", "cas"):
            values = [b"c%d-%d-%d" % (self.id, self.seq, i) for i in range(len(keys))]
        expected = None
        if kind == "cas":
            recent = self.clients.recent[keys[0]]
            expected = recent[-1] if rng.random() < 0.7 else rng.choice([*recent, None])
        return Call(self.id, kind, keys, values, expected, bounds, self.world.now, self.seq)

    def _request(self, call: Call) -> kvrpc_pb2.Request:
        req = kvrpc_pb2.Request(id=call.seq)
        body = getattr(req, call.kind)
        body.context.cluster_id = CLUSTER_ID
        body.context.range_id = self.sim.first_range.id
        body.context.epoch.CopyFrom(self.epoch)
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
        seq = call.seq
        node.deliver(("client", self.id), node.handler.handle, req, lambda resp: self.world.after(
            self.sim.client_latency(), self._answer, store_id, resp.SerializeToString(), seq))

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
        self.leader_guess = self.rng.choice(sorted(self.sim.stores))
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
        self.leader_guess = store_id
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
        if kind == "not_leader" and err.not_leader.HasField("leader"):
            self.leader_guess = err.not_leader.leader.store_id
        elif kind == "epoch_not_match" and err.epoch_not_match.current_ranges:
            self.epoch.CopyFrom(err.epoch_not_match.current_ranges[0].epoch)
        elif kind != "stale_command":
            self.leader_guess = self.rng.choice([s for s in sorted(self.sim.stores) if s != store_id])
        # A reader asking a follower is told so every time: it need not ask that often.
        self._done(self.rng.randint(1_000, 10_000) * (1 if self.home is None else 3))

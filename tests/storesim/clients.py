"""Clients of the raw KV API, and the history they record for the linearizability checker.

Each client runs one call at a time over a few keys: get, put and delete (every written value is
unique, so a read names the write it saw), and cas against a value recently seen (or absence).
A call goes to the store the client believes leads, through ``KvHandler.handle``, with network
latency each way. Readers are clients bound to one store (as a client of one node): they only
get, with a short timeout, so they keep asking a leader that was paused or cut off, right up to
when it wakes up; that is where a lease that outlives its promise answers stale reads.

Every attempt is one operation of the history, classified by its answer:

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

MISUSE = frozenset({"key_not_in_range", "invalid_argument", "wrong_cluster", "timeout"})
"""Errors the simulated clients never provoke; one means the store misjudged a valid request."""


KINDS = ("get", "put", "cas", "delete")
KIND_WEIGHTS = (45, 30, 20, 5)

READER_TIMEOUT_US = 50_000
"""Half an election timeout: a reader blocked on a stalled store asks again soon."""

EXPLORE = 0.1
"""Share of calls a client sends to a random store rather than to the leader it believes in."""


class ClientMisuse(AssertionError):
    """A store answered a valid request with an error that only an invalid one deserves."""


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

    def finish_history(self) -> list[Operation]:
        """The history so far, with every unanswered write as indeterminate."""
        ops = list(self.history)
        for client in self.clients:
            if client.call is not None and client.call.kind != "get":
                ops.append(client.call.indeterminate())
        return ops


class Call:
    """One attempt in flight: what was asked, when, and how to record it once it ends."""

    __slots__ = ("client", "kind", "key", "value", "expected", "invoke", "seq")

    def __init__(self, client: int, kind: str, key: bytes, value: bytes | None, expected: bytes | None,
                 invoke: int, seq: int) -> None:
        self.client = client
        self.kind = kind
        self.key = key
        self.value = value
        self.expected = expected
        self.invoke = invoke
        self.seq = seq

    def indeterminate(self) -> Operation:
        return Operation(self.client, self.kind, self.key, self.invoke, None, self.value, self.expected)


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
        self.seq += 1
        key = self.rng.choice(self.clients.keys)
        kind = "get" if self.home is not None else self.rng.choices(KINDS, KIND_WEIGHTS)[0]
        value = expected = None
        if kind in ("put", "cas"):
            value = b"c%d-%d" % (self.id, self.seq)
        if kind == "cas":
            recent = self.clients.recent[key]
            expected = recent[-1] if self.rng.random() < 0.7 else self.rng.choice([*recent, None])
        call = Call(self.id, kind, key, value, expected, self.world.now, self.seq)
        self.call = call
        self.clients.outstanding += 1
        req = self._request(call)
        # Now and then ask another store: that is how clients of a cut-off leader learn of its
        # successor while the old one still answers them, the window a broken lease would show in.
        target = self.leader_guess if self.home is None else self.home
        if self.home is None and self.rng.random() < EXPLORE:
            target = self.rng.choice(sorted(self.sim.stores))
        self.world.after(self.sim.client_latency(), self._deliver, target, req, call.seq)
        self.world.after(self.timeout_us, self._timed_out, call.seq)

    def _request(self, call: Call) -> kvrpc_pb2.Request:
        req = kvrpc_pb2.Request(id=call.seq)
        body = getattr(req, call.kind)
        body.context.cluster_id = CLUSTER_ID
        body.context.range_id = self.sim.first_range.id
        body.context.epoch.CopyFrom(self.epoch)
        body.key = call.key
        if call.kind == "put":
            body.value = call.value
        elif call.kind == "cas":
            body.value = call.value
            if call.expected is None:
                body.previous_not_exist = True
            else:
                body.previous_value = call.expected
        return req

    def _deliver(self, store_id: int, req: kvrpc_pb2.Request, seq: int) -> None:
        """The request reaches the store; a store that is down never answers."""
        node = self.sim.stores[store_id]
        if node.handler is None:
            return
        kind = req.WhichOneof("cmd")
        body = getattr(req, kind)
        self.world.trace("client %d -> %r: %s #%d %r %r", self.id, node, kind, seq, body.key,
                         getattr(body, "value", None))
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
        self.clients.counts["timeouts"] += 1
        if call.kind != "get":
            self.clients.history.append(call.indeterminate())
            self.clients.counts["indeterminate"] += 1
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
        counts, history, recent = self.clients.counts, self.clients.history, self.clients.recent[call.key]
        counts["ok"] += 1
        if call.kind == "get":
            value = None if body.not_found else body.value
            history.append(Operation(self.id, "get", call.key, call.invoke, now, value))
            recent.append(value)
        elif call.kind == "cas":
            history.append(Operation(self.id, "cas", call.key, call.invoke, now, call.value, call.expected,
                                     body.succeed))
            if body.succeed:
                recent.append(call.value)
            else:
                # A failed compare read the register somewhere inside the same interval.
                previous = None if body.previous_not_exist else body.previous_value
                history.append(Operation(self.id, "get", call.key, call.invoke, now, previous))
                recent.append(previous)
        else:
            history.append(Operation(self.id, call.kind, call.key, call.invoke, now, call.value))
            recent.append(call.value)
        if call.kind != "get":
            self.clients.last_write_ok = max(self.clients.last_write_ok, call.invoke)
        self.leader_guess = store_id
        self._done(self.rng.randint(0, 2_000))

    def _error(self, call: Call, store_id: int, err: kvrpc_pb2.Error) -> None:
        kind = err.WhichOneof("kind")
        self.world.trace("client %d: %s #%d on store %d: %s", self.id, call.kind, call.seq, store_id, kind)
        if kind in MISUSE:
            raise ClientMisuse(f"store {store_id} answered a valid {call.kind} with {kind}: {err.message}")
        if kind == "stale_command":
            if call.kind != "get":
                self.clients.history.append(call.indeterminate())
            self.clients.counts["indeterminate"] += 1
        else:
            self.clients.counts["not_executed"] += 1
        others = [s for s in sorted(self.sim.stores) if s != store_id]
        if kind == "not_leader" and err.not_leader.HasField("leader"):
            self.leader_guess = err.not_leader.leader.store_id
        elif kind == "epoch_not_match" and err.epoch_not_match.current_ranges:
            self.epoch.CopyFrom(err.epoch_not_match.current_ranges[0].epoch)
        elif kind != "stale_command":
            self.leader_guess = self.rng.choice(others)
        # A reader asking a follower is told so every time: it need not ask that often.
        self._done(self.rng.randint(1_000, 10_000) * (1 if self.home is None else 3))

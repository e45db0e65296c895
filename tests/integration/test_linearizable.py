"""Concurrent clients under a partition, leader transfers, kill -9 and clock rates within the
configured drift: the history every client saw must be linearizable (``check_history``, per key).

The clock arithmetic. The stores run with tick 0.02 s and election_tick 10, so the minimum
election timeout is E = 0.2 s, and max_clock_drift d = 0.05 s. The leader's clock runs at
r_L = 0.95 and one follower's at r_F = 1.05 (the store ticks every tick/rate real seconds, and
measures its lease on the same clock):

* the leader holds its lease for E - d = 0.15 s of its own clock, i.e. 0.15 / 0.95 = 0.158 s of
  real time after sending the round that a quorum acknowledged;
* the fast follower refuses to vote for election_tick ticks after hearing from the leader, i.e.
  for E / r_F = 0.2 / 1.05 = 0.190 s of real time, starting no earlier than that send.

0.158 s < 0.190 s, so no new leader can be elected while the old lease runs: the drift is inside
the bound. (Equivalently: over one election timeout the two clocks move apart by
E * (r_F - r_L) = 0.2 * 0.10 = 0.02 s, less than d = 0.05 s.)
"""

from __future__ import annotations

import random
import threading
import time

import grpc

from kvdb.pb import adminpb_pb2
from kvdb.testing.linearizability import Operation, check_history
from tests.integration.client import Client, error_kind
from tests.integration.cluster import Cluster, wait_for
from tests.integration.conftest import MakeCluster

TICK, ELECTION_TICK, DRIFT = 0.02, 10, 0.05
SLOW, FAST = 0.95, 1.05
RATE = adminpb_pb2.SetFailpointRequest.CLOCK_RATE
KEYS = [b"x", b"y", b"z"]
CLIENTS = 4
PHASE_OPS = 300
"""Operations completed between two faults."""

DEFINITE_FAILURES = frozenset({"not_leader", "server_busy", "epoch_not_match"})
"""Errors answered before anything was proposed: the operation did not happen and is retried."""


def test_clock_rate_skew_within_drift_bound_is_safe() -> None:
    election = TICK * ELECTION_TICK
    assert (election - DRIFT) / SLOW < election / FAST, "the rates below would break the lease bound"
    assert election * (FAST - SLOW) < DRIFT


class Worker(threading.Thread):
    """One client: random get/put/cas on a few keys, one call at a time, each recorded."""

    def __init__(self, cluster: Cluster, client_id: int, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.client = Client(cluster)
        self.id = client_id
        self.stop = stop
        self.rng = random.Random(client_id)
        self.history: list[Operation] = []
        self.seen: dict[bytes, bytes | None] = {}
        self.seq = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        deadline = time.monotonic() + 60
        try:
            while not self.stop.is_set() and time.monotonic() < deadline:
                self.one_op()
        except BaseException as exc:  # surfaced in the test's thread
            self.error = exc
        finally:
            self.client.close()

    def one_op(self) -> None:
        key = self.rng.choice(KEYS)
        roll = self.rng.random()
        self.seq += 1
        value = b"%d-%d" % (self.id, self.seq)
        expected = self.seen.get(key)
        if roll < 0.5:
            kind, fields = "get", {"key": key}
        elif roll < 0.8:
            kind, fields = "put", {"key": key, "value": value}
        else:
            kind = "cas"
            fields = {"key": key, "value": value, "previous_value": expected or b"",
                      "previous_not_exist": expected is None}
        invoke = time.monotonic()
        body = self.send(kind, fields, invoke + 2.0)
        complete = time.monotonic() if body is not None else None
        if body is False:
            return  # refused before it was proposed: it never happened
        if kind == "get":
            got = None if body is None or body.not_found else body.value
            if body is not None:
                self.seen[key] = got
            self.history.append(Operation(self.id, "get", key, invoke, complete, value=got))
        elif kind == "put":
            if body is not None:
                self.seen[key] = value
            self.history.append(Operation(self.id, "put", key, invoke, complete, value=value))
        else:
            ok = None if body is None else body.succeed
            if body is not None:
                self.seen[key] = value if ok else (None if body.previous_not_exist else body.previous_value)
            self.history.append(Operation(self.id, "cas", key, invoke, complete, value=value,
                                          expected=expected, ok=ok))

    def send(self, kind: str, fields: dict, deadline: float) -> object:
        """The successful answer; None when the outcome is unknown; False when it surely did not happen.

        A write is sent again only after an error that proves it was not proposed; after any
        other error or a broken connection it may have applied, so its outcome stays unknown.
        """
        c = self.client
        while time.monotonic() < deadline:
            sid = c.leader if c.leader is not None else c.find_leader()
            if sid is None or not c.cluster.stores[sid].running:
                c.leader = None
                time.sleep(0.01)
                continue
            try:
                timeout = max(0.05, deadline - time.monotonic())
                body = c.attempt(sid, kind, c.request(kind, **fields), timeout=timeout)
            except grpc.RpcError:
                c.leader = None
                if kind == "get":
                    continue
                return None
            err = error_kind(body)
            if err is None:
                return body
            c.follow(body.error)
            if err not in DEFINITE_FAILURES and kind != "get":
                return None
        return False if kind != "get" else None


def test_histories_stay_linearizable_under_faults_and_clock_skew(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(tick_interval=TICK, max_clock_drift=DRIFT)
    admin = Client(cluster)
    leader = admin.wait_leader()
    fast = next(sid for sid in (1, 2, 3) if sid != leader)
    admin.set_failpoint(leader, RATE, value=SLOW)
    admin.set_failpoint(fast, RATE, value=FAST)

    stop = threading.Event()
    workers = [Worker(cluster, i, stop) for i in range(CLIENTS)]
    for w in workers:
        w.start()

    def ops() -> int:
        return sum(len(w.history) for w in workers)

    def phase(what: str) -> None:
        target = ops() + PHASE_OPS
        wait_for(lambda: ops() >= target or any(not w.is_alive() for w in workers), 30,
                 f"{PHASE_OPS} operations {what}")

    try:
        phase("with the slow-clock leader")
        others = [sid for sid in (1, 2, 3) if sid != leader]
        admin.isolate(leader, others)
        admin.wait_leader(exclude=[leader])
        phase("while the slow-clock leader is cut off")
        admin.isolate(leader, others, on=False)
        admin.wait_caught_up([leader])
        admin.transfer_leader(fast)
        phase("after a leader transfer to the fast-clock store")
        victim = admin.wait_leader()
        cluster.kill(victim)
        admin.wait_leader(exclude=[victim])
        phase("after kill -9 of the leader")
        cluster.restart(victim)
        admin.wait_caught_up([victim])
        admin.transfer_leader(victim)
        phase("after the killed store came back and took over")
    finally:
        stop.set()
        for w in workers:
            w.join(10)
    for w in workers:
        assert not w.is_alive(), f"client {w.id} did not stop"
        if w.error is not None:
            raise w.error

    history = [op for w in workers for op in w.history]
    answered = [op for op in history if op.complete is not None]
    writes = [op for op in answered if op.kind != "get"]
    assert len(answered) >= 4 * PHASE_OPS * 0.9 and writes, "too little of the workload got answers"
    result = check_history(history)
    result.raise_if_failed()
    assert result.checked_ops >= len(answered)
    cluster.assert_all_running()
    admin.close()

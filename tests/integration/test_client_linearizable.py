"""Histories produced by the real client (``kvdb.aio``) stay linearizable while its retry path runs.

Several clients, each with its own session, write unique values to a few keys, compare-and-swap
and read them, against 3 PD members and 3 store processes. Meanwhile the test makes the leader
store swallow the answers of applied writes (the ``DROP_WRITE_RESPONSES`` failpoint: the client's
attempt times out and it re-sends the write, which the range must answer from the session's stored
result instead of applying it again), transfers the leadership, and kills the leader with -9 and
restarts it. Every call is recorded as the client saw it and the history goes through
``check_history``. Without deduplication at apply, a re-sent put lands after another client's
write and a reader sees the old value come back (checked by planting that bug).
"""

from __future__ import annotations

import asyncio
import random
import threading
import time

import pytest

import kvdb.aio
import kvdb.client.aio as client_aio
from kvdb.errors import DeadlineExceededError, UnavailableError, UncertainResultError
from kvdb.pb import adminpb_pb2
from kvdb.testing.linearizability import CheckResult, Operation, check_history
from tests.integration.client import Client
from tests.integration.cluster import wait_for
from tests.integration.conftest import MakePdCluster

KEYS = [b"x", b"y", b"z"]
CLIENTS = 5
PHASE_OPS = 150
"""Operations answered between two faults."""
DROPS = 12
"""Write answers the leader swallows per drop phase."""
ATTEMPT_TIMEOUT = 0.4
"""The client's per-attempt timeout here: a swallowed answer is retried after this long."""
CALL_TIMEOUT = 4.0
DROP = adminpb_pb2.SetFailpointRequest.DROP_WRITE_RESPONSES
COUNTERS = ("duplicates_answered", "duplicates_rejected", "sessions_expired")


class Workload:
    """``CLIENTS`` kvdb.aio clients on one event loop thread, each one call at a time, all recorded."""

    def __init__(self, endpoints: str, keys: list[bytes] = KEYS) -> None:
        self.endpoints = endpoints
        self.keys = keys
        self.history: list[Operation] = []
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.ambiguous_retries = 0
        self.uncertain = 0
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    def finish(self) -> None:
        """Stop the clients (in a ``finally``: a failing test must not leave them running)."""
        self.stop.set()
        self.thread.join(30)

    def checked(self, phases: int) -> CheckResult:
        """The finished workload's history, checked linearizable, with at least ``phases`` phases
        of answers, every one of them checked; raises the first error a client hit."""
        assert not self.thread.is_alive(), "the workload did not stop"
        if self.errors:
            raise self.errors[0]
        result = check_history(self.history)
        result.raise_if_failed()
        assert result.checked_ops >= self.answered() >= phases * PHASE_OPS
        return result

    def answered(self) -> int:
        return sum(1 for op in self.history if op.complete is not None)

    def phase(self, what: str) -> None:
        """Wait until ``PHASE_OPS`` more operations were answered (the workload must keep going)."""
        target = self.answered() + PHASE_OPS
        wait_for(lambda: self.answered() >= target or not self.thread.is_alive(), 30,
                 f"{PHASE_OPS} answered operations {what}")
        assert self.thread.is_alive(), f"the workload ended early: {self.errors}"

    async def _main(self) -> None:
        clients: list[kvdb.aio.AsyncClient] = []
        try:
            for _ in range(CLIENTS):
                clients.append(await kvdb.aio.connect(self.endpoints, timeout=CALL_TIMEOUT))
            await asyncio.gather(*(self._worker(i, c) for i, c in enumerate(clients)))
        except BaseException as exc:  # surfaced in the test's thread
            self.errors.append(exc)
        finally:
            self.ambiguous_retries = sum(c.ambiguous_retries for c in clients)
            for c in clients:
                await c.close()

    async def _worker(self, cid: int, client: kvdb.aio.AsyncClient) -> None:
        rng = random.Random(cid)
        seen: dict[bytes, bytes | None] = {}
        deadline = time.monotonic() + 90  # bounded even if the test's thread dies
        seq = 0
        while not self.stop.is_set() and time.monotonic() < deadline:
            key, roll = rng.choice(self.keys), rng.random()
            seq += 1
            value = b"%d-%d" % (cid, seq)
            invoke = time.monotonic()
            try:
                if roll < 0.5:
                    got = await client.get(key)
                    seen[key] = got
                    op = Operation(cid, "get", key, invoke, time.monotonic(), value=got)
                elif roll < 0.85:
                    await client.put(key, value)
                    seen[key] = value
                    op = Operation(cid, "put", key, invoke, time.monotonic(), value=value)
                else:
                    expected = seen.get(key)
                    ok, previous = await client.compare_and_swap(key, expected, value)
                    seen[key] = value if ok else previous
                    op = Operation(cid, "cas", key, invoke, time.monotonic(), value=value, expected=expected,
                                   ok=ok)
            except (UncertainResultError, DeadlineExceededError, UnavailableError) as exc:
                self.uncertain += isinstance(exc, UncertainResultError)
                if roll < 0.5:
                    continue  # a read without an answer tells nothing
                # Outcome unknown (it may still apply, or never): the checker tries both.
                expected = seen.pop(key, None)
                op = Operation(cid, "put" if roll < 0.85 else "cas", key, invoke, None, value=value,
                               expected=expected)
            self.history.append(op)


def counters(admin: Client, totals: dict[str, int]) -> dict[str, int]:
    """``totals`` plus what every running store counts now."""
    out = dict(totals)
    for st in admin.statuses().values():
        for name in COUNTERS:
            out[name] += getattr(st, name)
    return out


def test_real_client_histories_are_linearizable_through_retries_and_failovers(
        make_pd_cluster: MakePdCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_aio, "ATTEMPT_TIMEOUT", ATTEMPT_TIMEOUT)
    cluster, pd = make_pd_cluster()
    pd.wait_voters(3)
    admin = pd.kv_client()
    workload = Workload(cluster.pd_endpoints)
    workload.thread.start()

    try:
        workload.phase("to start with")
        leader = admin.wait_leader()
        admin.set_failpoint(leader, DROP, value=DROPS)
        workload.phase("while the leader swallows write answers")
        others = [sid for sid in cluster.stores if sid != leader]
        admin.transfer_leader(others[0])
        admin.set_failpoint(others[0], DROP, value=DROPS)
        workload.phase("after a leader transfer, answers swallowed again")
        victim = admin.wait_leader()
        admin.set_failpoint(victim, DROP, value=DROPS)
        workload.phase("before the leader is killed")
        before_kill = admin.status(victim)
        lost = {name: getattr(before_kill, name) for name in COUNTERS}  # its counters die with it
        cluster.kill(victim)
        admin.wait_leader(exclude=[victim])
        workload.phase("after kill -9 of the leader")
        cluster.restart(victim)
        admin.wait_caught_up([victim])
        workload.phase("after the killed store came back")
    finally:
        workload.finish()
    workload.checked(phases=5)
    history = workload.history
    writes = [op for op in history if op.kind != "get" and op.complete is not None]
    assert writes, "no write got an answer"
    # The retry path ran, and the stores answered re-sent writes from their sessions.
    assert workload.ambiguous_retries > 0
    total = counters(admin, lost)
    assert total["duplicates_answered"] > 0, total
    cluster.assert_all_running()
    admin.close()
    print(f"{len(history)} ops, {workload.answered()} answered, {len(writes)} writes, "
          f"{workload.ambiguous_retries} ambiguous retries, {workload.uncertain} uncertain, {total}")

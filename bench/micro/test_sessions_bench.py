"""Applying one client's writes with 64 in flight (``Sessions.replay`` + ``record`` per write, one
``stage`` per apply pass of 16 writes), as the leader of a range does under ``kvdb bench write
--concurrency 64``. Before the session table was staged once per pass, every write serialized the
whole session state, which holds the results of all 64 writes in flight.

Run: ``.venv/bin/pytest bench/micro/test_sessions_bench.py --benchmark-only``.
"""

from __future__ import annotations

from typing import Any

from kvdb.pb import kvrpc_pb2
from kvdb.storage.memory import MemEngine
from kvdb.store.sessions import Sessions

SESSION = 0x5E55
IN_FLIGHT = 64
PASS = 16


def test_apply_a_pass_of_writes(benchmark: Any) -> None:
    engine = MemEngine()
    sessions = Sessions(1, ttl_ms=60_000)
    seq = iter(range(1, 1 << 40))
    batch = engine.batch()
    for _ in range(IN_FLIGHT):  # the results of the writes in flight
        s = next(seq)
        sessions.record(kvrpc_pb2.SessionHeader(session_id=SESSION, seq=s, first_incomplete_seq=1), None)

    def one_pass() -> None:
        for _ in range(PASS):
            s = next(seq)
            header = kvrpc_pb2.SessionHeader(session_id=SESSION, seq=s, first_incomplete_seq=s - IN_FLIGHT)
            assert sessions.replay(header) is None
            sessions.record(header, None)
        sessions.stage(batch)

    benchmark(one_pass)
    assert len(sessions.table[SESSION].results) <= IN_FLIGHT + 1

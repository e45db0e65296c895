"""A crashed background task ends the process, loudly (issue 10, item 7).

A store whose tick loop died used to keep serving as a zombie: its gRPC server answered, its PD
worker reported it up, and no request would ever complete. Now the crash is logged with its
traceback and the process exits at once with ``CRASH_EXIT_STATUS``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest

from kvdb.pb import adminpb_pb2
from kvdb.server import supervisor
from kvdb.server.supervisor import CRASH_EXIT_STATUS, spawn
from placement.server import PdConfig, PdMember
from tests.integration.client import Client
from tests.integration.cluster import Cluster, wait_for

EXIT_DEADLINE = 10.0
"""Seconds the crashed store may take to exit: a few ticks, and the rest is machine load."""


def test_a_store_whose_tick_loop_crashes_exits_with_the_traceback(tmp_path: Path) -> None:
    cluster = Cluster.create(tmp_path, 1)
    client = Client(cluster)
    try:
        cluster.start()
        client.put(b"before", b"the crash")
        store = cluster.stores[1]
        client.set_failpoint(1, adminpb_pb2.SetFailpointRequest.CRASH_TICK_LOOP, value=1)
        wait_for(lambda: not store.running, EXIT_DEADLINE, "the store to exit")
        log = store.tail(lines=200)
        assert store.proc.returncode == CRASH_EXIT_STATUS, log
        assert "tick loop crashed" in log and "Traceback" in log, log
        assert "RuntimeError: failpoint crash_tick_loop" in log, log
    finally:
        client.close()
        cluster.shutdown()


def test_cancelled_and_finished_tasks_are_not_crashes(monkeypatch: pytest.MonkeyPatch) -> None:
    exits: list[int] = []
    monkeypatch.setattr(supervisor, "exit_now", exits.append)

    async def forever() -> None:
        await asyncio.Event().wait()

    async def one_shot() -> None:
        return None

    async def main() -> None:
        cancelled, finished = spawn(forever(), "a loop"), spawn(one_shot(), "a lookup")
        await asyncio.sleep(0)
        cancelled.cancel()
        await asyncio.gather(cancelled, finished, return_exceptions=True)

    asyncio.run(main())
    assert exits == []


def test_a_task_that_raises_is_logged_and_exits(monkeypatch: pytest.MonkeyPatch,
                                                caplog: pytest.LogCaptureFixture) -> None:
    exits: list[int] = []
    monkeypatch.setattr(supervisor, "exit_now", exits.append)

    async def broken() -> None:
        raise KeyError("no such peer")

    async def main() -> None:
        await asyncio.gather(spawn(broken(), "the broken loop"), return_exceptions=True)

    with caplog.at_level(logging.CRITICAL, logger=supervisor.__name__):
        asyncio.run(main())
    assert exits == [CRASH_EXIT_STATUS]
    [record] = caplog.records
    assert "the broken loop crashed" in record.getMessage() and record.exc_info[0] is KeyError


def test_a_pd_member_whose_tick_loop_crashes_exits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """PD members host their Raft group on the same supervised ``RaftHost`` (in process here, with
    the exit observed instead of taken)."""
    exits: list[int] = []
    monkeypatch.setattr(supervisor, "exit_now", exits.append)

    async def main() -> None:
        member = PdMember(PdConfig(member_id=1, listen="127.0.0.1:0", data_dir=tmp_path,
                                   initial_members={1: "127.0.0.1:1"}))
        await member.start()
        try:
            member.host.crash_tick_loop = True
            deadline = time.monotonic() + EXIT_DEADLINE
            while not exits and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
        finally:
            await member.stop()

    asyncio.run(main())
    assert exits == [CRASH_EXIT_STATUS]

"""Background tasks of a server process must not die quietly.

A store whose Raft loop or tick loop has died would otherwise keep running as a zombie: its gRPC
server still accepts requests (which then time out) and its PD worker still reports it as up, so
nobody replaces its replicas. A task that ends with an exception is a bug; the only safe reaction
is to say so loudly and exit at once, non-zero, without a graceful stop (which may well wait on
the dead task). The process's supervisor (the playground, systemd, a test) sees the exit status,
and a restart recovers from what was fsynced, as after kill -9.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)

CRASH_EXIT_STATUS = 70
"""Exit status of a process whose background task crashed (``EX_SOFTWARE``: an internal error)."""


def spawn(coro: Coroutine[Any, Any, None], what: str) -> asyncio.Task:
    """Run ``coro`` as a task of the running loop; the process exits (``crash``) if it raises.

    Cancellation and a normal return are not crashes: stopping cancels the loops, and one-shot
    tasks (an address lookup, a snapshot send) end by returning.
    """

    def check(done: asyncio.Task) -> None:
        if not done.cancelled() and done.exception() is not None:
            crash(what, done.exception())

    task = asyncio.get_running_loop().create_task(coro)
    task.add_done_callback(check)
    return task


def crash(what: str, exc: BaseException) -> None:
    """Log ``exc`` with its traceback, flush the logs and exit with ``CRASH_EXIT_STATUS`` at once."""
    log.critical("%s crashed; exiting with status %d", what, CRASH_EXIT_STATUS, exc_info=exc)
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stderr.flush()
    exit_now(CRASH_EXIT_STATUS)


def exit_now(status: int) -> None:
    """``os._exit``: no cleanup runs, exactly like a crash (tests replace it to observe the call)."""
    os._exit(status)

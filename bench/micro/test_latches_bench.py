"""A transactional read's latch check (``Latches.blocking_read``) while 64 stamped async-commit
prewrites of two keys each hold their latches, as under 64 concurrent bank transfers: the keys
looked up in an index of the stamped keys, against the earlier walk over every stamped latch's
keys (reproduced here as ``walk``).

Run: ``.venv/bin/pytest bench/micro/test_latches_bench.py --benchmark-only``.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from kvdb.txn.latches import Latch, Latches

IN_FLIGHT = 64
READ = [b"acct%06d" % 999, b"acct%06d" % 998]  # latched by nobody: the whole check runs


@pytest.fixture(scope="module")
def latches() -> Latches:
    latches = Latches()
    for i in range(IN_FLIGHT):
        latches.acquire([b"acct%06d" % i, b"acct%06d" % (i + IN_FLIGHT)], latches.stamp)
    return latches


def walk(latches: Latches, stamped: set[Latch] | None = None) -> Latch | None:
    """The earlier blocking_read: every stamped latch's keys against the read's keys (it kept
    the stamped latches in a set)."""
    for latch in stamped if stamped is not None else set(latches._stamped.values()):
        for key in latch.keys:
            if key in READ:
                return latch
    return None


def indexed(latches: Latches) -> Latch | None:
    return latches.blocking_read(READ)


@pytest.mark.parametrize("check", [walk, indexed], ids=["walk-stamped", "index"])
def test_point_read_latch_check(benchmark: pytest.FixtureRequest, latches: Latches,
                                check: Callable[[Latches], Latch | None]) -> None:
    assert check(latches) is None
    if check is walk:
        benchmark(walk, latches, set(latches._stamped.values()))
    else:
        benchmark(check, latches)

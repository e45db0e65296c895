"""Building the Raft command of a transactional request (``TxnApi._propose``): the request
copied once into ``RaftCommand.txn`` against the earlier way, copied into a ``TxnCommand`` and
that copied again into the ``RaftCommand``. The request is a two-key async-commit prewrite,
as a bank transfer sends one per range.

Run: ``.venv/bin/pytest bench/micro/test_txn_propose_bench.py --benchmark-only``.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from kvdb.pb import kvrpc_pb2, raft_serverpb_pb2

REQ = kvrpc_pb2.PrewriteRequest(
    mutations=[kvrpc_pb2.TxnMutation(op=kvrpc_pb2.PUT, key=b"acct%06d" % i, value=b"v" * 100)
               for i in (1, 2)],
    primary_lock=b"acct000001", start_ts=1 << 40, lock_ttl_ms=3000, use_async_commit=True,
    secondaries=[b"acct000002"], context=kvrpc_pb2.Context(range_id=7))


def copied_twice() -> raft_serverpb_pb2.RaftCommand:
    txn = raft_serverpb_pb2.TxnCommand()
    txn.prewrite.CopyFrom(REQ)
    txn.prewrite.ClearField("context")
    cmd = raft_serverpb_pb2.RaftCommand()
    cmd.txn.CopyFrom(txn)
    return cmd


def copied_once() -> raft_serverpb_pb2.RaftCommand:
    cmd = raft_serverpb_pb2.RaftCommand()
    body = cmd.txn.prewrite
    body.CopyFrom(REQ)
    body.ClearField("context")
    return cmd


@pytest.mark.parametrize("build", [copied_twice, copied_once], ids=["copied-twice", "copied-once"])
def test_build_prewrite_command(benchmark: pytest.FixtureRequest,
                                build: Callable[[], raft_serverpb_pb2.RaftCommand]) -> None:
    assert build() == copied_twice()
    benchmark(build)

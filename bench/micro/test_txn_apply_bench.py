"""What an apply pass of transactional commands costs on RocksDB: one engine write per command
(the store wrote its apply batch before every txn command, so the command would see the earlier
entries) against one per pass (``Store._apply_txn`` writes first only when an earlier entry
staged a record of a key the command reads).

A pass holds PASS async-commit prewrites of two distinct keys each, as 64 concurrent bank
transfers put them in one range's log; the write of the apply state per flush is included.

Run: ``.venv/bin/pytest bench/micro/test_txn_apply_bench.py --benchmark-only``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kvdb.mvcc.reader import MvccReader
from kvdb.mvcc.writer import MvccWriter
from kvdb.pb import kvrpc_pb2, metapb_pb2, raft_serverpb_pb2
from kvdb.storage.engine import CF_META
from kvdb.storage.rocks import RocksEngine
from kvdb.txn import actions

PASS = 32
VALUE = b"v" * 100
DESC = metapb_pb2.RangeDescriptor(id=1)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[RocksEngine]:
    engine = RocksEngine(tmp_path / "db")
    yield engine
    engine.close()


def commands(round_no: int) -> list[raft_serverpb_pb2.TxnCommand]:
    out = []
    for i in range(PASS):
        start_ts = (round_no * PASS + i + 1) << 18
        keys = [b"acct%06d-%d" % (i, round_no), b"acct%06d-%d" % (i + PASS, round_no)]
        out.append(raft_serverpb_pb2.TxnCommand(max_read_ts=start_ts, prewrite=kvrpc_pb2.PrewriteRequest(
            mutations=[kvrpc_pb2.TxnMutation(op=kvrpc_pb2.PUT, key=k, value=VALUE) for k in keys],
            primary_lock=keys[0], start_ts=start_ts, lock_ttl_ms=3000, use_async_commit=True,
            secondaries=keys[1:])))
    return out


def run_pass(engine: RocksEngine, cmds: list[raft_serverpb_pb2.TxnCommand], flush_each: bool) -> None:
    batch = engine.batch()
    reader = MvccReader(engine)
    for cmd in cmds:
        if flush_each and len(batch):
            batch.put(CF_META, b"apply-state", b"x" * 16)
            engine.write(batch, sync=False)
            batch = engine.batch()
        actions.apply_txn(cmd, reader, MvccWriter(batch), DESC)
    batch.put(CF_META, b"apply-state", b"x" * 16)
    engine.write(batch, sync=False)


@pytest.mark.parametrize("flush_each", [True, False], ids=["write-per-command", "write-per-pass"])
def test_apply_pass_of_prewrites(benchmark: pytest.FixtureRequest, engine: RocksEngine,
                                 flush_each: bool) -> None:
    rounds = iter(range(10**6))
    benchmark.pedantic(lambda cmds: run_pass(engine, cmds, flush_each),
                       setup=lambda: ((commands(next(rounds)),), {}), rounds=200)

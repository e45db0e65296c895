"""Transactions in the store simulator: bank and list-append workloads under faults, and planted
transaction bugs the simulator must catch.

Reproduce a failing seed with the command in its failure message, e.g.
``.venv/bin/python -m tests.storesim --seed 3 --workload bank``; soak with
``.venv/bin/python -m tests.storesim --seeds 50 --workload append``.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from kvdb.mvcc.records import lock_expired
from kvdb.pb import kvrpc_pb2
from kvdb.storage.engine import CF_WRITE
from kvdb.store import keyspace
from kvdb.store.txn_api import TxnApi
from kvdb.txn import actions, reads
from tests.seed_sweep import sweep
from tests.storesim import SimFailure, SimOptions, Stats, StoreSimulation

SEEDS = 8
EXERCISED = (
    "txn_committed",
    "txn_aborted",
    "txn_checked",
    "txn_one_pc",
    "txn_async",
    "txn_two_pc",
    "txn_client_crashes",
    "txn_conflicts",
    "txn_locks_met",
    "txn_locks_resolved",
    "txn_scans",
    "crashes",
    "partitions",
    "leader_changes",
)


def run_seeds(workload: str, seeds: range, **options: object) -> tuple[Stats, list[str]]:
    totals = Stats()
    failures = sweep(StoreSimulation, SimFailure,
                     (SimOptions(seed=seed, workload=workload, **options) for seed in seeds), totals)
    return totals, failures


@pytest.mark.parametrize("workload", ["bank", "append"])
def test_txn_seeds(workload: str) -> None:
    """Every seed's transactions check out (and the raw clients stay linearizable) under crashes,
    partitions, transfers, splits and clock drift; together the seeds used every commit path,
    crashed clients mid-commit and resolved the locks they left."""
    totals, failures = run_seeds(workload, range(SEEDS))
    assert not failures, "\n".join(failures)
    idle = [name for name in EXERCISED if getattr(totals, name) == 0]
    assert not idle, f"the seeds never exercised {idle}: {totals.summary()}"


@pytest.mark.parametrize("workload", ["bank", "append"])
def test_healthy_run_commits_most_transactions(workload: str) -> None:
    """Without faults every abort is a write conflict or a client crash, every unknown outcome a
    crash, and most transactions commit."""
    totals, failures = run_seeds(workload, range(2), faults=False)
    assert not failures, "\n".join(failures)
    assert totals.txn_aborted <= totals.txn_conflicts + totals.txn_client_crashes, totals.summary()
    assert totals.txn_unknown <= totals.txn_client_crashes, totals.summary()
    assert totals.txn_committed > 4 * totals.txn_aborted, totals.summary()


# -- planted transaction bugs -----------------------------------------------------------------
# Each breaks one rule of the transaction code the way a plausible patch might; the simulator
# must fail a seed within PLANT_SEEDS (the first seed that fails is named in the assertion).

PLANT_SEEDS = 12


def prewrite_ignores_conflicts(mp: pytest.MonkeyPatch) -> None:
    """Prewrite skips the write-conflict check: a newer commit no longer refuses the lock."""
    check = actions._check_versions

    def no_conflict(reader: object, req: object, key: bytes) -> tuple[object, int]:
        error, commit_ts = check(reader, req, key)
        if error is not None and error.HasField("conflict"):
            return None, 0
        return error, commit_ts

    mp.setattr(actions, "_check_versions", no_conflict)


def read_ignores_locks(mp: pytest.MonkeyPatch) -> None:
    """A snapshot read never reports a lock: it reads past a transaction being committed."""
    mp.setattr(reads, "lock_blocks", lambda lock, ts: False)


def reads_leave_max_ts(mp: pytest.MonkeyPatch) -> None:
    """Reads do not raise the concurrency manager's max ts: an async-commit or 1PC transaction may
    then commit at or below a read that already missed it."""

    def read(self: TxnApi, ctx: object, ts: int, response: object, keys: object, bounds: object, fn: object,
             finish: object) -> None:
        self._read_unlatched(ctx, keys, bounds, fn, finish)

    mp.setattr(TxnApi, "_read", read)


def expired_async_primary_rolled_back(mp: pytest.MonkeyPatch) -> None:
    """check_txn_status rolls back an expired async-commit primary like any other lock, though
    the transaction may be committed already (every prewrite succeeded)."""
    check = actions._COMMANDS["check_txn_status"]

    def rollback_expired(cmd: object, reader: object, writer: object, desc: object) -> object:
        req = cmd.check_txn_status
        lock = reader.load_lock(req.primary_key)
        if lock is not None and lock.start_ts == req.lock_ts and lock_expired(lock, req.current_ts):
            writer.delete_lock(req.primary_key)
            actions._rollback_key(reader, writer, req.primary_key, req.lock_ts)
            return kvrpc_pb2.CheckTxnStatusResponse(action=kvrpc_pb2.TTL_EXPIRE_ROLLBACK)
        return check(cmd, reader, writer, desc)

    mp.setitem(actions._COMMANDS, "check_txn_status", rollback_expired)


def snapshot_without_versions(mp: pytest.MonkeyPatch) -> None:
    """A range's data bounds forget the write column family: snapshots (of split ranges too)
    carry no committed versions."""
    bounds = keyspace.data_bounds
    mp.setattr(keyspace, "data_bounds", lambda desc: [b for b in bounds(desc) if b[0] != CF_WRITE])


@pytest.mark.parametrize(("plant", "workload", "options"), [
    (prewrite_ignores_conflicts, "bank", {}),
    (read_ignores_locks, "bank", {}),
    (reads_leave_max_ts, "bank", {}),
    (expired_async_primary_rolled_back, "append", {}),
    (snapshot_without_versions, "append", {"profile": "churn"}),
], ids=lambda v: getattr(v, "__name__", None) or str(v))
def test_planted_txn_bug_is_caught(plant: Callable[[pytest.MonkeyPatch], None], workload: str,
                                   options: dict[str, object], monkeypatch: pytest.MonkeyPatch) -> None:
    """The plant fails a seed, and the same seed passes without it (so the plant, not the seed,
    is what the simulator caught)."""
    plant(monkeypatch)
    for seed in range(PLANT_SEEDS):
        sim_options = SimOptions(seed=seed, workload=workload, **options)
        try:
            StoreSimulation(sim_options).run()
        except SimFailure as failure:
            print(f"seed {seed} caught {plant.__name__}: {' | '.join(str(failure).splitlines()[3:6])[:400]}")
            monkeypatch.undo()
            StoreSimulation(sim_options).run()
            return
    pytest.fail(f"{plant.__name__} survived {PLANT_SEEDS} seeds of the {workload} workload")


def test_bad_options_get_a_clear_error() -> None:
    with pytest.raises(ValueError, match="PD mode schedules one"):
        SimOptions(seed=1, workload="bank", pd=True)
    with pytest.raises(ValueError, match="unknown workload 'ledger'"):
        SimOptions(seed=1, workload="ledger")

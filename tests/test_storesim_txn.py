"""Transactions in the store simulator: bank and list-append workloads under faults, and planted
transaction bugs the simulator must catch.

Reproduce a failing seed with the command in its failure message, e.g.
``.venv/bin/python -m tests.storesim --seed 3 --workload bank``; soak with
``.venv/bin/python -m tests.storesim --seeds 50 --workload append``.
"""

from __future__ import annotations

import pytest

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
    "crashes",
    "partitions",
    "leader_changes",
)


def run_seeds(workload: str, seeds: range, **options: object) -> tuple[Stats, list[str]]:
    totals = Stats()
    failures = []
    for seed in seeds:
        try:
            totals.add(StoreSimulation(SimOptions(seed=seed, workload=workload, **options)).run())
        except SimFailure as failure:
            failures.append("\n".join(str(failure).splitlines()[:3]))
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
    """Without faults nearly every transaction commits (conflicts aside) and none is unknown."""
    totals, failures = run_seeds(workload, range(2), faults=False)
    assert not failures, "\n".join(failures)
    assert totals.txn_committed > 10 * (totals.txn_aborted + 1), totals.summary()
    assert totals.txn_unknown <= totals.txn_client_crashes, totals.summary()

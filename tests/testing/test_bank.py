"""The bank checker on modelled histories: whole transfers pass, a torn one is caught and explained."""

from __future__ import annotations

import random

import pytest

from kvdb.testing.bank import (
    BankError,
    Read,
    Transfer,
    TransferGenerator,
    account_key,
    apply_transfer,
    assert_bank_ok,
    check_bank,
    group_bounds,
    initial_balances,
)

ACCOUNTS = 10
TOTAL = 1000


def model_history(steps: int, seed: int, tear_at: int = -1) -> tuple[list[Read], list[Transfer]]:
    """Transfers applied one at a time, with a read of every balance after each. At ``tear_at``
    the read sees the transfer's debit but not its credit (a read that ignored a lock)."""
    balances = initial_balances(ACCOUNTS, TOTAL)
    gen = TransferGenerator(ACCOUNTS, random.Random(seed), max_amount=50)
    reads, transfers = [], []
    for i in range(steps):
        src, dst, amount = gen.next()
        before = dict(balances)
        moved = apply_transfer(balances, src, dst, amount)
        transfers.append(Transfer(i, src, dst, amount, "ok", invoke=2 * i, complete=2 * i + 1))
        seen = dict(balances)
        if i == tear_at and moved:
            seen[dst] = before[dst]
        reads.append(Read(i, seen, invoke=2 * i + 1.5, complete=2 * i + 1.6))
    return reads, transfers


def test_whole_transfers_keep_the_total() -> None:
    reads, transfers = model_history(200, seed=1)
    assert check_bank(TOTAL, range(ACCOUNTS), reads, transfers) == []
    assert_bank_ok(TOTAL, range(ACCOUNTS), reads, transfers)


def test_a_torn_transfer_is_reported_with_the_transfers_around_it() -> None:
    reads, transfers = model_history(200, seed=1, tear_at=57)
    assert transfers[57].amount > 0
    violations = check_bank(TOTAL, range(ACCOUNTS), reads, transfers)
    assert [v.kind for v in violations] == ["wrong-total"]
    bad = violations[0]
    assert bad.read.id == 57 and f"off by {-transfers[57].amount:+}" in bad.message
    assert transfers[57] in bad.around and transfers[58] in bad.around
    with pytest.raises(BankError, match="transfer 57: "):
        assert_bank_ok(TOTAL, range(ACCOUNTS), reads, transfers)


def test_negative_balances_and_missing_accounts() -> None:
    fine = initial_balances(ACCOUNTS, TOTAL)
    overdrawn = {**fine, 0: -5, 1: fine[1] + fine[0] + 5}  # the sum still holds
    partial = {a: b for a, b in fine.items() if a != 3}
    reads = [Read(1, overdrawn, 1.0, 2.0), Read(0, partial, 0.0, 0.5)]
    violations = check_bank(TOTAL, range(ACCOUNTS), reads, [])
    assert [(v.kind, v.read.id) for v in violations] == [("accounts", 0), ("negative", 1)]
    assert "[3]" in violations[0].message and "0 (-5)" in violations[1].message


def test_uncertain_transfers_are_evidence_only() -> None:
    reads, transfers = model_history(20, seed=2)
    transfers[5] = Transfer(5, transfers[5].src, transfers[5].dst, transfers[5].amount, "info", 10.0)
    assert check_bank(TOTAL, range(ACCOUNTS), reads, transfers) == []


def test_bad_records_are_refused() -> None:
    with pytest.raises(ValueError, match="outcome"):
        Transfer(1, 0, 1, 5, "maybe", 0.0)
    with pytest.raises(ValueError, match="itself"):
        Transfer(1, 2, 2, 5, "ok", 0.0)
    with pytest.raises(ValueError, match="positive"):
        Transfer(1, 0, 1, 0, "ok", 0.0)
    with pytest.raises(ValueError, match="2 accounts"):
        initial_balances(1, 10)


def test_initial_balances_sum_to_the_total() -> None:
    balances = initial_balances(7, 100)
    assert sum(balances.values()) == 100 and max(balances.values()) - min(balances.values()) <= 1


def test_transfers_pick_distinct_accounts_and_bounded_amounts() -> None:
    gen = TransferGenerator(5, random.Random(3), max_amount=4)
    drawn = [gen.next() for _ in range(2000)]
    assert all(src != dst and 1 <= amount <= 4 for src, dst, amount in drawn)
    assert {(s, d) for s, d, _ in drawn} == {(s, d) for s in range(5) for d in range(5) if s != d}


def test_grouped_transfers_stay_in_their_block() -> None:
    accounts, groups = 1000, 8
    cuts = [accounts * i // groups for i in range(groups + 1)]
    gen = TransferGenerator(accounts, random.Random(4), groups=groups)
    for _ in range(5000):
        src, dst, _ = gen.next()
        lo, hi = group_bounds(accounts, groups, src)
        assert lo in cuts and hi == cuts[cuts.index(lo) + 1] and lo <= dst < hi and dst != src
    with pytest.raises(ValueError, match="groups"):
        TransferGenerator(10, random.Random(), groups=6)


def test_account_keys_sort_in_account_order() -> None:
    keys = [account_key(i) for i in (0, 9, 10, 999, 1000)]
    assert keys == sorted(keys)

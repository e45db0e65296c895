"""The transactional workloads' logic shared by every target: what a transfer writes, what the
preload writes, and the audit that ends a bank run.

A transfer reads both balances and writes both back; the amount moves only if the source holds
it (``kvdb.testing.bank.apply_transfer``), so a balance never goes negative and the total never
changes. The audit reads every account in one snapshot and hands it to the bank checker: a
benchmark that loses money is a bug report, not a number.
"""

from __future__ import annotations

from typing import Any, Protocol

from bench.workloads import BANK_BALANCE
from kvdb.testing.bank import Read, account_key, apply_transfer, check_bank, initial_balances

MAX_RETRIES = 10
"""Attempts after the first before a transaction that keeps conflicting counts as an error."""
LOAD_BATCH = 64
"""Keys per preload transaction."""


class TooManyConflicts(Exception):
    """A transaction conflicted MAX_RETRIES + 1 times in a row (counted as an error by class)."""


def encode_balance(balance: int) -> bytes:
    return str(balance).encode()


def decode_balance(key: bytes, value: bytes | None) -> int:
    if value is None:
        raise ValueError(f"account {key!r} does not exist: preload the bank first (drop --no-preload)")
    return int(value)


def transfer_writes(src: bytes, dst: bytes, src_value: bytes | None, dst_value: bytes | None,
                    amount: int) -> list[tuple[bytes, bytes]]:
    """The puts of a transfer given the balances it read: both accounts' new balances (both are
    written even when the source is short, so every transfer is a read-write transaction)."""
    balances = {0: decode_balance(src, src_value), 1: decode_balance(dst, dst_value)}
    apply_transfer(balances, 0, 1, amount)
    return [(src, encode_balance(balances[0])), (dst, encode_balance(balances[1]))]


def bank_pairs(accounts: int, slot: int, processes: int) -> list[tuple[bytes, bytes]]:
    """Process ``slot``'s share of the opening balances (every ``processes``-th account)."""
    opening = initial_balances(accounts, accounts * BANK_BALANCE)
    return [(account_key(i), encode_balance(opening[i])) for i in range(slot, accounts, processes)]


class SnapshotReader(Protocol):
    async def txn_scan(self, start: bytes, end: bytes) -> list[tuple[bytes, bytes]]: ...


async def audit(driver: SnapshotReader, accounts: int) -> dict[str, Any]:
    """Reads every account in one snapshot and checks the bank's invariant; the result's "bank" part."""
    pairs = await driver.txn_scan(account_key(0), account_key(accounts))
    by_key = {account_key(i): i for i in range(accounts)}
    # A key in the accounts' span that is no account gets a negative index: reported as unknown.
    balances = {by_key.get(k, -1 - n): int(v) for n, (k, v) in enumerate(pairs)}
    total = accounts * BANK_BALANCE
    violations = check_bank(total, range(accounts), [Read(0, balances, 0.0, 0.0)], [])
    return {"accounts": accounts, "total": total, "seen_total": sum(balances.values()),
            "ok": not violations, "violation": violations[0].explain() if violations else None}

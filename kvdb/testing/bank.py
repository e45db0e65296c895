"""The bank checker: money moves between accounts but is never made or lost.

The bank workload is the classic snapshot-isolation smoke test (Jepsen's "bank"): N accounts
start with balances summing to a known total; clients transfer amounts between two accounts in
a transaction that reads both balances and writes both back; other clients read every balance in
one transaction. Under snapshot isolation every such read sees a state between whole transfers,
so the balances it sees sum to the total and, as a transfer never overdraws, none is negative. A
read that sees half a transfer (a torn commit, a read below a lock that was meant to block it, a
lost update) breaks the sum, and :func:`check_bank` says which read, when, and which transfers ran
around it. :class:`TransferGenerator` is the transfer stream the tests and ``kvdb bench bank``
share, so that both exercise the same access pattern.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

OUTCOMES = frozenset({"ok", "fail", "info"})
"""A transfer committed (ok), surely did not (fail), or its outcome is unknown (info)."""
ACCOUNT_PREFIX = b"acct"
ACCOUNT_DIGITS = 8
_AROUND = 5  # transfers listed on each side of a bad read


def account_key(index: int) -> bytes:
    """Zero-padded so that key order is account order (a range holds neighbouring accounts)."""
    return ACCOUNT_PREFIX + str(index).zfill(ACCOUNT_DIGITS).encode()


def initial_balances(accounts: int, total: int) -> dict[int, int]:
    """``total`` spread over ``accounts`` as evenly as integers allow (the first ones get the rest)."""
    if accounts < 2:
        raise ValueError(f"a bank needs at least 2 accounts, got {accounts}")
    if total < 0:
        raise ValueError(f"the total cannot be negative, got {total}")
    base, rest = divmod(total, accounts)
    return {i: base + (i < rest) for i in range(accounts)}


@dataclass(frozen=True, slots=True)
class Transfer:
    """``amount`` from account ``src`` to ``dst``, as the client that asked saw it.

    ``invoke``/``complete`` are the client's clock (``complete`` None: no answer); ``commit_ts``
    is the transaction's commit timestamp when the client learned it (0 otherwise).
    """

    id: int
    src: int
    dst: int
    amount: int
    outcome: str
    invoke: float
    complete: float | None = None
    commit_ts: int = 0

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"transfer {self.id}: unknown outcome {self.outcome!r} "
                             f"(one of {sorted(OUTCOMES)})")
        if self.src == self.dst:
            raise ValueError(f"transfer {self.id}: from account {self.src} to itself")
        if self.amount <= 0:
            raise ValueError(f"transfer {self.id}: amount must be positive, got {self.amount}")

    def describe(self) -> str:
        end = "?" if self.complete is None else f"{self.complete:.6g}"
        ts = f" commit_ts {self.commit_ts}" if self.commit_ts else ""
        return (f"transfer {self.id}: {self.amount} from {self.src} to {self.dst} {self.outcome}"
                f" [{self.invoke:.6g}, {end}]{ts}")


@dataclass(frozen=True, slots=True)
class Read:
    """The balances one snapshot read saw, every account in one transaction at ``ts`` (0 unknown)."""

    id: int
    balances: Mapping[int, int]
    invoke: float
    complete: float
    ts: int = 0

    def describe(self) -> str:
        shown = ", ".join(f"{a}: {b}" for a, b in sorted(self.balances.items())[:20])
        more = " ..." if len(self.balances) > 20 else ""
        return (f"read {self.id} [{self.invoke:.6g}, {self.complete:.6g}]"
                + (f" ts {self.ts}" if self.ts else "")
                + f" sum {sum(self.balances.values())}: {{{shown}{more}}}")


@dataclass(frozen=True, slots=True)
class BankViolation:
    """What was wrong with one read (``kind``: wrong-total, negative, accounts) and the transfers
    that ran around it (the ones in flight during the read, and the last ones before and the first
    ones after), so a reader of the report can see which transfer it saw half of."""

    kind: str
    read: Read
    message: str
    around: tuple[Transfer, ...]

    def explain(self) -> str:
        lines = [f"{self.kind}: {self.message}", "  " + self.read.describe()]
        lines += ["    " + t.describe() for t in self.around]
        return "\n".join(lines)


class BankError(AssertionError):
    """A bank history broke the invariant; an AssertionError so a test raising it fails."""


def check_bank(total: int, accounts: Iterable[int], reads: Iterable[Read],
               transfers: Iterable[Transfer]) -> list[BankViolation]:
    """Every violation, in the order of the reads' invocation (the first is the earliest).

    A read must see exactly ``accounts``, no balance below zero, and balances summing to ``total``.
    Failed and uncertain transfers matter only as evidence: a snapshot read may see an uncertain
    transfer whole or not at all, never half, so the invariant is the same for every read.
    """
    expected = frozenset(accounts)
    ordered = sorted(transfers, key=lambda t: t.invoke)
    violations = []
    for read in sorted(reads, key=lambda r: r.invoke):
        seen = frozenset(read.balances)
        if seen != expected:
            missing, extra = sorted(expected - seen), sorted(seen - expected)
            violations.append(BankViolation("accounts", read, f"missing accounts {missing[:10]}, "
                                            f"unknown accounts {extra[:10]}", _around(read, ordered)))
            continue
        negative = sorted(a for a, b in read.balances.items() if b < 0)
        if negative:
            violations.append(BankViolation("negative", read, "negative balance in accounts "
                                            + ", ".join(f"{a} ({read.balances[a]})" for a in negative[:10]),
                                            _around(read, ordered)))
        got = sum(read.balances.values())
        if got != total:
            violations.append(BankViolation("wrong-total", read, f"balances sum to {got}, not {total} "
                                            f"(off by {got - total:+})", _around(read, ordered)))
    return violations


def assert_bank_ok(total: int, accounts: Iterable[int], reads: Iterable[Read],
                   transfers: Iterable[Transfer]) -> None:
    """Raises :class:`BankError` explaining the first violation, if any (and how many there are)."""
    violations = check_bank(total, accounts, reads, transfers)
    if violations:
        raise BankError(f"{len(violations)} bad read(s); the first:\n{violations[0].explain()}")


def _around(read: Read, ordered: list[Transfer]) -> tuple[Transfer, ...]:
    """Transfers in flight during ``read`` plus up to _AROUND before and after it (by the clients' clocks)."""
    before: list[Transfer] = []
    during: list[Transfer] = []
    after: list[Transfer] = []
    for t in ordered:
        if t.complete is not None and t.complete < read.invoke:
            before.append(t)
        elif t.invoke > read.complete:
            after.append(t)
        else:
            during.append(t)
    return tuple(before[-_AROUND:] + during + after[:_AROUND])


class TransferGenerator:
    """Random transfers between distinct accounts of ``0..accounts-1``.

    ``groups`` > 1 cuts the accounts into that many blocks of neighbouring accounts (the blocks a
    pre-split into that many ranges makes, see :func:`group_bounds`) and keeps each transfer
    inside one block, so both accounts live in one range (kvdb's one-phase-commit path).
    """

    def __init__(self, accounts: int, rng: random.Random, max_amount: int = 10, groups: int = 1) -> None:
        if accounts < 2:
            raise ValueError(f"transfers need at least 2 accounts, got {accounts}")
        if not 1 <= groups <= accounts // 2:
            raise ValueError(f"groups must be between 1 and {accounts // 2} (2 accounts each), got {groups}")
        if max_amount < 1:
            raise ValueError(f"max_amount must be at least 1, got {max_amount}")
        self.accounts = accounts
        self.groups = groups
        self.max_amount = max_amount
        self._rng = rng

    def next(self) -> tuple[int, int, int]:
        """(src, dst, amount): src != dst, 1 <= amount <= max_amount."""
        rng = self._rng
        src = int(rng.random() * self.accounts)
        lo, hi = group_bounds(self.accounts, self.groups, src)
        dst = lo + int(rng.random() * (hi - lo - 1))
        if dst >= src:  # skip src: uniform over the block's other accounts
            dst += 1
        return src, dst, 1 + int(rng.random() * self.max_amount)


def group_bounds(accounts: int, groups: int, account: int) -> tuple[int, int]:
    """[lo, hi) of the block of ``account`` when ``accounts`` are cut into ``groups`` blocks whose
    first accounts are ``accounts * i // groups`` (the split points of ``bench.splits.split_keys``)."""
    if not 0 <= account < accounts:
        raise ValueError(f"account {account} is not in 0..{accounts - 1}")
    group = account * groups // accounts  # never past the right block; step up to it
    while group + 1 < groups and accounts * (group + 1) // groups <= account:
        group += 1
    return accounts * group // groups, accounts * (group + 1) // groups


def apply_transfer(balances: dict[int, int], src: int, dst: int, amount: int) -> bool:
    """The transfer's rule, shared by the workloads and the tests' model: move ``amount`` unless
    ``src`` holds less (then nothing moves, and the transfer still commits: it read and decided)."""
    if balances[src] < amount:
        return False
    balances[src] -= amount
    balances[dst] += amount
    return True

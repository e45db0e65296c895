"""The transactional workloads of the store simulator, and the checks of their histories.

- ``bank``: accounts with initial balances (an absent key holds its initial balance); a transfer
  reads two accounts and moves at most the source's balance between them, an audit reads every
  account in one snapshot. Every audit, and the final state, must sum to the total with no
  balance negative (``kvdb.testing.bank``): a lost update (a prewrite that misses a conflict), a
  torn read (a read that ignores a lock, a commit that is not atomic) or a lost version makes or
  destroys money.
- ``append``: lists of unique elements; a transaction reads some lists and appends to others
  (read the list at start_ts, write it back one element longer), or scans every list. Checked
  by ``kvdb.testing.listappend`` (Elle: dependency cycles, aborted or intermediate reads, lost
  updates, incompatible orders, duplicates) for snapshot isolation, and every committed append
  must be in the final read.

The keys of both sort before the raw clients' (``k...``), and the founding ranges of a txn run
are cut over them (``cluster.py``), so that transactions span many ranges.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from kvdb.testing import bank, listappend
from tests.storesim.txn_clients import TxnRecord


class TxnCheckFailure(AssertionError):
    """A transactional history broke the workload's invariant."""


@dataclass
class Plan:
    reads: list[bytes]
    writes: Callable[[dict[bytes, bytes | None]], dict[bytes, bytes | None]]
    """The keys to write and their values (None: delete), from what the reads saw."""
    scan: tuple[bytes, bytes] | None = None
    """Read ``reads`` by scanning these bounds (``txn_scan``) rather than by key."""


class Workload(Protocol):
    keys: list[bytes]

    def draw(self, rng: random.Random) -> Plan: ...

    def check(self, records: list[TxnRecord], final: TxnRecord) -> int:
        """Raise ``TxnCheckFailure`` if the history (and ``final``, a read of every key after the
        run) is wrong; the transactions checked."""
        ...


OUTCOMES = {"committed": "ok", "aborted": "fail", "unknown": "info"}
"""The checkers' names (``kvdb.testing``) for the driver's outcomes."""


class Bank:
    def __init__(self, accounts: int = 16, total: int = 160) -> None:
        self.keys = [bank.account_key(i) for i in range(accounts)]
        self.index = {key: i for i, key in enumerate(self.keys)}
        self.total = total
        self.initial = {self.keys[i]: b for i, b in bank.initial_balances(accounts, total).items()}

    def balances(self, values: dict[bytes, bytes | None]) -> dict[bytes, int]:
        return {k: self.initial[k] if v is None else int(v) for k, v in values.items()}

    def draw(self, rng: random.Random) -> Plan:
        if rng.random() < 0.3:  # an audit, by key or by scan
            scan = (self.keys[0], self.keys[-1] + b"\x00") if rng.random() < 0.5 else None
            return Plan(list(self.keys), lambda values: {}, scan)
        src, dst = rng.sample(self.keys, 2)
        amount = rng.randint(1, 10)

        def writes(values: dict[bytes, bytes | None]) -> dict[bytes, bytes | None]:
            balances = self.balances(values)
            moved = min(amount, balances[src])
            if not moved:
                return {}
            return {src: b"%d" % (balances[src] - moved), dst: b"%d" % (balances[dst] + moved)}

        return Plan([src, dst], writes)

    def check(self, records: list[TxnRecord], final: TxnRecord) -> int:
        """``kvdb.testing.bank``: every audit (and the final read) sums to the total, none
        negative; the transfers around a bad read are named in the report."""
        reads, transfers = [], []
        for i, record in enumerate([*records, final]):
            if len(record.reads) == len(self.keys):
                balances = {self.index[k]: b for k, b in self.balances(record.reads).items()}
                reads.append(bank.Read(i, balances, record.invoke, record.complete, record.start_ts))
            elif record.writes:
                before, after = self.balances(record.reads), self.balances(record.writes)
                src, dst = sorted(record.writes, key=lambda k: after[k] - before[k])
                complete = None if record.outcome == "unknown" else record.complete
                transfers.append(bank.Transfer(i, self.index[src], self.index[dst], before[src] - after[src],
                                               OUTCOMES[record.outcome], record.invoke, complete,
                                               record.commit_ts))
        bank.assert_bank_ok(self.total, range(len(self.keys)), reads, transfers)
        return len(records) + 1


def _elements(value: bytes | None) -> list[bytes]:
    return value.split(b",") if value else []


class Append:
    def __init__(self, lists: int = 12) -> None:
        self.keys = [b"list%02d" % i for i in range(lists)]
        self.seq = 0

    def draw(self, rng: random.Random) -> Plan:
        if rng.random() < 0.1:  # read every list in one scan
            return Plan(list(self.keys), lambda values: {}, (self.keys[0], self.keys[-1] + b"\x00"))
        chosen = rng.sample(self.keys, rng.randint(1, 3))
        appends = {}
        for key in chosen:
            if rng.random() < 0.6:
                self.seq += 1
                appends[key] = b"%d" % self.seq

        def writes(values: dict[bytes, bytes | None]) -> dict[bytes, bytes | None]:
            return {k: b",".join([*_elements(values[k]), e]) for k, e in appends.items()}

        return Plan(chosen, writes)

    def check(self, records: list[TxnRecord], final: TxnRecord) -> int:
        """``kvdb.testing.listappend`` (Elle): no anomaly snapshot isolation forbids. And, which
        Elle cannot tell without real time, every committed append is in the final read."""
        history = []
        for i, record in enumerate([*records, final]):
            ops: list[tuple] = []
            for key, value in record.reads.items():
                ops.append((listappend.READ, key, [int(e) for e in _elements(value)]))
                if key in record.writes:
                    ops.append((listappend.APPEND, key, int(_elements(record.writes[key])[-1])))
            if ops:
                history.append(listappend.Txn(i, tuple(ops), OUTCOMES[record.outcome]))
        listappend.assert_snapshot_isolation(history)
        lists = {k: _elements(v) for k, v in final.reads.items()}
        for record in records:
            for key, value in record.writes.items():
                element = _elements(value)[-1]
                if record.outcome == "committed" and element not in lists[key]:
                    raise TxnCheckFailure(f"txn {record.start_ts} (client {record.client}, {record.mode}) "
                                          f"committed at {record.commit_ts} appending {element!r} to "
                                          f"{key!r}, lost from its final {lists[key]}")
        return len(records) + 1


WORKLOADS: dict[str, Callable[[], Workload]] = {"bank": Bank, "append": Append}

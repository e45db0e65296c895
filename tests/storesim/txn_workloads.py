"""The transactional workloads of the store simulator, and the checks of their histories.

- ``bank``: accounts with initial balances (an absent key holds its initial balance); a transfer
  reads two accounts and moves at most the source's balance between them, an audit reads every
  account in one snapshot. Every audit, and the final state, must sum to the total with no
  balance negative: a lost update (a prewrite that misses a conflict), a torn read (a read that
  ignores a lock, a commit that is not atomic) or a lost version makes or destroys money.
- ``append``: lists of unique elements; a transaction reads some lists and appends to others
  (read the list at start_ts, write it back one element longer), or scans every list. Checked: every committed
  append is in the final list exactly once, an aborted one never, an unknown one at most once;
  no list holds an element twice; every read of a list is a prefix of its final value.

The keys of both sort before the raw clients' (``k...``), and the founding ranges of a txn run
are cut over them (``cluster.py``), so that transactions span many ranges.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

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


class Bank:
    def __init__(self, accounts: int = 16, total: int = 160) -> None:
        self.keys = [b"acct%08d" % i for i in range(accounts)]
        self.total = total
        base, rest = divmod(total, accounts)
        self.initial = {key: base + (i < rest) for i, key in enumerate(self.keys)}

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
        audits = [r for r in records if len(r.reads) == len(self.keys)]
        for record in [*audits, final]:
            balances = self.balances(record.reads)
            what = f"audit at {record.start_ts} (client {record.client})"
            if sum(balances.values()) != self.total or min(balances.values()) < 0:
                raise TxnCheckFailure(f"{what} saw a total of {sum(balances.values())} (not {self.total}) "
                                      f"or a negative balance: {_show(record.reads)}")
        return len(records)


def _show(values: dict[bytes, bytes | None]) -> str:
    return ", ".join(f"{k.decode()}={'-' if v is None else v.decode()}" for k, v in sorted(values.items()))


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
        lists = {k: _elements(v) for k, v in final.reads.items()}
        for key, elements in lists.items():
            if len(set(elements)) != len(elements):
                raise TxnCheckFailure(f"{key!r} holds an element twice: {elements}")
        for record in records:
            for key, value in record.reads.items():
                seen = _elements(value)
                if lists[key][:len(seen)] != seen:
                    raise TxnCheckFailure(f"txn {record.start_ts} (client {record.client}, {record.outcome}) "
                                          f"read {key!r} = {seen}, not a prefix of its final {lists[key]}")
            for key, value in record.writes.items():
                element = _elements(value)[-1]
                present = element in lists[key]
                if record.outcome == "committed" and not present:
                    raise TxnCheckFailure(f"txn {record.start_ts} (client {record.client}, {record.mode}) "
                                          f"committed at {record.commit_ts} appending {element!r} to "
                                          f"{key!r}, lost from its final {lists[key]}")
                if record.outcome == "aborted" and present:
                    raise TxnCheckFailure(f"txn {record.start_ts} (client {record.client}, {record.mode}) "
                                          f"aborted, yet its append {element!r} is in {key!r}: {lists[key]}")
        return len(records)


WORKLOADS: dict[str, Callable[[], Workload]] = {"bank": Bank, "append": Append}

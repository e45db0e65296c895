"""Workloads: which operation comes next and on which key.

The YCSB core workloads are reproduced with YCSB's own defaults (zipfian θ = 0.99 over scrambled
keys, scans of 1..100 pairs, "latest" favouring the newest inserts), so numbers can be set beside
published YCSB results; ``write``/``read``/``mixed`` are the plain uniform cases the issue asks
for; ``bank`` (transfers between accounts) and ``txn`` (YCSB-T-like read-modify-write of 1..4
keys) are transactional. Everything is driven by a seeded ``random.Random``, so a run's operation sequence is
reproducible, and each client process gets its own seed and its own slice of insert keys, so
processes never insert the same key.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import NamedTuple

from kvdb.testing.bank import TransferGenerator, account_key

ZIPF_THETA = 0.99
MAX_SCAN = 100
KEY_PREFIX = b"user"
KEY_DIGITS = 12

READ, UPDATE, INSERT, SCAN, RMW = "read", "update", "insert", "scan", "rmw"
TRANSFER, TXN = "transfer", "txn"
MAX_TXN_KEYS = 4
MAX_TRANSFER = 10
BANK_ACCOUNTS = 1_000
BANK_BALANCE = 1_000
"""Each account's opening balance: the bank's total is accounts * BANK_BALANCE."""
BANK_RANGES = 8
"""Ranges the accounts are pre-split into on kvdb, so most transfers span two ranges."""


def key_of(index: int) -> bytes:
    """Zero-padded so that key order is index order (scans of E read neighbouring records)."""
    return KEY_PREFIX + str(index).zfill(KEY_DIGITS).encode()


class Uniform:
    def __init__(self, count: int, rng: random.Random) -> None:
        self.count = count
        self._rng = rng

    def next(self) -> int:
        return int(self._rng.random() * self.count)  # twice as fast as randrange, exact enough


class Zipfian:
    """Gray et al., "Quickly generating billion-record synthetic databases" (SIGMOD '94), as YCSB
    uses it: O(1) per draw after an O(n) zeta sum, which ``grow`` extends incrementally so that
    "latest" can follow a key space that keeps growing. Rank 0 is the most popular."""

    def __init__(self, count: int, rng: random.Random, theta: float = ZIPF_THETA) -> None:
        self._rng = rng
        self.theta = theta
        self.alpha = 1 / (1 - theta)
        self.zeta2 = 1 + 0.5 ** theta
        self.count = 0
        self.zetan = 0.0
        self.grow(count)

    def grow(self, count: int) -> None:
        if count <= self.count:
            return
        self.zetan += math.fsum(i ** -self.theta for i in range(self.count + 1, count + 1))
        self.count = count
        # With two keys or fewer the first two branches of next() decide every draw and eta is unused
        # (its formula divides by zero at n = 2).
        self.eta = (1 - (2 / count) ** (1 - self.theta)) / (1 - self.zeta2 / self.zetan) if count > 2 else 0.0

    def next(self) -> int:
        u = self._rng.random()
        uz = u * self.zetan
        if uz < 1:
            return 0
        if uz < self.zeta2:
            return 1
        return min(self.count - 1, int(self.count * (self.eta * u - self.eta + 1) ** self.alpha))


class ScrambledZipfian:
    """Zipfian popularity, but the popular keys spread over the key space instead of bunching at
    its start (which would put them all in one range). YCSB hashes the rank, which merges ranks
    that collide; an affine map with a multiplier coprime to n is a bijection, so the hottest
    key's share is exactly the zipfian one."""

    def __init__(self, count: int, rng: random.Random) -> None:
        self._zipf = Zipfian(count, rng)
        self.count = count
        mult = max(1, int(count * 0.6180339887))
        while math.gcd(mult, count) != 1:
            mult += 1
        self._mult = mult

    def next(self) -> int:
        return (self._zipf.next() * self._mult + 7) % self.count


class Latest:
    """The newest keys are the most popular: zipfian rank r reads the r-th newest insert."""

    def __init__(self, keys: KeySpace, rng: random.Random) -> None:
        self._keys = keys
        self._zipf = Zipfian(keys.newest + 1, rng)

    def next(self) -> int:
        self._zipf.grow(self._keys.newest + 1)
        return max(0, self._keys.newest - self._zipf.next())


class KeySpace:
    """Preloaded keys are 0..count-1; process ``slot`` of ``slots`` inserts count+slot, then every
    ``slots``-th index after it, so inserts of different processes never collide. ``newest`` is
    this process's view of the highest key (others insert at about the same pace)."""

    def __init__(self, count: int, slot: int = 0, slots: int = 1) -> None:
        self.count = count
        self._next_insert = count + slot
        self._slots = slots
        self.newest = count - 1

    def insert(self) -> int:
        index = self._next_insert
        self._next_insert += self._slots
        self.newest = max(self.newest, index)
        return index


@dataclass(frozen=True)
class Mix:
    """Operation proportions (summing to 1) and the key distribution of a workload."""

    read: float = 0.0
    update: float = 0.0
    insert: float = 0.0
    scan: float = 0.0
    rmw: float = 0.0
    transfer: float = 0.0
    txn: float = 0.0
    distribution: str = "uniform"

    def ops(self) -> list[tuple[str, float]]:
        return [(op, share) for op, share in ((READ, self.read), (UPDATE, self.update), (INSERT, self.insert),
                                              (SCAN, self.scan), (RMW, self.rmw), (TRANSFER, self.transfer),
                                              (TXN, self.txn)) if share]


WORKLOADS: dict[str, Mix] = {
    "write": Mix(update=1.0),
    "read": Mix(read=1.0),
    "mixed": Mix(read=0.5, update=0.5),
    "ycsb-a": Mix(read=0.5, update=0.5, distribution="zipfian"),
    "ycsb-b": Mix(read=0.95, update=0.05, distribution="zipfian"),
    "ycsb-c": Mix(read=1.0, distribution="zipfian"),
    "ycsb-d": Mix(read=0.95, insert=0.05, distribution="latest"),
    "ycsb-e": Mix(scan=0.95, insert=0.05, distribution="zipfian"),
    "ycsb-f": Mix(read=0.5, rmw=0.5, distribution="zipfian"),
    "bank": Mix(transfer=1.0),
    "txn": Mix(txn=1.0),
}
DESCRIPTIONS = {
    "write": "puts of --value-size bytes on uniformly chosen keys",
    "read": "linearizable gets of uniformly chosen preloaded keys",
    "mixed": "50% gets, 50% puts, uniform keys",
    "ycsb-a": "YCSB A, update heavy: 50% reads, 50% updates, zipfian",
    "ycsb-b": "YCSB B, read mostly: 95% reads, 5% updates, zipfian",
    "ycsb-c": "YCSB C, read only: 100% reads, zipfian",
    "ycsb-d": "YCSB D, read latest: 95% reads of recent inserts, 5% inserts",
    "ycsb-e": "YCSB E, short ranges: 95% scans of 1..100 pairs, 5% inserts, zipfian",
    "ycsb-f": "YCSB F, read-modify-write: 50% reads, 50% read-then-write, zipfian",
    "bank": "transactions moving money between two of --keys accounts (default 1000, pre-split into 8 "
            "ranges): read both balances, write both; the total is checked at the end",
    "txn": "YCSB-T-like transactions: read 1..4 uniformly chosen keys, write them all back",
}
TRANSACTIONAL = frozenset({"bank", "txn"})
"""Workloads whose keys live in the transactional key space (kvdb's raw API never sees them)."""


def default_keys(workload: str) -> int:
    """The key count a workload runs with unless told: the bank's accounts, else 10,000 keys."""
    return BANK_ACCOUNTS if workload == "bank" else 10_000


def key_space(workload: str) -> str:
    """Which keys a workload reads, so a sweep preloads each space once: raw, txn or bank."""
    return workload if workload in TRANSACTIONAL else "raw"


def workload_key(workload: str, index: int) -> bytes:
    """The key of ``index``: an account of the bank, else the YCSB key."""
    return account_key(index) if workload == "bank" else key_of(index)


def needs_preload(workload: str) -> bool:
    """Whether the workload reads keys that must exist first (a pure write workload does not)."""
    mix = WORKLOADS[workload]
    return bool(mix.read or mix.scan or mix.rmw or mix.transfer or mix.txn)


class Op(NamedTuple):
    """A NamedTuple, not a frozen dataclass: built once per operation, its cost is load-generator cost.
    A transfer moves ``amount`` from account ``key`` to ``others[0]``; a txn touches ``key`` and
    ``others``."""

    kind: str
    key: int
    scan_length: int = 0
    others: tuple[int, ...] = ()
    amount: int = 0


class Generator:
    """The operation stream of one client process."""

    def __init__(self, workload: str, key_count: int, seed: int, slot: int = 0, slots: int = 1,
                 groups: int = 1) -> None:
        """``groups`` (bank only): keep each transfer inside one of that many blocks of accounts."""
        mix = WORKLOADS[workload]
        self._rng = random.Random(seed * 1_000_003 + slot)
        self.keys = KeySpace(key_count, slot, slots)
        self._kinds = [op for op, _ in mix.ops()]
        self._cumulative: list[float] = []
        acc = 0.0
        for _, share in mix.ops():
            acc += share
            self._cumulative.append(acc)
        # The chooser draws from its own stream so that the key sequence does not depend on the op mix.
        key_rng = random.Random(seed * 1_000_003 + slot + 500_009)
        if mix.distribution == "zipfian":
            self._chooser: Uniform | ScrambledZipfian | Latest = ScrambledZipfian(key_count, key_rng)
        elif mix.distribution == "latest":
            self._chooser = Latest(self.keys, key_rng)
        else:
            self._chooser = Uniform(key_count, key_rng)
        self._transfers = (TransferGenerator(key_count, key_rng, MAX_TRANSFER, groups)
                           if mix.transfer else None)

    def next(self) -> Op:
        u = self._rng.random() * self._cumulative[-1]
        kind = self._kinds[-1]
        for k, edge in zip(self._kinds, self._cumulative, strict=True):
            if u < edge:
                kind = k
                break
        if kind == INSERT:
            return Op(kind, self.keys.insert())
        if kind == SCAN:
            return Op(kind, self._chooser.next(), self._rng.randint(1, MAX_SCAN))
        if kind == TRANSFER:
            assert self._transfers is not None
            src, dst, amount = self._transfers.next()
            return Op(kind, src, others=(dst,), amount=amount)
        if kind == TXN:
            keys = {self._chooser.next() for _ in range(self._rng.randint(1, MAX_TXN_KEYS))}
            first, *others = sorted(keys)
            return Op(kind, first, others=tuple(others))
        return Op(kind, self._chooser.next())

"""Model-based test: random interleavings of transactions (classic 2PC, async commit, 1PC,
rollbacks, lock resolution after TTL expiry, GC) applied through ``apply_txn`` on one store,
checked against a dict-of-versions model at every read and every command's answer.

The last check is snapshot stability: every read that answered is asked again at the end and
must answer the same (a commit may never land at or below a timestamp someone already read at —
what max_read_ts protects for async commit and 1PC).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import pytest

from kvdb.pb import kvrpc_pb2
from kvdb.txn import reads
from tests.txn.harness import DELETE, LOCK, PUT, Db

KEYS = [b"k%d" % i for i in range(6)]
TTL_MS = 2
TICK = 1 << 18  # one physical millisecond of TSO time


@dataclass
class Txn:
    start_ts: int
    mutations: dict[bytes, tuple[int, bytes]]
    mode: str  # classic | async | 1pc
    locked: set[bytes] = field(default_factory=set)
    min_commit_ts: int = 0
    commit_ts: int = 0

    @property
    def primary(self) -> bytes:
        return next(iter(self.mutations))


class Model:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.db = Db()
        self.now = 1
        self.versions: dict[bytes, list[tuple[int, int, bytes]]] = {k: [] for k in KEYS}
        self.locks: dict[bytes, Txn] = {}
        self.starting: list[Txn] = []  # started, not prewritten yet
        self.inflight: list[Txn] = []  # prewritten, some locks left
        self.safe_point = 0
        self.answered: list[tuple[int, Callable[[], object], object]] = []
        self.max_read_ts = 0

    # ------------------------------------------------------------------ the model's answers
    def tso(self) -> int:
        self.now += 1
        return self.now

    def blocking(self, key: bytes, read_ts: int) -> bool:
        txn = self.locks.get(key)
        if txn is None:
            return False
        op = txn.mutations[key][0]
        read_through = txn.mode == "async" and txn.min_commit_ts > read_ts
        return txn.start_ts <= read_ts and op != LOCK and not read_through

    def value(self, key: bytes, read_ts: int) -> bytes | None:
        for commit_ts, op, value in sorted(self.versions[key], reverse=True):
            if commit_ts <= read_ts and op != LOCK:
                return value if op == PUT else None
        return None

    def read_ts(self) -> int:
        """Mostly a fresh stamp; sometimes an older one, or one at a live txn's start_ts (a read
        between the start_ts and the min_commit_ts of an async-commit lock reads through it)."""
        roll = self.rng.random()
        if roll < 0.6:
            read_ts = self.tso()
        elif roll < 0.8 and self.inflight:
            read_ts = max(self.safe_point, self.rng.choice(self.inflight).start_ts)
        else:
            read_ts = self.rng.randrange(self.safe_point, self.now + 1)
        self.max_read_ts = max(self.max_read_ts, read_ts)
        self.db.max_read_ts = self.max_read_ts  # the store's concurrency manager
        return read_ts

    # ------------------------------------------------------------------------------ steps
    def begin(self) -> None:
        """A txn takes its start_ts; others may read (at later stamps) before it prewrites."""
        start_ts = self.tso()
        keys_ = self.rng.sample(KEYS, self.rng.randrange(1, 4))
        mutations = {k: (self.rng.choice([PUT, PUT, DELETE, LOCK]), b"%d:%s" % (start_ts, k)) for k in keys_}
        self.starting.append(Txn(start_ts, mutations, self.rng.choice(["classic", "async", "1pc"])))

    def prewrite(self) -> None:
        txn = self.starting.pop(self.rng.randrange(len(self.starting)))
        start_ts, mutations, mode = txn.start_ts, txn.mutations, txn.mode
        keys_ = list(mutations)
        resp = self.db.prewrite(
            start_ts,
            [(op, k, v) for k, (op, v) in mutations.items()],
            ttl=TTL_MS,
            async_commit=mode == "async",
            secondaries=keys_[1:] if mode == "async" else (),
            one_pc=mode == "1pc",
        )
        expected = {}
        for k in keys_:
            if k in self.locks:
                expected[k] = "locked"
            elif any(ts > start_ts for ts, _, _ in self.versions[k]):
                expected[k] = "conflict"
        got = {}
        for err in resp.errors:
            kind = err.WhichOneof("kind")
            got[getattr(err, kind).key] = kind
        assert got == expected, (start_ts, mutations)
        if expected:
            if self.rng.random() < 0.5:
                assert not self.db.rollback(start_ts, keys_).HasField("key_error")
            return
        min_ts = max(self.max_read_ts, start_ts) + 1
        if mode == "1pc":
            assert resp.one_pc_commit_ts == min_ts
            for k in keys_:
                self.versions[k].append((min_ts, *mutations[k]))
            return
        assert resp.one_pc_commit_ts == 0
        assert resp.min_commit_ts == (min_ts if mode == "async" else 0)
        txn.min_commit_ts = resp.min_commit_ts
        txn.locked = set(keys_)
        for k in keys_:
            self.locks[k] = txn
        self.inflight.append(txn)

    def commit_keys(self, txn: Txn, keys_: list[bytes]) -> None:
        for k in keys_:
            self.versions[k].append((txn.commit_ts, *txn.mutations[k]))
            txn.locked.discard(k)
            del self.locks[k]
        if not txn.locked:
            self.inflight.remove(txn)

    def rollback_keys(self, txn: Txn, keys_: list[bytes]) -> None:
        for k in keys_:
            txn.locked.discard(k)
            del self.locks[k]
        if not txn.locked:
            self.inflight.remove(txn)

    def commit(self) -> None:
        txn = self.rng.choice(self.inflight)
        if not txn.commit_ts:
            txn.commit_ts = self.tso() if txn.mode == "classic" else txn.min_commit_ts
            if txn.mode == "classic":  # the primary first: the commit point
                keys_ = [txn.primary]
            else:
                keys_ = self.rng.sample(sorted(txn.locked), self.rng.randrange(1, len(txn.locked) + 1))
        else:
            keys_ = self.rng.sample(sorted(txn.locked), self.rng.randrange(1, len(txn.locked) + 1))
        resp = self.db.commit(txn.start_ts, keys_, txn.commit_ts)
        assert not resp.HasField("key_error"), resp
        self.commit_keys(txn, keys_)
        if self.rng.random() < 0.2:  # a retry of the same commit
            assert not self.db.commit(txn.start_ts, keys_, txn.commit_ts).HasField("key_error")

    def rollback(self) -> None:
        txn = self.rng.choice(self.inflight)
        if txn.commit_ts:
            return
        keys_ = sorted(txn.locked)
        assert not self.db.rollback(txn.start_ts, keys_).HasField("key_error")
        self.rollback_keys(txn, keys_)
        resp = self.db.commit(txn.start_ts, keys_, self.tso())
        assert resp.key_error.HasField("aborted"), "a commit after the rollback is refused"

    def resolve(self) -> None:
        """What a reader that met one of the txn's locks does."""
        txn = self.rng.choice(self.inflight)
        current = self.tso()
        expired = (current >> 18) >= (txn.start_ts >> 18) + TTL_MS
        status = self.db.check_txn_status(txn.primary, txn.start_ts, current, rollback_if_not_exist=True)
        primary_locked = txn.primary in txn.locked
        if not primary_locked:
            assert status.commit_ts == txn.commit_ts > 0, status
            commit_ts = txn.commit_ts
        elif txn.mode == "classic":
            if not expired:
                assert status.lock_ttl_ms == TTL_MS and status.lock.start_ts == txn.start_ts
                return
            assert status.action == kvrpc_pb2.TTL_EXPIRE_ROLLBACK
            assert not txn.commit_ts
            self.rollback_keys(txn, [txn.primary])
            commit_ts = 0
        else:
            assert status.lock.use_async_commit and list(status.lock.secondaries) == list(txn.mutations)[1:]
            secondaries = self.db.check_secondary_locks(list(txn.mutations), txn.start_ts)
            if txn.commit_ts and len(txn.locked) < len(txn.mutations):
                assert secondaries.commit_ts == txn.commit_ts
                commit_ts = txn.commit_ts
            else:
                assert sorted(lock.key for lock in secondaries.locks) == sorted(txn.mutations)
                if not expired:
                    return
                commit_ts = max(lock.min_commit_ts for lock in secondaries.locks)
                assert commit_ts == txn.min_commit_ts
                txn.commit_ts = commit_ts
        keys_ = sorted(txn.locked)
        resp = self.db.resolve_lock(txn.start_ts, commit_ts, keys_)
        assert not resp.HasField("key_error"), resp
        if commit_ts:
            self.commit_keys(txn, keys_)
        elif keys_:
            self.rollback_keys(txn, keys_)

    def time_passes(self) -> None:
        self.now += self.rng.randrange(1, 3) * TICK

    def gc(self) -> None:
        oldest = min((t.start_ts for t in self.inflight + self.starting), default=self.now + 1)
        top = min(self.now, oldest - 1)
        if top <= self.safe_point:
            return
        self.safe_point = self.rng.randrange(self.safe_point, top + 1)
        self.db.gc(self.safe_point)

    def get(self) -> None:
        key, read_ts = self.rng.choice(KEYS), self.read_ts()
        if self.blocking(key, read_ts):
            resp = reads.txn_get(self.db.reader, key, read_ts)
            assert resp.key_error.locked.start_ts == self.locks[key].start_ts
            return
        self.answer(read_ts, partial(self.ask_get, key, read_ts), self.value(key, read_ts))

    def scan(self) -> None:
        start, end = sorted(self.rng.sample([*KEYS, b"", b"z"], 2))
        end, read_ts, limit = end or b"z", self.read_ts(), self.rng.randrange(0, 4)
        in_range = [k for k in KEYS if start <= k < end]
        pairs = [(k, v) for k in in_range if (v := self.value(k, read_ts)) is not None]
        if limit:
            pairs = pairs[:limit]
        covered = [k for k in in_range if not (limit and len(pairs) == limit and k > pairs[-1][0])]
        blocked = [k for k in covered if self.blocking(k, read_ts)]
        if blocked:
            resp = reads.txn_scan(self.db.reader, start, end, read_ts, limit, False)
            assert [lock.key for lock in resp.locks] == blocked and not resp.pairs
            return
        self.answer(read_ts, partial(self.ask_scan, start, end, read_ts, limit), pairs)

    def ask_get(self, key: bytes, read_ts: int) -> bytes | None:
        resp = reads.txn_get(self.db.reader, key, read_ts)
        assert not resp.HasField("key_error"), (key, read_ts, resp)
        return None if resp.not_found else resp.value

    def ask_scan(self, start: bytes, end: bytes, read_ts: int, limit: int) -> list[tuple[bytes, bytes]]:
        resp = reads.txn_scan(self.db.reader, start, end, read_ts, limit, False)
        assert not resp.locks, (start, end, read_ts, limit, resp)
        return [(p.key, p.value) for p in resp.pairs]

    def answer(self, read_ts: int, ask: Callable[[], object], expected: object) -> None:
        assert ask() == expected, ask
        self.answered.append((read_ts, ask, expected))

    def recheck(self) -> None:
        """Every read at or above the safe point answers as it did."""
        for read_ts, ask, expected in self.answered:
            if read_ts >= self.safe_point:
                assert ask() == expected, ask


@pytest.mark.parametrize("seed", range(40))
def test_random_transactions_match_the_model(seed):
    rng = random.Random(seed)
    model = Model(rng)
    steps = [
        (model.begin, 4),
        (model.get, 4),
        (model.scan, 2),
        (model.time_passes, 1),
        (model.gc, 1),
    ]
    with_txn = [(model.commit, 3), (model.rollback, 1), (model.resolve, 2)]
    for _ in range(600):
        table = (
            steps + (with_txn if model.inflight else []) + ([(model.prewrite, 4)] if model.starting else [])
        )
        step = rng.choices([s for s, _ in table], [w for _, w in table])[0]
        step()
    while model.starting:
        model.prewrite()
    while model.inflight:  # finish every transaction: commit, or resolve once expired
        model.time_passes()
        model.resolve()
    model.recheck()
    assert len(model.answered) > 50

"""The store's max read timestamp: what keeps async commit and 1PC from committing under a read.

An async-commit or 1PC transaction picks its own commit timestamp (no TSO round trip), so it
must pick one above every read that may already have missed its locks: a read at ts R served
before the prewrite's locks were visible must never see the transaction commit at C <= R. The
store raises ``max_ts`` to R *before* each read looks for locks; a prewrite, once its latches
are held, stamps the command with ``max_ts`` (``TxnCommand.max_read_ts``) and apply sets
``min_commit_ts > max_read_ts``. Either the read raised ``max_ts`` before the stamp (the commit
goes above it) or it waits for the stamped prewrite's latches (``kvdb.txn.latches``) and then
sees its locks.

``max_ts`` only covers the reads this store served: a new leader learns the reads of the old
one only as a lower bound, by a TSO timestamp fetched after it took over (``Peer.max_ts_synced``).
"""

from __future__ import annotations

from kvdb.mvcc.records import LOGICAL_BITS, physical_ms


class ConcurrencyManager:
    """One per store; every read and every stamp goes through it on the store's thread."""

    def __init__(self) -> None:
        self.max_ts = 0

    def update(self, ts: int) -> None:
        """A read at ``ts`` is about to be served (or a TSO stamp was learned): never goes down."""
        if ts > self.max_ts:
            self.max_ts = ts


MAX_TS = (1 << 63) - 1
"""No timestamp a request carries may exceed this, whatever the store knows of the TSO: commit
timestamps are chosen as ``max_ts + 1`` and must still encode in 8 bytes."""
TS_AHEAD_ALLOWANCE_MS = 5_000
"""How far past the TSO stamp a store learned last (plus the time since) a request's timestamp
may be: a stamp a client got from PD after the store's fetch, through any network delay."""
CLOCK_SLACK = 2.0
"""The store's elapsed time counts double: its monotonic clock may run slower than PD's."""
TS_LIMIT_REFRESH_S = 5.0
"""A store with leaders fetches a TSO stamp this often, so the limit stays close to the TSO."""


class TsLimit:
    """The highest timestamp a request may carry: refusing one from the far future keeps a
    reader (even a read-only one) from raising ``max_ts`` so far that every later async-commit
    or 1PC transaction commits in the future, invisible to fresh snapshots, or at a timestamp
    that no longer encodes. Honest timestamps come from the TSO, so they stay below the last
    stamp the store fetched plus the time since (counted with ``CLOCK_SLACK``) plus
    ``TS_AHEAD_ALLOWANCE_MS``; before the store has fetched any, only ``MAX_TS`` holds."""

    def __init__(self) -> None:
        self._physical_ms: int | None = None
        self._learned_at = 0.0

    def learn(self, ts: int, now: float) -> None:
        """A TSO stamp fetched at ``now`` (the store's monotonic clock)."""
        physical = physical_ms(ts)
        if self._physical_ms is None or physical >= self._physical_ms:
            self._physical_ms, self._learned_at = physical, now

    def stale(self, now: float) -> bool:
        return self._physical_ms is None or now - self._learned_at >= TS_LIMIT_REFRESH_S

    def limit(self, now: float) -> int:
        if self._physical_ms is None:
            return MAX_TS
        ahead_ms = int((now - self._learned_at) * 1000 * CLOCK_SLACK) + TS_AHEAD_ALLOWANCE_MS
        return min(MAX_TS, (self._physical_ms + ahead_ms) << LOGICAL_BITS)

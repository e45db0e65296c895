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


class ConcurrencyManager:
    """One per store; every read and every stamp goes through it on the store's thread."""

    def __init__(self) -> None:
        self.max_ts = 0

    def update(self, ts: int) -> None:
        """A read at ``ts`` is about to be served (or a TSO stamp was learned): never goes down."""
        if ts > self.max_ts:
            self.max_ts = ts

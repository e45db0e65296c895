"""Store-wide counters that outlive replicas, kept as plain ints on the hot path.

A replica keeps its own counters (``Peer.counters``, shown by the RangeStatus admin RPC); when
it is destroyed they are folded into ``retired`` here, so a node's totals (the sum over its
replicas plus ``retired``) never go down, as Prometheus counters must not.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class StoreStats:
    committed_entries: int = 0
    """Log entries committed and handed to apply on this store, over all its replicas."""
    elections: int = 0
    """Times a replica here became a candidate (a real election, after a won pre-vote)."""
    leader_changes: int = 0
    """Times a replica here became its range's leader."""
    reads: int = 0
    """Reads asked of replicas here (``Store.read``), whichever way they are served."""
    retired: Counter[str] = field(default_factory=Counter)
    """The counters of replicas destroyed here."""

    def retire(self, counters: dict[str, int]) -> None:
        self.retired.update(counters)

"""Fresh cluster-wide ids for the synchronous scheduling code.

Checkers and schedulers are plain functions of the model (no awaits), but ids come from PD's
replicated allocator, which persists its window through Raft. So the PD leader keeps a small pool
of ids allocated ahead: the async side tops it up before each coordinator run, and the sync side
takes from it. Running dry is not an error of the cluster, only of this run: ``IdsExhausted``
stops it, and the next run (after a top-up) picks up the rest.
"""

from __future__ import annotations

from collections import deque


class IdsExhausted(Exception):
    """No spare id at hand: stop this run; the pool is topped up before the next one."""


class IdPool:
    """Ids allocated ahead of use, handed out synchronously, each exactly once."""

    def __init__(self, target: int = 32) -> None:
        self.target = target
        """How many ids a top-up brings the pool to: the most one run can use before it stops."""
        self._ids: deque[int] = deque()

    def __call__(self) -> int:
        """A fresh id; raises ``IdsExhausted`` when the pool is empty."""
        if not self._ids:
            raise IdsExhausted("no spare id at hand until the next top-up")
        return self._ids.popleft()

    def missing(self) -> int:
        """How many ids a top-up should add."""
        return max(0, self.target - len(self._ids))

    def add(self, ids: list[int]) -> None:
        self._ids.extend(ids)

    def __len__(self) -> int:
        return len(self._ids)

"""A range leader's lease: when it may answer a read from its own state without a Raft round.

Followers promise not to vote for anyone else while they have heard from a live leader within
the minimum election timeout (the core enforces it). So if a quorum acknowledged a heartbeat
round the leader *sent* at t0, no other leader can exist before t0 + election timeout by any
follower's clock; the lease ends ``max_clock_drift`` earlier to cover clocks that disagree.
"""

from __future__ import annotations


class Lease:
    __slots__ = ("_span", "_rounds", "_term", "_expiry")

    def __init__(self, span: float) -> None:
        self._span = span
        # (round, send time) of rounds started in the current term, oldest first.
        self._rounds: list[tuple[int, float]] = []
        self._term = 0
        self._expiry = 0.0

    def round_started(self, term: int, round_: int, now: float) -> None:
        if term != self._term:
            self.expire()
            self._term = term
        self._rounds.append((round_, now))

    def round_acked(self, term: int, round_: int) -> None:
        """A quorum acknowledged ``round_``: the lease runs from when it was sent."""
        if term != self._term:
            return
        sent = None
        keep = 0
        for i, (r, t0) in enumerate(self._rounds):
            if r > round_:
                break
            sent, keep = t0, i
        if sent is None:
            return
        self._expiry = max(self._expiry, sent + self._span)
        del self._rounds[:keep]

    def expire(self) -> None:
        """Leadership was lost (or never held): no lease until a new round is acknowledged."""
        self._rounds.clear()
        self._expiry = 0.0

    def valid(self, term: int, now: float) -> bool:
        return term == self._term and now < self._expiry

    def remaining(self, term: int, now: float) -> float:
        return max(0.0, self._expiry - now) if term == self._term else 0.0

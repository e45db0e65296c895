"""Quorum arithmetic for simple majorities and joint (two-majority) configurations."""

from __future__ import annotations

from collections.abc import Callable, Iterable

INFINITE_INDEX = 1 << 64
"""What an empty majority "agrees" on: it never holds a joint config's decision back."""


class VoteResult:
    PENDING = 0
    LOST = 1
    WON = 2


def majority_value(voters: Iterable[int], acked: Callable[[int], int]) -> int:
    """The largest value that a majority of ``voters`` has reached (``acked(id)`` per voter).

    Used for the commit index (acked = match index) and for lease rounds (acked = echoed round).
    """
    values = sorted((acked(v) for v in voters), reverse=True)
    if not values:
        return INFINITE_INDEX
    return values[len(values) // 2]


def majority_vote(voters: Iterable[int], votes: dict[int, bool]) -> int:
    voters = list(voters)
    if not voters:
        return VoteResult.WON
    granted = missing = 0
    for v in voters:
        vote = votes.get(v)
        if vote is None:
            missing += 1
        elif vote:
            granted += 1
    quorum = len(voters) // 2 + 1
    if granted >= quorum:
        return VoteResult.WON
    if granted + missing >= quorum:
        return VoteResult.PENDING
    return VoteResult.LOST


class JointConfig:
    """Voters of the incoming and (during joint consensus) outgoing configuration.

    A decision needs a majority of each; outside a joint config ``outgoing`` is empty.
    """

    __slots__ = ("incoming", "outgoing")

    def __init__(self, incoming: set[int] | None = None, outgoing: set[int] | None = None) -> None:
        self.incoming = set(incoming or ())
        self.outgoing = set(outgoing or ())

    def ids(self) -> set[int]:
        return self.incoming | self.outgoing

    def is_joint(self) -> bool:
        return bool(self.outgoing)

    def is_singleton(self) -> bool:
        return len(self.incoming) == 1 and not self.outgoing

    def committed(self, acked: Callable[[int], int]) -> int:
        return min(majority_value(self.incoming, acked), majority_value(self.outgoing, acked))

    def vote_result(self, votes: dict[int, bool]) -> int:
        r1 = majority_vote(self.incoming, votes)
        r2 = majority_vote(self.outgoing, votes)
        if r1 == r2:
            return r1
        if VoteResult.LOST in (r1, r2):
            return VoteResult.LOST
        return VoteResult.PENDING

    def copy(self) -> JointConfig:
        return JointConfig(self.incoming, self.outgoing)

    def __repr__(self) -> str:
        inc = sorted(self.incoming)
        if self.outgoing:
            return f"{inc}&&{sorted(self.outgoing)}"
        return f"{inc}"

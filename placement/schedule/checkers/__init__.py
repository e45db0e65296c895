"""Checkers: what one range needs (a replica, a move off a failing store, a placement fix), each
as a REPAIR operator. The coordinator runs them over dirty and patrolled ranges."""

from __future__ import annotations

from typing import Protocol

from kvdb.pb import pdpb_pb2
from placement.schedule.operator import Operator


class Checker(Protocol):
    name: str

    def check(self, info: pdpb_pb2.RangeInfo, now_ms: int) -> Operator | None:
        """The operator the range needs now (priority REPAIR), or None."""

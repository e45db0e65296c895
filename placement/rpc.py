"""What every PD RPC handler shares: the error a bad request gets, and PD's wall clock.

Apart from placement/service.py so that the RPC mixins (placement/admin_rpcs.py, ...) that
PdService composes can use them without importing the service they are part of.
"""

from __future__ import annotations

import time


class RequestError(Exception):
    """The request itself is wrong (or the cluster is in the wrong state for it); ``kind`` names
    the ``pdpb.Error`` oneof field the answer sets, e.g. ``invalid_argument=True``."""

    def __init__(self, message: str, **kind: object) -> None:
        super().__init__(message)
        self.kind = kind


def invalid(message: str) -> RequestError:
    """The usual refusal of a bad argument."""
    return RequestError(message, invalid_argument=True)


def now_ms() -> int:
    return int(time.time() * 1000)

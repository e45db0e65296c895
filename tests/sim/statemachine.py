"""The replicated state machine: the applied commands, summarized as a running digest.

A digest chain is enough to compare whole histories cheaply: two replicas with the same
``(index, digest)`` applied the same commands in the same order. Snapshots carry exactly that
pair, so a replica restored from a snapshot can be checked against what the others applied.
"""

from __future__ import annotations

import hashlib

GENESIS = b"\0" * 16
"""Digest of the empty history."""


def next_digest(digest: bytes, data: bytes) -> bytes:
    return hashlib.blake2b(digest + data, digest_size=16).digest()


class StateMachine:
    """Volatile: lost on crash, rebuilt from the durable snapshot and then the log."""

    __slots__ = ("index", "digest")

    def __init__(self, index: int, digest: bytes) -> None:
        self.index = index
        self.digest = digest

    def apply(self, data: bytes) -> None:
        self.index += 1
        self.digest = next_digest(self.digest, data)

    def snapshot_data(self) -> bytes:
        return self.index.to_bytes(8, "big") + self.digest

    @classmethod
    def from_snapshot_data(cls, data: bytes) -> StateMachine:
        return cls(int.from_bytes(data[:8], "big"), data[8:])

"""kvdb: a sharded, multi-Raft, transactional key-value database."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kvdb.client import Client
    from kvdb.net.tls import TlsFiles

__version__ = "0.1.0"


def connect(endpoints: str | list[str], timeout: float = 10.0, tls: TlsFiles | None = None) -> Client:
    """A synchronous client of the cluster whose PD members are at ``endpoints``.

    Imported lazily so that ``import kvdb`` (the CLI, the servers) does not load the client's gRPC stack.
    """
    from kvdb.client import connect as _connect

    return _connect(endpoints, timeout, tls)


def __getattr__(name: str) -> object:
    """``kvdb.TlsFiles``, imported on first use for the same reason as the client."""
    if name == "TlsFiles":
        from kvdb.net.tls import TlsFiles

        return TlsFiles
    raise AttributeError(f"module 'kvdb' has no attribute {name!r}")

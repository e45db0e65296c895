"""Every gRPC server and channel kvdb opens is made here, so options and credentials agree.

Stores, PD members, the client, the CLI and the bench all dial through ``channel`` and serve
through ``server`` + ``listen``; with ``tls`` None they run plaintext, as a cluster without
certificates does (and says so in its start-up log).
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from kvdb.net.tls import TlsFiles

MAX_MESSAGE_BYTES = 256 * 1024 * 1024
"""Snapshots travel in chunks and batches are bounded well below this; it only stops a runaway."""

_COMMON_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_time_ms", 10_000),
]
CHANNEL_OPTIONS = _COMMON_OPTIONS + [
    # A restarted node should be reachable again within a second, not grpc's default 120 s.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]
SERVER_OPTIONS = _COMMON_OPTIONS


def server(tls: TlsFiles | None, interceptors: Sequence[grpc.aio.ServerInterceptor] = ()) -> grpc.aio.Server:
    """With TLS, every call is checked against the caller's certificate role (``kvdb.net.auth``).
    ``interceptors`` (the node's metrics and start-up gate) run first, in order."""
    return grpc.aio.server(options=SERVER_OPTIONS, interceptors=list(interceptors))


def listen(srv: grpc.aio.Server, address: str, tls: TlsFiles | None) -> int:
    """Bind ``address`` (port 0 picks one) and return the port; OSError when it cannot be bound."""
    port = (srv.add_insecure_port(address) if tls is None
            else srv.add_secure_port(address, tls.server_credentials()))
    if port == 0:
        raise OSError(f"cannot listen on {address}")
    return port


def channel(address: str, tls: TlsFiles | None) -> grpc.aio.Channel:
    if tls is None:
        return grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS)
    return grpc.aio.secure_channel(address, tls.channel_credentials(), options=CHANNEL_OPTIONS)

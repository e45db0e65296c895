"""Framed protobuf over raw TCP (optionally TLS): the Raft transport's wire, with no store knowledge.

A frame is a 4-byte big-endian length and that many payload bytes. A gRPC stream round trip of a
small message costs ~240 µs on the machine kvdb is tuned on, this ~20 µs (issue 14), and a put
crosses two Raft hops on its critical path.

Both ends are an ``asyncio.Protocol`` over a ``bytearray`` (``FramedConnection``): under uvloop it
takes a frame apart several times faster than ``StreamReader.readexactly`` (numbers in the commit
that chose it). Writes are flow controlled: ``drain`` waits while the transport's buffer is above
its high-water mark, so a slow peer holds the sender back instead of growing its memory.

A peer that announces a frame above ``MAX_FRAME_BYTES`` broke the protocol: its connection is
closed with a WARNING naming it, before anything that size is allocated. With TLS both ends
present certificates of the cluster CA, and the serving side also requires the least role its
server was made with (``kvdb.net.auth``): ``node`` for Raft messages (only the cluster itself),
``readonly`` for the KV stream, whose requests are then checked one by one against the
connection's ``identity``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import socket
import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kvdb.net.roles import Role
from kvdb.net.tls import TlsFiles

if TYPE_CHECKING:
    from kvdb.net.auth import Identity

log = logging.getLogger(__name__)

MAX_FRAME_BYTES = 256 * 1024 * 1024
"""The same bound as gRPC's message limit (``kvdb.net.grpc_factory.MAX_MESSAGE_BYTES``)."""
HEADER_BYTES = 4


def frame(payload: bytes) -> bytes:
    """``payload`` with its length prefix, ready to write."""
    return len(payload).to_bytes(HEADER_BYTES, "big") + payload


@functools.cache
def server_ssl_context(tls: TlsFiles) -> ssl.SSLContext:
    """Present our certificate; require one from the peer, signed by the cluster CA."""
    ca, _, _ = tls.pems
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cadata=ca.decode())
    ctx.load_cert_chain(tls.cert, tls.key)
    return ctx


@functools.cache
def client_ssl_context(tls: TlsFiles) -> ssl.SSLContext:
    """Present our certificate; verify the server's against the cluster CA and the dialled host."""
    ca, _, _ = tls.pems
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # check_hostname and CERT_REQUIRED by default
    ctx.load_verify_locations(cadata=ca.decode())
    ctx.load_cert_chain(tls.cert, tls.key)
    return ctx


FrameHandler = Callable[["FramedConnection", bytes], None]
SessionFactory = Callable[["FramedConnection"], Any]


class FramedConnection(asyncio.Protocol):
    """One TCP connection carrying frames: ``on_frame`` gets each received payload, ``send`` writes
    one. ``closed`` is done once the connection is gone, whichever side ended it."""

    def __init__(self, on_frame: FrameHandler | None = None, registry: set[FramedConnection] | None = None,
                 required: tuple[Role, str] | None = None, session_factory: SessionFactory | None = None
                 ) -> None:
        self.on_frame = on_frame
        self.registry = registry
        """Where a server keeps its open connections (one whose TLS handshake fails never opens).
        A served connection stops reading while its peer does not read our answers, so a peer that
        only writes cannot grow our memory."""
        self.required = required
        """(least role, what it allows) a TLS peer must hold, checked once the handshake is done."""
        self.session_factory = session_factory
        self.session: Any = None
        """The server's per-connection state (``session_factory(conn)``), made once the peer passed."""
        self.identity: Identity | None = None
        """A served TLS peer's certificate identity; None in plaintext (and on the dialling side)."""
        self.peer = "?"
        self.transport: asyncio.Transport | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._buffer = bytearray()
        self._closing = False
        """``close`` was called: TLS may still hand us decrypted bytes, which must go nowhere."""
        self._writable: asyncio.Future[None] | None = None
        """Pending while the transport's write buffer is above its high-water mark."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # after the TLS handshake
        self.transport = transport  # type: ignore[assignment]
        if self.registry is not None:
            self.registry.add(self)
        peername = transport.get_extra_info("peername")
        self.peer = f"{peername[0]}:{peername[1]}" if peername else "?"
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None and self.required is not None:
            from kvdb.net.auth import identity_from_der, refusal  # cryptography is only loaded with TLS

            der = ssl_object.getpeercert(binary_form=True)
            self.identity = identity_from_der(der) if der else None
            role, what = self.required
            why = refusal(self.identity, what, role)
            if why is not None:
                self.refuse(why)
                return
        if self.session_factory is not None:
            self.session = self.session_factory(self)

    def refuse(self, why: str) -> None:
        """End the connection because the peer broke a rule: say who and why."""
        log.warning("closing the connection from %s: %s", self.peer, why)
        self.close()

    def close(self) -> None:
        self._closing = True
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        buf = self._buffer
        if not buf:  # the common case: frames straight from the read, only a tail is kept
            taken = self._frames(data)
            if not self._closing:
                buf += memoryview(data)[taken:]
            return
        buf += data
        with memoryview(buf) as view:
            taken = self._frames(view)
        if self._closing:
            buf.clear()
        else:
            del buf[:taken]

    def _frames(self, data: bytes | memoryview) -> int:
        """Hand on every whole frame at the start of ``data``; how many bytes they took."""
        start, end = 0, len(data)
        while end - start >= HEADER_BYTES:
            size = int.from_bytes(data[start:start + HEADER_BYTES], "big")
            if size > MAX_FRAME_BYTES:
                self.refuse(f"it announced a frame of {size} bytes (the limit is {MAX_FRAME_BYTES})")
                return start
            if end - start - HEADER_BYTES < size:
                break
            payload = bytes(data[start + HEADER_BYTES:start + HEADER_BYTES + size])  # one copy
            start += HEADER_BYTES + size
            if self.on_frame is not None:
                self.on_frame(self, payload)
            if self._closing:  # the handler closed it
                return start
        return start

    def eof_received(self) -> bool:
        return False  # the peer is done: close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        if self.registry is not None:
            self.registry.discard(self)
        if not self.closed.done():
            self.closed.set_result(None)
        self.resume_writing()  # a writer waiting in drain() learns of it there

    def pause_writing(self) -> None:
        if self._writable is None:
            self._writable = asyncio.get_running_loop().create_future()
            if self.registry is not None:
                self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self._writable is not None:
            if self.registry is not None and not self.closed.done():
                self.transport.resume_reading()
            if not self._writable.done():
                self._writable.set_result(None)
            self._writable = None

    @property
    def writable(self) -> bool:
        """Open, and the peer keeps up: a ``send`` now would not wait behind a ``drain``."""
        return self._writable is None and not self.closed.done()

    def send(self, payload: bytes) -> None:
        """Queue one frame; call ``drain`` before the next burst (flow control)."""
        self.transport.write(frame(payload))

    async def drain(self) -> None:
        """Wait while the peer reads slower than we write; ConnectionError once the connection is gone."""
        if self._writable is not None:
            await self._writable
        if self.closed.done():
            raise ConnectionResetError(f"connection to {self.peer} closed")


class FramedServer:
    """Accepts connections, hands every frame to ``on_frame``; ``close`` ends them all.

    With TLS a peer must hold at least ``required`` (``what`` says what that allows, for the
    WARNING that refuses it). ``session_factory``, if given, makes each accepted connection's
    ``session`` (its per-connection state); it learns of the end through ``conn.closed``.
    """

    def __init__(self, on_frame: FrameHandler, tls: TlsFiles | None, required: Role, what: str,
                 session_factory: SessionFactory | None = None) -> None:
        self.on_frame = on_frame
        self.tls = tls
        self.required = (required, what)
        self.session_factory = session_factory
        self.port = 0
        self._server: asyncio.Server | None = None
        self._connections: set[FramedConnection] = set()

    def _accept(self) -> FramedConnection:
        return FramedConnection(self.on_frame, self._connections, self.required, self.session_factory)

    async def start(self, host: str, port: int = 0) -> int:
        """Listen on ``host`` at ``port`` (0: an ephemeral one) and return it. A wildcard host ("", "::",
        "0.0.0.0") listens on every interface at one port (dual-stack when IPv6 is there); a name
        listens on its first address (a peer dialling the name tries each of its addresses)."""
        loop = asyncio.get_running_loop()
        ssl_context = server_ssl_context(self.tls) if self.tls is not None else None
        host = host.strip("[]")
        if host in ("", "::"):
            self._server = await loop.create_server(self._accept, sock=_dual_stack_socket(port),
                                                    ssl=ssl_context)
        else:  # one address: a name like localhost would otherwise get a port per address family
            infos = await loop.getaddrinfo(host, 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
            self._server = await loop.create_server(self._accept, infos[0][4][0], port, ssl=ssl_context)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        connections = list(self._connections)
        for conn in connections:
            conn.close()
        await asyncio.gather(*(c.closed for c in connections))


def _dual_stack_socket(port: int) -> socket.socket:
    """A listening socket on every interface, IPv4 and IPv6 at one port (IPv4 only without IPv6).
    SO_REUSEADDR as asyncio sets it on the sockets it makes: a restarted process rebinds a fixed
    port at once, whatever its old connections left in TIME_WAIT."""
    try:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        address: tuple[str, int] = ("::", port)
    except OSError:  # no IPv6 on this machine
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        address = ("0.0.0.0", port)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


async def connect(host: str, port: int, tls: TlsFiles | None,
                  on_frame: FrameHandler | None = None) -> FramedConnection:
    """A connection to ``host:port``; with TLS the server's certificate must name ``host``."""
    loop = asyncio.get_running_loop()
    host = host.strip("[]")
    if tls is None:
        _, conn = await loop.create_connection(lambda: FramedConnection(on_frame), host, port)
    else:
        _, conn = await loop.create_connection(lambda: FramedConnection(on_frame), host, port,
                                               ssl=client_ssl_context(tls), server_hostname=host)
    return conn  # asyncio and uvloop both set TCP_NODELAY

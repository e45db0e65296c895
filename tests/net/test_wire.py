"""kvdb.net.wire: frames taken apart whatever the reads, a peer breaking the frame limit cut off
(and only it), and TLS letting in only the cluster's nodes."""

from __future__ import annotations

import asyncio
import logging
import ssl
from pathlib import Path

import pytest

from kvdb.net import certs, wire
from kvdb.net.roles import Role
from kvdb.net.tls import TlsFiles
from tests.integration.cluster import make_node_tls

DEADLINE = 10.0


class FakeTransport(asyncio.Transport):
    """Just enough of a transport to feed a ``FramedConnection`` bytes by hand."""

    def __init__(self) -> None:
        super().__init__()
        self.closing = False

    def get_extra_info(self, name: str, default: object = None) -> object:
        return ("127.0.0.1", 4242) if name == "peername" else default

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True


def fed(chunks: list[bytes]) -> tuple[list[bytes], FakeTransport]:
    """The payloads a connection hands on when it receives ``chunks`` one read each."""

    async def main() -> tuple[list[bytes], FakeTransport]:
        got: list[bytes] = []
        conn = wire.FramedConnection(lambda _, payload: got.append(payload))
        transport = FakeTransport()
        conn.connection_made(transport)
        for chunk in chunks:
            conn.data_received(chunk)
        return got, transport

    return asyncio.run(main())


PAYLOADS = [b"", b"x", b"hello" * 100, bytes(range(256)) * 300]


def test_a_frame_split_across_reads_arrives_whole() -> None:
    stream = b"".join(wire.frame(p) for p in PAYLOADS)
    got, transport = fed([stream[i:i + 1] for i in range(len(stream))])  # one byte per read
    assert got == PAYLOADS and not transport.closing
    got, _ = fed([stream[:2], stream[2:7], stream[7:1000], stream[1000:]])  # a header split too
    assert got == PAYLOADS


def test_many_frames_in_one_read_all_arrive_in_order() -> None:
    frames = [f"frame {i}".encode() for i in range(500)]
    got, transport = fed([b"".join(wire.frame(p) for p in frames)])
    assert got == frames and not transport.closing


def test_an_oversize_length_is_refused_before_any_payload(caplog: pytest.LogCaptureFixture) -> None:
    header = (wire.MAX_FRAME_BYTES + 1).to_bytes(wire.HEADER_BYTES, "big")
    with caplog.at_level(logging.WARNING, logger="kvdb.net.wire"):
        got, transport = fed([wire.frame(b"before"), header, b"more"])
    assert got == [b"before"] and transport.closing
    assert "127.0.0.1:4242" in caplog.text and str(wire.MAX_FRAME_BYTES + 1) in caplog.text


def test_a_frame_of_exactly_the_limit_is_not_refused() -> None:
    got, transport = fed([wire.MAX_FRAME_BYTES.to_bytes(wire.HEADER_BYTES, "big"), b"partial"])
    assert got == [] and not transport.closing  # waits for the rest


async def serve(tls: TlsFiles | None) -> tuple[wire.FramedServer, list[bytes]]:
    got: list[bytes] = []
    server = wire.FramedServer(lambda _, payload: got.append(payload), tls, Role.NODE, "send Raft messages")
    await server.start("127.0.0.1")
    return server, got


async def until(condition: object, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + DEADLINE
    while not condition():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.005)


def test_round_trip_and_an_oversize_peer_does_not_stop_the_server(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        server, got = await serve(None)
        try:
            bad = await wire.connect("127.0.0.1", server.port, None)
            bad.transport.write((wire.MAX_FRAME_BYTES + 1).to_bytes(wire.HEADER_BYTES, "big"))
            await asyncio.wait_for(bad.closed, DEADLINE)  # the server closed it
            good = await wire.connect("127.0.0.1", server.port, None)
            for p in PAYLOADS:
                good.send(p)
            await good.drain()
            await until(lambda: len(got) == len(PAYLOADS), "the good connection's frames")
            assert got == PAYLOADS
        finally:
            await server.close()
        await asyncio.wait_for(good.closed, DEADLINE)  # close() ended the accepted connection too

    with caplog.at_level(logging.WARNING, logger="kvdb.net.wire"):
        asyncio.run(main())
    assert "announced a frame of" in caplog.text


@pytest.fixture
def cluster_tls(tmp_path: Path) -> TlsFiles:
    return make_node_tls(tmp_path / "cluster")


def test_tls_a_node_certificate_is_accepted(cluster_tls: TlsFiles) -> None:
    async def main() -> None:
        server, got = await serve(cluster_tls)
        try:
            conn = await wire.connect("127.0.0.1", server.port, cluster_tls)
            conn.send(b"raft")
            await until(lambda: got, "the frame")
            assert got == [b"raft"] and not conn.closed.done()
            conn.close()
        finally:
            await server.close()

    asyncio.run(main())


@pytest.mark.parametrize("role", ["readwrite", "admin"])
def test_tls_a_client_certificate_is_refused(cluster_tls: TlsFiles, role: str,
                                             caplog: pytest.LogCaptureFixture) -> None:
    client = certs.create_client(cluster_tls.ca.parent, "alice", role)
    client_tls = TlsFiles(cluster_tls.ca, client.cert, client.key)

    async def main() -> None:
        server, got = await serve(cluster_tls)
        try:
            conn = await wire.connect("127.0.0.1", server.port, client_tls)
            conn.send(b"raft")
            await asyncio.wait_for(conn.closed, DEADLINE)
            assert got == []
        finally:
            await server.close()

    with caplog.at_level(logging.WARNING, logger="kvdb.net.wire"):
        asyncio.run(main())
    assert f"client 'alice' (role {role}) may not send Raft messages: needs node" in caplog.text


def test_tls_a_certificate_of_another_ca_fails_the_handshake(cluster_tls: TlsFiles, tmp_path: Path) -> None:
    stranger = make_node_tls(tmp_path / "stranger")

    async def main() -> None:
        server, got = await serve(cluster_tls)
        try:
            with pytest.raises((ssl.SSLError, ConnectionError)):  # it does not trust our server
                await wire.connect("127.0.0.1", server.port, stranger)
            # It trusts our CA but presents its own certificate: our server refuses the handshake.
            half = TlsFiles(cluster_tls.ca, stranger.cert, stranger.key)
            try:
                conn = await wire.connect("127.0.0.1", server.port, half)
            except (ssl.SSLError, ConnectionError):
                pass
            else:  # TLS 1.3: the client may finish first and learn of the refusal afterwards
                conn.send(b"raft")
                await asyncio.wait_for(conn.closed, DEADLINE)
            assert got == [] and not server._connections
        finally:
            await server.close()

    asyncio.run(main())


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "[::]", ""])
def test_a_wildcard_host_listens_on_every_interface_at_one_port(host: str) -> None:
    """A store listening on a wildcard advertises a real address: IPv4 peers must reach the Raft
    port there too (``::`` is dual-stack; asyncio's own wildcard binding would be IPv6-only)."""

    async def main() -> None:
        got: list[bytes] = []
        server = wire.FramedServer(lambda _, payload: got.append(payload), None, Role.NODE,
                                   "send Raft messages")
        port = await server.start(host)
        try:
            for address in ("127.0.0.1", "127.0.0.2"):
                conn = await wire.connect(address, port, None)
                conn.send(address.encode())
                await until(lambda address=address: address.encode() in got, f"a frame via {address}")
                conn.close()
        finally:
            await server.close()

    asyncio.run(main())


def test_a_host_name_listens_at_one_port_its_dialers_reach() -> None:
    async def main() -> None:
        got: list[bytes] = []
        server = wire.FramedServer(lambda _, payload: got.append(payload), None, Role.NODE,
                                   "send Raft messages")
        port = await server.start("localhost")
        try:
            assert len(server._server.sockets) == 1
            conn = await wire.connect("localhost", port, None)
            conn.send(b"via localhost")
            await until(lambda: got, "the frame")
            conn.close()
        finally:
            await server.close()

    asyncio.run(main())


def test_a_served_connection_stops_reading_while_its_peer_does_not_read_the_answers() -> None:
    """A KV server answers every frame: a peer that writes but never reads must not grow the
    server's write buffer without bound. It stops reading from that peer until the peer reads."""
    answer = b"a" * 65536
    sent = 0
    received: list[bytes] = []

    async def main() -> None:
        nonlocal sent
        server = wire.FramedServer(lambda conn, _: conn.send(answer), None, Role.READONLY, "ask")
        await server.start("127.0.0.1")
        client = await wire.connect("127.0.0.1", server.port, None, lambda _, p: received.append(p))
        try:
            client.transport.pause_reading()
            (served,) = server._connections
            for _ in range(10_000):  # bounded: the server pauses long before
                if not served.transport.is_reading():
                    break
                client.send(b"ask")
                sent += 1
                await asyncio.sleep(0)
            assert not served.transport.is_reading(), "the server never stopped reading"
            client.transport.resume_reading()
            await until(lambda: len(received) == sent, "every answer")
            await until(lambda: served.transport.is_reading(), "the server to read again")
        finally:
            client.close()
            await server.close()

    asyncio.run(main())
    assert received == [answer] * sent

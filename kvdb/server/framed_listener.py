"""What the Raft listener and the KV listener share: a ``kvdb.net.wire.FramedServer`` on the host
of the process's ``--listen`` address, at a fixed port (``--raft-port``, ``--kv-port``) or an
ephemeral one that peers and clients learn through the gRPC port."""

from __future__ import annotations

from kvdb.net import wire
from kvdb.server.addresses import split_host_port


class FramedListener:
    def __init__(self, server: wire.FramedServer) -> None:
        self._server = server

    @property
    def port(self) -> int:
        """The bound port (0 before ``start``)."""
        return self._server.port

    async def start(self, address: str) -> int:
        """Listen on ``address`` (HOST:PORT, port 0: an ephemeral one; a wildcard host listens on
        every interface) and return the bound port."""
        host, port = split_host_port(address, "--listen")
        return await self._server.start(host, port)

    async def stop(self) -> None:
        """Stop listening and close every accepted connection."""
        await self._server.close()

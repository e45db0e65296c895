"""The receiving end of the Raft transport: framed ``RaftMessageBatch`` over raw TCP (``kvdb.net.wire``).

It listens on the host of the process's ``--listen`` address at an ephemeral port; senders learn
the port from the gRPC ``RaftTransport.RaftPort`` call on the address the process advertises, so
neither a new flag nor PD needs to know it (docs/store.md). Each batch goes to the store as it
comes, then the Raft loop is woken. A batch that does not parse, or that comes from another
cluster, ends its connection with a WARNING: the sender is misconfigured, not this store.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from google.protobuf.message import DecodeError

from kvdb.net import wire
from kvdb.net.roles import Role
from kvdb.net.tls import TlsFiles
from kvdb.pb import raft_serverpb_pb2
from kvdb.server.framed_listener import FramedListener

if TYPE_CHECKING:
    from kvdb.store.store import Store


class RaftListener(FramedListener):
    def __init__(self, store: Store, wake: Callable[[], None], tls: TlsFiles | None) -> None:
        self.store = store
        self.wake = wake
        super().__init__(wire.FramedServer(self._on_frame, tls, Role.NODE, "send Raft messages"))

    def _on_frame(self, conn: wire.FramedConnection, payload: bytes) -> None:
        store = self.store
        try:
            batch = raft_serverpb_pb2.RaftMessageBatch.FromString(payload)
        except DecodeError:
            conn.refuse("a frame that is not a RaftMessageBatch")
            return
        if batch.cluster_id != store.cluster_id:
            conn.refuse(f"it sends for cluster {batch.cluster_id}, this store is in {store.cluster_id}")
            return
        store.on_raft_messages(batch.messages)
        self.wake()

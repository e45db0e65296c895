"""The PD leader's access to the replicated metadata: linearizable reads and conditional writes.

Reads go through the store's read path (a lease read on a healthy leader, else ReadIndex) and
writes through Raft; both resolve asyncio futures from the store's callbacks. Only a leader that
holds its lease serves, so the answers a client gets never come from a deposed leader.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from kvdb.pb import metapb_pb2, raft_serverpb_pb2
from kvdb.storage.engine import CF_DEFAULT
from kvdb.store.errors import InvalidArgumentError, StoreError
from kvdb.store.peer import Peer
from kvdb.store.store import Store

PD_RANGE_ID = 1
Mutation = raft_serverpb_pb2.Mutation
UPDATE_ATTEMPTS = 8
"""Tries of a read-modify-write before giving up (each lost try means another write got in)."""

Update = tuple[bytes, dict[bytes, bytes], list[bytes]]
"""A read-modify-write's outcome: the key's new value, other keys to put, keys to delete."""


class Unknown:
    """The type of ``UNKNOWN``: no guess at a key's value."""


UNKNOWN = Unknown()


class NotServingError(Exception):
    """This member cannot answer: not the leader (``leader_id`` hints who is), or not yet ready."""

    def __init__(self, message: str, leader_id: int = 0, backoff_ms: int = 0) -> None:
        super().__init__(message)
        self.leader_id = leader_id
        self.backoff_ms = backoff_ms


class MetadataState:
    def __init__(self, store: Store, wake: Callable[[], None]) -> None:
        self.store = store
        self.wake = wake

    @property
    def peer(self) -> Peer:
        peer = self.store.peers.get(PD_RANGE_ID)
        if peer is None or not peer.initialized:
            raise NotServingError(f"PD member {self.store.store_id} holds no replica of PD's metadata "
                                  "(not joined yet, or removed)")
        return peer

    def check_serving(self) -> int:
        """The current term if this member may serve now; raises ``NotServingError`` otherwise."""
        peer = self.peer
        raft = peer.raw.raft
        if not peer.is_leader:
            raise NotServingError("not the PD leader", leader_id=raft.lead)
        if not peer.lease_valid(self.store.clock.now()):
            raise NotServingError("the PD leader has no lease yet", backoff_ms=50)
        return raft.term

    async def _await(self, start: Callable[[Callable[[object], None]], None]) -> object:
        fut: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        try:
            start(lambda result: fut.done() or fut.set_result(result))
        except StoreError as exc:
            raise NotServingError(f"metadata access refused: {exc}", backoff_ms=50) from exc
        self.wake()
        result = await fut
        if isinstance(result, StoreError):
            raise NotServingError(f"metadata access failed: {result}", backoff_ms=50)
        return result

    async def read(self, fn: Callable[[], object]) -> object:
        peer = self.peer
        return await self._await(lambda cb: self.store.read(PD_RANGE_ID, peer.desc.epoch, fn, cb))

    async def get(self, key: bytes) -> bytes | None:
        engine = self.store.engine
        return await self.read(lambda: engine.get(CF_DEFAULT, key))

    async def scan(self, start: bytes, end: bytes, limit: int = 0) -> list[tuple[bytes, bytes]]:
        engine = self.store.engine
        return await self.read(lambda: engine.scan(CF_DEFAULT, start, end, limit))

    async def write(self, puts: dict[bytes, bytes], deletes: list[bytes] = (),
                    expect: tuple[bytes, bytes | None] | None = None, new_value: bytes = b"") -> bool:
        """Replicate ``puts`` and ``deletes`` atomically; with ``expect=(key, value)``, only if
        ``key`` currently holds ``value`` (None: absent), then setting it to ``new_value``."""
        cmd = raft_serverpb_pb2.RaftCommand()
        for key, value in puts.items():
            cmd.mutations.add(kind=Mutation.PUT, key=key, value=value)
        for key in deletes:
            cmd.mutations.add(kind=Mutation.DELETE, key=key)
        if expect is not None:
            key, value = expect
            cmd.cas.key, cmd.cas.value = key, new_value
            if value is None:
                cmd.cas.previous_not_exist = True
            else:
                cmd.cas.previous_value = value
        peer = self.peer
        result = await self._await(lambda cb: self.store.propose(PD_RANGE_ID, peer.desc.epoch, cmd, cb))
        return True if result is None else result[0]

    async def change_peer(self, change: int, target: metapb_pb2.Peer) -> None:
        """Change the metadata range's membership (a ``ConfChangeType``); returns once applied
        here. A change refused as unsafe raises ``InvalidArgumentError`` (an answer, not a retry)."""
        def start(cb: Callable[[object], None]) -> None:
            self.store.change_peer(PD_RANGE_ID, change, target, cb)

        try:
            await self._await(start)
        except NotServingError as exc:
            if isinstance(exc.__cause__, InvalidArgumentError):
                raise exc.__cause__ from None
            raise

    def transfer_leader(self, to_peer_id: int) -> None:
        """Ask the leader to hand leadership to ``to_peer_id`` (it may not happen)."""
        self.store.transfer_leader(PD_RANGE_ID, to_peer_id)
        self.wake()

    async def update(self, key: bytes, modify: Callable[[bytes | None], Awaitable[Update | None]],
                     guess: bytes | None | Unknown = UNKNOWN) -> bytes | None:
        """Read ``key``, let ``modify`` compute the change from what it holds, write it: conditional
        on ``key`` still holding exactly the bytes read, checked when the command applies.

        A plain read-then-write loses updates: two requests read the same record, and the one
        whose write lands last writes back what the other replaced (an older epoch or leader, an
        old store address). Here the loser's compare fails; it reads again and ``modify`` decides
        afresh (usually that its update is stale now). ``modify`` returns None for "nothing to
        write" and may raise to refuse. Returns the value written (None if nothing was).

        With ``guess`` (what the caller believes the key holds, e.g. from the leader's in-memory
        view), the first try skips the read: a wrong guess only fails the compare.
        """
        for attempt in range(UPDATE_ATTEMPTS):
            old = guess if attempt == 0 and not isinstance(guess, Unknown) else await self.get(key)
            change = await modify(old)
            if change is None:
                return None
            value, puts, deletes = change
            if await self.write(puts, deletes, expect=(key, old), new_value=value):
                return value
        raise NotServingError(f"metadata key {key!r} changed under {UPDATE_ATTEMPTS} tries in a row",
                              backoff_ms=50)

"""Stores in one process with a hand-driven clock and a queue for a network: for unit tests.

Unlike the simulator (tests/storesim) nothing here is random or concurrent: a test moves time,
``pump``s until every store is idle, and looks at the result. Crash-restart builds a new
``Store`` over the same in-memory engine, which keeps everything written (a process crash).
"""

from __future__ import annotations

import random
from collections.abc import Callable

from kvdb.pb import kvrpc_pb2, metapb_pb2, raft_serverpb_pb2
from kvdb.server.kv_handler import KvHandler
from kvdb.server.node import static_first_range
from kvdb.storage.memory import MemEngine
from kvdb.store.config import StoreConfig
from kvdb.store.peer import Peer
from kvdb.store.snapshot import Built
from kvdb.store.store import Store

CLUSTER_ID = 7


class ManualClock:
    def __init__(self) -> None:
        self.t = 100.0

    def now(self) -> float:
        return self.t


class QueueTransport:
    """Queues what a store sends; ``LocalCluster.pump`` delivers it unless the link is cut."""

    def __init__(self, cluster: LocalCluster, store_id: int) -> None:
        self.cluster = cluster
        self.store_id = store_id

    def send(self, store_id: int, messages: list[raft_serverpb_pb2.RaftMessage]) -> None:
        copies = [raft_serverpb_pb2.RaftMessage.FromString(m.SerializeToString()) for m in messages]
        self.cluster.wire.append((self.store_id, store_id, copies, None))

    def send_snapshot(self, store_id: int, message: raft_serverpb_pb2.RaftMessage, data: Built,
                      done: Callable[[bool], None]) -> None:
        copy = raft_serverpb_pb2.RaftMessage.FromString(message.SerializeToString())
        self.cluster.wire.append((self.store_id, store_id, copy, (data, done)))


class LocalCluster:
    def __init__(self, store_ids: list[int], config: StoreConfig | None = None) -> None:
        self.config = config or StoreConfig()
        self.clock = ManualClock()
        self.engines = {sid: MemEngine() for sid in store_ids}
        self.wire: list[tuple[int, int, object, tuple | None]] = []
        self.cut: set[tuple[int, int]] = set()
        self.stores: dict[int, Store] = {}
        self.last_ts = 0
        self.tso_waiting: list[Callable[[int], None]] | None = None
        """When a list, the stores' TSO fetches wait in it (``answer_tso``) instead of being answered."""
        for sid in store_ids:
            self.start(sid)
        desc = static_first_range({sid: "" for sid in store_ids})
        for store in self.stores.values():
            store.bootstrap_range(desc)

    def start(self, store_id: int) -> Store:
        transport = QueueTransport(self, store_id)
        store = Store(CLUSTER_ID, store_id, self.engines[store_id], transport, self.clock, self.config,
                      random.Random(store_id))
        store.request_ts = self._request_ts
        self.stores[store_id] = store
        return store

    def ts(self) -> int:
        """A TSO timestamp: above every one handed out before."""
        self.last_ts += 1
        return self.last_ts

    def _request_ts(self, done: Callable[[int], None]) -> None:
        if self.tso_waiting is not None:
            self.tso_waiting.append(done)
        else:
            done(self.ts())

    def answer_tso(self) -> None:
        """Answer the fetches held in ``tso_waiting`` (with stamps fetched now)."""
        waiting, self.tso_waiting = self.tso_waiting or [], []
        for done in waiting:
            done(self.ts())

    def crash(self, store_id: int, power_cut: bool = False) -> int:
        """Kill the store's process: its page cache survives, unless ``power_cut``, which loses
        the writes no synced write made durable; returns how many writes were lost."""
        del self.stores[store_id]
        return self.engines[store_id].crash() if power_cut else 0

    def isolate(self, store_id: int) -> None:
        for other in self.engines:
            if other != store_id:
                self.cut |= {(store_id, other), (other, store_id)}

    def heal(self) -> None:
        self.cut.clear()

    def pump(self, max_rounds: int = 1000) -> None:
        """Run iterations and deliver messages until nothing is left to do."""
        for _ in range(max_rounds):
            busy = False
            for store in list(self.stores.values()):
                busy |= store.run_once()
            wire, self.wire = self.wire, []
            for frm, to, payload, snap in wire:
                busy = True
                dest = self.stores.get(to)
                delivered = dest is not None and (frm, to) not in self.cut
                if snap is None:
                    if delivered:
                        dest.on_raft_messages(payload)
                    continue
                data, done = snap
                done(delivered and self.deliver_snapshot(dest, payload, data))
            if not busy:
                return
        raise AssertionError("the cluster did not become idle")

    def settle(self) -> None:
        """Pump, then let a heartbeat round pass: followers learn the commit index with the next
        append or heartbeat, not at once (``broadcast_commit`` is off in the stores)."""
        self.pump()
        self.advance(self.config.heartbeat_tick * self.config.tick_interval)

    @staticmethod
    def deliver_snapshot(dest: Store, msg: raft_serverpb_pb2.RaftMessage, data: Built) -> bool:
        """As the gRPC service does: the sender's file, chunk by chunk, into the receiver's."""
        incoming = dest.receive_snapshot(msg)
        for chunk in data.chunks(4096):
            incoming.write(chunk)
        return dest.on_snapshot(msg, incoming)

    def advance(self, seconds: float) -> None:
        """Move time forward tick by tick, pumping after each."""
        step = self.config.tick_interval
        for _ in range(round(seconds / step)):
            self.clock.t += step
            for store in self.stores.values():
                store.tick()
            self.pump()

    def peers(self, range_id: int = 1) -> dict[int, Peer]:
        return {sid: s.peers[range_id] for sid, s in self.stores.items() if range_id in s.peers}

    def leader(self, range_id: int = 1) -> Store:
        leaders = [self.stores[sid] for sid, p in self.peers(range_id).items() if p.is_leader]
        assert len(leaders) == 1, f"expected one leader, got {len(leaders)}"
        return leaders[0]

    def elect(self, range_id: int = 1) -> Store:
        for _ in range(100):
            self.advance(self.config.tick_interval * 5)
            leaders = [p for p in self.peers(range_id).values() if p.is_leader]
            if len(leaders) == 1 and leaders[0].applied_term == leaders[0].raw.raft.term:
                return leaders[0].store
        raise AssertionError("no leader elected")

    # ------------------------------------------------------------------------------ requests
    def call(self, store: Store, request: kvrpc_pb2.Request) -> kvrpc_pb2.Response:
        """Send one request to ``store`` and pump until it is answered."""
        answers: list[kvrpc_pb2.Response] = []
        KvHandler(store).handle(request, answers.append)
        self.pump()
        assert len(answers) == 1, f"expected one answer, got {answers}"
        return answers[0]


def context(store: Store, range_id: int = 1) -> kvrpc_pb2.Context:
    desc = store.peers[range_id].desc
    return kvrpc_pb2.Context(cluster_id=CLUSTER_ID, range_id=range_id, epoch=desc.epoch)


def request(kind: str, ctx: kvrpc_pb2.Context, **fields: object) -> kvrpc_pb2.Request:
    """A ``kvrpc.Request`` of ``kind`` with ``ctx`` and ``fields`` (lists fill repeated fields)."""
    req = kvrpc_pb2.Request()
    body = getattr(req, kind)
    body.context.CopyFrom(ctx)
    for name, value in fields.items():
        if isinstance(value, list):
            getattr(body, name).extend(value)
        else:
            setattr(body, name, value)
    return req


def put(key: bytes, value: bytes, ctx: kvrpc_pb2.Context) -> kvrpc_pb2.Request:
    return kvrpc_pb2.Request(put=kvrpc_pb2.RawPutRequest(context=ctx, key=key, value=value))


def get(key: bytes, ctx: kvrpc_pb2.Context) -> kvrpc_pb2.Request:
    return kvrpc_pb2.Request(get=kvrpc_pb2.RawGetRequest(context=ctx, key=key))


def new_peer(peer_id: int, store_id: int) -> metapb_pb2.Peer:
    return metapb_pb2.Peer(id=peer_id, store_id=store_id)

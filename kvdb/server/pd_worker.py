"""A store's side of the placement driver: join the cluster, heartbeat, carry out operators.

Joining: the first store of a new cluster creates the first range (all keys, one replica on
itself) locally, then asks PD to record it; PD's bootstrap is a compare-and-set, so exactly one
store wins, and a loser drops its local range. A loser is told which range won, so a store whose
own bootstrap applied but lost its answer keeps its range when the retry hears "already
bootstrapped". A store that crashed between the two steps finds its range still local and
offers it again (kept if it won, dropped if not). Every store then registers its address
(PutStore).

Range leaders heartbeat their ranges; PD answers with at most one operator step (add learner,
promote, replace a failed voter, remove, transfer leader), which the leader proposes if the
range's epoch still matches.
Addresses of other stores are resolved through PD on demand.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from kvdb.pb import metapb_pb2, pdpb_pb2
from kvdb.raft import ConfChangeType, Role
from kvdb.raft.progress import ProgressState
from kvdb.server.supervisor import spawn
from kvdb.store.errors import StoreError
from kvdb.store.peer import Callback, Peer
from placement.client import PdClient, PdError

if TYPE_CHECKING:
    from kvdb.store.store import Store

log = logging.getLogger(__name__)

_CONF_CHANGES = {
    pdpb_pb2.Operator.ADD_LEARNER: ConfChangeType.ADD_LEARNER,
    pdpb_pb2.Operator.PROMOTE_LEARNER: ConfChangeType.ADD_NODE,
    pdpb_pb2.Operator.REMOVE_PEER: ConfChangeType.REMOVE_NODE,
}


class PdWorker:
    def __init__(self, pd: PdClient, addresses: dict[int, str], heartbeat_interval: float) -> None:
        self.pd = pd
        self.addresses = addresses  # shared with the store and its transport
        self.interval = heartbeat_interval
        self.store: Store | None = None
        self.address = ""
        self._tasks: list[asyncio.Task] = []
        self._resolving: set[int] = set()
        self.range_stats: Callable[[metapb_pb2.RangeDescriptor], pdpb_pb2.RangeStats | None] = \
            lambda desc: None
        """Set by the split checker: a led range's approximate size, for its heartbeat."""
        self.cluster_config: pdpb_pb2.ScheduleConfig | None = None
        """The cluster's schedule config as of the last store heartbeat PD answered (None before)."""

    # ---------------------------------------------------------------------------------- join
    async def join(self, store: Store, address: str) -> None:
        """Bootstrap the cluster if nobody has, then register ``address`` as this store's.

        A local first range is offered to PD even when the cluster is bootstrapped already: it is
        ours if our bootstrap applied before a crash, and a leftover to drop if another store won
        meanwhile (kept, it would lead itself and report a second range over all keys).
        """
        self.store, self.address = store, address
        first = self._local_first_range()
        if first is None and not store.peers and not await self.pd.is_bootstrapped():
            first = await self._create_first_range()
        if first is not None:
            info = pdpb_pb2.StoreInfo(id=store.store_id, address=self.address)
            if await self.pd.bootstrap(info, first):
                log.info("store %d bootstrapped the cluster with range %d", store.store_id, first.id)
            else:
                log.info("another store bootstrapped the cluster; dropping local range %d", first.id)
                store.discard_range(first.id)
        await self.pd.put_store(pdpb_pb2.StoreInfo(id=store.store_id, address=self.address))

    def _local_first_range(self) -> metapb_pb2.RangeDescriptor | None:
        """A first range this store created but PD never recorded (a crash between the steps)."""
        for peer in self.store.peers.values():
            desc = peer.desc
            untouched = desc.epoch.conf_ver == 1 and desc.epoch.version == 1 and len(desc.peers) == 1
            if untouched and not desc.start_key and not desc.end_key:
                return desc
        return None

    async def _create_first_range(self) -> metapb_pb2.RangeDescriptor:
        range_id = await self.pd.alloc_id()
        peer_id = await self.pd.alloc_id()
        desc = metapb_pb2.RangeDescriptor(id=range_id, epoch=metapb_pb2.RangeEpoch(conf_ver=1, version=1))
        desc.peers.add(id=peer_id, store_id=self.store.store_id, role=metapb_pb2.VOTER)
        self.store.bootstrap_range(desc)
        return desc

    # ---------------------------------------------------------------------------- addresses
    def resolve(self, store_id: int) -> str:
        """The address of ``store_id`` as last known ("" if none yet), and a fresh one asked of PD.

        The transport resolves only to (re)connect or to send a snapshot, so asking again is cheap
        and usually follows a lost connection: the store may have restarted on another address and
        registered it with PD, and a cached address alone would be dialled in vain forever.
        """
        if store_id not in self._resolving:
            self._resolving.add(store_id)
            task = spawn(self._fetch_address(store_id), f"address lookup of store {store_id}")
            self._tasks.append(task)
            task.add_done_callback(self._tasks.remove)
        return self.addresses.get(store_id, "")

    async def _fetch_address(self, store_id: int) -> None:
        try:
            info = await self.pd.get_store(store_id)
            if info is not None and info.address:
                self.addresses[store_id] = info.address
        except PdError as exc:
            log.warning("cannot resolve store %d through PD: %s", store_id, exc)
        finally:
            self._resolving.discard(store_id)

    # ---------------------------------------------------------------------------- heartbeats
    def start(self) -> None:
        self._tasks += [spawn(self._store_heartbeats(), "store heartbeats to PD"),
                        spawn(self._range_heartbeats(), "range heartbeats to PD")]

    async def _store_heartbeats(self) -> None:
        while True:
            peers = list(self.store.peers.values())
            stats = pdpb_pb2.StoreStats(range_count=len(peers), leader_count=sum(p.is_leader for p in peers))
            try:
                await self.pd.store_heartbeat(self.store.store_id, stats)
            except PdError as exc:
                log.warning("store heartbeat failed: %s", exc)
            await asyncio.sleep(self.interval)

    async def _range_heartbeats(self) -> None:
        stream = self.pd.range_heartbeat_stream()
        reader = spawn(self._read_operators(stream), "PD operator reader")
        try:
            while True:
                for peer in list(self.store.peers.values()):
                    if peer.is_leader and peer.initialized:
                        info = range_info(peer)
                        if (stats := self.range_stats(peer.desc)) is not None:
                            info.stats.CopyFrom(stats)
                        await stream.send(pdpb_pb2.RangeHeartbeatRequest(range=info))
                await asyncio.sleep(self.interval)
        finally:
            reader.cancel()
            await stream.close()

    async def _read_operators(self, stream: object) -> None:
        async for resp in stream.responses():
            if resp.header.error.message or not resp.HasField("operator"):
                continue
            peer = self.store.peers.get(resp.range_id)
            if peer is None or not peer.is_leader or peer.desc.epoch != resp.epoch:
                continue  # stale: the next heartbeat brings a fresh decision
            execute_operator(self.store, peer, resp.operator)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.pd.close()


def execute_operator(store: Store, peer: Peer, op: pdpb_pb2.Operator, done: Callback | None = None) -> None:
    """Carry out one operator step on ``peer``, the range's leader whose epoch PD's reply matched.

    Shared with the store simulator so that it runs exactly what a real store does. ``done`` gets
    a conf change's outcome (the new descriptor, or the error); by default failures are logged.
    A step refused at once is only logged: PD re-sends it with the next heartbeat.
    """
    try:
        if op.kind == pdpb_pb2.Operator.TRANSFER_LEADER:
            store.transfer_leader(peer.range_id, op.peer.id)
        elif op.kind == pdpb_pb2.Operator.REPLACE_VOTER:
            if any(p.id == op.peer.id and p.role == metapb_pb2.VOTER for p in peer.desc.peers):
                return  # done, or half-way: the leader leaves the joint configuration by itself
            changes = [(ConfChangeType.ADD_NODE, op.peer), (ConfChangeType.ADD_LEARNER, op.demote_peer)]
            store.change_peers(peer.range_id, changes, done or _log_result(op))
        elif op.kind in _CONF_CHANGES:
            added = any(p.id == op.peer.id for p in peer.desc.peers)
            if added and op.kind == pdpb_pb2.Operator.ADD_LEARNER:
                return
            store.change_peer(peer.range_id, _CONF_CHANGES[op.kind], op.peer, done or _log_result(op))
        else:
            log.warning("range %d: operator %s is not supported yet", peer.range_id, op.kind)
            return
        log.info("range %d: carrying out %s", peer.range_id, describe_operator(op))
    except StoreError as exc:
        log.info("range %d: operator %s refused for now: %s", peer.range_id, describe_operator(op), exc)


def range_info(peer: Peer) -> pdpb_pb2.RangeInfo:
    """What a leader tells PD about its range, including learners still catching up.

    A learner has caught up once the leader streams it entries from its log (REPLICATE, its match
    past the log's start: no snapshot due). Its match trails the commit index by the appends in
    flight, so under steady writes "match below commit" held at nearly every heartbeat and PD
    waited to promote for as long as the writes went on.
    """
    raft = peer.raw.raft
    info = pdpb_pb2.RangeInfo(descriptor=peer.desc, term=raft.term,
                              joint=bool(peer.conf_state.voters_outgoing))
    info.leader.CopyFrom(peer.peer_cache[peer.peer_id])
    if raft.role == Role.LEADER:
        first = raft.raft_log.first_index()
        for node_id, pr in raft.trk.progress.items():
            if pr.is_learner and (pr.state != ProgressState.REPLICATE or pr.match < first - 1):
                info.pending_peer_ids.append(node_id)
    return info


def describe_operator(op: pdpb_pb2.Operator) -> str:
    text = f"{pdpb_pb2.Operator.Kind.Name(op.kind).lower()} peer {op.peer.id} on store {op.peer.store_id}"
    if op.HasField("demote_peer"):
        text += f" for peer {op.demote_peer.id} on store {op.demote_peer.store_id}"
    return text


def _log_result(op: pdpb_pb2.Operator):  # noqa: ANN202
    def done(result: object) -> None:
        if isinstance(result, StoreError):
            log.info("operator %s failed: %s", describe_operator(op), result)

    return done

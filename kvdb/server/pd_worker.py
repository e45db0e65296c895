"""A store's side of the placement driver: join the cluster, heartbeat, carry out operators.

Joining: the first store of a new cluster creates the first range (all keys, one replica on
itself) locally, then asks PD to record it; PD's bootstrap is a compare-and-set, so exactly one
store wins, and a loser drops its local range. A loser is told which range won, so a store whose
own bootstrap applied but lost its answer keeps its range when the retry hears "already
bootstrapped". A store that crashed between the two steps finds its range still local and
offers it again (kept if it won, dropped if not). Every store then registers its advertise
address and labels (PutStore), replacing what PD had: a restart may bring new ones.

The store reports the ranges it leads in one batched heartbeat per interval: a range goes in
when its info changed since the last report (or PD may have missed it: a stream lost, an error
answer), and otherwise every ``FULL_REPORT_INTERVALS`` intervals, staggered by range id, so PD
still sees it alive; an unchanged idle range costs PD nothing in between. After a split the
store reports at once. PD answers with decisions: at most one operator step per range (add
learner, promote, replace a failed voter, remove, transfer leader, split), which the leader
carries out if the range's epoch still matches.
Addresses of other stores are resolved through PD on demand.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Container, Iterable
from typing import TYPE_CHECKING

from kvdb.pb import metapb_pb2, pdpb_pb2, raft_serverpb_pb2
from kvdb.pdclient.client import PdClient, PdError
from kvdb.raft import ConfChangeType, Role
from kvdb.raft.progress import ProgressState
from kvdb.server.supervisor import spawn
from kvdb.store.errors import StoreError
from kvdb.store.peer import Callback, Peer

if TYPE_CHECKING:
    from kvdb.store.store import Store

log = logging.getLogger(__name__)

LEADERLESS_CHECKS = 10
"""Heartbeat intervals without a known leader before a replica asks PD whether it was removed."""
MAX_STALE_QUERIES = 16
"""Replicas asked about per interval: bounded, so a store cut off from everyone does not flood PD."""
ASLEEP_CHECKS = 600
"""An asleep (hibernated) follower asks PD about its range once per this many intervals,
staggered by range id (10 minutes at the default 1 s interval; 10,000 asleep followers make ~17
queries an interval). It hears nothing of its range while asleep and knows a leader, so if it
was removed while cut off, neither a tombstone nor an election ever tells it, and it would stay
for good (TiKV asks PD about hibernated peers after ``max_leader_missing_duration``)."""

Stats = Callable[[metapb_pb2.RangeDescriptor], "pdpb_pb2.RangeStats | None"]
"""A led range's approximate size and keys (the split checker's), or None when not measured."""

PEER_DOWN_ELECTIONS = 4
"""A range's leader reports a replica down once its store has heard nothing from the replica's
store for this many election timeouts (2 s at the default 50 ms tick and 10-tick election
timeout): a dead store's replicas show up well before PD takes the whole store DOWN (30 s), and
a GC or VM pause of a second or so does not make a replica flap."""

FULL_REPORT_INTERVALS = 10
"""An unchanged range is reported once every this many intervals (PD still sees it alive and
runs its replica checker on it, e.g. when one of its stores went down)."""

_CONF_CHANGES = {
    pdpb_pb2.Operator.ADD_LEARNER: ConfChangeType.ADD_LEARNER,
    pdpb_pb2.Operator.PROMOTE_LEARNER: ConfChangeType.ADD_NODE,
    pdpb_pb2.Operator.REMOVE_PEER: ConfChangeType.REMOVE_NODE,
}


class PdWorker:
    def __init__(self, pd: PdClient, addresses: dict[int, str], heartbeat_interval: float,
                 labels: dict[str, str] | None = None) -> None:
        self.pd = pd
        self.labels = dict(labels or {})
        """Registered with every PutStore: PD replaces the store's labels with these at each start."""
        self.addresses = addresses  # shared with the store and its transport
        self.interval = heartbeat_interval
        self.store: Store | None = None
        self.address = ""
        self._tasks: list[asyncio.Task] = []
        self._resolving: set[int] = set()
        self._report_now = asyncio.Event()
        self.range_stats: Stats = lambda desc: None
        """Set by the split checker: a led range's approximate size, for its heartbeat."""
        self.cluster_config: pdpb_pb2.ScheduleConfig | None = None
        """The cluster's schedule config as of the last store heartbeat PD answered (None before)."""
        self.tombstone = False
        """PD said this store is a TOMBSTONE: decommissioned and empty, it reports no range any
        more (a replica it still held by mistake must not pass for a live one)."""

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
            if await self.pd.bootstrap(self._store_info(), first):
                log.info("store %d bootstrapped the cluster with range %d", store.store_id, first.id)
            else:
                log.info("another store bootstrapped the cluster; dropping local range %d", first.id)
                store.discard_range(first.id)
        await self.pd.put_store(self._store_info())

    def _store_info(self) -> pdpb_pb2.StoreInfo:
        info = pdpb_pb2.StoreInfo(id=self.store.store_id, address=self.address)
        info.labels.extend(pdpb_pb2.StoreLabel(key=k, value=v) for k, v in self.labels.items())
        return info

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

    def request_ts(self, done: Callable[[int], None]) -> None:
        """``Store.request_ts``: a TSO stamp from PD for the max ts sync, handed to ``done`` on the
        loop (0 when PD could not give one: the store asks again on a later prewrite)."""
        task = spawn(self._fetch_ts(done), "TSO fetch for the max ts sync")
        self._tasks.append(task)
        task.add_done_callback(self._tasks.remove)

    async def _fetch_ts(self, done: Callable[[int], None]) -> None:
        try:
            ts = await self.pd.get_ts()
        except PdError as exc:
            log.warning("store %d: no TSO stamp for the max ts sync: %s", self.store.store_id, exc)
            ts = 0
        done(ts)

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
        # PD learns new ranges, new leaders and membership changes at once (a SplitRanges waiting
        # on them answers; an operator's next step goes out without waiting for an interval).
        self.store.on_split = lambda descs: self.report_now()
        self.store.on_leader = lambda peer: self.report_now()
        self.store.on_conf_change = lambda peer: self.report_now()
        self._tasks += [spawn(self._store_heartbeats(), "store heartbeats to PD"),
                        spawn(self._range_heartbeats(), "range heartbeats to PD"),
                        spawn(self._stale_replica_checks(), "stale replica checks")]

    async def _store_heartbeats(self) -> None:
        while True:
            peers = list(self.store.peers.values())
            stats = pdpb_pb2.StoreStats(range_count=len(peers), leader_count=sum(p.is_leader for p in peers))
            try:
                resp = await self.pd.store_heartbeat(self.store.store_id, stats)
            except PdError as exc:
                log.warning("store heartbeat failed: %s", exc)
            else:
                self.cluster_config = resp.config
                # Raised only: an answer from a PD leader that has not loaded it yet says 0.
                self.store.gc_safe_point = max(self.store.gc_safe_point, resp.gc_safe_point)
                if resp.state == pdpb_pb2.TOMBSTONE and not self.tombstone:
                    self.tombstone = True
                    log.error("PD says store %d is a TOMBSTONE (decommissioned, no replica left): it "
                              "stops reporting ranges; stop this process and retire its data",
                              self.store.store_id)
                    self.report_now()  # the range heartbeat loop ends
            await asyncio.sleep(self.interval)

    def report_now(self) -> None:
        """Send the next range heartbeat at once instead of at the end of the interval."""
        self._report_now.set()

    async def _range_heartbeats(self) -> None:
        stream = self.pd.range_heartbeat_stream()
        reader = spawn(self._read_decisions(stream), "PD operator reader")
        reports = HeartbeatBatcher(self.store.store_id, lambda desc: self.range_stats(desc))
        try:
            while not self.tombstone:
                leaders = [p for p in self.store.peers.values() if p.is_leader and p.initialized]
                request = reports.next_request(leaders, stream.losses, self.store.hibernation.asleep)
                await stream.send(request)
                try:
                    async with asyncio.timeout(self.interval):
                        await self._report_now.wait()
                except TimeoutError:
                    pass
                self._report_now.clear()
        finally:
            reader.cancel()
            await stream.close()

    async def _stale_replica_checks(self) -> None:
        """Ask PD about replicas that have known no leader for a while (``LeaderlessReplicas``)."""
        leaderless = LeaderlessReplicas()
        while True:
            await asyncio.sleep(self.interval)
            hibernation = self.store.hibernation
            asleep = hibernation.asleep if hibernation.enabled else set()
            for range_id in leaderless.due(list(self.store.peers.values()), asleep):
                try:
                    info = await self.pd.get_range_by_id(range_id)
                except PdError as exc:
                    log.warning("cannot ask PD about range %d: %s", range_id, exc)
                    break
                if info is not None:
                    self.store.destroy_if_removed(range_id, info.descriptor)

    async def _read_decisions(self, stream: object) -> None:
        async for resp in stream.responses():
            carry_out_decisions(self.store, resp)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.pd.close()


class LeaderlessReplicas:
    """Which replicas to ask PD about: those that knew no leader at ``LEADERLESS_CHECKS``
    consecutive checks (one per heartbeat interval), at most ``MAX_STALE_QUERIES`` per check, and
    each again only after as many checks once more. A live range elects a leader well within
    that; a replica removed while cut off never learns one (TiKV's "leader missing" check).
    A replica that names a leader it has not heard from for two election timeouts counts as
    knowing none: a learner never campaigns, so one removed while away keeps naming its old
    leader. Asleep followers, which hear nothing of their range, are asked about once per
    ``ASLEEP_CHECKS``."""

    def __init__(self, asleep_checks: int = ASLEEP_CHECKS) -> None:
        self._misses: dict[int, int] = {}
        self._asleep_checks = asleep_checks
        self._checks = 0

    def due(self, peers: Iterable[Peer], asleep: Container[Peer] = ()) -> list[int]:
        """The ranges of ``peers`` to ask PD about now; ``asleep``: the hibernated ones."""
        self._checks += 1
        misses = {}
        due = []
        for peer in peers:
            if not peer.initialized:
                continue
            if peer in asleep:
                if (not peer.is_leader and (self._checks + peer.range_id) % self._asleep_checks == 0
                        and len(due) < MAX_STALE_QUERIES):
                    due.append(peer.range_id)
                continue
            raft = peer.raw.raft
            if raft.lead and raft.election_elapsed < 2 * raft.election_timeout:
                continue  # heard from its leader lately (a learner that did not may be removed)
            count = self._misses.get(peer.range_id, 0) + 1
            if count >= LEADERLESS_CHECKS and len(due) < MAX_STALE_QUERIES:
                due.append(peer.range_id)
                count = 0  # the ones over the bound stay due for the next check
            misses[peer.range_id] = count
        self._misses = misses  # a replica that found a leader starts counting afresh
        return due


Fingerprint = tuple[int, int, int, tuple[int, ...]]
"""(conf_ver, version, term, down replica ids): what can change in a hibernated leader's report
(``_fingerprint``)."""
_NEVER = (None, None, -1)


class HeartbeatBatcher:
    """Which ranges a store's next batched heartbeat carries: those whose info differs from the
    last report, all of them after a possible loss, and each unchanged one every
    ``FULL_REPORT_INTERVALS`` heartbeats (staggered by range id, so they do not all come at once).

    A hibernated leader's last report is reused without building a new one when it still
    describes the range (same fingerprint): with 10,000 idle ranges, building every report each
    interval cost a store 110 ms of CPU per interval."""

    def __init__(self, store_id: int, stats: Stats = lambda desc: None) -> None:
        self.store_id = store_id
        self._stats = stats
        self._reported: dict[int, tuple[pdpb_pb2.RangeInfo, Fingerprint | None, int]] = {}
        """Range id -> (last report, its fingerprint, the nap in which it was last found current)."""
        self._losses = -1
        self._beats = 0
        self._silent: frozenset[int] = frozenset()
        """The stores counted down at the last request."""

    def next_request(self, leaders: list[Peer], losses: int, asleep: Container[Peer] = ()
                     ) -> pdpb_pb2.RangeHeartbeatRequest:
        """The request for ranges led by ``leaders``, of which those in ``asleep`` hibernate;
        ``losses`` is the stream's loss count."""
        if losses != self._losses:
            self._losses = losses
            self._reported.clear()
        request = pdpb_pb2.RangeHeartbeatRequest(store_id=self.store_id)
        reported = {}
        silent = _silent_stores(leaders)
        # Compared once per nap: nothing of a sleeping range changes (anything would wake it) but
        # which of its stores fell silent or spoke again: when that changed, compare every one.
        same_silence, self._silent = silent == self._silent, silent
        for peer in leaders:
            range_id = peer.range_id
            due = (self._beats + range_id) % FULL_REPORT_INTERVALS == 0
            last, mark, nap = self._reported.get(range_id, _NEVER)
            if mark is not None and peer in asleep and (
                    (nap == peer.naps and same_silence) or mark == _fingerprint(peer, down_peer_ids(peer))):
                reported[range_id] = last, mark, peer.naps
                if due:
                    request.ranges.append(last)
                continue
            info = range_info(peer)
            if (stats := self._stats(peer.desc)) is not None:
                info.stats.CopyFrom(stats)
            if due or last != info:
                request.ranges.append(info)
            mark = None if info.joint or info.pending_peer_ids else _fingerprint(peer, info.down_peer_ids)
            reported[range_id] = info, mark, -1  # the next nap's first report compares
        self._reported = reported  # a range led again later is reported afresh
        self._beats += 1
        return request


def _fingerprint(peer: Peer, down: Iterable[int]) -> Fingerprint:
    """What of ``range_info(peer)`` can change while the range hibernates, or just before;
    ``down``: its down replicas now.

    A hibernated range is not joint and has no learner behind (it would not have gone to sleep;
    reports saying otherwise get no fingerprint), its descriptor changes only with its epoch, its
    leader only with the term, and its down replicas with its stores' silence. A report may
    predate changes made just before the range fell asleep (test_pd_placement caught a promotion
    reported as the learner it was), hence the comparison rather than trusting that an asleep
    range is unchanged.
    """
    epoch = peer.desc.epoch
    return epoch.conf_ver, epoch.version, peer.raw.raft.term, tuple(down)


def _silent_stores(leaders: list[Peer]) -> frozenset[int]:
    """The stores holding replicas of ``leaders``' ranges that count as down now."""
    if not leaders:
        return frozenset()
    store = leaders[0].store
    return frozenset(sid for sid in {p.store_id for peer in leaders for p in peer.desc.peers}
                     if _is_down(store, sid))


def carry_out_decisions(store: Store, resp: pdpb_pb2.RangeHeartbeatResponse,
                        done: Callable[[pdpb_pb2.Operator], Callback] | None = None) -> int:
    """Carry out PD's decisions that still fit: this store leads the range at the epoch PD
    decided on (otherwise the decision is stale and the next heartbeat brings a fresh one).
    ``done(op)`` gives the callback for an operator's outcome (default: log failures). Returns
    how many decisions were stale."""
    if resp.header.error.message:
        return 0
    stale = 0
    for decision in resp.decisions:
        peer = store.peers.get(decision.range_id)
        if peer is None or not peer.is_leader or peer.desc.epoch != decision.epoch:
            stale += 1
            continue
        op = decision.operator
        execute_operator(store, peer, op, None if done is None else done(op))
    return stale


class _Repeats:
    """Which operator outcome each range last logged at INFO, and when. PD re-sends a step with
    every heartbeat answer until it shows done, ~5 times a second: a transfer refused for as
    long as PD counted a dead store UP logged a line every 200 ms."""

    AGAIN_AFTER = 30.0
    """Seconds after which the same outcome is logged at INFO again."""

    def __init__(self) -> None:
        self._last: dict[tuple[int, int], tuple[str, float]] = {}

    def level(self, store_id: int, range_id: int, text: str) -> int:
        now = time.monotonic()
        last = self._last.get((store_id, range_id))
        if last is not None and last[0] == text and now - last[1] < self.AGAIN_AFTER:
            return logging.DEBUG
        if len(self._last) >= 10_000:  # ranges come and go: forget them all now and then
            self._last.clear()
        self._last[(store_id, range_id)] = (text, now)
        return logging.INFO


_repeats = _Repeats()


def _log_outcome(store: Store, peer: Peer, text: str) -> None:
    log.log(_repeats.level(store.store_id, peer.range_id, text), "range %d: %s", peer.range_id, text)


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
        elif op.kind == pdpb_pb2.Operator.SPLIT:
            if peer.splits_in_flight:
                return  # PD re-sends the operator until a heartbeat shows it done
            if len(op.split_ids) != len(op.split_keys):
                log.warning("range %d: split operator with %d keys but %d id sets", peer.range_id,
                            len(op.split_keys), len(op.split_ids))
                return
            requests = [raft_serverpb_pb2.SplitRequest(split_key=key, new_range_id=ids.new_range_id,
                                                       new_peer_ids=ids.new_peer_ids)
                        for key, ids in zip(op.split_keys, op.split_ids, strict=True)]
            store.split(peer.range_id, peer.desc.epoch, requests, done or _log_result(op))
        elif op.kind in _CONF_CHANGES:
            added = any(p.id == op.peer.id for p in peer.desc.peers)
            if added and op.kind == pdpb_pb2.Operator.ADD_LEARNER:
                return
            store.change_peer(peer.range_id, _CONF_CHANGES[op.kind], op.peer, done or _log_result(op))
        else:
            log.warning("range %d: operator %s is not supported yet", peer.range_id, op.kind)
            return
        _log_outcome(store, peer, f"carrying out {describe_operator(op)}")
    except StoreError as exc:
        _log_outcome(store, peer, f"operator {describe_operator(op)} refused for now: {exc}")


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
        info.down_peer_ids.extend(down_peer_ids(peer))
    return info


def down_peer_ids(peer: Peer) -> list[int]:
    """The replicas of ``peer``'s range on stores this store has not heard from for
    ``PEER_DOWN_ELECTIONS`` election timeouts: PD's schedulers leave such a range alone and never
    hand its leadership to them. Any message counts (Raft traffic, hibernation's liveness beats),
    so an idle or hibernated range's replicas are not down while their stores talk."""
    return [p.id for p in peer.desc.peers if _is_down(peer.store, p.store_id)]


def _is_down(store: Store, store_id: int) -> bool:
    """Whether ``store`` counts ``store_id`` (another store) down: silent for too long."""
    return (store_id != store.store_id
            and store.hibernation.silent_ticks(store_id) > PEER_DOWN_ELECTIONS * store.config.election_tick)


def describe_operator(op: pdpb_pb2.Operator) -> str:
    if op.kind == pdpb_pb2.Operator.SPLIT:
        return f"split at {len(op.split_keys)} keys ({', '.join(repr(k) for k in op.split_keys[:3])}" + \
            (" ...)" if len(op.split_keys) > 3 else ")")
    text = f"{pdpb_pb2.Operator.Kind.Name(op.kind).lower()} peer {op.peer.id} on store {op.peer.store_id}"
    if op.HasField("demote_peer"):
        text += f" for peer {op.demote_peer.id} on store {op.demote_peer.store_id}"
    return text


def _log_result(op: pdpb_pb2.Operator):  # noqa: ANN202
    def done(result: object) -> None:
        if isinstance(result, StoreError):
            log.info("operator %s failed: %s", describe_operator(op), result)

    return done

"""The store's GC worker on three in-process stores: the leader proposes the chunks of its ranges
at the safe point it learned (and never without one), every replica applies them and drops the
same versions, followers propose nothing, a range with no versions costs no proposal, and a
collected range is left alone until the safe point rises."""
from __future__ import annotations

import asyncio

from kvdb.mvcc import keys
from kvdb.pb import mvccpb_pb2, raft_serverpb_pb2
from kvdb.server.gc_worker import GcWorker
from kvdb.storage.engine import CF_WRITE
from kvdb.store.store import Store
from tests.store.local_cluster import LocalCluster


def _record_gc(store: Store, seen: list[raft_serverpb_pb2.GcCommand]) -> None:
    real = store.apply_command

    def apply(peer: object, data: bytes) -> object:
        cmd = raft_serverpb_pb2.RaftCommand.FromString(data)
        if cmd.HasField("txn") and cmd.txn.HasField("gc"):
            seen.append(cmd.txn.gc)
        return real(peer, data)

    store.apply_command = apply


def _write_versions(cluster: LocalCluster, versions: dict[bytes, int]) -> None:
    """The same committed versions on every replica (as if written through the range's log)."""
    for engine in cluster.engines.values():
        batch = engine.batch()
        for key, count in versions.items():
            for ts in range(1, count + 1):
                record = mvccpb_pb2.Write(kind=mvccpb_pb2.Write.PUT, start_ts=ts, value=b"v")
                batch.put(CF_WRITE, keys.version_key(key, ts * 10), record.SerializeToString())
        engine.write(batch, sync=False)


def _versions(cluster: LocalCluster, store_id: int) -> dict[bytes, list[int]]:
    out: dict[bytes, list[int]] = {}
    for vkey, _ in cluster.engines[store_id].scan(CF_WRITE, b"", None, 0):
        key, ts = keys.split_version_key(vkey)
        out.setdefault(key, []).append(ts)
    return out


async def _round(cluster: LocalCluster, worker: GcWorker) -> None:
    """One worker round, pumping the in-process network until it is done."""
    task = asyncio.ensure_future(worker.round())
    for _ in range(1000):
        await asyncio.sleep(0)
        cluster.pump()
        if task.done():
            return await task
    raise AssertionError("the GC round never finished")


def test_the_leader_collects_its_range_in_chunks_on_every_replica() -> None:
    async def run() -> None:
        cluster = LocalCluster([1, 2, 3])
        leader = cluster.elect()
        seen = {sid: [] for sid in cluster.stores}
        for sid, store in cluster.stores.items():
            _record_gc(store, seen[sid])
        _write_versions(cluster, {b"a": 3, b"b": 3, b"c": 3, b"d": 1})
        workers = {sid: GcWorker(store, versions_per_command=4) for sid, store in cluster.stores.items()}

        for worker in workers.values():  # no safe point learned: nothing
            await _round(cluster, worker)
        assert all(not s for s in seen.values())

        leader.gc_safe_point = 25  # learned from PD; the followers have not heard yet
        for worker in workers.values():
            await _round(cluster, worker)
        cluster.settle()  # the followers learn the commit index with the next heartbeat
        # Having dropped versions below 25, a follower refuses reads below it at once: it may be
        # the next leader, before its own heartbeat brings the safe point.
        assert all(store.gc_safe_point == 25 for store in cluster.stores.values())
        spans = [(c.start_key, c.end_key, c.safe_point) for c in seen[leader.store_id]]
        assert spans == [(b"", b"b", 25), (b"b", b"c", 25), (b"c", b"", 25)]
        assert all(seen[sid] == seen[leader.store_id] for sid in seen)  # the followers proposed none
        assert workers[leader.store_id].commands_applied == 3
        assert sum(w.commands_applied for w in workers.values()) == 3

        # Every replica dropped what no read at 25 or above needs: the version at 10 of a, b, c.
        for sid in cluster.stores:
            assert _versions(cluster, sid) == {b"a": [30, 20], b"b": [30, 20], b"c": [30, 20], b"d": [10]}

        await _round(cluster, workers[leader.store_id])  # collected at 25: left alone
        assert len(seen[leader.store_id]) == 3
        leader.gc_safe_point = 40
        await _round(cluster, workers[leader.store_id])
        cluster.settle()
        assert [(c.start_key, c.end_key, c.safe_point) for c in seen[leader.store_id][3:]] == [
            (b"", b"c", 40), (b"c", b"", 40)]
        for sid in cluster.stores:
            assert _versions(cluster, sid) == {b"a": [30], b"b": [30], b"c": [30], b"d": [10]}

    asyncio.run(run())


def test_a_range_without_versions_costs_no_proposal() -> None:
    async def run() -> None:
        cluster = LocalCluster([1])
        leader = cluster.elect()
        seen: list[raft_serverpb_pb2.GcCommand] = []
        _record_gc(leader, seen)
        worker = GcWorker(leader)
        leader.gc_safe_point = 99
        await _round(cluster, worker)
        assert seen == [] and worker.commands_applied == 0
        assert worker.planner.collected_at(1) == 99

    asyncio.run(run())

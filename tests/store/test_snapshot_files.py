"""Snapshots as files: built from a consistent copy, received to disk and checked, ingested
crash-safely, and never left behind (kvdb.store.snapshot)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from kvdb.mvcc import keys as mvcc_keys
from kvdb.pb import metapb_pb2, mvccpb_pb2, raft_serverpb_pb2
from kvdb.raft import ConfState
from kvdb.raft.codec import conf_state_to_pb
from kvdb.storage import CF_DEFAULT, CF_LOCK, CF_META, CF_WRITE, Engine, MemEngine, RocksEngine
from kvdb.storage.keys import apply_state_key, range_state_key, snapshot_ingest_key
from kvdb.store import snapshot
from tests.store.local_cluster import LocalCluster
from tests.store.test_store import SMALL_LOG, write_keys

RANGE = 5


def seed_range(engine: Engine, n: int) -> None:
    """Range ``RANGE`` = [b"a", b"b") holding a0000.. a{n-1}, applied at index n."""
    desc = metapb_pb2.RangeDescriptor(id=RANGE, start_key=b"a", end_key=b"b")
    desc.peers.add(id=1, store_id=1)
    batch = engine.batch()
    batch.put(CF_META, range_state_key(RANGE), raft_serverpb_pb2.RangeLocalState(descriptor=desc)
              .SerializeToString())
    batch.put(CF_DEFAULT, b"outside", b"x")
    engine.write(batch, sync=True)
    for i in range(n):
        apply_index(engine, i + 1)


def apply_index(engine: Engine, index: int) -> None:
    """One applied entry: its write and the applied index together, as an apply pass does."""
    batch = engine.batch()
    batch.put(CF_DEFAULT, b"a%06d" % (index - 1), b"v%d" % index)
    state = raft_serverpb_pb2.ApplyState(applied_index=index)
    state.conf_state.CopyFrom(conf_state_to_pb(ConfState(voters=[1])))
    batch.put(CF_META, apply_state_key(RANGE), state.SerializeToString())
    engine.write(batch, sync=False)


def message(built: snapshot.Built) -> raft_serverpb_pb2.RaftMessage:
    msg = raft_serverpb_pb2.RaftMessage(range_id=RANGE)
    msg.message.snapshot.data = built.header_bytes
    msg.message.snapshot.metadata.index = built.index
    return msg


@pytest.fixture(params=["rocks", "mem"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Engine:
    eng: Engine = RocksEngine(tmp_path / "db") if request.param == "rocks" else MemEngine()
    yield eng
    eng.close()


def seed_txn_data(engine: Engine) -> None:
    """A lock and two versions inside range ``RANGE`` = [b"a", b"b"), and the same outside it
    (under b"b", the range's end, whose versions sort right after the range's last ones)."""
    batch = engine.batch()
    for key in (b"a1", b"b"):
        batch.put(CF_LOCK, key, mvccpb_pb2.Lock(primary=key, start_ts=30).SerializeToString())
        for ts in (10, 20):
            batch.put(CF_WRITE, mvcc_keys.version_key(key, ts),
                      mvccpb_pb2.Write(start_ts=ts - 1, value=b"v%d" % ts).SerializeToString())
    engine.write(batch, sync=True)


def test_build_then_receive_round_trips_and_leaves_only_the_sent_file(engine: Engine, tmp_path: Path) -> None:
    seed_range(engine, 300)
    seed_txn_data(engine)
    built = snapshot.build(engine, RANGE, "send-1", session_ttl_ms=60_000)
    assert built.index == 300 and built.header.key_count == 300 + 1 + 2  # pairs in every family
    parts = [(p.cf, p.key_count) for p in built.header.cf_files]
    assert parts == [(CF_DEFAULT, 300), (CF_LOCK, 1), (CF_WRITE, 2)]
    assert built.header.descriptor.start_key == b"a" and list(built.conf_state.voters) == [1]
    assert engine.files.names() == ["send-1.default", "send-1.lock", "send-1.write"]  # the checkpoint is gone
    # The receiver: another engine whose snapshot files are in the same place.
    target: Engine
    if isinstance(engine, RocksEngine):
        target = RocksEngine(tmp_path / "target", engine.files.root)
    else:
        target = MemEngine()
        target.files = engine.files
    incoming = snapshot.Incoming(target.files, "recv-1", message(built))
    for chunk in built.chunks(1000):
        incoming.write(chunk)
    incoming.finish()
    snapshot.ingest(target, RANGE, "recv-1")
    assert target.scan(CF_DEFAULT, b"", None, 0) == engine.scan(CF_DEFAULT, b"a", b"b", 0)
    assert target.get(CF_DEFAULT, b"outside") is None  # never in the snapshot
    assert [k for k, _ in target.scan(CF_LOCK, b"", None, 0)] == [b"a1"]
    assert target.scan(CF_WRITE, b"", None, 0) == engine.scan(CF_WRITE, *mvcc_keys.versions_of(b"a1"), 0)
    target.close()
    incoming.discard()
    built.remove()
    assert engine.files.names() == []


def test_received_data_that_differs_from_the_header_is_refused(engine: Engine) -> None:
    seed_range(engine, 50)
    built = snapshot.build(engine, RANGE, "send-1", session_ttl_ms=60_000)
    data = b"".join(built.chunks(1 << 20))
    flipped = snapshot.Incoming(engine.files, "recv-1", message(built))
    flipped.write(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(snapshot.SnapshotCorruptError, match="checksum"):
        flipped.finish()
    short = snapshot.Incoming(engine.files, "recv-2", message(built))
    short.write(data[:-1])
    with pytest.raises(snapshot.SnapshotCorruptError, match="bytes"):
        short.finish()
    long = snapshot.Incoming(engine.files, "recv-3", message(built))
    with pytest.raises(snapshot.SnapshotCorruptError, match="over"):
        long.write(data + b"!")
    garbled = message(built)
    garbled.message.snapshot.data = b"\xff\xff\xff"
    with pytest.raises(snapshot.SnapshotCorruptError, match="header"):
        snapshot.Incoming(engine.files, "recv-4", garbled)
    # A header whose files are not data families, or do not add up, could ingest into the
    # Raft log's family or cut the stream wrongly.
    for cf, extra in (("raft", 0), (CF_DEFAULT, 1)):
        bad = raft_serverpb_pb2.SnapshotHeader.FromString(built.header_bytes)
        bad.cf_files[0].cf = cf
        bad.cf_files[0].size += extra
        wrong = message(built)
        wrong.message.snapshot.data = bad.SerializeToString()
        with pytest.raises(snapshot.SnapshotCorruptError, match="lists files"):
            snapshot.Incoming(engine.files, "recv-5", wrong)
    for incoming in (flipped, short, long):
        incoming.discard()
    assert engine.files.names() == ["send-1.default"]


def test_a_build_concurrent_with_writes_is_exactly_the_state_at_its_index(tmp_path: Path) -> None:
    """The build runs on a thread while the store keeps applying: every pair in the snapshot must
    belong to its applied index and none after. Iterating the live engine (or a rocksdict
    snapshot) instead of the checkpoint sees the later writes."""
    engine = RocksEngine(tmp_path / "db")
    seed_range(engine, 20_000)
    results: list[snapshot.Built] = []
    builder = threading.Thread(target=lambda: results.append(
        snapshot.build(engine, RANGE, "send-1", session_ttl_ms=60_000)))
    builder.start()
    index = 20_000
    while builder.is_alive() and index < 200_000:  # bounded: the build ends long before
        index += 1
        apply_index(engine, index)
    builder.join()
    built = results[0]
    assert index > built.index, "no write overlapped the build: the test proves nothing"
    target = RocksEngine(tmp_path / "target", tmp_path / "db.snap")
    target.ingest(CF_DEFAULT, "send-1.default")
    keys = [k for k, _ in target.scan(CF_DEFAULT, b"a", b"b", 0)]
    assert len(keys) == built.index == built.header.key_count
    assert keys[-1] == b"a%06d" % (built.index - 1)
    target.close()
    engine.close()


def _lagging_follower(cluster: LocalCluster) -> int:
    cluster.elect()
    follower = next(sid for sid, s in cluster.stores.items() if not s.peers[1].is_leader)
    cluster.crash(follower)
    write_keys(cluster, 80)
    assert cluster.leader().peers[1].storage.first_index() > 10
    return follower


class _Crash(Exception):
    """The process dies here."""


@pytest.mark.parametrize("power_cut", [False, True])
def test_a_crash_between_the_snapshot_batch_and_the_ingest_is_repaired_at_start_up(
        monkeypatch: pytest.MonkeyPatch, power_cut: bool) -> None:
    """The apply state says the snapshot is applied once its synced batch is written; the data
    comes after, by ingestion. A crash in between must not leave a replica whose applied index
    is ahead of its data: the marker makes the restarted store ingest again."""
    cluster = LocalCluster([1, 2, 3], SMALL_LOG)
    follower = _lagging_follower(cluster)
    engine = cluster.engines[follower]
    real_ingest = snapshot.ingest

    def crash_before_ingest(engine_: Engine, range_id: int, name: str) -> None:
        raise _Crash

    monkeypatch.setattr(snapshot, "ingest", crash_before_ingest)
    cluster.start(follower)
    with pytest.raises(_Crash):
        cluster.advance(0.5)
    monkeypatch.setattr(snapshot, "ingest", real_ingest)
    assert engine.get(CF_META, snapshot_ingest_key(1)) is not None
    assert engine.get(CF_DEFAULT, b"k0079") is None  # the data never went in
    cluster.crash(follower, power_cut=power_cut)
    store = cluster.start(follower)
    peer = store.peers[1]
    assert peer.applied >= 80 and peer.counters["snapshots_applied"] == 0  # applied before the crash
    assert engine.get(CF_DEFAULT, b"k0079") == b"v79"
    assert engine.get(CF_META, snapshot_ingest_key(1)) is None
    assert engine.files.names() == []
    cluster.advance(0.5)
    assert peer.applied == cluster.leader().peers[1].applied


def test_snapshot_files_are_deleted_once_sent_applied_or_at_start_up() -> None:
    cluster = LocalCluster([1, 2, 3], SMALL_LOG)
    follower = _lagging_follower(cluster)
    leader_id = next(sid for sid, s in cluster.stores.items() if s.peers[1].is_leader)
    cluster.start(follower)
    cluster.advance(0.5)
    assert cluster.stores[follower].peers[1].counters["snapshots_applied"] == 1
    assert cluster.engines[follower].files.names() == []
    assert cluster.engines[leader_id].files.names() == []
    assert cluster.stores[leader_id].peers[1].outgoing is None
    # What a crash leaves behind (a half-received stream, a build) goes at the next start.
    cluster.engines[follower].files.create("recv-1-7").close()
    cluster.crash(follower)
    cluster.start(follower)
    assert cluster.engines[follower].files.names() == []


def test_log_gc_keeps_the_entries_after_a_snapshot_being_built() -> None:
    """A build takes time while writes go on; if log GC passes its index meanwhile, the snapshot
    is useless once built and another is built, and under steady writes forever (seen in
    bench/snapshot_rss.py: the follower never caught up)."""
    cluster = LocalCluster([1, 2, 3], SMALL_LOG)
    follower = _lagging_follower(cluster)
    leader = cluster.leader()
    peer = leader.peers[1]
    held: list[tuple] = []
    leader.background = lambda work, done: held.append((work, done))
    cluster.start(follower)
    cluster.advance(0.2)
    assert len(held) == 1, "the leader should have started one build"
    work, done = held.pop()
    built = work()
    write_keys(cluster, 80, prefix=b"m")  # enough for log GC to pass the build's index twice over
    assert peer.storage.first_index() <= built.index + 1
    done(built)
    cluster.advance(0.5)
    assert held == []  # no second build
    follower_peer = cluster.stores[follower].peers[1]
    assert follower_peer.counters["snapshots_applied"] == 1
    assert follower_peer.applied == peer.applied
    cluster.advance(0.5)  # and once it replicates, GC goes on
    write_keys(cluster, 40, prefix=b"n")
    assert peer.storage.first_index() > built.index + 1

"""The split checker's decisions: size estimates and measures, and the load split key chooser."""

from __future__ import annotations

import asyncio
import random

import pytest

from kvdb.mvcc import keys as mvcc_keys
from kvdb.pb import kvrpc_pb2, metapb_pb2, pdpb_pb2, raft_serverpb_pb2
from kvdb.server.kv_handler import KvHandler
from kvdb.server.split_worker import SplitWorker, request_load
from kvdb.storage.engine import CF_DEFAULT, CF_LOCK, CF_WRITE
from kvdb.store.config import StoreConfig
from kvdb.store.split_check import (
    LoadChecker,
    LoadConfig,
    SizeChecker,
    SizeMeasure,
    choose_load_split_key,
    point,
)
from tests.store.local_cluster import LocalCluster, context, get, put


def _desc(start: bytes = b"", end: bytes = b"", version: int = 1,
          range_id: int = 7) -> metapb_pb2.RangeDescriptor:
    return metapb_pb2.RangeDescriptor(id=range_id, start_key=start, end_key=end,
                                      epoch=metapb_pb2.RangeEpoch(conf_ver=1, version=version))


class _Data:
    """Sorted pairs with the scan the checker is given; counts the keys each scan returns."""

    def __init__(self, pairs: list[tuple[bytes, bytes]], cf: str = CF_DEFAULT) -> None:
        self.cfs: dict[str, list[tuple[bytes, bytes]]] = {cf: sorted(pairs)}
        self.largest_scan = 0

    def scan(self, cf: str, start: bytes, end: bytes, limit: int) -> list[tuple[bytes, bytes]]:
        out = [(k, v) for k, v in self.cfs.get(cf, []) if start <= k < end][:limit]
        self.largest_scan = max(self.largest_scan, len(out))
        return out


def _key(i: int) -> bytes:
    return b"k%06d" % i


# ------------------------------------------------------------------------------------- size
def test_measure_counts_every_key_in_bounded_steps_and_finds_the_middle_by_bytes() -> None:
    # Small values first, big ones after: the middle by bytes is far right of the middle by count.
    pairs = [(_key(i), b"s" * 10) for i in range(900)] + [(_key(i), b"B" * 1000) for i in range(900, 1000)]
    data = _Data(pairs)
    m = SizeMeasure(_desc(), checkpoint_bytes=1000)
    steps = 0
    while not m.done:
        m.step(data.scan, 64)
        steps += 1
    total = sum(len(k) + len(v) for k, v in pairs)
    assert (m.keys, m.bytes) == (1000, total)
    assert data.largest_scan <= 64 and steps >= 1000 // 64
    key = m.middle_key()
    left = sum(len(k) + len(v) for k, v in pairs if k < key)
    assert abs(left - total / 2) <= 2 * 1007  # within a checkpoint or so of the half
    assert key > _key(900)


def test_measure_never_picks_the_start_key_nor_a_key_outside_the_range() -> None:
    # One huge first key: the only byte-middle would be the start key itself.
    pairs = [(b"a", b"x" * 10_000), (b"b", b"y"), (b"c", b"z"), (b"zz", b"outside")]
    m = SizeMeasure(_desc(b"a", b"d"), checkpoint_bytes=100)
    while not m.done:
        m.step(_Data(pairs).scan, 1)
    assert m.keys == 3
    assert m.middle_key() in (b"b", b"c")
    single = SizeMeasure(_desc(b"a", b"b"), checkpoint_bytes=1)
    while not single.done:
        single.step(_Data(pairs).scan, 10)
    assert single.middle_key() is None  # one key: nothing to split at


def test_measure_counts_mvcc_versions_and_splits_at_a_user_key() -> None:
    """A transactional range has its data in ``write`` (and ``lock``): the measure must count it,
    and a checkpoint found there is a version key, whose split key is its user key (a raw version
    key would cut the range at a key that sorts inside no user key's place)."""
    versions = [(mvcc_keys.version_key(_key(i), ts), b"v" * 100) for i in range(100) for ts in (5, 9)]
    data = _Data(versions, CF_WRITE)
    data.cfs[CF_LOCK] = [(_key(3), b"lock")]
    m = SizeMeasure(_desc(), checkpoint_bytes=500)
    while not m.done:
        m.step(data.scan, 16)
    assert m.keys == 201 and m.bytes == sum(len(k) + len(v) for k, v in versions) + len(_key(3)) + 4
    key = m.middle_key()
    assert key is not None and _key(40) <= key <= _key(60)  # a user key, near the middle
    assert all(k in {_key(i) for i in range(1, 100)} for _, k in m.checkpoints)


def test_measure_of_a_range_far_above_the_limit_keeps_its_checkpoints_bounded() -> None:
    pairs = [(_key(i), b"v" * 100) for i in range(5000)]
    m = SizeMeasure(_desc(), checkpoint_bytes=10)
    while not m.done:
        m.step(_Data(pairs).scan, 1000)
    assert len(m.checkpoints) <= 256
    key = m.middle_key()
    assert _key(2400) <= key <= _key(2600)


def test_size_checker_measures_only_when_due_and_splits_above_the_limit() -> None:
    pairs = [(_key(i), b"v" * 100) for i in range(100)]  # ~10.7 kB
    data = _Data(pairs)
    checker = SizeChecker(max_range_size=8 * 1024)
    desc = _desc()
    assert checker.due(desc) and checker.stats(desc) is None  # never measured
    read, done, key = checker.measure(desc, data.scan, 1000)
    assert read == 100 and done and key is not None and _key(40) <= key <= _key(60)
    assert checker.stats(desc) == (sum(len(k) + len(v) for k, v in pairs), 100)

    small = SizeChecker(max_range_size=64 * 1024)
    assert small.measure(desc, data.scan, 60) == (60, False, None)
    assert small.measure(desc, data.scan, 60) == (40, True, None)
    assert not small.due(desc)  # measured, little written since
    small.on_write(desc, 64 * 1024 // 16, 1)
    assert small.due(desc)  # a sixteenth of the limit written
    assert small.stats(desc)[0] == 10_700 + 4096
    small.measure(desc, data.scan, 1000)
    assert not small.due(desc)  # the writes were overwrites: the measure corrected the estimate
    assert small.stats(desc) == (10_700, 100)


def test_size_checker_starts_afresh_after_a_split_and_forgets_ranges_led_elsewhere() -> None:
    checker = SizeChecker(max_range_size=1 << 20)
    data = _Data([(_key(i), b"v") for i in range(10)])
    checker.measure(_desc(version=1), data.scan, 100)
    assert checker.stats(_desc(version=1)) is not None
    assert checker.due(_desc(version=2))  # the epoch moved: the old numbers are of another range
    assert checker.stats(_desc(version=1)) is None
    checker.forget(keep=set())
    assert checker.ranges == {}


def test_store_config_refuses_bad_split_settings() -> None:
    for bad in ({"max_range_size": 10}, {"split_check_interval": 0}, {"load_split_qps": -1},
                {"split_check_keys_per_round": 0}):
        with pytest.raises(ValueError):
            StoreConfig(**bad).validate()
    StoreConfig(max_range_size=256 * 1024, load_split_qps=0).validate()
    StoreConfig(max_range_size=0).validate()  # 0: the cluster's setting


# ------------------------------------------------------------------------------------- load
CFG = LoadConfig(min_samples=100)


def test_uniform_load_splits_near_the_middle() -> None:
    rng = random.Random(1)
    spans = [point(_key(rng.randrange(1000))) for _ in range(1000)]
    key = choose_load_split_key(spans, _desc(), CFG)
    assert key is not None and _key(450) <= key <= _key(550)


def test_skewed_load_splits_inside_the_hot_keys() -> None:
    rng = random.Random(2)
    spans = [point(_key(500 + rng.randrange(20))) if rng.random() < 0.9 else point(_key(rng.randrange(1000)))
             for _ in range(1000)]
    key = choose_load_split_key(spans, _desc(), CFG)
    assert key is not None and _key(500) <= key <= _key(520)


def test_a_single_hot_key_gives_no_split() -> None:
    rng = random.Random(3)
    spans = [point(b"hot") if rng.random() < 0.95 else point(_key(rng.randrange(1000))) for _ in range(1000)]
    assert choose_load_split_key(spans, _desc(), CFG) is None


def test_keys_crossed_by_most_requests_are_refused() -> None:
    # Every request scans [k000000, k001000): any key inside splits every one of them.
    rng = random.Random(4)
    spans = [(_key(0), _key(1000))] * 600 + [point(_key(rng.randrange(1000))) for _ in range(400)]
    assert choose_load_split_key(spans, _desc(), CFG) is None
    # The same scans over half the keys, the rest point reads: splitting at the scans' end is fine.
    spans = [(_key(0), _key(500))] * 300 + [point(_key(500 + rng.randrange(500))) for _ in range(300)]
    key = choose_load_split_key(spans, _desc(), CFG)
    assert key is not None and _key(490) <= key <= _key(520)


def test_chooser_needs_enough_samples_and_stays_inside_the_range() -> None:
    spans = [point(_key(i)) for i in range(50)]
    assert choose_load_split_key(spans, _desc(), CFG) is None  # below min_samples
    spans = [point(_key(i)) for i in range(200)]
    key = choose_load_split_key(spans, _desc(_key(100), _key(150)), CFG)
    assert key is not None and _key(100) < key < _key(150)


def test_load_checker_splits_only_after_a_whole_hot_window() -> None:
    checker = LoadChecker(LoadConfig(qps_threshold=100, detect_seconds=3, min_samples=50), random.Random(5))
    desc = _desc()
    rng = random.Random(6)

    def one_second(requests: int) -> bytes | None:
        for _ in range(requests):
            checker.record(desc, [point(_key(rng.randrange(1000)))])
        return checker.check(desc, elapsed=1.0)

    assert one_second(150) is None and one_second(150) is None
    assert one_second(50) is None  # cooled down: the window starts again
    assert one_second(150) is None and one_second(150) is None
    key = one_second(150)
    assert key is not None and _key(350) <= key <= _key(650)
    assert len(checker.ranges) == 0  # a fresh window after the decision
    for _ in range(5000):
        checker.record(desc, [point(_key(rng.randrange(1000)))])
    assert len(checker.ranges[desc.id].samples) == checker.config.sample_size  # the reservoir is bounded
    assert checker.check(_desc(version=2), 1.0) is None  # samples of the old epoch are not used


# ------------------------------------------------------------------------------- the worker
class _FakePd:
    def __init__(self) -> None:
        self.asked: list[tuple[int, int]] = []

    async def ask_batch_split(self, desc: metapb_pb2.RangeDescriptor, count: int) -> list[pdpb_pb2.SplitID]:
        self.asked.append((desc.id, count))
        return [pdpb_pb2.SplitID(new_range_id=100 + i, new_peer_ids=[200 + i]) for i in range(count)]


class _WorkerRig:
    """One store leading range 1, its requests observed by a split worker whose splits are recorded."""

    def __init__(self, **config: object) -> None:
        self.cluster = LocalCluster([1], StoreConfig(**config))
        self.store = self.cluster.elect()
        self.pd = _FakePd()
        self.cluster_config: pdpb_pb2.ScheduleConfig | None = None
        self.worker = SplitWorker(self.store, self.pd, self.store.config, lambda: self.cluster_config)
        self.handler = KvHandler(self.store)
        self.handler.on_served = self.worker.observe
        self.splits: list[list[metapb_pb2.RangeDescriptor]] = []
        self.store.on_split = self.splits.append

    def call(self, request: kvrpc_pb2.Request) -> kvrpc_pb2.Response:
        answers: list[kvrpc_pb2.Response] = []
        self.handler.handle(request, answers.append)
        self.cluster.pump()
        assert len(answers) == 1
        return answers[0]

    def stats(self, range_id: int) -> tuple[int, int] | None:
        return self.worker.size.stats(self.store.peers[range_id].desc)

    def range_stats(self, range_id: int) -> pdpb_pb2.RangeStats | None:
        return self.worker.range_stats(self.store.peers[range_id].desc)

    def rounds(self, n: int, elapsed: float = 1.0, cpu: float | None = None) -> None:
        async def run() -> None:
            for _ in range(n):
                await self.worker.round(elapsed, cpu)
                for _ in range(1000):  # the split tasks the round started: propose, apply, answer
                    if not self.worker._splitting:
                        break
                    await asyncio.sleep(0)
                    self.cluster.pump()
                assert not self.worker._splitting, "a split did not finish"

        asyncio.run(run())


def test_worker_splits_a_range_grown_past_the_limit_near_its_middle() -> None:
    rig = _WorkerRig(max_range_size=64 * 1024, split_check_keys_per_scan=16, load_split_qps=0)
    ctx = context(rig.store)
    for i in range(100):
        assert not rig.call(put(_key(i), b"v" * 1000, ctx)).put.HasField("error")
    assert rig.stats(1) is None  # written, never measured yet
    rig.rounds(1)
    assert rig.pd.asked == [(1, 1)]
    ((parent, child),) = rig.splits
    assert parent.id == 1 and child.id == 100 and [p.id for p in child.peers] == [200]
    assert parent.end_key == child.start_key and _key(40) <= child.start_key <= _key(60)
    assert rig.worker.splits == {"size": 1, "load": 0}
    assert rig.stats(1) is None  # the parent shrank: measured afresh next round
    rig.rounds(1)
    left, right = rig.range_stats(1), rig.range_stats(100)
    assert left.approximate_keys + right.approximate_keys == 100
    assert 100_000 <= left.approximate_size + right.approximate_size <= 101_000
    assert rig.splits == [[parent, child]]  # both halves are below the limit


def test_worker_reads_a_bounded_number_of_keys_per_round_and_obeys_the_cluster_limit() -> None:
    rig = _WorkerRig(split_check_keys_per_round=40, split_check_keys_per_scan=16, load_split_qps=0)
    ctx = context(rig.store)
    for i in range(100):
        rig.call(put(_key(i), b"v" * 1000, ctx))
    rig.rounds(2)
    assert rig.stats(1) is None and rig.splits == []  # 80 of 100 keys read so far
    rig.rounds(1)
    assert rig.stats(1)[1] == 100 and rig.splits == []  # 100 kB: below the default 96 MiB
    rig.cluster_config = pdpb_pb2.ScheduleConfig(max_range_size=64 * 1024)
    rig.call(put(_key(100), b"v" * 8000, ctx))  # a sixteenth of the cluster's limit: measure again
    rig.rounds(3)
    assert len(rig.splits) == 1


def test_a_store_setting_wins_over_the_clusters() -> None:
    rig = _WorkerRig(max_range_size=1 << 20, load_split_qps=0)
    rig.cluster_config = pdpb_pb2.ScheduleConfig(max_range_size=64 * 1024)
    ctx = context(rig.store)
    for i in range(100):
        rig.call(put(_key(i), b"v" * 1000, ctx))
    rig.rounds(2)
    assert rig.stats(1)[1] == 100 and rig.splits == []  # 100 kB: below the store's 1 MiB


def test_worker_splits_a_busy_range_after_its_detect_window() -> None:
    rig = _WorkerRig(load_split_qps=120, load_split_seconds=2)
    ctx = context(rig.store)
    for i in range(0, 1000, 10):
        rig.call(put(_key(i), b"v", ctx))
    rig.rounds(1)  # the measure of the new range; the writes were one busy second
    rig.splits.clear()
    rng = random.Random(7)
    for _ in range(2):
        for _ in range(150):
            assert not rig.call(get(_key(rng.randrange(1000)), ctx)).get.HasField("error")
        rig.rounds(1)
    ((_, child),) = rig.splits
    assert _key(350) <= child.start_key <= _key(650)
    assert rig.worker.splits["load"] == 1


def test_a_busy_range_splits_by_load_only_while_its_store_is_short_of_cpu() -> None:
    rig = _WorkerRig(load_split_qps=120, load_split_seconds=2, load_split_cpu=0.8)
    ctx = context(rig.store)
    for i in range(0, 1000, 10):
        rig.call(put(_key(i), b"v", ctx))
    rig.rounds(1)
    rig.splits.clear()
    rng = random.Random(7)

    def busy_second(cpu: float) -> None:
        for _ in range(150):
            assert not rig.call(get(_key(rng.randrange(1000)), ctx)).get.HasField("error")
        rig.rounds(1, cpu=cpu)

    for cpu in (0.5, 0.9, 0.5, 0.9, 0.7):  # hot every second, never two busy ones in a row
        busy_second(cpu)
    assert rig.splits == [] and rig.worker.splits["load"] == 0
    busy_second(0.9)
    busy_second(1.0)
    assert len(rig.splits) == 1 and rig.worker.splits["load"] == 1


def test_request_load_covers_every_request_kind() -> None:
    desc = _desc(b"b", b"y")
    kinds = {f.name for f in kvrpc_pb2.Request.DESCRIPTOR.oneofs_by_name["cmd"].fields}
    pair = kvrpc_pb2.KvPair(key=b"c", value=b"12")
    mutation = kvrpc_pb2.TxnMutation(key=b"c", value=b"12")
    bodies = {"get": kvrpc_pb2.RawGetRequest(key=b"c"), "put": kvrpc_pb2.RawPutRequest(key=b"c", value=b"12"),
              "batch_get": kvrpc_pb2.RawBatchGetRequest(keys=[b"c", b"d"]),
              "batch_put": kvrpc_pb2.RawBatchPutRequest(pairs=[pair, pair]),
              "delete": kvrpc_pb2.RawDeleteRequest(key=b"c"),
              "delete_range": kvrpc_pb2.RawDeleteRangeRequest(start_key=b"a", end_key=b"d"),
              "scan": kvrpc_pb2.RawScanRequest(start_key=b"c"),
              "cas": kvrpc_pb2.RawCompareAndSwapRequest(key=b"c", value=b"12"),
              "txn_get": kvrpc_pb2.TxnGetRequest(key=b"c"),
              "txn_batch_get": kvrpc_pb2.TxnBatchGetRequest(keys=[b"c", b"d"]),
              "txn_scan": kvrpc_pb2.TxnScanRequest(start_key=b"c"),
              "scan_lock": kvrpc_pb2.ScanLockRequest(end_key=b"d"),
              "prewrite": kvrpc_pb2.PrewriteRequest(mutations=[mutation, mutation]),
              "commit": kvrpc_pb2.CommitRequest(keys=[b"c"]),
              "rollback": kvrpc_pb2.BatchRollbackRequest(keys=[b"c"]),
              "check_txn_status": kvrpc_pb2.CheckTxnStatusRequest(primary_key=b"c"),
              "check_secondary_locks": kvrpc_pb2.CheckSecondaryLocksRequest(keys=[b"c"]),
              "resolve_lock": kvrpc_pb2.ResolveLockRequest(keys=[b"c"]),
              "txn_heart_beat": kvrpc_pb2.TxnHeartBeatRequest(primary_lock=b"c")}
    assert set(bodies) == set(kinds)
    loads = {kind: request_load(kind, body, desc) for kind, body in bodies.items()}
    assert loads["put"] == ([point(b"c")], 3, 1) and loads["cas"] == ([point(b"c")], 3, 1)
    assert loads["batch_put"] == ([point(b"c")] * 2, 6, 2)
    assert loads["batch_get"] == ([point(b"c"), point(b"d")], 0, 0)
    assert loads["delete_range"] == ([(b"b", b"d")], 0, 0)  # clipped to the range
    assert loads["scan"] == ([(b"c", b"y")], 0, 0)
    assert loads["prewrite"] == ([point(b"c")] * 2, 6, 2)
    assert loads["scan_lock"] == ([(b"b", b"d")], 0, 0) and loads["txn_scan"] == ([(b"c", b"y")], 0, 0)
    for kind in ("txn_get", "commit", "rollback", "check_txn_status", "check_secondary_locks", "resolve_lock",
                 "txn_heart_beat"):
        assert loads[kind] == ([point(b"c")], 0, 0), kind


def test_measures_take_turns_when_a_round_runs_out_of_keys() -> None:
    rig = _WorkerRig(max_range_size=1 << 20, split_check_keys_per_round=50, split_check_keys_per_scan=50,
                     load_split_qps=0)
    ctx = context(rig.store)
    for i in range(200):
        rig.call(put(_key(i), b"v" * 10, ctx))
    requests = [raft_serverpb_pb2.SplitRequest(split_key=_key(190), new_range_id=100, new_peer_ids=[200])]
    rig.store.split(1, rig.store.peers[1].desc.epoch, requests, lambda result: None)
    rig.cluster.pump()
    rig.cluster.elect(100)
    assert rig.store.peers[1].desc.end_key == _key(190)
    # Range 1 takes four rounds to measure and is due again by then; range 100 gets what is left.
    for _ in range(5):
        rig.call(put(_key(0), b"v" * (1 << 16), context(rig.store)))
        rig.rounds(1)
        if rig.stats(100) is not None:
            break
    assert rig.stats(100) == (10 * 17, 10)


def test_range_stats_report_traffic_rates_that_follow_the_load() -> None:
    rig = _WorkerRig(load_split_qps=0)
    ctx = context(rig.store)
    assert rig.range_stats(1) is None  # nothing measured, nothing served
    for i in range(50):
        assert not rig.call(put(_key(i), b"v" * 100, ctx)).put.HasField("error")
    rig.rounds(1, elapsed=2.0)  # 50 writes of 107 bytes over 2 s
    stats = rig.range_stats(1)
    assert (stats.written_bytes_per_sec, stats.written_keys_per_sec) == (50 * (7 + 100) // 2, 25)
    assert (stats.read_bytes_per_sec, stats.read_keys_per_sec) == (0, 0)
    for i in range(40):
        assert rig.call(get(_key(i), ctx)).get.value == b"v" * 100
    rig.call(get(b"missing", ctx))  # found nothing: no bytes read
    rig.rounds(1, elapsed=1.0)
    stats = rig.range_stats(1)
    assert (stats.read_bytes_per_sec, stats.read_keys_per_sec) == (4000, 40)
    assert stats.written_bytes_per_sec == 0 and stats.approximate_keys == 50
    rig.rounds(1)  # an idle window: the rates fall to nothing
    stats = rig.range_stats(1)
    assert stats.read_bytes_per_sec == stats.written_bytes_per_sec == 0 and stats.approximate_keys == 50

"""Ranges split on their own on a real 3-store cluster: by size under writes, by load under reads.

The stores run with a small ``--max-range-size`` (256 KiB) or a small ``--load-split-qps``; the
tests only write and read through the real client, then check that PD's range map covers the key
space without gaps or overlaps, that it has more than one range, and that every key written is
read back exactly (through routing that had to follow the splits).
"""

from __future__ import annotations

import time

import kvdb
from kvdb.pb import pdpb_pb2
from tests.integration.client import PdHandle
from tests.integration.cluster import wait_for
from tests.integration.conftest import MakePdCluster

MAX_RANGE_SIZE = 256 * 1024
VALUE = b"v" * 1000
FAST_CHECKS = ["--split-check-interval", "0.2"]


def tiling(pd: PdHandle) -> list[pdpb_pb2.RangeInfo] | None:
    """PD's ranges in key order once they tile the key space (no gap, no overlap), else None: PD
    learns a split from several heartbeats (the parent's and each new range's leader's)."""
    infos = sorted(pd.run(pd.client.scan_ranges(b"")), key=lambda i: i.descriptor.start_key)
    if not infos or infos[0].descriptor.start_key or infos[-1].descriptor.end_key:
        return None
    if any(a.descriptor.end_key != b.descriptor.start_key for a, b in zip(infos, infos[1:], strict=False)):
        return None
    return infos


def wait_ranges(pd: PdHandle, at_least: int, what: str, timeout: float = 60.0,
                stats: bool = False) -> list[pdpb_pb2.RangeInfo]:
    """PD's tiling of at least ``at_least`` ranges (each with its approximate size, if ``stats``)."""

    def ready() -> list[pdpb_pb2.RangeInfo] | None:
        infos = tiling(pd)
        if infos is None or len(infos) < at_least:
            return None
        if stats and not all(i.stats.approximate_keys for i in infos):
            return None
        return infos

    return wait_for(ready, timeout, what, interval=0.2)


def key(i: int) -> bytes:
    return b"key-%06d" % i


def test_a_range_splits_by_size_under_writes_and_every_key_stays_readable(
        make_pd_cluster: MakePdCluster) -> None:
    cluster, pd = make_pd_cluster(extra_args=["--max-range-size", "256KiB", *FAST_CHECKS])
    pd.wait_voters(3)
    written = {key(i): VALUE + b"%06d" % i for i in range(1500)}  # ~1.5 MB: six times the limit
    with kvdb.connect(cluster.pd_endpoints) as client:
        items = list(written.items())
        for i in range(0, len(items), 50):
            client.batch_put(items[i:i + 50])
        infos = wait_ranges(pd, 4, "the range to split by size into at least 4")
        assert client.batch_get(list(written)) == written
        assert dict(client.scan(b"", b"", limit=len(written) + 10)) == written
    for info in infos:
        assert not info.descriptor.start_key or info.descriptor.start_key in written  # a key boundary
    infos = wait_ranges(pd, 4, "every range's approximate size in its heartbeat", stats=True)
    assert sum(i.stats.approximate_keys for i in infos) == len(written)
    assert all(i.stats.approximate_size <= MAX_RANGE_SIZE for i in infos), [i.stats for i in infos]


def test_a_busy_range_splits_by_load(make_pd_cluster: MakePdCluster) -> None:
    # A few hundred reads a second leave the store with CPU to spare: split by QPS alone.
    cluster, pd = make_pd_cluster(extra_args=["--load-split-qps", "40", "--load-split-seconds", "2",
                                              "--load-split-cpu", "0", *FAST_CHECKS])
    pd.wait_voters(3)
    written = {key(i): b"%06d" % i for i in range(200)}
    with kvdb.connect(cluster.pd_endpoints) as client:
        client.batch_put(written.items())
        assert len(wait_ranges(pd, 1, "PD's map")) == 1  # 200 small keys: far below the size limit
        deadline = time.monotonic() + 60.0
        i = 0
        while len(tiling(pd) or ()) < 2:  # reads spread over every key, until a split or the deadline
            assert time.monotonic() < deadline, "no load split within 60 s of steady reads"
            for _ in range(50):
                assert client.get(key(i % 200)) == written[key(i % 200)]
                i += 7
        split_keys = [r.descriptor.start_key for r in wait_ranges(pd, 2, "PD's map")[1:]]
        assert all(key(20) <= k <= key(180) for k in split_keys), split_keys  # not at an edge
        assert client.batch_get(list(written)) == written

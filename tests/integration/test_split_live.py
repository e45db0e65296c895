"""Ranges split under real clients: histories stay linearizable across splits and a leader kill.

Five ``kvdb.aio`` clients read, write and compare-and-swap keys spread over the key space while
PD splits the range they use (``SplitRanges``, what ``kvdb admin split`` calls). Requests routed
before a split meet ``epoch_not_match`` and follow the new descriptors; writes re-sent to a new
range are recognised there through the sessions the split copied. Then a split is asked for and
the store leading the range is killed at once with -9: PD hands the split to the next leader,
and the answer comes when it is applied. Every call goes through ``check_history``; at the end
PD's ranges tile the key space and every range serves.
"""

from __future__ import annotations

import asyncio

import pytest

import kvdb
import kvdb.client.aio as client_aio
from kvdb.pb import adminpb_pb2
from tests.integration.client import Client
from tests.integration.conftest import MakePdCluster
from tests.integration.test_client_linearizable import ATTEMPT_TIMEOUT, Workload

KEYS = [b"a", b"f", b"k", b"p", b"u", b"z"]
SPLIT_TIMEOUT = 30.0


def test_splits_under_load_and_a_leader_kill_keep_histories_linearizable(
        make_pd_cluster: MakePdCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_aio, "ATTEMPT_TIMEOUT", ATTEMPT_TIMEOUT)
    cluster, pd = make_pd_cluster()
    pd.wait_voters(3)
    workload = Workload(cluster.pd_endpoints, keys=KEYS)
    workload.thread.start()

    def split(keys: list[bytes]) -> list[bytes]:
        ranges = pd.run(pd.client.split_ranges(keys, SPLIT_TIMEOUT))
        return [r.descriptor.start_key for r in ranges]

    try:
        workload.phase("to start with")
        assert split([b"h", b"d"]) == [b"d", b"h"]
        workload.phase("after splitting at two keys")
        assert split([b"m"]) == [b"m"]
        workload.phase("after a third split")
        victim = pd.run(pd.client.get_range(b"s")).leader.store_id
        pending = asyncio.run_coroutine_threadsafe(pd.client.split_ranges([b"s"], SPLIT_TIMEOUT), pd.loop)
        cluster.kill(victim)  # the split may be handed out, applied or not yet: it must complete
        assert [r.descriptor.start_key for r in pending.result(SPLIT_TIMEOUT + 10)] == [b"s"]
        workload.phase("after a split whose leader was killed")
        cluster.restart(victim)
        workload.phase("after the killed store came back")
    finally:
        workload.finish()
    workload.checked(phases=5)

    ranges = pd.run(pd.client.scan_ranges(b""))
    bounds = [(r.descriptor.start_key, r.descriptor.end_key) for r in ranges]
    assert bounds == [(b"", b"d"), (b"d", b"h"), (b"h", b"m"), (b"m", b"s"), (b"s", b"")]
    with kvdb.connect(cluster.pd_endpoints, timeout=20) as client:
        for key in KEYS:  # every range serves a write and the read after it
            client.put(key, b"final")
            assert client.get(key) == b"final"
        assert {k for k, _ in client.scan(b"", b"", limit=100)} == set(KEYS)
    cluster.assert_all_running()


def test_a_follower_paused_through_a_split_catches_up_by_snapshot(make_pd_cluster: MakePdCluster) -> None:
    """The follower misses the split and everything after it, and both logs are compacted past
    it: it gets the shrunk parent by snapshot, and the new range's replica (created by a message
    once the parent no longer overlaps it) by another. Then it serves both ranges as leader."""
    cluster, pd = make_pd_cluster()
    first = pd.wait_voters(3)
    parent = Client(cluster, range_id=first.descriptor.id)
    leader = parent.wait_leader()
    follower = next(sid for sid in cluster.stores if sid != leader)
    written = {b"%c-%03d" % (c, i): b"before" for c in b"aeimquy" for i in range(20)}
    with kvdb.connect(cluster.pd_endpoints, timeout=20) as client:
        client.batch_put(written)
        parent.wait_caught_up([follower])
        cluster.stores[follower].pause()
        try:
            [child_info] = pd.run(pd.client.split_ranges([b"m"], SPLIT_TIMEOUT))
            child = Client(cluster, range_id=child_info.descriptor.id)
            after = {key: b"after" for key in written}
            client.batch_put(after)
            written.update(after)
            for rng in (parent, child):
                lead = rng.wait_leader(exclude=[follower])
                compact = rng.admin(lead).CompactLog(adminpb_pb2.CompactLogRequest(range_id=rng.range_id),
                                                     timeout=5)
                assert not compact.HasField("error"), compact.error.message
        finally:
            cluster.stores[follower].resume()
        for rng in (parent, child):
            rng.wait_caught_up([follower], timeout=30)
            status = rng.status(follower)
            assert status.snapshots_applied >= 1, status
        bounds = {(rng.status(follower).descriptor.start_key, rng.status(follower).descriptor.end_key)
                  for rng in (parent, child)}
        assert bounds == {(b"", b"m"), (b"m", b"")}
        # The caught-up follower now leads both ranges and answers from what it holds.
        for rng in (parent, child):
            rng.transfer_leader(follower)
        assert {**parent.scan_all(follower), **child.scan_all(follower)} == written
    cluster.assert_all_running()

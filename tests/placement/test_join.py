"""A store joining through ``PdWorker.join`` against the fake PD of ``test_client``: who keeps the
first range when a bootstrap's answer is lost, and when another store really won."""

from __future__ import annotations

import random
from unittest import mock

from kvdb.pb import metapb_pb2, pdpb_pb2
from kvdb.server.pd_worker import PdWorker
from kvdb.storage.memory import MemEngine
from kvdb.store.store import Store
from tests.placement.test_client import async_test, client_for, fake_pd, until
from tests.store.local_cluster import ManualClock

STORE_ID = 1


class _NoTransport:
    def send(self, store_id: int, messages: list) -> None:
        raise AssertionError("a lone founding replica sends nothing")

    def send_snapshot(self, *args: object) -> None:
        raise AssertionError("a lone founding replica sends nothing")


def _store(engine: MemEngine) -> Store:
    return Store(7, STORE_ID, engine, _NoTransport(), ManualClock(), rng=random.Random(1))


@async_test
async def test_a_bootstrap_whose_answer_was_lost_keeps_the_first_range() -> None:
    """PD records the bootstrap but the answer never arrives; the retry hears "already
    bootstrapped" with our own range: the store keeps it (it used to drop the cluster's only
    range, and every request then got range_not_found for good)."""
    async with fake_pd() as pd:
        pd.stalled = {"Bootstrap"}
        with mock.patch("kvdb.pdclient.client.ATTEMPT_TIMEOUT", 0.2):
            worker = PdWorker(client_for(pd.address(1)), {}, 1.0)
            store = _store(MemEngine())
            await worker.join(store, "127.0.0.1:20160")
        assert pd.calls[1, "Bootstrap"] == 2  # the first try's answer was lost: a retry happened
        recorded = pd.bootstrapped_with.first_range
        assert list(store.peers) == [recorded.id]
        assert store.peers[recorded.id].desc == recorded
        assert pd.stores[STORE_ID].address == "127.0.0.1:20160"
        await worker.pd.close()


@async_test
async def test_a_store_that_lost_the_bootstrap_race_drops_its_range() -> None:
    """Another store's bootstrap won between our IsBootstrapped and Bootstrap: ours is dropped."""
    async with fake_pd() as pd:
        winner = metapb_pb2.RangeDescriptor(id=500, epoch=metapb_pb2.RangeEpoch(conf_ver=1, version=1),
                                            peers=[metapb_pb2.Peer(id=501, store_id=2)])
        worker = PdWorker(client_for(pd.address(1)), {}, 1.0)
        real = worker.pd.is_bootstrapped

        async def race() -> bool:
            answer = await real()
            # Store 2 bootstraps right after we were told nobody had.
            async with client_for(pd.address(1)) as other:
                await other.bootstrap(pdpb_pb2.StoreInfo(id=2, address="s2"), winner)
            return answer

        worker.pd.is_bootstrapped = race
        store = _store(MemEngine())
        await worker.join(store, "127.0.0.1:20160")
        assert pd.bootstrapped_with.first_range == winner
        assert store.peers == {}
        await worker.pd.close()


@async_test
async def test_a_first_range_left_by_a_crash_before_bootstrap_is_dropped_once_another_store_won() -> None:
    """The store created its first range, crashed before asking PD, and restarts into a cluster
    store 2 bootstrapped meanwhile: the leftover goes (it used to stay, lead itself, and report
    a second range over all keys)."""
    async with fake_pd() as pd:
        engine = MemEngine()
        mine = metapb_pb2.RangeDescriptor(id=900, epoch=metapb_pb2.RangeEpoch(conf_ver=1, version=1),
                                          peers=[metapb_pb2.Peer(id=901, store_id=STORE_ID)])
        _store(engine).bootstrap_range(mine)  # then the crash
        winner = metapb_pb2.RangeDescriptor(id=500, epoch=mine.epoch,
                                            peers=[metapb_pb2.Peer(id=501, store_id=2)])
        async with client_for(pd.address(1)) as other:
            assert await other.bootstrap(pdpb_pb2.StoreInfo(id=2, address="s2"), winner)
        worker = PdWorker(client_for(pd.address(1)), {}, 1.0)
        store = _store(engine)
        assert list(store.peers) == [900]
        await worker.join(store, "127.0.0.1:20160")
        assert store.peers == {}
        await worker.pd.close()


@async_test
async def test_a_restarted_bootstrap_store_keeps_its_first_range() -> None:
    """Our bootstrap applied before a crash: the untouched first range found locally is ours."""
    async with fake_pd() as pd:
        engine = MemEngine()
        worker = PdWorker(client_for(pd.address(1)), {}, 1.0)
        await worker.join(_store(engine), "127.0.0.1:20160")
        await worker.pd.close()
        worker = PdWorker(client_for(pd.address(1)), {}, 1.0)
        store = _store(engine)
        await worker.join(store, "127.0.0.1:20160")
        assert list(store.peers) == [pd.bootstrapped_with.first_range.id]
        await worker.pd.close()


@async_test
async def test_a_store_pd_calls_a_tombstone_stops_reporting_ranges() -> None:
    """A decommissioned, emptied store must not keep reporting: a replica it still held by
    mistake would pass for a live one. It says so loudly and its range heartbeats end."""
    async with fake_pd() as pd:
        worker = PdWorker(client_for(pd.address(1)), {}, 0.02)
        store = _store(MemEngine())
        await worker.join(store, "127.0.0.1:20160")
        worker.start()
        try:
            await until(lambda: len(pd.heartbeats) >= 2, "range heartbeats to flow")
            assert not worker.tombstone
            pd.stores[STORE_ID].state = pdpb_pb2.TOMBSTONE
            await until(lambda: worker.tombstone, "the store to hear it is a tombstone")
            range_loop = worker._tasks[1]
            await until(range_loop.done, "the range heartbeat loop to end")
            assert range_loop.exception() is None
        finally:
            await worker.stop()

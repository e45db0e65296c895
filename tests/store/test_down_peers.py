"""A leader's report to PD names the replicas whose stores it stopped hearing from
(``kvdb.server.pd_worker.down_peer_ids``): PD's schedulers leave such ranges alone and never hand
them leadership (``placement/schedule/filters.py``)."""

from __future__ import annotations

import pytest

from kvdb.server.pd_worker import PEER_DOWN_ELECTIONS, range_info
from kvdb.store.config import StoreConfig
from tests.store.local_cluster import LocalCluster
from tests.store.test_hibernate import tick


@pytest.mark.parametrize("hibernate", [True, False])
def test_a_silent_stores_replica_is_reported_down_and_back_up_once_it_speaks(hibernate: bool) -> None:
    config = StoreConfig(hibernate=hibernate, hibernate_idle_ticks=6)
    cluster = LocalCluster([1, 2, 3], config)
    leader = cluster.elect()
    peer = leader.peers[1]
    victim = next(sid for sid in (1, 2, 3) if sid != leader.store_id)
    victim_peer = next(p.id for p in peer.desc.peers if p.store_id == victim)
    tick(cluster, 4 * config.hibernate_idle_ticks)  # idle: with hibernation, the range sleeps
    assert not range_info(peer).down_peer_ids, "an idle range's replicas are not down"
    limit = PEER_DOWN_ELECTIONS * config.election_tick
    cluster.isolate(victim)
    tick(cluster, limit - config.election_tick)
    assert not range_info(peer).down_peer_ids, "silent, but not for long enough yet"
    tick(cluster, 2 * config.election_tick)
    assert list(range_info(peer).down_peer_ids) == [victim_peer]
    cluster.heal()
    tick(cluster, 2 * config.heartbeat_tick)
    assert not range_info(peer).down_peer_ids, "heard from again: up"

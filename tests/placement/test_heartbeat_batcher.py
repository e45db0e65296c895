"""Which ranges a store's batched heartbeat carries (``kvdb.server.pd_worker.HeartbeatBatcher``):
changed ones, all after a possible loss, and each unchanged one every FULL_REPORT_INTERVALS."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import pytest

from kvdb.pb import metapb_pb2, pdpb_pb2
from kvdb.server import pd_worker
from kvdb.server.pd_worker import FULL_REPORT_INTERVALS, HeartbeatBatcher

SILENT: dict[int, int] = {}
"""Store id -> ticks since store 7 last heard from it (0 unless set)."""
STORE = SimpleNamespace(store_id=7, config=SimpleNamespace(election_tick=10),
                        hibernation=SimpleNamespace(silent_ticks=lambda store_id: SILENT.get(store_id, 0)))
"""What ``down_peer_ids`` reads of the leaders' store (store 7; replicas on stores 7, 8, 9)."""


@dataclass(eq=False)
class FakeLeader:
    """What ``HeartbeatBatcher`` and the fake ``range_info`` read of a leader ``Peer``."""

    range_id: int
    term: int = 1
    conf_ver: int = 1
    naps: int = 0
    store = STORE

    @property
    def desc(self) -> metapb_pb2.RangeDescriptor:
        epoch = metapb_pb2.RangeEpoch(conf_ver=self.conf_ver)
        peers = [metapb_pb2.Peer(id=10 * self.range_id + s, store_id=s) for s in (7, 8, 9)]
        return metapb_pb2.RangeDescriptor(id=self.range_id, epoch=epoch, peers=peers)

    @property
    def raw(self) -> SimpleNamespace:
        return SimpleNamespace(raft=SimpleNamespace(term=self.term))


BUILT: list[int] = []
"""Range ids whose report was built (range_info called), for the test to inspect."""


@pytest.fixture(autouse=True)
def fake_range_info(monkeypatch: pytest.MonkeyPatch) -> None:
    def info(peer: FakeLeader) -> pdpb_pb2.RangeInfo:
        BUILT.append(peer.range_id)
        return pdpb_pb2.RangeInfo(descriptor=peer.desc, term=peer.term,
                                  down_peer_ids=pd_worker.down_peer_ids(peer))

    BUILT.clear()
    SILENT.clear()
    monkeypatch.setattr(pd_worker, "range_info", info)


def carried(batcher: HeartbeatBatcher, leaders: list[FakeLeader], losses: int = 0) -> set[int]:
    request = batcher.next_request(leaders, losses)
    assert request.store_id == 7
    return {info.descriptor.id for info in request.ranges}


def test_unchanged_ranges_are_reported_once_per_full_report_interval() -> None:
    leaders = [FakeLeader(i) for i in range(1, 101)]
    batcher = HeartbeatBatcher(7)
    assert carried(batcher, leaders) == set(range(1, 101)), "the first report carries every range"
    seen: list[int] = []
    for _ in range(FULL_REPORT_INTERVALS):
        ids = carried(batcher, leaders)
        assert len(ids) == 100 // FULL_REPORT_INTERVALS, "unchanged ranges are spread over the intervals"
        seen += ids
    assert sorted(seen) == list(range(1, 101)), "each unchanged range once per FULL_REPORT_INTERVALS"


def test_changes_losses_and_regained_leadership_are_reported_at_once() -> None:
    leaders = [FakeLeader(i) for i in range(1, 21)]
    batcher = HeartbeatBatcher(7)
    carried(batcher, leaders)
    leaders[4].term = 2
    assert 5 in carried(batcher, leaders)
    assert 5 not in carried(batcher, leaders), "reported once, not again while unchanged"
    assert carried(batcher, leaders, losses=1) == set(range(1, 21)), "a lost stream: report everything"
    carried(batcher, leaders[1:], losses=1)  # range 1's leadership moved away ...
    assert 1 in carried(batcher, leaders, losses=1)  # ... and came back: PD may hold another leader


def test_a_hibernated_leaders_report_is_reused_not_rebuilt() -> None:
    leaders = [FakeLeader(i) for i in range(1, 21)]
    batcher = HeartbeatBatcher(7)
    carried(batcher, leaders)
    asleep = set(leaders[:10])
    BUILT.clear()
    seen = set()
    for _ in range(FULL_REPORT_INTERVALS):
        request = batcher.next_request(leaders, 0, asleep)
        seen |= {info.descriptor.id for info in request.ranges}
    assert seen == set(range(1, 21)), "hibernated ranges are still reported when due"
    assert sorted(BUILT) == sorted(list(range(11, 21)) * FULL_REPORT_INTERVALS), "only awake ones rebuilt"
    assert not set(BUILT) & {p.range_id for p in asleep}
    BUILT.clear()
    first = HeartbeatBatcher(7).next_request(leaders, 0, asleep)
    assert len(first.ranges) == 20 and sorted(BUILT) == list(range(1, 21)), "nothing to reuse yet: built"


def test_a_change_made_just_before_falling_asleep_is_reported() -> None:
    """Reported at conf_ver 1, promoted a learner (conf_ver 2) and hibernated before the next
    heartbeat: the old report must not be reused (test_operators_flow_through_a_pd_leader_kill
    waited 30 s for PD to see the promotion)."""
    leaders = [FakeLeader(i) for i in range(1, 4)]
    batcher = HeartbeatBatcher(7)
    carried(batcher, leaders)
    leaders[1].conf_ver = 2
    leaders[2].term = 2
    request = batcher.next_request(leaders, 0, set(leaders))
    sent = {(i.descriptor.id, i.descriptor.epoch.conf_ver, i.term) for i in request.ranges}
    assert {(2, 2, 1), (3, 1, 2)} <= sent


def test_a_sleeping_range_is_compared_once_per_nap(monkeypatch: pytest.MonkeyPatch) -> None:
    """The comparison costs a store most of its idle CPU with 10,000 hibernated ranges, and nothing
    changes a range while it sleeps; a change made before the next nap is still caught."""
    import kvdb.server.pd_worker as pd_worker

    compared: list[int] = []
    fingerprint = pd_worker._fingerprint
    monkeypatch.setattr(pd_worker, "_fingerprint",
                        lambda p, down: compared.append(p.range_id) or fingerprint(p, down))
    leaders = [FakeLeader(i, naps=1) for i in range(1, 4)]
    batcher = HeartbeatBatcher(7)
    carried(batcher, leaders)
    compared.clear()
    for _ in range(5):
        batcher.next_request(leaders, 0, set(leaders))
    assert sorted(compared) == [1, 2, 3], "one comparison per range in one nap"
    leaders[0].conf_ver, leaders[0].naps = 2, 2  # woke, changed, and fell asleep again
    request = batcher.next_request(leaders, 0, set(leaders))
    assert (1, 2) in {(i.descriptor.id, i.descriptor.epoch.conf_ver) for i in request.ranges}


def test_a_sleeping_ranges_report_follows_its_stores_silence() -> None:
    """A store falling silent changes no sleeping range (nothing wakes it), but their reports must
    name its replicas down, and drop them once it speaks again."""
    leaders = [FakeLeader(i, naps=1) for i in range(1, 4)]
    batcher = HeartbeatBatcher(7)
    carried(batcher, leaders)
    batcher.next_request(leaders, 0, set(leaders))
    limit = pd_worker.PEER_DOWN_ELECTIONS * STORE.config.election_tick
    SILENT[9] = limit  # not yet
    assert not batcher.next_request(leaders, 0, set(leaders)).ranges
    SILENT[9] = limit + 1
    request = batcher.next_request(leaders, 0, set(leaders))
    assert {i.descriptor.id: list(i.down_peer_ids) for i in request.ranges} == {1: [19], 2: [29], 3: [39]}
    assert not batcher.next_request(leaders, 0, set(leaders)).ranges, "reported once"
    SILENT[9] = 0
    request = batcher.next_request(leaders, 0, set(leaders))
    assert {i.descriptor.id: list(i.down_peer_ids) for i in request.ranges} == {1: [], 2: [], 3: []}

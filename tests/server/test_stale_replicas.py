"""Which replicas a store asks PD about (``LeaderlessReplicas``): only those that stay leaderless."""

from __future__ import annotations

from types import SimpleNamespace

from kvdb.server.pd_worker import LEADERLESS_CHECKS, MAX_STALE_QUERIES, LeaderlessReplicas


def peer(range_id: int, lead: int, initialized: bool = True) -> SimpleNamespace:
    return SimpleNamespace(range_id=range_id, initialized=initialized,
                           raw=SimpleNamespace(raft=SimpleNamespace(lead=lead)))


def test_only_replicas_leaderless_for_enough_checks_are_due_and_a_leader_resets_the_count() -> None:
    tracker = LeaderlessReplicas()
    lonely, led, empty = peer(1, 0), peer(2, 7), peer(3, 0, initialized=False)
    for _ in range(LEADERLESS_CHECKS - 1):
        assert tracker.due([lonely, led, empty]) == []
    assert tracker.due([lonely, led, empty]) == [1]
    assert tracker.due([lonely]) == []  # asked; again only after as many checks more
    lonely.raw.raft.lead = 5
    tracker.due([lonely])
    lonely.raw.raft.lead = 0
    assert all(tracker.due([lonely]) == [] for _ in range(LEADERLESS_CHECKS - 1))
    assert tracker.due([lonely]) == [1]


def test_a_store_cut_off_from_everyone_asks_about_a_bounded_number_per_check() -> None:
    tracker = LeaderlessReplicas()
    peers = [peer(i, 0) for i in range(1, 100)]
    for _ in range(LEADERLESS_CHECKS - 1):
        assert tracker.due(peers) == []
    asked: list[int] = []
    while len(asked) < len(peers):
        due = tracker.due(peers)
        assert 0 < len(due) <= MAX_STALE_QUERIES
        asked += due
    assert sorted(asked) == [p.range_id for p in peers]  # each in turn, none starved

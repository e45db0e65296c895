"""Which replicas a store asks PD about (``LeaderlessReplicas``): only those that stay leaderless."""

from __future__ import annotations

from types import SimpleNamespace

from kvdb.server.pd_worker import ASLEEP_CHECKS, LEADERLESS_CHECKS, MAX_STALE_QUERIES, LeaderlessReplicas


def peer(range_id: int, lead: int, initialized: bool = True, elapsed: int = 0,
         leader: bool = False) -> SimpleNamespace:
    raft = SimpleNamespace(lead=lead, election_elapsed=elapsed, election_timeout=10)
    return SimpleNamespace(range_id=range_id, initialized=initialized, is_leader=leader,
                           raw=SimpleNamespace(raft=raft))


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


def test_a_replica_naming_a_leader_it_has_not_heard_from_for_long_counts_as_leaderless() -> None:
    """A learner removed while away never campaigns and keeps naming its old leader."""
    tracker = LeaderlessReplicas()
    stale, fresh = peer(1, 7, elapsed=20), peer(2, 7, elapsed=19)
    for _ in range(LEADERLESS_CHECKS - 1):
        assert tracker.due([stale, fresh]) == []
    assert tracker.due([stale, fresh]) == [1]


def test_asleep_followers_are_asked_about_rarely_and_in_turn() -> None:
    """An asleep follower hears nothing of its range: once per ASLEEP_CHECKS each, staggered by
    range id; an asleep leader knows its membership and is never asked about."""
    tracker = LeaderlessReplicas()
    followers = [peer(i, 7) for i in range(1, 11)]
    sleeping_leader = peer(11, 11, leader=True)
    asleep = {*map(id, followers), id(sleeping_leader)}

    class Asleep:
        def __contains__(self, p: object) -> bool:
            return id(p) in asleep

    asked: list[int] = []
    for _ in range(ASLEEP_CHECKS):
        due = tracker.due([*followers, sleeping_leader], Asleep())
        assert len(due) <= 1
        asked += due
    assert sorted(asked) == list(range(1, 11))

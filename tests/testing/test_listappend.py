"""The list-append checker: one planted history per anomaly class, and SI histories from a model.

The hand-made histories are the smallest that show each class; the model (a snapshot-isolation
store with first-committer-wins, interleaving many transactions) produces valid SI histories
that must come out clean except for G2, and, with one rule of SI planted wrong, histories the
checker must flag.
"""

from __future__ import annotations

import random

import pytest

from kvdb.testing.listappend import (
    RW,
    WR,
    WW,
    IsolationError,
    Txn,
    assert_snapshot_isolation,
    check,
)


def a(key: str, value: int) -> tuple:
    return ("append", key, value)


def r(key: str, *values: int) -> tuple:
    return ("r", key, list(values))


def txn(tid: int, *ops: tuple, outcome: str = "ok") -> Txn:
    return Txn(tid, tuple(ops), outcome)


def kinds(history: list[Txn]) -> set[str]:
    return {found.kind for found in check(history)}


def only(history: list[Txn], kind: str):
    found = check(history)
    assert [f.kind for f in found] == [kind], [f.explain() for f in found]
    return found[0]


def test_g0_write_cycle() -> None:
    found = only([txn(1, a("x", 1), a("y", 1)), txn(2, a("x", 2), a("y", 2)),
                  txn(3, r("x", 1, 2), r("y", 2, 1))], "G0")
    assert {(e.src, e.dst, e.kind) for e in found.edges} == {(1, 2, WW), (2, 1, WW)}
    assert found.si_forbidden and set(found.txns) == {1, 2}


def test_g1c_circular_information_flow() -> None:
    found = only([txn(1, a("x", 1), r("y", 1)), txn(2, a("y", 1), r("x", 1))], "G1c")
    assert {(e.src, e.dst, e.kind) for e in found.edges} == {(1, 2, WR), (2, 1, WR)}


def test_g_single_read_skew() -> None:
    found = only([txn(1, a("x", 1), a("y", 1)), txn(2, r("x"), r("y", 1)), txn(3, r("x", 1))], "G-single")
    assert sorted(e.kind for e in found.edges) == [RW, WR]
    assert "x" in found.explain() and "came next" in found.explain()


def test_g_nonadjacent_is_forbidden_under_si() -> None:
    history = [txn(1, r("a"), r("d", 1)), txn(2, a("a", 1), a("b", 1)), txn(3, r("b", 1), r("c")),
               txn(4, a("c", 1), a("d", 1)), txn(5, r("a", 1), r("c", 1))]
    found = only(history, "G-nonadjacent")
    assert [e.kind for e in found.edges].count(RW) == 2 and found.si_forbidden
    with pytest.raises(IsolationError, match="G-nonadjacent"):
        assert_snapshot_isolation(history)


def test_write_skew_is_g2_and_allowed_under_si() -> None:
    history = [txn(1, r("x"), r("y"), a("x", 1)), txn(2, r("x"), r("y"), a("y", 1)),
               txn(3, r("x", 1), r("y", 1))]
    found = only(history, "G2")
    assert [e.kind for e in found.edges] == [RW, RW] and not found.si_forbidden
    assert assert_snapshot_isolation(history) == [found]


def test_lost_update() -> None:
    history = [txn(1, r("x"), a("x", 1)), txn(2, r("x"), a("x", 2)), txn(3, r("x", 1, 2))]
    found = kinds(history)
    assert "lost-update" in found and "G-single" in found  # T2 read [] and was overwritten: the cycle
    with pytest.raises(IsolationError, match="lost-update"):
        assert_snapshot_isolation(history)


def test_g1a_aborted_read() -> None:
    found = only([txn(1, a("x", 1), outcome="fail"), txn(2, r("x", 1))], "G1a")
    assert found.txns == (2, 1)


def test_g1b_intermediate_read() -> None:
    found = kinds([txn(1, a("x", 1), a("x", 2)), txn(2, r("x", 1)), txn(3, r("x", 1, 2))])
    assert "G1b" in found


def test_incompatible_orders() -> None:
    history = [txn(1, a("x", 1)), txn(2, a("x", 2)), txn(3, r("x", 1, 2)), txn(4, r("x", 2, 1))]
    assert "incompatible-order" in kinds(history)


def test_duplicates_and_garbage() -> None:
    assert kinds([txn(1, a("x", 1)), txn(2, r("x", 1, 1))]) == {"duplicates"}
    assert kinds([txn(1, r("x", 9))]) == {"garbage"}


def test_info_transactions_count_once_their_writes_are_seen() -> None:
    # T1's outcome is unknown, but T2 read its append: T1 committed and its read of y counts.
    history = [txn(1, a("x", 1), r("y", 1), outcome="info"), txn(2, a("y", 1), r("x", 1))]
    assert kinds(history) == {"G1c"}
    # Nobody saw T1's append: it may have aborted, and its read proves nothing.
    assert kinds([txn(1, a("x", 1), r("y", 1), outcome="info"), txn(2, a("y", 1), r("x"))]) == set()


def test_reads_of_failed_transactions_are_ignored() -> None:
    assert kinds([txn(1, a("x", 1)), txn(2, r("x", 5), outcome="fail"), txn(3, r("x", 1))]) == set()


def test_malformed_histories_are_refused() -> None:
    with pytest.raises(ValueError, match="twice"):
        check([txn(1, a("x", 1)), txn(2, a("x", 1))])
    with pytest.raises(ValueError, match="unique"):
        check([txn(1, a("x", 1)), txn(1, a("x", 2))])
    with pytest.raises(ValueError, match="outcome"):
        txn(1, a("x", 1), outcome="maybe")
    with pytest.raises(ValueError, match="micro-op"):
        txn(1, ("put", "x", 1))


# ------------------------------------------------------------------- histories from an SI model


def si_history(seed: int, txns: int = 300, keys: int = 4, concurrent: int = 5, bug: str = "") -> list[Txn]:
    """Interleaved transactions on a model SI store. Each sees the snapshot of its start plus its
    own appends and commits unless a key it appended to got a newer version meanwhile (first
    committer wins). ``bug``: "no-fcw" skips that check; "read-latest" reads the newest committed
    state instead of the snapshot. Some outcomes are reported as unknown, as a client would."""
    rng = random.Random(seed)
    versions: dict[str, list[tuple[int, tuple[int, ...]]]] = {f"k{i}": [(0, ())] for i in range(keys)}
    clock = 0
    next_value = 0
    history: list[Txn] = []
    active: list[dict] = []
    started = 0

    def visible(key: str, at: int) -> tuple[int, ...]:
        return [v for ts, v in versions[key] if ts <= at][-1]

    while started < txns or active:
        if started < txns and (len(active) < concurrent and rng.random() < 0.5 or not active):
            active.append({"id": started, "start": clock, "ops": [], "mine": {},
                           "left": rng.randint(1, 4)})
            started += 1
            continue
        t = rng.choice(active)
        if t["left"] == 0:
            active.remove(t)
            clock += 1
            conflict = any(versions[k][-1][0] > t["start"] for k in t["mine"])
            if conflict and bug != "no-fcw":
                outcome = "fail"
            else:
                outcome = "ok"
                for k, added in t["mine"].items():
                    versions[k].append((clock, versions[k][-1][1] + tuple(added)))
            if rng.random() < 0.1:
                outcome = "info"
            history.append(Txn(t["id"], tuple(t["ops"]), outcome))
            continue
        t["left"] -= 1
        key = f"k{rng.randrange(keys)}"
        if rng.random() < 0.5:
            base = visible(key, clock if bug == "read-latest" else t["start"])
            t["ops"].append(("r", key, list(base) + t["mine"].get(key, [])))
        else:
            next_value += 1
            t["mine"].setdefault(key, []).append(next_value)
            t["ops"].append(("append", key, next_value))
    clock += 1
    history.append(Txn("final", tuple(("r", k, list(versions[k][-1][1])) for k in versions), "ok"))
    return history


@pytest.mark.parametrize("seed", range(5))
def test_si_model_histories_show_only_what_si_allows(seed: int) -> None:
    history = si_history(seed)
    allowed = assert_snapshot_isolation(history)
    assert all(found.kind == "G2" for found in allowed)
    assert sum(t.outcome == "fail" for t in history) > 10  # the model did have conflicts to resolve


def test_si_model_produces_write_skew() -> None:
    assert any(found.kind == "G2" for seed in range(5) for found in check(si_history(seed)))


@pytest.mark.parametrize("bug,expected", [("no-fcw", "lost-update"), ("read-latest", "G-single")])
def test_planted_si_bugs_are_caught(bug: str, expected: str) -> None:
    history = si_history(0, bug=bug)
    with pytest.raises(IsolationError) as caught:
        assert_snapshot_isolation(history)
    assert expected in {found.kind for found in check(history) if found.si_forbidden}, str(caught.value)

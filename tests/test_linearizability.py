"""The linearizability checker: hand-written histories with a known verdict, plus histories recorded
from a real sequential register (always linearizable) and corruptions of them (never).

A checker that passes everything would make every cluster test built on it worthless, so each
family of violations has a test that must fail, and each family of valid concurrency one that
must pass.
"""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from kvdb.testing.linearizability import CheckResult, LinearizabilityError, Operation, check_history

K = b"k"


def get(client: int, invoke: float, complete: float | None, value: bytes | None, key: bytes = K) -> Operation:
    return Operation(client, "get", key, invoke, complete, value=value)


def put(client: int, invoke: float, complete: float | None, value: bytes, key: bytes = K) -> Operation:
    return Operation(client, "put", key, invoke, complete, value=value)


def delete(client: int, invoke: float, complete: float | None, key: bytes = K) -> Operation:
    return Operation(client, "delete", key, invoke, complete)


def cas(
    client: int,
    invoke: float,
    complete: float | None,
    expected: bytes | None,
    value: bytes,
    ok: bool | None,
    key: bytes = K,
) -> Operation:
    return Operation(client, "cas", key, invoke, complete, value=value, expected=expected, ok=ok)


def assert_linearizable(ops: list[Operation], initial: dict[bytes, bytes | None] | None = None) -> None:
    result = check_history(ops, initial)
    assert result.ok, result.explanation
    assert result.key is None
    result.raise_if_failed()


def assert_violation(ops: list[Operation], initial: dict[bytes, bytes | None] | None = None) -> CheckResult:
    result = check_history(ops, initial)
    assert not result.ok, f"expected a violation in {ops}"
    with pytest.raises(LinearizabilityError):
        result.raise_if_failed()
    return result


# -- random histories from a real register ------------------------------------------------------


def record_history(
    rng: random.Random,
    *,
    clients: int,
    ops_per_client: int,
    keys: list[bytes],
    values: list[bytes],
    indeterminate: float = 0.0,
) -> list[Operation]:
    """What clients of a correct store would record: each call takes effect at a random instant
    inside its interval, on a plain dict, so the history is linearizable by construction.

    A call that gets no answer takes effect half the time, possibly long after the client gave up
    on it and moved on (as a request stuck in a queue would).
    """
    calls = []
    for client in range(clients):
        t = rng.uniform(0.0, 1.0)
        for _ in range(ops_per_client):
            duration = rng.expovariate(1.0)
            call = {
                "client": client,
                "kind": rng.choice(("get", "get", "put", "cas", "delete")),
                "key": rng.choice(keys),
                "invoke": t,
                "complete": t + duration,
                "value": rng.choice(values),
                "expected": rng.choice([*values, None]),
            }
            at: float | None = rng.uniform(t, t + duration)
            if rng.random() < indeterminate:
                call["complete"] = None
                at = t + rng.uniform(0.0, 5 * duration) if rng.random() < 0.5 else None
            calls.append((at, call))
            t += duration + rng.expovariate(4.0)
    register: dict[bytes, bytes] = {}
    for _, call in sorted((c for c in calls if c[0] is not None), key=lambda c: c[0]):
        key, current = call["key"], register.get(call["key"])
        if call["kind"] == "get":
            call["value"] = current
        elif call["kind"] == "put":
            register[key] = call["value"]
        elif call["kind"] == "delete":
            register.pop(key, None)
        elif current == call["expected"]:
            register[key] = call["value"]
            call["ok"] = True
        else:
            call["ok"] = False
    ops = []
    for _, call in calls:
        if call["complete"] is None:
            call.pop("ok", None)
        elif call["kind"] != "cas":
            call.pop("expected")
        if call["kind"] == "delete":
            call.pop("value")
        ops.append(Operation(**call))
    return ops


@pytest.mark.parametrize("seed", range(200))
def test_recorded_histories_are_linearizable(seed: int) -> None:
    rng = random.Random(seed)
    ops = record_history(
        rng,
        clients=rng.randint(1, 6),
        ops_per_client=rng.randint(1, 12),
        keys=[b"x", b"y", b"z"][: rng.randint(1, 3)],
        values=[b"1", b"2", b"3"],
        indeterminate=rng.choice((0.0, 0.1, 0.3)),
    )
    result = check_history(ops)
    assert result.ok, result.explanation
    assert result.checked_ops == sum(1 for op in ops if op.kind != "get" or op.complete is not None)


def test_long_history_with_ten_concurrent_clients() -> None:
    ops = record_history(
        random.Random(7),
        clients=10,
        ops_per_client=200,
        keys=[K],
        values=[b"%d" % i for i in range(5)],
        indeterminate=0.02,
    )
    assert len(ops) == 2000
    assert_linearizable(ops)


@pytest.mark.parametrize("seed", range(50))
def test_a_read_of_a_value_never_written_is_caught(seed: int) -> None:
    rng = random.Random(seed)
    ops = record_history(rng, clients=4, ops_per_client=8, keys=[b"x", b"y"], values=[b"1", b"2"])
    reads = [n for n, op in enumerate(ops) if op.kind == "get" and op.complete is not None]
    victim = rng.choice(reads)
    ops[victim] = replace(ops[victim], value=b"never written")
    result = assert_violation(ops)
    assert result.key == ops[victim].key
    assert "never written" in result.explanation


def linearizable_by_enumeration(ops: list[Operation], initial: bytes | None) -> bool:
    """The definition, searched without memo or shortcuts, for one key: some order of the
    answered calls, plus any of the unanswered ones, respects real time and the register."""
    ops = [op for op in ops if op.kind != "get" or op.complete is not None]

    def extend(state: bytes | None, left: list[Operation]) -> bool:
        if all(op.complete is None for op in left):
            return True
        for op in left:
            if any(o.complete is not None and o.complete < op.invoke for o in left):
                continue  # something still unplaced answered before this was issued
            rest = [o for o in left if o is not op]
            if op.kind == "get":
                fits, after = state == op.value, state
            elif op.kind in ("put", "delete"):
                fits, after = True, op.value if op.kind == "put" else None
            elif op.ok is None or op.ok == (state == op.expected):
                fits, after = True, op.value if state == op.expected else state
            else:
                fits, after = False, state
            if fits and extend(after, rest):
                return True
        return False

    return extend(initial, ops)


def test_agrees_with_enumeration_on_arbitrary_small_histories() -> None:
    # Arbitrary answers, so both verdicts occur; integer times, so intervals often touch.
    rng = random.Random(2024)
    verdicts = {True: 0, False: 0}
    for _ in range(600):
        ops = []
        for client in range(rng.randint(1, 6)):
            invoke = rng.randint(0, 6)
            complete = None if rng.random() < 0.2 else invoke + rng.randint(0, 3)
            kind = rng.choice(("get", "put", "cas", "delete"))
            ok = None if kind != "cas" or complete is None else rng.random() < 0.5
            value = (
                None
                if kind == "delete"
                else rng.choice((None, b"a", b"b"))
                if kind == "get"
                else rng.choice((b"a", b"b"))
            )
            expected = rng.choice((None, b"a", b"b")) if kind == "cas" else None
            ops.append(Operation(client, kind, K, invoke, complete, value=value, expected=expected, ok=ok))
        initial = rng.choice((None, b"a"))
        expected_verdict = linearizable_by_enumeration(ops, initial)
        assert check_history(ops, {K: initial}).ok == expected_verdict, (initial, ops)
        verdicts[expected_verdict] += 1
    assert min(verdicts.values()) > 100, verdicts


# -- linearizable by hand -------------------------------------------------------------------------


def test_sequential_history() -> None:
    assert_linearizable(
        [
            get(0, 0, 1, None),
            put(0, 2, 3, b"a"),
            get(1, 4, 5, b"a"),
            cas(0, 6, 7, b"a", b"b", True),
            get(1, 8, 9, b"b"),
            delete(0, 10, 11),
            get(1, 12, 13, None),
        ]
    )


@pytest.mark.parametrize("seen", [b"old", b"new"])
def test_a_read_overlapping_a_write_may_see_either_value(seen: bytes) -> None:
    assert_linearizable([put(0, 0, 10, b"new"), get(1, 2, 3, seen)], initial={K: b"old"})


def test_intervals_that_only_touch_count_as_concurrent() -> None:
    # The put's answer and the get's call carry the same timestamp: neither provably came first.
    assert_linearizable([put(0, 0, 5, b"new"), get(1, 5, 6, b"old")], initial={K: b"old"})


def test_cas_success_and_failure() -> None:
    assert_linearizable(
        [
            cas(0, 0, 1, None, b"a", True),
            cas(1, 2, 3, None, b"b", False),
            cas(1, 4, 5, b"a", b"b", True),
            cas(0, 6, 7, b"a", b"c", False),
            get(0, 8, 9, b"b"),
        ]
    )


def test_concurrent_cas_from_the_same_value_one_wins() -> None:
    assert_linearizable(
        [
            cas(0, 0, 5, b"0", b"1", True),
            cas(1, 1, 4, b"0", b"2", False),
            get(2, 6, 7, b"1"),
        ],
        initial={K: b"0"},
    )


def test_indeterminate_put_observed_later() -> None:
    assert_linearizable([put(0, 0, None, b"a"), get(1, 1, 2, None), get(1, 10, 11, b"a")])


def test_indeterminate_put_never_observed() -> None:
    assert_linearizable([put(0, 0, None, b"lost"), get(1, 1, 2, b"v"), get(1, 3, 4, b"v")], initial={K: b"v"})


def test_indeterminate_cas_may_have_taken_effect_or_not() -> None:
    took_effect = [put(0, 0, 1, b"a"), cas(0, 2, None, b"a", b"b", None), get(1, 3, 4, b"b")]
    did_not = [put(0, 0, 1, b"a"), cas(0, 2, None, b"a", b"b", None), get(1, 3, 4, b"a")]
    assert_linearizable(took_effect)
    assert_linearizable(did_not)


def test_indeterminate_get_constrains_nothing() -> None:
    result = check_history([put(0, 0, 1, b"a"), get(1, 2, None, b"garbage")])
    assert result.ok
    assert result.checked_ops == 1


def test_every_key_fine() -> None:
    assert_linearizable(
        [
            put(0, 0, 1, b"a", key=b"x"),
            put(1, 0, 1, b"b", key=b"y"),
            get(0, 2, 3, b"b", key=b"y"),
            get(1, 2, 3, b"a", key=b"x"),
            delete(2, 4, 5, key=b"x"),
            get(0, 6, 7, None, key=b"x"),
        ]
    )


# -- not linearizable -----------------------------------------------------------------------------


def test_stale_read_after_a_completed_put() -> None:
    result = assert_violation([put(0, 0, 1, b"new"), get(1, 2, 3, b"old")], initial={K: b"old"})
    assert result.key == K
    assert "get -> b'old'" in result.explanation


def test_reads_go_back_in_time() -> None:
    assert_violation(
        [put(0, 0, 10, b"new"), get(1, 1, 2, b"new"), get(2, 3, 4, b"old")],
        initial={K: b"old"},
    )


def test_cas_succeeds_against_a_value_already_overwritten() -> None:
    assert_violation([put(0, 0, 1, b"a"), put(0, 2, 3, b"b"), cas(1, 4, 5, b"a", b"c", True)])


def test_cas_fails_although_the_value_matched() -> None:
    assert_violation([put(0, 0, 1, b"a"), cas(1, 2, 3, b"a", b"c", False)])


def test_lost_write() -> None:
    assert_violation([put(0, 0, 1, b"a"), put(1, 2, 3, b"b"), get(2, 4, 5, b"a")])


def test_lost_update_both_cas_win_from_the_same_value() -> None:
    assert_violation(
        [cas(0, 0, 5, b"0", b"1", True), cas(1, 1, 4, b"0", b"2", True), get(2, 6, 7, b"2")],
        initial={K: b"0"},
    )


def test_indeterminate_put_cannot_take_effect_before_it_was_issued() -> None:
    assert_violation([get(1, 0, 1, b"early"), put(0, 2, None, b"early")])


def test_deleted_key_read_back() -> None:
    assert_violation([put(0, 0, 1, b"a"), delete(0, 2, 3), get(1, 4, 5, b"a")])


def test_only_the_bad_key_is_blamed() -> None:
    result = assert_violation(
        [
            put(0, 0, 1, b"a", key=b"good"),
            put(0, 0, 1, b"a", key=b"bad"),
            get(1, 2, 3, b"a", key=b"good"),
            put(0, 4, 5, b"b", key=b"bad"),
            get(1, 6, 7, b"a", key=b"bad"),
        ]
    )
    assert result.key == b"bad"
    assert "b'bad'" in result.explanation
    assert "b'good'" not in result.explanation


def test_explanation_shows_the_prefix_and_the_operation_that_cannot_be_placed() -> None:
    ops = [put(0, 0, 1, b"a"), put(1, 2, 3, b"b"), get(2, 4, 5, b"a")]
    explanation = check_history(ops).explanation
    assert "key b'k'" in explanation
    assert "Longest linearizable prefix: 2 operations, leaving the register at b'b'" in explanation
    assert "1. client 0: put b'a' [0, 1]" in explanation
    assert "2. client 1: put b'b' [2, 3]" in explanation
    assert explanation.endswith("Pending operations:\n  client 2: get -> b'a' [4, 5]")


def test_exhausting_max_states_is_inconclusive_not_a_pass() -> None:
    ops = [put(c, 0, 10, b"%d" % c) for c in range(8)] + [get(9, 11, 12, b"0")]
    assert check_history(ops).ok
    with pytest.raises(LinearizabilityError, match=r"key b'k': search inconclusive"):
        check_history(ops, max_states=10)


def test_malformed_operations_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown operation kind"):
        Operation(0, "append", K, 0, 1)
    with pytest.raises(ValueError, match="completes before it is invoked"):
        put(0, 2, 1, b"a")
    with pytest.raises(ValueError, match="reported outcome"):
        cas(0, 0, 1, None, b"a", None)

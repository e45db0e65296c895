"""Latches (kvdb.txn.latches): FIFO per key, all-or-wait, no deadlock, parked reads."""

from __future__ import annotations

from kvdb.txn.latches import Latch, Latches


def test_commands_on_shared_keys_hold_their_latches_one_at_a_time_in_arrival_order() -> None:
    latches = Latches()
    held: list[str] = []

    def on(name: str):
        return lambda latch: held.append(name)

    a = latches.acquire([b"x", b"y"], on("a"))
    b = latches.acquire([b"y", b"z"], on("b"))  # waits for a on y
    c = latches.acquire([b"z"], on("c"))  # waits for b on z, though z is free now: FIFO
    d = latches.acquire([b"w"], on("d"))  # shares nothing: at once
    assert held == ["a", "d"] and a.held and not b.held and not c.held
    latches.release(a)
    assert held == ["a", "d", "b"]
    latches.release(b)
    assert held == ["a", "d", "b", "c"]
    for latch in (c, d):
        latches.release(latch)
        latches.release(latch)  # twice: nothing
    assert len(latches) == 0


def test_opposite_key_orders_never_deadlock() -> None:
    latches = Latches()
    held: list[Latch] = []
    first = latches.acquire([b"b", b"a"], held.append)
    second = latches.acquire([b"a", b"b"], held.append)
    assert held == [first]
    latches.release(first)
    assert held == [first, second]


def test_a_read_waits_only_for_a_held_stamped_latch_on_its_keys_or_bounds() -> None:
    latches = Latches()
    plain = latches.acquire([b"k1"], lambda latch: None)
    stamped = latches.acquire([b"k2"], latches.stamp)
    assert latches.blocking_read({b"k1"}) is None  # not stamped: its command takes no ts from reads
    assert latches.blocking_read({b"k2"}) is stamped
    assert latches.blocking_read(bounds=(b"k", b"k3")) is stamped
    assert latches.blocking_read(bounds=(b"k3", b"k4")) is None
    ran: list[str] = []
    latches.park(stamped, lambda: ran.append("read"))
    latches.release(plain)
    assert ran == []
    latches.release(stamped)
    assert ran == ["read"] and latches.blocking_read({b"k2"}) is None

"""``free_ports``: the ports children of tests, the playground and the benchmarks listen on.

A port from the kernel's ephemeral range can be taken by any outgoing connection between the
pick and the child's bind (a CI run lost a store that way), so picks stay below that range."""

from __future__ import annotations

import socket

from kvdb import playground
from kvdb.playground import FREE_PORT_FLOOR, free_ports


def _ephemeral_range() -> tuple[int, int]:
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        low, high = f.read().split()
    return int(low), int(high)


def test_ports_are_below_the_ephemeral_range_and_never_handed_out_twice() -> None:
    low, _ = _ephemeral_range()
    seen: list[int] = []
    for n in (1, 5, 3, 6):
        seen += free_ports(n)
    assert all(FREE_PORT_FLOOR <= port < low for port in seen), seen
    assert len(set(seen)) == len(seen), seen


def test_a_port_in_use_is_skipped_and_breaks_a_consecutive_run() -> None:
    nxt = free_ports(1)[0] + 1  # where the walk goes next (unless it wraps, then this is unused)
    taken = socket.socket()
    try:
        taken.bind(("127.0.0.1", nxt + 2))
        taken.listen()
        ports = free_ports(4, consecutive=True)
        assert nxt + 2 not in ports
        assert ports == list(range(ports[0], ports[0] + 4))
        for port in free_ports(3):
            assert port != nxt + 2
    finally:
        taken.close()


def test_the_walk_wraps_around_to_the_bottom_of_the_range(monkeypatch) -> None:
    low, _ = _ephemeral_range()
    monkeypatch.setattr(playground, "_next_free_port", low - 2)
    ports = free_ports(3, consecutive=True)
    assert ports == list(range(ports[0], ports[0] + 3))
    assert all(FREE_PORT_FLOOR <= port < FREE_PORT_FLOOR + 100 for port in ports), ports

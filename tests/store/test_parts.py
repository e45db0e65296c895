"""The store's small parts: lease arithmetic, the skewable clock, key bounds."""

from __future__ import annotations

import pytest

from kvdb.pb import metapb_pb2
from kvdb.store import keyspace
from kvdb.store.clock import SkewedClock
from kvdb.store.config import StoreConfig
from kvdb.store.lease import Lease
from tests.store.local_cluster import ManualClock


def test_lease_runs_from_the_send_time_of_the_acknowledged_round() -> None:
    lease = Lease(span=0.4)
    lease.round_started(term=3, round_=5, now=10.0)
    lease.round_started(term=3, round_=6, now=10.1)
    assert not lease.valid(3, 10.0)  # started, not acknowledged
    lease.round_acked(term=3, round_=5)
    assert lease.valid(3, 10.39) and not lease.valid(3, 10.4)
    lease.round_acked(term=3, round_=7)  # an unreported round 7 began after round 6 was reported
    assert lease.valid(3, 10.49) and not lease.valid(3, 10.5)
    assert not lease.valid(4, 10.2)  # another term's lease is no lease


def test_lease_never_moves_back_and_expires_on_demand() -> None:
    lease = Lease(span=1.0)
    lease.round_started(1, 2, now=5.0)
    lease.round_acked(1, 2)
    lease.round_acked(1, 1)  # an older round: nothing started before it is known
    assert lease.remaining(1, 5.5) == pytest.approx(0.5)
    lease.expire()
    assert not lease.valid(1, 5.1) and lease.remaining(1, 5.1) == 0.0


def test_lease_ignores_acks_of_an_older_term() -> None:
    lease = Lease(span=1.0)
    lease.round_started(2, 1, now=0.0)
    lease.round_acked(1, 1)
    assert not lease.valid(2, 0.1)


def test_skewed_clock_changes_rate_without_jumping() -> None:
    base = ManualClock()
    clock = SkewedClock(base)
    start = clock.now()
    base.t += 1.0
    clock.set_rate(2.0)
    assert clock.now() == pytest.approx(start + 1.0)
    base.t += 1.0
    assert clock.now() == pytest.approx(start + 3.0)
    clock.shift(-0.5)
    assert clock.now() == pytest.approx(start + 2.5)
    with pytest.raises(ValueError):
        clock.set_rate(0)


def test_keyspace_bounds() -> None:
    desc = metapb_pb2.RangeDescriptor(start_key=b"b", end_key=b"d")
    assert keyspace.contains(desc, b"b") and keyspace.contains(desc, b"c\xff")
    assert not keyspace.contains(desc, b"d") and not keyspace.contains(desc, b"a")
    assert keyspace.clip(desc, b"a", b"") == (b"b", b"d")
    assert keyspace.clip(desc, b"c", b"z") == (b"c", b"d")
    assert keyspace.clip(desc, b"d", b"e") is None
    unbounded = metapb_pb2.RangeDescriptor(start_key=b"m")
    assert keyspace.contains(unbounded, b"\xff" * 8192)
    assert keyspace.clip(unbounded, b"a", b"")[1] == keyspace.KEY_SPACE_END


def test_config_refuses_a_lease_that_outlasts_the_promise_minus_drift(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cfg = StoreConfig(tick_interval=0.2)
    cfg.validate()
    assert cfg.promise_span - cfg.lease_span == pytest.approx(cfg.max_clock_drift)
    with pytest.raises(ValueError, match="shorter than the election timeout"):
        StoreConfig(tick_interval=0.01, election_tick=10, max_clock_drift=0.1).validate()
    # Were the core's promise one interval shorter (the bug this check guards against), the
    # defaults would leave no margin at all for clock drift.
    monkeypatch.setattr("kvdb.store.config.promise_intervals", lambda election_tick: election_tick - 1)
    with pytest.raises(ValueError, match="less than max_clock_drift"):
        StoreConfig().validate()


def test_config_flow_control_defaults_and_refusals() -> None:
    cfg = StoreConfig()
    cfg.validate()
    assert cfg.max_inflight_bytes == 8 * cfg.max_size_per_msg
    assert cfg.max_uncommitted_entries_size == 4 * cfg.max_inflight_bytes
    with pytest.raises(ValueError, match="at least max_size_per_msg"):
        StoreConfig(max_inflight_bytes=1024).validate()
    with pytest.raises(ValueError, match="max_uncommitted_entries_size"):
        StoreConfig(max_uncommitted_entries_size=-1).validate()
    StoreConfig(max_inflight_bytes=0, max_uncommitted_entries_size=0).validate()  # 0: no limit

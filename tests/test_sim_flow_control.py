"""Flow control at the system level: a follower with a slow disk (it acknowledges appends late but
answers heartbeats at once, ``tests/sim/slow_disk.py``) falls ever further behind, yet what the
leader keeps in flight to it, and what it holds unwritten, stay within the configured window while
the other two commit. With the flow control of before issue 14 (entries on every heartbeat
response, no capacity check) the same run goes far past the window."""

from __future__ import annotations

import pytest

from kvdb.raft import progress as progress_module
from tests.sim.slow_disk import PROPOSALS_PER_TICK, FlowLimits, SlowDisk, run_slow_disk_follower

TICKS = 1000
LIMITS = FlowLimits(max_size_per_msg=1024, max_inflight_msgs=8, max_inflight_bytes=4096)
# 20 µs a byte: 50 bytes a millisecond against the ~85 the leader proposes (4 x 212 bytes a tick).
DISK = SlowDisk(base_us=1_000, us_per_byte=20.0)


def assert_bounded(seed: int) -> None:
    run = run_slow_disk_follower(seed, TICKS, LIMITS, DISK)
    # The others commit (nearly) everything proposed; the slow follower lags far behind.
    assert run.committed >= run.proposed - 2 * PROPOSALS_PER_TICK, run
    assert run.slow_match < run.committed * 3 // 4, f"the disk is not slow enough to test anything: {run}"
    assert run.max_inflight_count <= LIMITS.max_inflight_msgs, f"window overfilled by count: {run}"
    # The byte limit is soft by one append: at most max_size_per_msg past it.
    bound = LIMITS.max_inflight_bytes + LIMITS.max_size_per_msg
    assert run.max_inflight_bytes <= bound, f"window overfilled by bytes: {run}"
    assert run.max_follower_unstable_bytes <= bound, f"the follower holds too much unwritten: {run}"
    full = (
        run.max_inflight_count == LIMITS.max_inflight_msgs
        or run.max_inflight_bytes >= LIMITS.max_inflight_bytes
    )
    assert full, f"the window was never full: {run}"


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_slow_disk_follower_stays_within_the_window(seed: int) -> None:
    assert_bounded(seed)


def _unchecked_add(self: progress_module.Inflights, last_index: int, size: int) -> None:
    self._queue.append((last_index, size))
    self.bytes += size


def test_the_old_flow_control_overfills_the_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """Planted: entries on every append (heartbeat responses un-pause a full window) and no
    capacity check on add, as before issue 14."""
    monkeypatch.setattr(progress_module.Progress, "can_send_entries", lambda self: True)
    monkeypatch.setattr(progress_module.Inflights, "add", _unchecked_add)
    with pytest.raises(AssertionError, match="window overfilled by count"):
        assert_bounded(1)

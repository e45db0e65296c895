"""The GC planner: chunks cover a range's keys exactly once, in order, never split one key's
versions, stay within the version budget (but for a single key holding more), and a raised safe
point, a split or a lost leadership are followed."""

from __future__ import annotations

import bisect
import random

import pytest

from kvdb.mvcc import keys
from kvdb.pb import metapb_pb2
from kvdb.storage.engine import CF_WRITE
from kvdb.txn.gc import GcPlanner
from tests.txn.harness import DELETE, LOCK, PUT, Db


def rng(range_id: int, start: bytes = b"", end: bytes = b"") -> metapb_pb2.RangeDescriptor:
    return metapb_pb2.RangeDescriptor(id=range_id, start_key=start, end_key=end)


class WriteCf:
    """A sorted ``write`` column family of version keys; counts the scans."""

    def __init__(self, versions: dict[bytes, int]) -> None:
        self.keys = sorted(keys.version_key(k, ts) for k, n in versions.items() for ts in range(1, n + 1))
        self.scans = 0

    def scan(self, start: bytes, end: bytes, limit: int) -> list[bytes]:
        self.scans += 1
        lo, hi = bisect.bisect_left(self.keys, start), bisect.bisect_left(self.keys, end)
        return self.keys[lo:min(hi, lo + limit)]


def collect(planner: GcPlanner, desc: metapb_pb2.RangeDescriptor, safe_point: int, cf: WriteCf) -> list:
    """Every command the planner hands out for ``desc``, each applied at once."""
    commands = []
    for _ in range(10_000):  # bounded: a planner that never finishes fails the test below
        cmd = planner.next_command(desc, safe_point, cf.scan)
        if cmd is None:
            return commands
        commands.append(cmd)
        planner.applied(desc.id, cmd)
    raise AssertionError("the planner never finished the range")


def user_key_in(cmd, key: bytes) -> bool:
    return cmd.start_key <= key and (not cmd.end_key or key < cmd.end_key)


@pytest.mark.parametrize("seed", range(20))
def test_chunks_tile_the_range_and_respect_the_budget(seed: int) -> None:
    r = random.Random(seed)
    versions = {bytes([r.randrange(256) for _ in range(r.randint(1, 3))]): r.choice([1, 1, 2, 5, 40])
                for _ in range(r.randint(0, 60))}
    bounds = sorted(r.sample(range(256), 2))
    desc = rng(1, bytes([bounds[0]]), r.choice([bytes([bounds[1]]), b""]))
    cf, budget = WriteCf(versions), r.choice([1, 3, 10, 1000])
    planner = GcPlanner(budget)
    commands = collect(planner, desc, 77, cf)
    assert all(c.safe_point == 77 for c in commands)
    # Contiguous, in order, from the range's start (the last one ends at the range's end, or
    # where no version follows).
    if commands:
        assert commands[0].start_key == desc.start_key
        for a, b in zip(commands, commands[1:], strict=False):
            assert a.end_key == b.start_key and a.start_key < a.end_key
    in_range = {k: n for k, n in versions.items()
                if desc.start_key <= k and (not desc.end_key or k < desc.end_key)}
    assert (not commands) == (not in_range)
    for key in in_range:
        owners = [c for c in commands if user_key_in(c, key)]
        assert len(owners) == 1, f"key {key!r} in {len(owners)} chunks"
    for cmd in commands:
        held = {k: n for k, n in in_range.items() if user_key_in(cmd, k)}
        assert sum(held.values()) <= budget or len(held) == 1, (cmd, held)
    assert planner.collected_at(1) == 77
    assert planner.due([desc], 77) == []


def test_a_key_with_more_versions_than_the_budget_is_a_chunk_alone() -> None:
    cf = WriteCf({b"a": 2, b"hot": 50, b"z": 1})
    commands = collect(GcPlanner(10), rng(1), 5, cf)
    spans = [(c.start_key, c.end_key) for c in commands]
    assert spans == [(b"", b"hot"), (b"hot", b"hot\x00"), (b"hot\x00", b"")]


def test_an_empty_range_is_done_without_a_command() -> None:
    planner, cf = GcPlanner(10), WriteCf({b"x": 3})
    assert planner.next_command(rng(1, b"a", b"m"), 9, cf.scan) is None
    assert planner.collected_at(1) == 9 and planner.due([rng(1, b"a", b"m")], 9) == []


def test_a_raised_safe_point_restarts_the_range_and_a_lower_one_is_not_due() -> None:
    planner, cf, desc = GcPlanner(2), WriteCf({b"a": 2, b"b": 2, b"c": 2}), rng(1)
    first = planner.next_command(desc, 10, cf.scan)
    planner.applied(1, first)
    assert planner.next_command(desc, 10, cf.scan).start_key == first.end_key
    # The safe point rises before the range is done: start over, at the new one.
    restarted = planner.next_command(desc, 20, cf.scan)
    assert (restarted.start_key, restarted.safe_point) == (b"", 20)
    planner.applied(1, first)  # a late answer for the old safe point moves nothing
    assert planner.next_command(desc, 20, cf.scan).start_key == b""
    collect(planner, desc, 20, cf)
    assert planner.due([desc], 20) == [] and planner.due([desc], 15) == []
    assert planner.due([desc], 21) == [desc] and planner.due([desc], 0) == []


def test_a_split_range_continues_within_its_new_bounds_and_in_progress_goes_first() -> None:
    planner, cf = GcPlanner(2), WriteCf({b"a": 2, b"b": 2, b"m": 2, b"n": 2})
    whole = rng(1)
    planner.applied(1, planner.next_command(whole, 10, cf.scan))  # [b"", b"b") done
    left, right = rng(1, b"", b"m"), rng(2, b"m", b"")
    assert planner.due([right, left], 10) == [left, right]
    rest_left = collect(planner, left, 10, cf)
    assert [(c.start_key, c.end_key) for c in rest_left] == [(b"b", b"m")]
    assert [(c.start_key, c.end_key) for c in collect(planner, right, 10, cf)] == [(b"m", b"n"), (b"n", b"")]


def test_forget_drops_ranges_no_longer_led() -> None:
    planner, cf = GcPlanner(2), WriteCf({b"a": 1})
    collect(planner, rng(1), 10, cf)
    planner.forget(keep=set())
    assert planner.collected_at(1) == 0 and planner.due([rng(1)], 10) == [rng(1)]


def test_a_zero_budget_is_refused() -> None:
    with pytest.raises(ValueError, match="versions_per_command must be positive"):
        GcPlanner(0)


@pytest.mark.parametrize("seed", range(15))
def test_collecting_in_chunks_leaves_what_one_command_over_the_range_leaves(seed: int) -> None:
    """The planner's chunks applied one by one (apply_txn's gc) against one GcCommand over the
    whole range, on the same random histories: the write column families end up identical (a
    planner that skipped a key between two chunks left its old versions: seeds 11, 12)."""
    r = random.Random(seed)
    desc = rng(1, b"b", r.choice([b"y", b""]))
    chunked, whole = Db(desc), Db(desc)
    now = 10
    for _ in range(r.randint(20, 120)):
        key = bytes([r.choice(b"bcdefz")]) * r.randint(1, 2)
        if not (desc.start_key <= key and (not desc.end_key or key < desc.end_key)):
            continue
        start, now = now, now + r.randint(1, 3)
        op = r.choice([PUT, PUT, DELETE, LOCK])
        for db in (chunked, whole):
            assert not db.prewrite(start, [(op, key, b"v%d" % start)]).errors
        if r.random() < 0.8:
            for db in (chunked, whole):
                assert not db.commit(start, [key], now).HasField("key_error")
        else:
            for db in (chunked, whole):
                assert not db.rollback(start, [key]).HasField("key_error")
        now += 1
    safe_point = r.randint(10, now)
    planner = GcPlanner(r.choice([1, 2, 5]))

    def scan(start: bytes, end: bytes, limit: int) -> list[bytes]:
        return [k for k, _ in chunked.engine.scan(CF_WRITE, start, end, limit)]

    for _ in range(10_000):
        cmd = planner.next_command(desc, safe_point, scan)
        if cmd is None:
            break
        chunked.gc(cmd.safe_point, cmd.start_key, cmd.end_key)
        planner.applied(desc.id, cmd)
    whole.gc(safe_point, desc.start_key, desc.end_key)
    assert chunked.raw_write_cf() == whole.raw_write_cf()

"""The ``write`` key encoding: order, round trips and range bounds (kvdb/mvcc/keys.py)."""

from __future__ import annotations

import random

import pytest

from kvdb.mvcc import keys
from kvdb.pb import metapb_pb2


def _random_key(rng: random.Random) -> bytes:
    return bytes(rng.choice([0, 1, 0xFF, 0x61]) for _ in range(rng.randrange(0, 5)))


@pytest.mark.parametrize("seed", range(5))
def test_version_keys_sort_by_user_key_then_newest_first(seed):
    rng = random.Random(seed)
    versions = {(_random_key(rng), rng.choice([0, 1, 2, 1 << 40, keys.MAX_TS])) for _ in range(300)}
    by_encoding = sorted(versions, key=lambda v: keys.version_key(*v))
    assert by_encoding == sorted(versions, key=lambda v: (v[0], -v[1]))
    for key, ts in versions:
        vkey = keys.version_key(key, ts)
        assert keys.split_version_key(vkey) == (key, ts) and keys.version_ts(vkey) == ts
        start, end = keys.versions_of(key)
        assert start <= vkey < end


@pytest.mark.parametrize("seed", range(5))
def test_a_ranges_version_bounds_hold_exactly_its_keys_versions(seed):
    rng = random.Random(seed)
    for _ in range(200):
        lo, hi = sorted([_random_key(rng), _random_key(rng)])
        desc = metapb_pb2.RangeDescriptor(start_key=lo, end_key=hi)
        vstart, vend = keys.version_bounds(desc)
        key, ts = _random_key(rng), rng.choice([0, 7, keys.MAX_TS])
        inside = lo <= key and (not hi or key < hi)
        assert (vstart <= keys.version_key(key, ts) < vend) == inside, (lo, hi, key)


def test_unescape_refuses_what_escape_never_produces():
    with pytest.raises(ValueError, match="not an escaped key"):
        keys.unescape(b"abc")

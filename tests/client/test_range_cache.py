"""The range cache with fake descriptors: lookup by key and for reverse scans, and what a newer
descriptor evicts (a split, a merge) or does not (a stale PD answer)."""

from __future__ import annotations

from kvdb.client.cache import RangeCache
from kvdb.pb import metapb_pb2


def desc(range_id: int, start: bytes, end: bytes, version: int = 1, conf_ver: int = 1,
         stores: tuple[int, ...] = (1, 2, 3)) -> metapb_pb2.RangeDescriptor:
    return metapb_pb2.RangeDescriptor(
        id=range_id, start_key=start, end_key=end,
        epoch=metapb_pb2.RangeEpoch(conf_ver=conf_ver, version=version),
        peers=[metapb_pb2.Peer(id=range_id * 10 + s, store_id=s) for s in stores])


def ids(cache: RangeCache, keys: list[bytes]) -> list[int | None]:
    return [(r.id if (r := cache.find(k)) is not None else None) for k in keys]


def split_cache() -> RangeCache:
    cache = RangeCache()
    for d in (desc(1, b"", b"g"), desc(2, b"g", b"p"), desc(3, b"p", b"")):
        cache.insert(d)
    return cache


def test_find_uses_half_open_bounds() -> None:
    cache = split_cache()
    assert ids(cache, [b"", b"a", b"f\xff", b"g", b"o", b"p", b"\xff" * 9]) == [1, 1, 1, 2, 2, 3, 3]


def test_gaps_are_misses() -> None:
    cache = RangeCache()
    cache.insert(desc(2, b"g", b"p"))
    assert ids(cache, [b"a", b"g", b"p", b"z"]) == [None, 2, None, None]
    assert cache.find_before(b"") is None
    assert cache.find_before(b"g") is None
    assert cache.find_before(b"h").id == 2
    assert cache.find_before(b"p").id == 2
    assert cache.find_before(b"q") is None


def test_find_before_is_the_range_of_the_keys_just_below() -> None:
    cache = split_cache()
    assert cache.find_before(b"").id == 3
    assert cache.find_before(b"p").id == 2
    assert cache.find_before(b"p\x00").id == 3
    assert cache.find_before(b"g").id == 1
    assert cache.find_before(b"a").id == 1


def test_a_split_replaces_the_parent_and_a_merge_replaces_both_halves() -> None:
    cache = RangeCache()
    cache.insert(desc(1, b"", b""), leader_store=2)
    cache.insert(desc(1, b"", b"m", version=2))
    cache.insert(desc(4, b"m", b"", version=2))
    assert ids(cache, [b"a", b"m", b"z"]) == [1, 4, 4] and len(cache) == 2
    cache.insert(desc(1, b"", b"", version=3))
    assert ids(cache, [b"a", b"m", b"z"]) == [1, 1, 1] and len(cache) == 1


def test_an_older_descriptor_does_not_undo_a_newer_one() -> None:
    cache = RangeCache()
    cache.insert(desc(1, b"", b"m", version=2))
    cache.insert(desc(4, b"m", b"", version=2))
    kept = cache.insert(desc(1, b"", b"", version=1))  # PD has not heard of the split yet
    assert kept.descriptor.epoch.version == 2 and len(cache) == 2
    cache.insert(desc(1, b"", b"m", version=2, conf_ver=5))
    assert cache.insert(desc(1, b"", b"m", version=2, conf_ver=4)).descriptor.epoch.conf_ver == 5


def test_leader_hints_and_invalidation() -> None:
    cache = split_cache()
    cache.set_leader(2, 3)
    assert cache.find(b"h").leader_store == 3
    assert cache.find(b"h").store_ids() == [1, 2, 3]
    cache.invalidate(2)
    assert ids(cache, [b"a", b"h", b"q"]) == [1, None, 3]
    cache.invalidate(2)  # already gone: nothing to do
    cache.set_leader(2, 1)
    assert len(cache) == 2


def test_ranges_cached_in_any_order_are_all_found() -> None:
    """A range below every cached one used to be inserted second, unsorting the index (PD answers
    and stores' errors arrive in any order once there are many ranges)."""
    cache = RangeCache()
    for d in (desc(3, b"p", b""), desc(2, b"g", b"p"), desc(1, b"", b"g")):
        cache.insert(d)
    assert ids(cache, [b"a", b"h", b"q"]) == [1, 2, 3]
    cache.invalidate(1)
    cache.invalidate(3)
    assert ids(cache, [b"a", b"h", b"q"]) == [None, 2, None]
    assert cache.by_id(2).start == b"g"


def test_a_cached_descriptor_is_a_copy() -> None:
    cache = RangeCache()
    d = desc(1, b"", b"g")
    cache.insert(d)
    d.start_key = b"zz"
    assert ids(cache, [b"a"]) == [1]

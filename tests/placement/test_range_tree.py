"""PD's in-memory range tree: lookups by key and id, scans, and which report it trusts when a
split's halves (and deposed leaders) report in any order."""

from __future__ import annotations

import itertools
import random

from kvdb.pb import metapb_pb2, pdpb_pb2
from placement.range_tree import RangeTree


def info(range_id: int, start: bytes, end: bytes, version: int, conf_ver: int = 1, term: int = 0
         ) -> pdpb_pb2.RangeInfo:
    desc = metapb_pb2.RangeDescriptor(id=range_id, start_key=start, end_key=end,
                                      epoch=metapb_pb2.RangeEpoch(conf_ver=conf_ver, version=version))
    desc.peers.add(id=range_id * 10, store_id=1)
    return pdpb_pb2.RangeInfo(descriptor=desc, leader=desc.peers[0], term=term)


def report(tree: RangeTree, rng: pdpb_pb2.RangeInfo) -> bool:
    """What the PD service does with one report; True if the tree took it."""
    if tree.is_stale(rng):
        return False
    tree.put(rng)
    return True


def spans(tree: RangeTree) -> list[tuple[int, bytes, bytes]]:
    return [(r.descriptor.id, r.descriptor.start_key, r.descriptor.end_key) for r in tree.scan(b"")]


def test_lookups_by_key_and_id_and_scans() -> None:
    tree = RangeTree([info(3, b"m", b"", 2), info(1, b"", b"f", 2), info(2, b"f", b"m", 2)])
    assert spans(tree) == [(1, b"", b"f"), (2, b"f", b"m"), (3, b"m", b"")]
    keys = (b"", b"a", b"f", b"l\xff", b"m", b"\xff" * 9)
    assert [tree.find(k).descriptor.id for k in keys] == [1, 1, 2, 2, 3, 3]
    assert tree.get_by_id(2).descriptor.start_key == b"f" and tree.get_by_id(9) is None
    assert [r.descriptor.id for r in tree.scan(b"g")] == [2, 3]
    assert [r.descriptor.id for r in tree.scan(b"f", b"m")] == [2]  # end excluded
    assert [r.descriptor.id for r in tree.scan(b"e", b"f\x00")] == [1, 2]
    assert [r.descriptor.id for r in tree.scan(b"", b"", limit=2)] == [1, 2]
    assert tree.scan(b"m", b"m") == []  # an empty span overlaps nothing


def test_a_gap_finds_nothing() -> None:
    tree = RangeTree([info(1, b"", b"f", 2), info(3, b"m", b"", 2)])
    assert tree.find(b"g") is None
    assert [r.descriptor.id for r in tree.scan(b"g")] == [3]
    assert [r.descriptor.id for r in tree.scan(b"g", b"h")] == []


def test_a_child_reporting_before_its_parent_replaces_the_parents_old_record() -> None:
    """Parent 1 [a, z) v1 splits at m: 1 [a, m) v2 and 2 [m, z) v2. The child reports first."""
    tree = RangeTree([info(1, b"a", b"z", 1)])
    assert report(tree, info(2, b"m", b"z", 2))
    assert spans(tree) == [(2, b"m", b"z")], "the parent's wider, older record must go"
    assert tree.find(b"b") is None and tree.get_by_id(1) is None
    assert not report(tree, info(1, b"a", b"z", 1)), "the parent's old leader is stale against the child"
    assert report(tree, info(1, b"a", b"m", 2))
    assert spans(tree) == [(1, b"a", b"m"), (2, b"m", b"z")]
    assert not report(tree, info(1, b"a", b"z", 1, term=9)), "a higher term does not beat an older epoch"


def test_a_child_reporting_after_its_parent() -> None:
    tree = RangeTree([info(1, b"", b"", 1)])
    assert report(tree, info(1, b"", b"m", 2))
    assert spans(tree) == [(1, b"", b"m")]
    assert report(tree, info(2, b"m", b"", 2))
    assert spans(tree) == [(1, b"", b"m"), (2, b"m", b"")]


def test_same_epoch_older_term_is_stale_newer_term_wins() -> None:
    tree = RangeTree([info(1, b"", b"", 1, conf_ver=2, term=5)])
    assert not report(tree, info(1, b"", b"", 1, conf_ver=2, term=4))
    assert report(tree, info(1, b"", b"", 1, conf_ver=2, term=6))
    assert not report(tree, info(1, b"", b"", 1, conf_ver=1, term=7)), "older conf_ver"
    assert tree.get_by_id(1).term == 6


def test_rebuilt_from_records_in_any_order_keeps_the_newest() -> None:
    """Stored records may include a parent's old record the tree replaced only in memory (it is
    deleted in the same write, but a leader may have rebuilt before): the newest still win."""
    records = [info(1, b"", b"", 1), info(1, b"", b"g", 3), info(2, b"g", b"p", 3), info(3, b"p", b"", 3)]
    for order in itertools.permutations(records):
        tree = RangeTree(order)
        assert spans(tree) == [(1, b"", b"g"), (2, b"g", b"p"), (3, b"p", b"")], order


def test_every_report_order_of_two_splits_converges() -> None:
    """Range 1 [-inf, +inf) v1 splits at k (v2: 1, 2), then 2 splits at t (v3: 2, 3); every order
    of the five reports (and stale re-reports) ends with the true layout, never two ranges
    claiming one key."""
    final = [info(1, b"", b"k", 2), info(2, b"k", b"t", 3), info(3, b"t", b"", 3)]
    stale = [info(1, b"", b"", 1), info(2, b"k", b"", 2)]
    rnd = random.Random(7)
    for _ in range(300):
        reports = final + stale + [rnd.choice(stale)]
        rnd.shuffle(reports)
        tree = RangeTree([info(1, b"", b"", 1)])
        for r in reports:
            report(tree, r)
            layout = spans(tree)
            assert all(a[2] and a[2] <= b[1] for a, b in itertools.pairwise(layout)), layout
        assert spans(tree) == [(1, b"", b"k"), (2, b"k", b"t"), (3, b"t", b"")], reports

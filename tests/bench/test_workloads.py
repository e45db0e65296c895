"""Key distributions and operation mixes of the workloads."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from bench.workloads import (
    INSERT,
    READ,
    RMW,
    SCAN,
    TRANSFER,
    TXN,
    UPDATE,
    WORKLOADS,
    Generator,
    KeySpace,
    Latest,
    ScrambledZipfian,
    Uniform,
    Zipfian,
    key_of,
)

N = 1000
DRAWS = 50_000


def test_keys_sort_in_index_order() -> None:
    keys = [key_of(i) for i in (0, 9, 10, 99, 100, 123_456)]
    assert keys == sorted(keys)


def test_uniform_covers_the_key_space_evenly() -> None:
    gen = Uniform(N, random.Random(1))
    counts = Counter(gen.next() for _ in range(DRAWS))
    assert set(counts) == set(range(N))
    expected = DRAWS / N
    assert all(0.5 * expected < c < 1.6 * expected for c in counts.values())


@pytest.mark.parametrize("chooser", [Zipfian, ScrambledZipfian])
def test_zipfian_hottest_key_has_its_expected_share(chooser: type) -> None:
    gen = chooser(N, random.Random(2))
    counts = Counter(gen.next() for _ in range(DRAWS))
    assert all(0 <= k < N for k in counts)
    share = counts.most_common(1)[0][1] / DRAWS
    expected = 1 / sum(i ** -0.99 for i in range(1, N + 1))  # p(rank 1) = 1 / zeta(N, θ)
    assert 0.85 * expected < share < 1.15 * expected
    top10 = sum(c for _, c in counts.most_common(10)) / DRAWS
    assert top10 > 0.35  # skewed: 1% of the keys take over a third of the draws


def test_scrambling_spreads_the_hot_keys() -> None:
    gen = ScrambledZipfian(N, random.Random(3))
    hot = [k for k, _ in Counter(gen.next() for _ in range(DRAWS)).most_common(10)]
    assert max(hot) - min(hot) > N // 4  # not bunched at the start of the key space


def test_latest_favours_recent_inserts() -> None:
    keys = KeySpace(N)
    latest = Latest(keys, random.Random(4))
    for _ in range(100):
        keys.insert()
    draws = [latest.next() for _ in range(DRAWS)]
    assert all(0 <= k <= keys.newest for k in draws)
    recent = sum(k > keys.newest - 100 for k in draws) / DRAWS
    assert recent > 0.5
    assert Counter(draws).most_common(1)[0][0] == keys.newest


def test_inserts_of_different_processes_never_collide() -> None:
    spaces = [KeySpace(N, slot, 3) for slot in range(3)]
    inserted = [s.insert() for _ in range(50) for s in spaces]
    assert len(set(inserted)) == len(inserted) and min(inserted) == N


def test_generators_are_deterministic_by_seed() -> None:
    def ops(seed: int, slot: int) -> list[tuple[str, int, int]]:
        gen = Generator("ycsb-e", N, seed, slot, 2)
        return [(op.kind, op.key, op.scan_length) for op in (gen.next() for _ in range(500))]

    assert ops(7, 0) == ops(7, 0)
    assert ops(7, 0) != ops(8, 0) and ops(7, 0) != ops(7, 1)


@pytest.mark.parametrize("workload", sorted(WORKLOADS))
def test_operation_mix_matches_the_workload(workload: str) -> None:
    gen = Generator(workload, N, seed=0)
    ops = [gen.next() for _ in range(20_000)]
    counts = Counter(op.kind for op in ops)
    mix = WORKLOADS[workload]
    for kind, share in ((READ, mix.read), (UPDATE, mix.update), (INSERT, mix.insert), (SCAN, mix.scan),
                        (RMW, mix.rmw), (TRANSFER, mix.transfer), (TXN, mix.txn)):
        assert abs(counts[kind] / len(ops) - share) < 0.015, (kind, counts)
    for op in ops:
        assert op.key >= 0 and (op.kind == INSERT or op.key < N + len(ops))
        assert (op.kind == SCAN) == (op.scan_length > 0) and op.scan_length <= 100


@pytest.mark.parametrize("count", [1, 2, 3])
def test_tiny_key_spaces_work(count: int) -> None:
    for workload in WORKLOADS:
        if workload == "bank" and count < 2:  # a transfer needs two accounts
            with pytest.raises(ValueError, match="at least 2 accounts"):
                Generator(workload, count, seed=0)
            continue
        gen = Generator(workload, count, seed=0)
        for _ in range(200):
            op = gen.next()
            assert 0 <= op.key <= gen.keys.newest  # "latest" also reads this process's inserts
            assert op.key < count or op.kind == INSERT or workload == "ycsb-d"
            assert all(0 <= k < count for k in op.others)


def test_bank_transfers_and_txns_pick_distinct_keys() -> None:
    gen = Generator("bank", N, seed=0)
    transfers = [gen.next() for _ in range(2000)]
    assert all(op.kind == TRANSFER and len(op.others) == 1 and op.others[0] != op.key
               and 1 <= op.amount <= 10 for op in transfers)
    gen = Generator("txn", N, seed=0)
    sizes = Counter()
    for _ in range(2000):
        op = gen.next()
        keys = [op.key, *op.others]
        assert keys == sorted(set(keys))
        sizes[len(keys)] += 1
    assert set(sizes) == {1, 2, 3, 4}


def test_single_range_transfers_stay_in_one_pre_split_range() -> None:
    """--single-range: both accounts between the same two split keys (bench/splits.split_keys)."""
    from bench.splits import split_keys
    from bench.workloads import BANK_RANGES, workload_key

    cuts = [workload_key("bank", 0), *split_keys(N, BANK_RANGES, key=lambda i: workload_key("bank", i))]
    gen = Generator("bank", N, seed=0, groups=BANK_RANGES)
    for _ in range(2000):
        op = gen.next()
        src, dst = workload_key("bank", op.key), workload_key("bank", op.others[0])
        assert sum(c <= src for c in cuts) == sum(c <= dst for c in cuts)

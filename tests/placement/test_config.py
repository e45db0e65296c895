"""``set_setting``: what ``kvdb admin config set`` may change, and every refusal leaves the config
as it was (PD validates on a copy, then replicates, so a refusal here is what keeps a cluster
from running with an even replica count or a zero limit)."""

from __future__ import annotations

import pytest

from kvdb.pb import pdpb_pb2
from placement.config import effective, known_settings, set_setting, show_setting


def fresh() -> pdpb_pb2.ScheduleConfig:
    return effective(pdpb_pb2.ScheduleConfig(replica_count=3, max_range_size=96 << 20, store_down_ms=30_000,
                                             operator_timeout_ms=60_000))


@pytest.mark.parametrize(("key", "value", "expected"), [
    ("replica_count", "5", 5),
    ("max_range_size", "256KiB", 256 << 10),
    ("max_range_size", "1000", 1000),
    ("store_limit", " 2 ", 2),
    ("store_down_ms", "60000", 60_000),
    ("hot_bytes_per_sec", "1MiB", 1 << 20),
    ("location_labels", "zone, rack", ["zone", "rack"]),
    ("evict_leader_stores", "4,1", [4, 1]),
    ("paused_schedulers", "", []),
])
def test_good_values_are_set(key: str, value: str, expected: object) -> None:
    config = fresh()
    set_setting(config, key, value)
    got = getattr(config, key)
    assert (list(got) if isinstance(expected, list) else got) == expected
    again = fresh()
    set_setting(again, key, show_setting(config, key))  # what `config show` prints reads back the same
    assert again == config


@pytest.mark.parametrize(("key", "value", "words"), [
    ("replica_count", "4", "odd"),
    ("replica_count", "0", "positive"),
    ("replica_count", "three", "not a whole number"),
    ("store_limit", "0", "positive"),
    ("store_limit", "-2", "positive"),
    ("store_limit", "5000000000", "too large"),
    ("max_range_size", "0", "positive"),
    ("max_range_size", "12 parsecs", "not a size"),
    ("schedule_interval_ms", "1.5", "not a whole number"),
    ("evict_leader_stores", "1,x", "not a whole number"),
    ("evict_leader_stores", "1,1", "twice"),
    ("replicas", "3", "unknown setting 'replicas'; known: replica_count, max_range_size"),
])
def test_bad_values_are_refused_and_change_nothing(key: str, value: str, words: str) -> None:
    config = fresh()
    set_setting(config, "evict_leader_stores", "2")
    before = pdpb_pb2.ScheduleConfig()
    before.CopyFrom(config)
    with pytest.raises(ValueError, match=words):
        set_setting(config, key, value)
    assert config == before


def test_every_field_is_a_known_setting() -> None:
    assert set(known_settings()) == {f.name for f in pdpb_pb2.ScheduleConfig.DESCRIPTOR.fields}

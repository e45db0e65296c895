"""The cluster's schedule settings: defaults for settings a cluster's record leaves at zero.

``ScheduleConfig`` is replicated in ``ClusterMeta``; fields added after the first four are zero
in a record written by an older PD, and zero means "the default" for them (``effective``), so a
cluster keeps its behaviour across an upgrade without a migration.
"""

from __future__ import annotations

from kvdb.config_file import byte_size
from kvdb.pb import pdpb_pb2

DEFAULTS = {
    "store_limit": 4,
    "region_schedule_limit": 8,
    "leader_schedule_limit": 8,
    "hot_region_schedule_limit": 4,
    "balance_tolerance_percent": 5,
    "hot_bytes_per_sec": 64 << 10,
    "schedule_interval_ms": 200,
}
"""Defaults of the numeric settings that zero leaves unset."""


def effective(config: pdpb_pb2.ScheduleConfig) -> pdpb_pb2.ScheduleConfig:
    """A copy of ``config`` with every unset numeric setting at its default."""
    out = pdpb_pb2.ScheduleConfig()
    out.CopyFrom(config)
    for name, default in DEFAULTS.items():
        if not getattr(out, name):
            setattr(out, name, default)
    return out


SIZES = frozenset({"max_range_size", "hot_bytes_per_sec"})
"""Byte counts: ``96MiB`` or a plain number."""
LISTS = {"location_labels": str, "paused_schedulers": str, "evict_leader_stores": int}
"""Repeated settings, set as one comma-separated value (empty: none) and their item types."""


def known_settings() -> list[str]:
    return [f.name for f in pdpb_pb2.ScheduleConfig.DESCRIPTOR.fields]


def set_setting(config: pdpb_pb2.ScheduleConfig, key: str, value: str) -> None:
    """Set one setting of ``config`` from text, as ``kvdb admin config set KEY VALUE`` gives it;
    ValueError (``config`` unchanged) for an unknown key or a value the cluster could not run with.

    Numbers must be positive (zero would mean "the default" to ``effective``, a surprise for
    someone who typed 0), and the replica count odd: an even count buys no extra failure
    tolerance, so it is always a typo.
    """
    if key not in known_settings():
        raise ValueError(f"unknown setting {key!r}; known: {', '.join(known_settings())}")
    if key in LISTS:
        items = [item.strip() for item in value.split(",") if item.strip()]
        parsed = [_positive(key, item) if LISTS[key] is int else item for item in items]
        if len(set(parsed)) != len(parsed):
            raise ValueError(f"{key}: an item appears twice in {value!r}")
        del getattr(config, key)[:]
        getattr(config, key).extend(parsed)
        return
    if key in SIZES:
        try:
            number = byte_size(value)
        except ValueError as exc:
            raise ValueError(f"{key}: {exc}") from None
        if number <= 0:
            raise ValueError(f"{key} must be positive, got {value!r}")
    else:
        number = _positive(key, value)
    if key == "replica_count" and number % 2 == 0:
        raise ValueError(f"replica_count must be odd (an even count adds no failure tolerance), got {number}")
    field = pdpb_pb2.ScheduleConfig.DESCRIPTOR.fields_by_name[key]
    limit = (1 << 32) - 1 if field.type == field.TYPE_UINT32 else (1 << 64) - 1
    if number > limit:
        raise ValueError(f"{key}: {number} is too large (at most {limit})")
    setattr(config, key, number)


def _positive(key: str, text: str) -> int:
    try:
        number = int(text.strip())
    except ValueError:
        raise ValueError(f"{key}: not a whole number: {text!r}") from None
    if number <= 0:
        raise ValueError(f"{key} must be positive, got {number}")
    return number


def show_setting(config: pdpb_pb2.ScheduleConfig, key: str) -> str:
    """A setting as text, the way ``set_setting`` reads it back."""
    value = getattr(config, key)
    return ",".join(str(item) for item in value) if key in LISTS else str(value)

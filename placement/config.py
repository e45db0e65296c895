"""The cluster's schedule settings: defaults for settings a cluster's record leaves at zero.

``ScheduleConfig`` is replicated in ``ClusterMeta``; fields added after the first four are zero
in a record written by an older PD, and zero means "the default" for them (``effective``), so a
cluster keeps its behaviour across an upgrade without a migration.
"""

from __future__ import annotations

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

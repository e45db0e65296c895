"""Schedulers: what the cluster as a whole would be better with (balance, hot spots, maintenance),
as SCHEDULE-priority operators the coordinator hands to the operator controller."""

"""Prometheus metrics of a node (docs/operations.md, "Metrics").

Hot paths only bump plain counters and histograms kept in memory (``LatencyHistogram``, dicts
of ints); a collector turns them into metric families when Prometheus scrapes, on the node's
event loop, so a scrape sees a consistent state and a request pays no locks.
"""

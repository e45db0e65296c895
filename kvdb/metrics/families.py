"""Small helpers that build ``prometheus_client`` metric families from plain counters."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from kvdb.metrics.histogram import LatencyHistogram


def counter(name: str, doc: str, value: float) -> Metric:
    """``name`` without ``_total`` (the family adds it to the sample)."""
    return CounterMetricFamily(name, doc, value=value)


def gauge(name: str, doc: str, value: float) -> Metric:
    return GaugeMetricFamily(name, doc, value=value)


def labelled(kind: type[Metric], name: str, doc: str, labels: list[str],
             values: Iterable[tuple[tuple[str, ...], float]]) -> Metric:
    family = kind(name, doc, labels=labels)
    for label_values, value in values:
        family.add_metric(list(label_values), value)
    return family


def histograms(name: str, doc: str, label: str | None, hists: Mapping[str, LatencyHistogram]) -> Metric:
    """One histogram family; ``label`` names the key of ``hists`` (None: one unlabelled histogram
    under the key "")."""
    family = HistogramMetricFamily(name, doc, labels=[label] if label else [])
    for key, hist in sorted(hists.items()):
        buckets, total = hist.cumulative()
        family.add_metric([key] if label else [], buckets, total)
    return family

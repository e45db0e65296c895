"""A PD member's own metrics (TSO, heartbeats, operators, stores by state), read at scrape time
from counters the member keeps (``PdStats``) and from the leader's cluster model. A follower
reports its counters (they stay where they were) but no stores and no running operators: only
the leader's view is current."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from kvdb.metrics.families import counter, gauge, labelled
from kvdb.pb import pdpb_pb2
from placement.state import NotServingError

if TYPE_CHECKING:
    from placement.server import PdMember


@dataclass
class PdStats:
    tso_requests: int = 0
    tso_stamps: int = 0
    """Timestamps handed out (a request may ask for several)."""
    heartbeats: Counter[str] = field(default_factory=Counter)
    """"store" or "range" -> heartbeat messages handled as the leader."""
    retired_outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)
    """Finished operators of earlier controllers (each reload of the views builds a new one)."""


def pd_families(member: PdMember, now_ms: int) -> list[Metric]:
    stats = member.stats
    outcomes = stats.retired_outcomes + member.controller.outcomes
    try:
        member.state.check_serving()
        leader = True
    except NotServingError:
        leader = False
    running: Counter[str] = Counter(op.kind for op in member.controller.running()) if leader else Counter()
    states: Counter[str] = Counter()
    if leader:
        cluster = member.cluster
        states.update(pdpb_pb2.StoreState.Name(cluster.state(sid, now_ms)) for sid in cluster.stores)
    return [
        gauge("kvdb_pd_leader", "1 if this member is the serving PD leader", leader),
        counter("kvdb_pd_tso_requests", "TSO requests answered by this member", stats.tso_requests),
        counter("kvdb_pd_tso_stamps", "Timestamps handed out by this member", stats.tso_stamps),
        labelled(CounterMetricFamily, "kvdb_pd_heartbeats", "Heartbeats handled by this member as leader, "
                 "by kind (store, range)", ["kind"], sorted(((k,), v) for k, v in stats.heartbeats.items())),
        labelled(CounterMetricFamily, "kvdb_pd_operators", "Operators finished, by kind and outcome",
                 ["kind", "outcome"], sorted(outcomes.items())),
        labelled(GaugeMetricFamily, "kvdb_pd_operators_running", "Operators running now (leader only)",
                 ["kind"], sorted(((k,), v) for k, v in running.items())),
        labelled(GaugeMetricFamily, "kvdb_pd_stores", "Stores by state (leader only)", ["state"],
                 [((name,), states[name]) for name in pdpb_pb2.StoreState.keys()] if leader else []),
    ]

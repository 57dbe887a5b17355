"""Traffic findings told once: muted by the absolute finding they repeat, and by a down server."""

from __future__ import annotations

import sqlite3

from sentinel.base.clock import FakeClock
from sentinel.incidents.manager import IncidentManager
from sentinel.incidents.settings import IncidentSettings
from sentinel.vocabulary.findings import Finding, Severity, Subject


def _finding(kind: str, t: float, model: str | None = "digits") -> Finding:
    return Finding(kind, Severity.WARNING, Subject(model=model), t, t, kind)


def test_backlog_mutes_queue_buildup_of_the_same_model_only(
    conn: sqlite3.Connection, clock: FakeClock
) -> None:
    """An open backlog on a model mutes its queue_buildup, not another model's."""
    m = IncidentManager(conn, IncidentSettings(), "pod-a", clock)
    t = clock.now()
    [backlog] = m.ingest(_finding("backlog", t))
    [same] = m.ingest(_finding("queue_buildup", t + 1))
    [other] = m.ingest(_finding("queue_buildup", t + 1, model="bert"))
    assert (backlog.incident.id, None) == (same.incident.inhibited_by, other.incident.inhibited_by)


def test_error_burst_mutes_error_rate_rise(conn: sqlite3.Connection, clock: FakeClock) -> None:
    """The absolute error_burst mutes the relative error_rate_rise of the same model."""
    m = IncidentManager(conn, IncidentSettings(), "pod-a", clock)
    t = clock.now()
    [burst] = m.ingest(_finding("error_burst", t))
    [rise] = m.ingest(_finding("error_rate_rise", t + 1))
    assert burst.incident.id == rise.incident.inhibited_by


def test_server_down_mutes_traffic_findings(conn: sqlite3.Connection, clock: FakeClock) -> None:
    """A collapse of traffic while the server is down is the server's problem, told once."""
    m = IncidentManager(conn, IncidentSettings(), "pod-a", clock)
    t = clock.now()
    [down] = m.ingest(_finding("server_unhealthy", t, model=None))
    [collapse] = m.ingest(_finding("throughput_collapse", t + 1))
    assert down.incident.id == collapse.incident.inhibited_by


def test_traffic_latency_spike_is_not_muted_by_a_canary_latency_spike(
    conn: sqlite3.Connection, clock: FakeClock
) -> None:
    """Two latency views of one model both stay told (either may trigger the playbook)."""
    m = IncidentManager(conn, IncidentSettings(), "pod-a", clock)
    t = clock.now()
    m.ingest(_finding("latency_spike", t))
    [traffic] = m.ingest(_finding("traffic_latency_spike", t + 1))
    assert traffic.incident.inhibited_by is None

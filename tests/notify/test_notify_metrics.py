"""The stage's Prometheus metrics on an injected registry."""

from __future__ import annotations

import sqlite3

from prometheus_client import CollectorRegistry, generate_latest

from sentinel.base.clock import FakeClock
from sentinel.incidents.manager import IncidentManager
from sentinel.incidents.settings import IncidentSettings
from sentinel.incidents.store import IncidentStore
from sentinel.notify.settings import NotifySettings
from sentinel.notify.teller import build_notify
from sentinel.testing import Failure, PagerDutyServer, SlackServer, drain, finding
from sentinel.vocabulary.findings import Severity


def _value(registry: CollectorRegistry, name: str, labels: dict[str, str] | None = None) -> float:
    return registry.get_sample_value(name, labels or {}) or 0.0


async def test_delivery_outcomes_backlog_and_open_incidents(
    conn: sqlite3.Connection,
    clock: FakeClock,
    slack: SlackServer,
    pd: PagerDutyServer,
    notify_settings: NotifySettings,
) -> None:
    """Sent/failed counts per notifier, the outbox backlog and open incidents by kind."""
    registry = CollectorRegistry()
    stack = build_notify(
        conn,
        notify_settings,
        "pod-a",
        clock,
        registry=registry,
        open_incidents=IncidentStore(conn).open,
    )
    text = generate_latest(registry).decode()
    for name in (
        "sentinel_notifications_total",
        "sentinel_outbox_pending",
        "sentinel_incidents_open",
    ):
        assert f"# TYPE {name.removesuffix('_total')}" in text  # offered before any traffic
    manager = IncidentManager(conn, IncidentSettings(), "pod-a", clock)
    for model in ("resnet", "bert"):
        [opened] = manager.ingest(finding(model, clock.now()))
        await stack.teller.tell(opened)
    manager.ingest(finding("vit", clock.now(), kind="gpu_oom", severity=Severity.WARNING))
    assert stack.dispatcher.metrics is not None
    stack.dispatcher.metrics.refresh(conn)
    assert 4.0 == _value(registry, "sentinel_outbox_pending")
    slack.script = [Failure(429, retry_after=3)]
    await drain(stack.dispatcher, clock)
    stack.dispatcher.metrics.refresh(conn)
    await stack.dispatcher.stop()
    counts = [
        _value(registry, "sentinel_notifications_total", {"notifier": n, "outcome": o})
        for n, o in (("slack", "sent"), ("slack", "failed"), ("pagerduty", "sent"))
    ]
    assert [2.0, 1.0, 2.0] == counts
    assert 0.0 == _value(registry, "sentinel_outbox_pending")
    open_by_kind = [
        _value(registry, "sentinel_incidents_open", {"kind": k, "severity": s})
        for k, s in (("latency_spike", "critical"), ("gpu_oom", "warning"))
    ]
    assert [2.0, 1.0] == open_by_kind

"""Prometheus metrics of the remember/tell stages, on the injected registry.

``sentinel_notifications_total{notifier, outcome}`` counts delivery attempts
(outcome: sent, failed -- will retry, dead -- given up, reconciled -- found
after a crash); ``sentinel_outbox_pending`` and
``sentinel_incidents_open{kind, severity}`` are refreshed from SQLite by the
dispatcher loop (on the event loop, so the scrape thread never touches the
database connection).
"""

from __future__ import annotations

import sqlite3
from collections import Counter as Tally

from prometheus_client import CollectorRegistry, Counter, Gauge

from sentinel.vocabulary.ports import OpenIncidents


class NotifyMetrics:
    def __init__(
        self, registry: CollectorRegistry, open_incidents: OpenIncidents | None = None
    ) -> None:
        self._open_incidents = open_incidents
        self.notifications = Counter(
            "sentinel_notifications",
            "Notification delivery attempts by notifier and outcome "
            "(sent, failed: will retry, dead: given up, reconciled: found after a crash).",
            ["notifier", "outcome"],
            registry=registry,
        )
        self.outbox_pending = Gauge(
            "sentinel_outbox_pending",
            "Notifications queued in the durable outbox and not yet delivered.",
            registry=registry,
        )
        self.incidents_open = Gauge(
            "sentinel_incidents_open",
            "Open (firing or mitigating) incidents by kind and severity.",
            ["kind", "severity"],
            registry=registry,
        )

    def delivered(self, notifier: str, outcome: str) -> None:
        self.notifications.labels(notifier=notifier, outcome=outcome).inc()

    def refresh(self, conn: sqlite3.Connection) -> None:
        """Re-read the outbox backlog and open incidents (cheap: indexed queries)."""
        row = conn.execute(
            "SELECT COUNT(*) FROM outbox WHERE state IN ('pending', 'sending')"
        ).fetchone()
        self.outbox_pending.set(row[0])
        if self._open_incidents is None:
            return
        tally = Tally((i.kind, i.severity.value) for i in self._open_incidents())
        self.incidents_open.clear()
        for (kind, severity), n in tally.items():
            self.incidents_open.labels(kind=kind, severity=severity).set(n)

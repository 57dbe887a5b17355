"""Prometheus metrics of the remember/tell stages, on the injected registry.

``sentinel_notifications_total{notifier, outcome}`` counts delivery attempts
(outcome: sent, failed -- will retry, dead -- given up, reconciled -- found
after a crash); ``sentinel_outbox_pending``,
``sentinel_outbox_oldest_pending_age_seconds{notifier}`` (what the shipped
alert watches: pages stuck behind a notifier that cannot deliver) and
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
        self._age_labels: set[str] = set()
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
        self.oldest_pending_age = Gauge(
            "sentinel_outbox_oldest_pending_age_seconds",
            "Age of the oldest undelivered notification per notifier (0 when none waits).",
            ["notifier"],
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

    def refresh(self, conn: sqlite3.Connection, now: float | None = None) -> None:
        """Re-read the outbox backlog and open incidents (cheap: indexed queries)."""
        rows = conn.execute(
            "SELECT notifier, COUNT(*), MIN(created_at) FROM outbox"
            " WHERE state IN ('pending', 'sending') GROUP BY notifier"
        ).fetchall()
        self.outbox_pending.set(sum(r[1] for r in rows))
        if now is not None:
            ages = {r[0]: max(now - r[2], 0.0) for r in rows}
            # a notifier that caught up reads 0, not its last stuck age
            for gone in self._age_labels - ages.keys():
                self.oldest_pending_age.labels(notifier=gone).set(0.0)
            for notifier, age in ages.items():
                self.oldest_pending_age.labels(notifier=notifier).set(age)
            self._age_labels |= ages.keys()
        if self._open_incidents is None:
            return
        tally = Tally((i.kind, i.severity.value) for i in self._open_incidents())
        self.incidents_open.clear()
        for (kind, severity), n in tally.items():
            self.incidents_open.labels(kind=kind, severity=severity).set(n)

"""The audit trail: who did what to what, and how it went. Append-only SQLite table.

Callers never pass secrets in ``details``; tokens are not recorded, only the actor.

Bounded, so that no one can fill the disk through it (see :class:`AuditSettings`):
every field is cut to a fixed size, rows for refused (unauthenticated) requests
pass a token bucket (the dropped ones are counted and summed up in one row), and
old rows are pruned by age and by count as new ones arrive.
"""

from __future__ import annotations

import json
import sqlite3
import time
import weakref
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import CounterMetricFamily, Metric

from sentinel.base import db
from sentinel.base.db import AuditSettings

MIGRATIONS = [
    """
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at REAL NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        outcome TEXT NOT NULL,
        details TEXT NOT NULL
    );
    CREATE INDEX audit_at ON audit(at)
    """
]
db.register("audit", MIGRATIONS)

_MAX_DEPTH = 8

RATE_LIMITED_ACTION = "audit.rate_limited"
"""The action of the row that sums up refused-request rows the rate limit dropped."""


class AuditBounds:
    """One connection's limits and their running state (token bucket, prune countdown)."""

    def __init__(self, settings: AuditSettings) -> None:
        self.settings = settings
        self._tokens = float(settings.refused_burst)
        self._refilled_at: float | None = None
        self.dropped = 0
        """Refused-request rows dropped since the last summary row."""
        self.dropped_total = 0
        self._until_prune = 0

    def admit(self, now: float) -> bool:
        """Whether one more refused-request row may be recorded at ``now``."""
        s = self.settings
        if self._refilled_at is not None:
            elapsed = max(0.0, now - self._refilled_at)
            self._tokens = min(
                float(s.refused_burst), self._tokens + elapsed * s.refused_per_minute / 60.0
            )
        self._refilled_at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        self.dropped += 1
        self.dropped_total += 1
        return False

    def prune_due(self) -> bool:
        """Every ~1% of ``max_rows`` inserts (so the table overshoots by at most that)."""
        self._until_prune -= 1
        if self._until_prune > 0:
            return False
        self._until_prune = max(1, self.settings.max_rows // 100)
        return True


_bounds: weakref.WeakKeyDictionary[sqlite3.Connection, AuditBounds] = weakref.WeakKeyDictionary()


def configure(
    conn: sqlite3.Connection,
    settings: AuditSettings,
    registry: CollectorRegistry | None = None,
) -> AuditBounds:
    """Bound the audit rows written through ``conn``; count the dropped ones on ``registry``."""
    bounds = AuditBounds(settings)
    _bounds[conn] = bounds
    if registry is not None:
        registry.register(_DroppedCollector(bounds))
    return bounds


def bounds_of(conn: sqlite3.Connection) -> AuditBounds:
    """The connection's bounds (the defaults until :func:`configure` is called)."""
    bounds = _bounds.get(conn)
    if bounds is None:
        bounds = _bounds[conn] = AuditBounds(AuditSettings())
    return bounds


def audit(
    conn: sqlite3.Connection,
    actor: str,
    action: str,
    target: str,
    outcome: str,
    details: dict[str, Any] | None = None,
    at: float | None = None,
) -> None:
    """Record one entry (``at`` defaults to wall time now), within the bounds."""
    bounds = bounds_of(conn)
    now = time.time() if at is None else at
    refused = outcome.startswith("refused") or actor.startswith("unauthenticated")
    if refused and not bounds.admit(now):
        return
    rows = []
    if refused and bounds.dropped:
        summary = f"dropped {bounds.dropped} refused-request rows over the rate limit"
        rows.append(("sentinel", RATE_LIMITED_ACTION, "", summary, {"dropped": bounds.dropped}))
    rows.append((actor, action, target, outcome, details or {}))
    with conn:
        for row in rows:
            _insert(conn, bounds.settings, now, *row)
        bounds.dropped = 0 if refused else bounds.dropped
        if bounds.prune_due():
            prune(conn, now, bounds.settings)


def _insert(
    conn: sqlite3.Connection,
    s: AuditSettings,
    at: float,
    actor: str,
    action: str,
    target: str,
    outcome: str,
    details: dict[str, Any],
) -> None:
    n = s.max_field_chars
    conn.execute(
        "INSERT INTO audit (at, actor, action, target, outcome, details) VALUES (?, ?, ?, ?, ?, ?)",
        (
            at,
            clip(actor, n),
            clip(action, n),
            clip(target, n),
            clip(outcome, n),
            _details_json(details, n, s.max_details_chars),
        ),
    )


def clip(text: str, limit: int) -> str:
    """``text`` cut to about ``limit`` characters, saying how much was cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}...[{len(text) - limit} more chars]"


def _details_json(details: dict[str, Any], field_limit: int, limit: int) -> str:
    out = json.dumps(_clip_value(details, field_limit), default=str, sort_keys=True)
    if len(out) <= limit:
        return out
    return json.dumps({"truncated": clip(out, limit)})


def _clip_value(value: Any, limit: int, depth: int = 0) -> Any:
    """Strings cut, structure kept (to a few levels; deeper is kept as clipped JSON)."""
    if isinstance(value, str):
        return clip(value, limit)
    if isinstance(value, dict | list | tuple) and depth >= _MAX_DEPTH:
        return clip(json.dumps(value, default=str, sort_keys=True), limit)
    if isinstance(value, dict):
        return {str(k)[:limit]: _clip_value(v, limit, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clip_value(v, limit, depth + 1) for v in value]
    return value


def prune(conn: sqlite3.Connection, now: float, settings: AuditSettings | None = None) -> int:
    """Delete rows older than ``max_age_days`` and beyond the newest ``max_rows``."""
    s = settings or bounds_of(conn).settings
    with conn:
        aged = conn.execute(
            "DELETE FROM audit WHERE at < ?", (now - s.max_age_days * 86400.0,)
        ).rowcount
        extra = conn.execute(
            "DELETE FROM audit WHERE id <= "
            "(SELECT id FROM audit ORDER BY id DESC LIMIT 1 OFFSET ?)",
            (s.max_rows,),
        ).rowcount
    return int(aged) + int(extra)


class _DroppedCollector:
    def __init__(self, bounds: AuditBounds) -> None:
        self._bounds = bounds

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "sentinel_audit_rows_dropped",
            "Audit rows for refused requests not recorded because they came over the rate.",
            value=float(self._bounds.dropped_total),
        )


def entries(
    conn: sqlite3.Connection, limit: int = 100, action: str | None = None
) -> list[dict[str, Any]]:
    """Newest first, optionally only one action."""
    sql = "SELECT * FROM audit"
    params: tuple[Any, ...] = ()
    if action is not None:
        sql += " WHERE action = ?"
        params = (action,)
    rows = conn.execute(sql + " ORDER BY id DESC LIMIT ?", (*params, limit)).fetchall()
    return [{**dict(r), "details": json.loads(r["details"])} for r in rows]

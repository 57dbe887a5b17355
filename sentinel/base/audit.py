"""The audit trail: who did what to what, and how it went. Append-only SQLite table.

Callers never pass secrets in ``details``; tokens are not recorded, only the actor.
"""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

from sentinel.base import db

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


def audit(
    conn: sqlite3.Connection,
    actor: str,
    action: str,
    target: str,
    outcome: str,
    details: dict[str, Any] | None = None,
    at: float | None = None,
) -> None:
    """Record one entry (``at`` defaults to wall time now)."""
    with conn:
        conn.execute(
            "INSERT INTO audit (at, actor, action, target, outcome, details)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                time.time() if at is None else at,
                actor,
                action,
                target,
                outcome,
                json.dumps(details or {}, default=str, sort_keys=True),
            ),
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

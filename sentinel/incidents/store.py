"""Incidents in SQLite: the full record as JSON, with the columns we query on."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

import structlog

from sentinel.base import db
from sentinel.vocabulary.incidents import Incident

MIGRATIONS = [
    """
    CREATE TABLE incidents (
        id TEXT PRIMARY KEY,
        key TEXT NOT NULL,
        status TEXT NOT NULL,
        updated_at REAL NOT NULL,
        data TEXT NOT NULL
    );
    CREATE INDEX incidents_key ON incidents(key, updated_at);
    CREATE INDEX incidents_status ON incidents(status)
    """
]
db.register("incidents", MIGRATIONS)

log = structlog.get_logger(__name__)


def _load(row: Sequence[Any] | None) -> Incident | None:
    """The row's incident; None (logged) for a row that cannot be read, so that one
    damaged row does not stop sentinel from starting or from handling the others."""
    if row is None:
        return None
    try:
        return Incident.from_dict(json.loads(row[0]))
    except (ValueError, TypeError, KeyError) as exc:
        log.error("incident_row_unreadable", id=row[1], error=f"{type(exc).__name__}: {exc}")
        return None


def _load_all(rows: list[Any]) -> list[Incident]:
    return [inc for inc in map(_load, rows) if inc is not None]


class IncidentStore:
    """Read and write incidents; one row per incident id."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def save(self, inc: Incident) -> None:
        with self._conn:
            self._conn.execute(
                "INSERT INTO incidents (id, key, status, updated_at, data) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT(id) DO UPDATE SET key = excluded.key, status = excluded.status,"
                " updated_at = excluded.updated_at, data = excluded.data",
                (inc.id, inc.key, inc.status.value, inc.updated_at, json.dumps(inc.to_dict())),
            )

    def get(self, incident_id: str) -> Incident | None:
        row = self._conn.execute(
            "SELECT data, id FROM incidents WHERE id = ?", (incident_id,)
        ).fetchone()
        return _load(row)

    def latest(self, key: str) -> Incident | None:
        """The most recent incident with this dedup key (open or resolved)."""
        row = self._conn.execute(
            "SELECT data, id FROM incidents WHERE key = ? ORDER BY updated_at DESC LIMIT 1", (key,)
        ).fetchone()
        return _load(row)

    def open(self) -> list[Incident]:
        rows = self._conn.execute(
            "SELECT data, id FROM incidents WHERE status != 'resolved' ORDER BY rowid"
        ).fetchall()
        return _load_all(rows)

    def list(self, limit: int = 100, include_resolved: bool = True) -> list[Incident]:
        """Newest first."""
        where = "" if include_resolved else "WHERE status != 'resolved'"
        rows = self._conn.execute(
            f"SELECT data, id FROM incidents {where} ORDER BY updated_at DESC LIMIT ?",  # noqa: S608
            (limit,),
        ).fetchall()
        return _load_all(rows)

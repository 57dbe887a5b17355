"""Incidents in SQLite: the full record as JSON, with the columns we query on."""

from __future__ import annotations

import json
import sqlite3

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
            "SELECT data FROM incidents WHERE id = ?", (incident_id,)
        ).fetchone()
        return Incident.from_dict(json.loads(row[0])) if row else None

    def latest(self, key: str) -> Incident | None:
        """The most recent incident with this dedup key (open or resolved)."""
        row = self._conn.execute(
            "SELECT data FROM incidents WHERE key = ? ORDER BY updated_at DESC LIMIT 1", (key,)
        ).fetchone()
        return Incident.from_dict(json.loads(row[0])) if row else None

    def open(self) -> list[Incident]:
        rows = self._conn.execute(
            "SELECT data FROM incidents WHERE status != 'resolved' ORDER BY rowid"
        ).fetchall()
        return [Incident.from_dict(json.loads(r[0])) for r in rows]

    def list(self, limit: int = 100, include_resolved: bool = True) -> list[Incident]:
        """Newest first."""
        where = "" if include_resolved else "WHERE status != 'resolved'"
        rows = self._conn.execute(
            f"SELECT data FROM incidents {where} ORDER BY updated_at DESC LIMIT ?",  # noqa: S608
            (limit,),
        ).fetchall()
        return [Incident.from_dict(json.loads(r[0])) for r in rows]

"""The one SQLite database under the state directory.

Each stage owns its tables and declares them as a migration list
(``MIGRATIONS = [sql, ...]`` in its own module) registered with
:func:`register`; :func:`open_db` applies what is missing, in order, tracked
per owner in ``schema_versions``. WAL mode, so the API can read while the
daemon writes.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

DB_NAME = "sentinel.db"
"""The database's file name inside ``state_dir``."""

_migrations: dict[str, list[str]] = {}
_lock = threading.Lock()


def register(owner: str, migrations: list[str]) -> None:
    """Declare an owner's schema; append new statements, never edit old ones."""
    with _lock:
        _migrations[owner] = migrations


def path_in(state_dir: Path | str) -> Path:
    """Where the database lives under a state directory."""
    return Path(state_dir) / DB_NAME


def open_db(path: Path | str) -> sqlite3.Connection:
    """Open (creating) the database and bring every registered schema up to date.

    ``path`` may be ':memory:' for tests. Autocommit mode: callers use
    ``with conn:`` for transactions.
    """
    if str(path) != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=30)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_versions (owner TEXT PRIMARY KEY, version INTEGER)"
    )
    migrate(conn)
    return conn


def migrate(conn: sqlite3.Connection) -> None:
    """Apply every registered migration not yet applied."""
    with _lock:
        owners = dict(_migrations)
    for owner, statements in sorted(owners.items()):
        row = conn.execute(
            "SELECT version FROM schema_versions WHERE owner = ?", (owner,)
        ).fetchone()
        have = row[0] if row else 0
        for i, sql in enumerate(statements[have:], start=have + 1):
            conn.execute("BEGIN")
            try:
                for stmt in _split(sql):
                    conn.execute(stmt)
                conn.execute(
                    "INSERT INTO schema_versions (owner, version) VALUES (?, ?) "
                    "ON CONFLICT(owner) DO UPDATE SET version = excluded.version",
                    (owner, i),
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise


def _split(sql: str) -> list[str]:
    return [s.strip() for s in sql.split(";") if s.strip()]

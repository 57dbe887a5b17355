"""The one SQLite database under the state directory.

Each stage owns its tables and declares them as a migration list
(``MIGRATIONS = [sql, ...]`` in its own module) registered with
:func:`register`; :func:`open_db` applies what is missing, in order, tracked
per owner in ``schema_versions``. WAL mode, so the API can read while the
daemon writes.

State that survives damage: :func:`open_db` checks the file before using it
(``PRAGMA quick_check``) and moves a damaged one aside (or refuses, per
``state.on_corrupt``); a path it cannot use at all is a :class:`StateError`
naming it. Every write failure (a full disk, an I/O error) is kept in the
connection's :class:`StateHealth`, which ``/readyz`` and the metrics report.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Literal

import structlog
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from sentinel.base.db_settings import AuditSettings as AuditSettings  # re-exported: it was here
from sentinel.base.db_settings import OnCorrupt
from sentinel.base.db_settings import StateSettings as StateSettings
from sentinel.base.errors import SentinelError

log = structlog.get_logger(__name__)

DB_NAME = "sentinel.db"
"""The database's file name inside ``state_dir``."""

QUICK_CHECK_ERRORS = 10
"""``PRAGMA quick_check(N)``: stop after this many problems (one is enough to know)."""

_migrations: dict[str, list[str]] = {}
_lock = threading.Lock()


class StateError(SentinelError):
    """The state database cannot be used; ``str()`` names the file and what to do."""


class StateHealth:
    """Whether the database accepts writes: the last failure, when, and how many."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.writable = True
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.write_errors = 0

    def failed(self, exc: BaseException) -> None:
        self.write_errors += 1
        self.last_error, self.last_error_at = str(exc), time.time()
        if self.writable:  # loud once per outage, not once per retry
            log.error("state_write_failed", path=self.path, error=str(exc))
        self.writable = False

    def succeeded(self) -> None:
        if not self.writable:
            log.warning("state_writable_again", path=self.path, failed_writes=self.write_errors)
        self.writable = True

    def to_dict(self) -> dict[str, object]:
        return {
            "path": self.path,
            "writable": self.writable,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
            "write_errors": self.write_errors,
        }


def is_write_failure(exc: BaseException) -> bool:
    """A failure of the storage (full disk, I/O, locked, damaged), not of the caller's SQL."""
    if not isinstance(exc, sqlite3.DatabaseError):
        return False
    return not isinstance(exc, sqlite3.IntegrityError | sqlite3.ProgrammingError)


class StateConnection(sqlite3.Connection):
    """A connection whose ``with conn:`` blocks nest: the outermost is one transaction
    (``BEGIN IMMEDIATE`` .. ``COMMIT``), inner ones are savepoints. So stages that each
    write ``with conn:`` can be composed into one unit of work (:func:`unit_of_work`).
    Storage failures are recorded in :attr:`health`."""

    health: StateHealth
    _stack: list[str | None]

    def __enter__(self) -> StateConnection:
        if not self._stack and not self.in_transaction:
            self._guarded("BEGIN IMMEDIATE")
            self._stack.append(None)
        else:
            name = f"sentinel_sp{len(self._stack)}"
            self.execute(f"SAVEPOINT {name}")
            self._stack.append(name)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        name = self._stack.pop()
        if name is not None:
            if not self.in_transaction:
                # SQLite already rolled the whole transaction back (full disk, I/O error):
                # the outermost block reports it, the caller's own error goes on up
                return False
            if exc is not None:
                self.execute(f"ROLLBACK TO {name}")
            self.execute(f"RELEASE {name}")
            return False
        if exc is None:
            self._guarded("COMMIT")
            self.health.succeeded()
            return False
        if self.in_transaction:
            self.execute("ROLLBACK")
        if is_write_failure(exc):
            self.health.failed(exc)
        return False

    def _guarded(self, sql: str) -> None:
        try:
            self.execute(sql)
        except sqlite3.Error as exc:
            if self.in_transaction:
                self.execute("ROLLBACK")
            if is_write_failure(exc):
                self.health.failed(exc)
            raise


def health_of(conn: sqlite3.Connection) -> StateHealth:
    """The connection's write health (always healthy for a connection not from open_db)."""
    return getattr(conn, "health", None) or StateHealth(":unknown:")


def unit_of_work(conn: sqlite3.Connection) -> contextlib.AbstractContextManager[object]:
    """One transaction for everything written inside, ``with conn:`` blocks included.

    Nothing may await I/O inside: the connection is shared by the event loop.
    """
    if isinstance(conn, StateConnection):
        return conn
    return contextlib.nullcontext()


RECHECK_ROOM_BYTES = 1 << 20
"""Room the database must have again (file limit and filesystem) before a recheck trusts a
small write: a row that fits into a half-empty page proves nothing about a full disk."""


def recheck(conn: sqlite3.Connection) -> bool:
    """After a write failure: True once there is room again and a small write succeeds."""
    health = health_of(conn)
    if health.writable:
        return True
    if not _has_room(conn, health.path):
        return False
    with contextlib.suppress(sqlite3.Error), conn:
        conn.execute(
            "INSERT INTO state_check (id, at) VALUES (1, ?)"
            " ON CONFLICT(id) DO UPDATE SET at = excluded.at",
            (time.time(),),
        )
    return health.writable


def _has_room(conn: sqlite3.Connection, path: str) -> bool:
    try:
        page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
        pages = int(conn.execute("PRAGMA page_count").fetchone()[0])
        limit = int(conn.execute("PRAGMA max_page_count").fetchone()[0])
    except sqlite3.Error:
        return False
    if (limit - pages) * page_size < RECHECK_ROOM_BYTES:
        return False
    if path == ":memory:":
        return True
    try:
        fs = os.statvfs(Path(path).parent)
    except OSError:
        return False
    return fs.f_bavail * fs.f_frsize >= RECHECK_ROOM_BYTES


class StateCollector:
    """``sentinel_state_writable`` and ``sentinel_state_write_errors_total``."""

    def __init__(self, health: StateHealth) -> None:
        self._health = health

    def collect(self) -> Iterator[Metric]:
        writable = GaugeMetricFamily(
            "sentinel_state_writable",
            "1 while the state database takes writes; 0 after a write failed (full disk, "
            "I/O error) until one succeeds: incidents and pages may not be recorded.",
            labels=["path"],
        )
        writable.add_metric([self._health.path], 1.0 if self._health.writable else 0.0)
        yield writable
        errors = CounterMetricFamily(
            "sentinel_state_write_errors",
            "Writes to the state database that failed in storage (full disk, I/O error).",
            labels=["path"],
        )
        errors.add_metric([self._health.path], float(self._health.write_errors))
        yield errors


def register_metrics(conn: sqlite3.Connection, registry: CollectorRegistry) -> None:
    """Expose the connection's write health on ``registry``."""
    registry.register(StateCollector(health_of(conn)))


def register(owner: str, migrations: list[str]) -> None:
    """Declare an owner's schema; append new statements, never edit old ones."""
    with _lock:
        _migrations[owner] = migrations


register(
    "state",
    ["CREATE TABLE state_check (id INTEGER PRIMARY KEY, at REAL NOT NULL)"],
)


def path_in(state_dir: Path | str) -> Path:
    """Where the database lives under a state directory."""
    return Path(state_dir) / DB_NAME


def open_db(path: Path | str, *, on_corrupt: OnCorrupt = "move_aside") -> sqlite3.Connection:
    """Open (creating) the database and bring every registered schema up to date.

    ``path`` may be ':memory:' for tests. Autocommit mode: callers use
    ``with conn:`` for transactions. A damaged file is moved aside (or, with
    ``on_corrupt="refuse"``, a :class:`StateError`); a path that cannot be used
    (a directory, a read-only folder) is a :class:`StateError` naming it.
    """
    if str(path) == ":memory:":
        return _connect(":memory:")
    path = Path(path)
    _prepare_folder(path)
    damage = _damage(path)
    if damage is not None:
        if on_corrupt == "refuse":
            raise StateError(
                f"{path}: the state database is damaged ({damage}); refusing to start "
                "(state.on_corrupt: refuse): restore it, or move it aside to start afresh"
            )
        _move_aside(path, damage)
    try:
        return _connect(str(path))
    except sqlite3.Error as exc:
        raise _unusable(path, "open", exc) from exc


def open_read_only(path: Path | str) -> sqlite3.Connection | None:
    """The database at ``path`` opened read-only (SQLite's ``mode=ro``), or None when there
    is no file: a read command never creates, migrates or repairs state. A database with a
    registered schema older than this code's is a :class:`StateError` (the daemon brings it
    up to date when it starts)."""
    path = Path(path)
    if not path.exists():
        return None
    if path.is_dir():
        raise StateError(f"{path}: is a directory, not the state database: remove or move it")
    try:
        conn = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=ro",
            uri=True,
            check_same_thread=False,
            timeout=30,
            factory=StateConnection,
            isolation_level=None,
        )
        assert isinstance(conn, StateConnection)
        conn.health = StateHealth(str(path))
        conn._stack = []
        conn.row_factory = sqlite3.Row
        have = dict(conn.execute("SELECT owner, version FROM schema_versions").fetchall())
    except sqlite3.Error as exc:
        raise _unusable(path, "read", exc) from exc
    with _lock:
        owners = dict(_migrations)
    # an owner absent from the file is one whose module the writer never loaded: its tables
    # are not there to read; one present at an older version has tables of another shape
    behind = sorted(o for o, stmts in owners.items() if 0 < have.get(o, 0) < len(stmts))
    if behind:
        conn.close()
        raise StateError(
            f"{path}: the state database predates this sentinel (schema of "
            f"{', '.join(behind)}); start the daemon once to bring it up to date"
        )
    return conn


def _unusable(path: Path, what: str, exc: BaseException) -> StateError:
    """A one-line error naming the file, with the likely fix for the usual causes."""
    hint = ""
    if "readonly" in str(exc) or "unable to open" in str(exc) or isinstance(exc, PermissionError):
        hint = f" (the state directory {path.parent} must be writable by sentinel's user)"
    return StateError(f"{path}: cannot {what} the state database: {exc}{hint}")


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, timeout=30, factory=StateConnection
    )
    assert isinstance(conn, StateConnection)
    conn.health = StateHealth(path)
    conn._stack = []
    try:
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_versions (owner TEXT PRIMARY KEY, version INTEGER)"
        )
        migrate(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def _prepare_folder(path: Path) -> None:
    """The folder exists and is a folder; the path is not a folder."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StateError(f"{path.parent}: cannot create the state directory: {exc}") from exc
    if path.is_dir():
        raise StateError(f"{path}: is a directory, not the state database: remove or move it")


def _is_damage(exc: sqlite3.Error) -> bool:
    """SQLITE_CORRUPT or SQLITE_NOTADB: the file is not (any more) a sound database."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)


def _damage(path: Path) -> str | None:
    """Why the existing file at ``path`` is damaged; None when sound or absent."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _unusable(path, "read", exc) from exc
    if size == 0:
        # sentinel never leaves an empty file: something truncated it and its history is gone
        return "zero-length file: its data is gone"
    try:
        check = sqlite3.connect(str(path), isolation_level=None, timeout=30)
    except sqlite3.Error as exc:
        raise _unusable(path, "open", exc) from exc
    try:
        rows = check.execute(f"PRAGMA quick_check({QUICK_CHECK_ERRORS})").fetchall()
    except sqlite3.Error as exc:
        if _is_damage(exc):
            return str(exc)
        raise _unusable(path, "read", exc) from exc
    finally:
        check.close()
    problems = [str(r[0]) for r in rows if r[0] != "ok"]
    return f"quick_check: {problems[0]}" if problems else None


def _move_aside(path: Path, reason: str) -> Path:
    """Rename the damaged file (and its WAL) to ``<name>.corrupt-<UTC time>``."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    try:
        path.rename(target)
        wal = path.with_name(path.name + "-wal")
        if wal.exists():
            wal.rename(target.with_name(target.name + "-wal"))
        path.with_name(path.name + "-shm").unlink(missing_ok=True)
    except OSError as exc:
        raise StateError(
            f"{path}: the state database is damaged ({reason}) and cannot be moved aside: {exc}"
        ) from exc
    log.error("state_db_moved_aside", path=str(path), moved_to=str(target), reason=reason)
    return target


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

"""The runbook's SQLite tables: runs, steps, the breaker, target locks, leases.

A step row is written *before* its action is called and completed after, so
after a crash we know which step may have half-happened; :meth:`recover`
marks such runs ``interrupted`` and nothing re-executes them.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from sentinel.base import db
from sentinel.runbook.status import RunStatus, StepStatus

MIGRATIONS = [
    """
    CREATE TABLE runbook_runs (
        id TEXT PRIMARY KEY,
        playbook TEXT NOT NULL,
        playbook_sha256 TEXT NOT NULL,
        target_key TEXT NOT NULL,
        target TEXT NOT NULL,
        incident_id TEXT,
        incident TEXT,
        params TEXT NOT NULL,
        actor TEXT NOT NULL,
        dry_run INTEGER NOT NULL,
        status TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        counted INTEGER NOT NULL DEFAULT 0,
        started_at REAL NOT NULL,
        finished_at REAL,
        evidence TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX runbook_runs_target ON runbook_runs (playbook, target_key, started_at);
    CREATE TABLE runbook_steps (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL REFERENCES runbook_runs (id),
        phase TEXT NOT NULL,
        name TEXT NOT NULL,
        action TEXT NOT NULL,
        status TEXT NOT NULL,
        mutating INTEGER NOT NULL,
        params TEXT NOT NULL DEFAULT '{}',
        output TEXT NOT NULL DEFAULT '{}',
        reason TEXT NOT NULL DEFAULT '',
        attempts INTEGER NOT NULL DEFAULT 0,
        started_at REAL NOT NULL,
        finished_at REAL
    );
    CREATE INDEX runbook_steps_run ON runbook_steps (run_id);
    CREATE TABLE runbook_breaker (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        open INTEGER NOT NULL,
        opened_at REAL,
        reason TEXT NOT NULL DEFAULT '',
        reset_by TEXT,
        reset_at REAL
    );
    CREATE TABLE runbook_locks (
        target_key TEXT PRIMARY KEY,
        run_id TEXT NOT NULL,
        acquired_at REAL NOT NULL
    );
    CREATE TABLE runbook_leases (
        id TEXT PRIMARY KEY,
        run_id TEXT NOT NULL,
        playbook TEXT NOT NULL,
        step TEXT NOT NULL,
        target_key TEXT NOT NULL,
        model TEXT NOT NULL,
        original TEXT NOT NULL,
        degraded TEXT NOT NULL,
        verify TEXT,
        restore_after REAL NOT NULL,
        healthy_since REAL NOT NULL,
        state TEXT NOT NULL,
        reapplied INTEGER NOT NULL DEFAULT 0,
        note TEXT NOT NULL DEFAULT '',
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    """,
]
db.register("runbook", MIGRATIONS)

ACTIVE = RunStatus.RUNNING
"""The status of a run that acts on its target (``AWAITING_APPROVAL`` holds it too)."""
_NOT_CALLED = (StepStatus.PLANNED, StepStatus.SKIPPED, StepStatus.BLOCKED)
"""Step rows whose action was never called (the breaker does not count them)."""


def _j(value: Any) -> str:
    return json.dumps(value, default=str, sort_keys=True)


class History:
    """Reads and writes the runbook tables of one connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    # -- runs ---------------------------------------------------------------
    def start_run(self, run: dict[str, Any]) -> None:
        with self.conn:
            self.conn.execute(
                "INSERT INTO runbook_runs (id, playbook, playbook_sha256, target_key, target,"
                " incident_id, incident, params, actor, dry_run, status, reason, counted,"
                " started_at, evidence) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    run["id"],
                    run["playbook"],
                    run["sha256"],
                    run["target_key"],
                    _j(run["target"]),
                    run.get("incident_id"),
                    _j(run.get("incident")),
                    _j(run.get("params", {})),
                    run["actor"],
                    int(run["dry_run"]),
                    run["status"],
                    run.get("reason", ""),
                    int(run.get("counted", False)),
                    run["started_at"],
                    _j(run.get("evidence", {})),
                ),
            )

    def finish_run(
        self, run_id: str, status: str, reason: str, at: float, evidence: dict[str, Any]
    ) -> None:
        with self.conn:
            self.conn.execute(
                "UPDATE runbook_runs SET status = ?, reason = ?, finished_at = ?, evidence = ?"
                " WHERE id = ?",
                (status, reason, at, _j(evidence), run_id),
            )

    def set_status(self, run_id: str, status: str, reason: str) -> None:
        """A run under way changes state (awaiting approval, then running)."""
        with self.conn:
            self.conn.execute(
                "UPDATE runbook_runs SET status = ?, reason = ? WHERE id = ?",
                (status, reason, run_id),
            )

    def runs(self, limit: int = 50) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            "SELECT * FROM runbook_runs ORDER BY started_at DESC, rowid DESC LIMIT ?", (limit,)
        ).fetchall()
        return [self._run_dict(r) for r in rows]

    def run(self, run_id: str) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT * FROM runbook_runs WHERE id = ?", (run_id,)).fetchone()
        return None if row is None else self._run_dict(row)

    def _run_dict(self, row: sqlite3.Row) -> dict[str, Any]:
        d = dict(row)
        for k in ("target", "incident", "params", "evidence"):
            d[k] = json.loads(d[k]) if d[k] is not None else None
        d["dry_run"] = bool(d["dry_run"])
        d["counted"] = bool(d["counted"])
        d["steps"] = self.steps(d["id"])
        return d

    def counted_runs_since(self, playbook: str, target_key: str, since: float) -> int:
        row = self.conn.execute(
            "SELECT COUNT(*) FROM runbook_runs WHERE playbook = ? AND target_key = ?"
            " AND counted = 1 AND started_at >= ?",
            (playbook, target_key, since),
        ).fetchone()
        return int(row[0])

    def last_counted_end(self, playbook: str, target_key: str) -> float | None:
        row = self.conn.execute(
            "SELECT MAX(COALESCE(finished_at, started_at)) FROM runbook_runs"
            " WHERE playbook = ? AND target_key = ? AND counted = 1",
            (playbook, target_key),
        ).fetchone()
        return None if row[0] is None else float(row[0])

    # -- steps --------------------------------------------------------------
    def start_step(
        self,
        run_id: str,
        phase: str,
        name: str,
        action: str,
        status: str,
        mutating: bool,
        params: dict[str, Any],
        at: float,
        reason: str = "",
    ) -> int:
        with self.conn:
            cur = self.conn.execute(
                "INSERT INTO runbook_steps (run_id, phase, name, action, status, mutating, params,"
                " reason, started_at) VALUES (?,?,?,?,?,?,?,?,?)",
                (run_id, phase, name, action, status, int(mutating), _j(params), reason, at),
            )
        return int(cur.lastrowid or 0)

    def finish_step(
        self,
        step_id: int,
        status: str,
        at: float,
        output: dict[str, Any] | None = None,
        reason: str = "",
        attempts: int = 0,
    ) -> None:
        with self.conn:
            self.conn.execute(
                "UPDATE runbook_steps SET status = ?, finished_at = ?, output = ?, reason = ?,"
                " attempts = ? WHERE id = ?",
                (status, at, _j(output or {}), reason, attempts, step_id),
            )

    def steps(self, run_id: str) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            "SELECT * FROM runbook_steps WHERE run_id = ? ORDER BY id", (run_id,)
        ).fetchall()
        out = []
        for r in rows:
            d = dict(r)
            d["params"] = json.loads(d["params"])
            d["output"] = json.loads(d["output"])
            d["mutating"] = bool(d["mutating"])
            out.append(d)
        return out

    def mutating_actions_since(self, since: float) -> int:
        """Side-effecting actions actually called (not planned, not skipped) since then."""
        row = self.conn.execute(
            "SELECT COUNT(*) FROM runbook_steps WHERE mutating = 1 AND started_at >= ?"
            " AND status NOT IN (?, ?, ?)",
            (since, *_NOT_CALLED),
        ).fetchone()
        return int(row[0])

    # -- breaker ------------------------------------------------------------
    def breaker(self) -> dict[str, Any]:
        row = self.conn.execute("SELECT * FROM runbook_breaker WHERE id = 1").fetchone()
        if row is None:
            return {"open": False, "opened_at": None, "reason": "", "reset_by": None}
        d = dict(row)
        d["open"] = bool(d["open"])
        return d

    def open_breaker(self, at: float, reason: str) -> None:
        with self.conn:
            self.conn.execute(
                "INSERT INTO runbook_breaker (id, open, opened_at, reason) VALUES (1, 1, ?, ?)"
                " ON CONFLICT(id) DO UPDATE SET open = 1, opened_at = excluded.opened_at,"
                " reason = excluded.reason, reset_by = NULL, reset_at = NULL",
                (at, reason),
            )

    def reset_breaker(self, actor: str, at: float) -> None:
        with self.conn:
            self.conn.execute(
                "INSERT INTO runbook_breaker (id, open, reset_by, reset_at) VALUES (1, 0, ?, ?)"
                " ON CONFLICT(id) DO UPDATE SET open = 0, reset_by = excluded.reset_by,"
                " reset_at = excluded.reset_at",
                (actor, at),
            )

    # -- locks --------------------------------------------------------------
    def try_lock(self, target_key: str, run_id: str, at: float) -> str | None:
        """Take the target's lock; None if taken, else the run id already holding it."""
        try:
            with self.conn:
                self.conn.execute(
                    "INSERT INTO runbook_locks (target_key, run_id, acquired_at) VALUES (?,?,?)",
                    (target_key, run_id, at),
                )
        except sqlite3.IntegrityError:
            row = self.conn.execute(
                "SELECT run_id FROM runbook_locks WHERE target_key = ?", (target_key,)
            ).fetchone()
            return str(row[0]) if row else "?"
        return None

    def lock_holder(self, target_key: str) -> str | None:
        """The run holding the target's lock, or None when it is free."""
        row = self.conn.execute(
            "SELECT run_id FROM runbook_locks WHERE target_key = ?", (target_key,)
        ).fetchone()
        return str(row[0]) if row else None

    def unlock(self, target_key: str, run_id: str) -> None:
        with self.conn:
            self.conn.execute(
                "DELETE FROM runbook_locks WHERE target_key = ? AND run_id = ?",
                (target_key, run_id),
            )

    # -- crash recovery -----------------------------------------------------
    def recover(self, at: float) -> list[str]:
        """Mark runs left 'running' by a dead process interrupted; free their locks."""
        with self.conn:
            ids = [
                str(r[0])
                for r in self.conn.execute(
                    "SELECT id FROM runbook_runs WHERE status IN (?, ?)",
                    (ACTIVE, RunStatus.AWAITING_APPROVAL),
                ).fetchall()
            ]
            for run_id in ids:
                self.conn.execute(
                    "UPDATE runbook_steps SET status = ?, finished_at = ?,"
                    " reason = 'sentinel stopped while this step ran; it may have half-happened'"
                    " WHERE run_id = ? AND status = ?",
                    (StepStatus.INTERRUPTED, at, run_id, StepStatus.STARTED),
                )
                self.conn.execute(
                    "UPDATE runbook_runs SET status = ?, finished_at = ?,"
                    " reason = 'sentinel stopped mid-run; not re-executed' WHERE id = ?",
                    (RunStatus.INTERRUPTED, at, run_id),
                )
                self.conn.execute("DELETE FROM runbook_locks WHERE run_id = ?", (run_id,))
        return ids

    # -- leases -------------------------------------------------------------
    def add_lease(self, lease: dict[str, Any]) -> None:
        with self.conn:
            self.conn.execute(
                "INSERT INTO runbook_leases (id, run_id, playbook, step, target_key, model,"
                " original, degraded, verify, restore_after, healthy_since, state, created_at,"
                " updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    lease["id"],
                    lease["run_id"],
                    lease["playbook"],
                    lease["step"],
                    lease["target_key"],
                    lease["model"],
                    _j(lease["original"]),
                    _j(lease["degraded"]),
                    _j(lease["verify"]),
                    lease["restore_after"],
                    lease["healthy_since"],
                    "active",
                    lease["created_at"],
                    lease["created_at"],
                ),
            )

    def leases(self, states: tuple[str, ...] = ("active", "watching")) -> list[dict[str, Any]]:
        marks = ",".join("?" * len(states))
        rows = self.conn.execute(
            f"SELECT * FROM runbook_leases WHERE state IN ({marks}) ORDER BY created_at",  # noqa: S608 -- only '?' marks
            states,
        ).fetchall()
        out = []
        for r in rows:
            d = dict(r)
            for k in ("original", "degraded", "verify"):
                d[k] = json.loads(d[k]) if d[k] is not None else None
            out.append(d)
        return out

    def update_lease(self, lease_id: str, at: float, **fields: Any) -> None:
        allowed = {"healthy_since", "state", "reapplied", "restore_after", "note"}
        bad = set(fields) - allowed
        if bad:
            raise ValueError(f"not lease fields: {sorted(bad)}")
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self.conn:
            self.conn.execute(
                f"UPDATE runbook_leases SET {sets}, updated_at = ? WHERE id = ?",  # noqa: S608 -- names checked above
                (*fields.values(), at, lease_id),
            )

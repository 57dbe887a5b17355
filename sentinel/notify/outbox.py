"""The durable outbox: every notification is a row before anything is sent.

One row per (notice, notifier) with a unique idempotency key, so telling the
same notice twice queues it once; :mod:`sentinel.notify.dispatcher` delivers
the rows. A row's states: ``pending`` (due at ``next_at``), ``sending`` (a send
started and may have arrived: reconcile before resending), ``sent``, ``dead``
(given up, logged). PagerDuty and Alertmanager are idempotent by key, so a
resend is harmless; Slack finds its message by metadata
(:meth:`Notifier.reconcile`). A row whose payload cannot be read (damaged
state) is given up with a log line naming its id, and the others go on.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from sentinel.base import db
from sentinel.base.clock import Clock
from sentinel.base.errors import Retryable, SentinelError
from sentinel.vocabulary.notices import Notice

log = structlog.get_logger(__name__)

MIGRATIONS = [
    """
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        idem_key TEXT NOT NULL UNIQUE,
        notifier TEXT NOT NULL,
        incident_id TEXT,
        op TEXT NOT NULL,
        payload TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending',
        attempts INTEGER NOT NULL DEFAULT 0,
        next_at REAL NOT NULL,
        created_at REAL NOT NULL,
        sent_at REAL,
        last_error TEXT,
        result TEXT
    );
    CREATE INDEX outbox_state ON outbox(state, next_at);
    CREATE INDEX outbox_incident ON outbox(notifier, incident_id, op);
    CREATE TABLE outbox_refs (
        notifier TEXT NOT NULL,
        incident_id TEXT NOT NULL,
        ref TEXT NOT NULL,
        PRIMARY KEY (notifier, incident_id)
    )
    """
]
db.register("outbox", MIGRATIONS)

LIVE_STATES = ("pending", "sending")


@dataclass(frozen=True, slots=True)
class Message:
    """What a notifier plans to send for a notice (rendered when told, so durable)."""

    op: str
    payload: dict[str, Any]
    incident_id: str | None
    key: str
    """Identity of the notice within this notifier (the idempotency key's tail)."""


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    idem_key: str
    notifier: str
    incident_id: str | None
    op: str
    payload: dict[str, Any]
    state: str
    attempts: int
    next_at: float
    created_at: float
    last_error: str | None = None


class DeliveryError(SentinelError):
    """A delivery the other side refused for good (bad payload, bad key): given up."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RetryableDelivery(DeliveryError, Retryable):
    """A delivery that may pass later (5xx, 429, no connection): retried, after
    ``retry_after`` seconds when the other side said, else with backoff."""

    def __init__(self, reason: str, *, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class UncertainDelivery(RetryableDelivery):
    """The request went out but no readable answer came back (timeout, dropped
    connection, garbled reply): it may have arrived, so reconcile before resending."""


class UnreadableRow(SentinelError):
    """An outbox row whose stored payload is not a JSON object (damaged state)."""


class History(Protocol):
    def queued(self, notifier: str, incident_id: str, op: str) -> bool:
        """Whether a message with this op for this incident was ever queued (any state)."""
        ...


class Notifier(Protocol):
    """One destination. ``plan`` decides and renders; ``deliver`` does the I/O."""

    name: str

    def plan(self, notice: Notice, history: History) -> list[Message]: ...

    async def deliver(self, row: OutboxRow, outbox: Outbox) -> dict[str, Any]:
        """Send; return what to remember (e.g. ts); raise DeliveryError on failure."""
        ...

    async def reconcile(self, row: OutboxRow, outbox: Outbox) -> dict[str, Any] | None:
        """A row left ``sending`` by a crash: the result if it did arrive, else None."""
        ...

    def record(self, conn: sqlite3.Connection, row: OutboxRow, result: dict[str, Any]) -> None:
        """Effects of a delivery, written in the same transaction as marking it sent."""
        ...

    async def aclose(self) -> None: ...


class Outbox:
    """The queue table and its per-incident references (Slack thread ts ...)."""

    def __init__(self, conn: sqlite3.Connection, clock: Clock) -> None:
        self.conn = conn
        self._clock = clock

    def put(self, notifier: str, msg: Message) -> bool:
        """Queue once per idempotency key; False if it was already queued."""
        now = self._clock.now()
        with self.conn:
            cur = self.conn.execute(
                "INSERT OR IGNORE INTO outbox (idem_key, notifier, incident_id, op, payload,"
                " next_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    f"{notifier}/{msg.key}",
                    notifier,
                    msg.incident_id,
                    msg.op,
                    json.dumps(msg.payload, default=str),
                    now,
                    now,
                ),
            )
        return cur.rowcount == 1

    def queued(self, notifier: str, incident_id: str, op: str) -> bool:
        row = self.conn.execute(
            "SELECT 1 FROM outbox WHERE notifier = ? AND incident_id = ? AND op = ? LIMIT 1",
            (notifier, incident_id, op),
        ).fetchone()
        return row is not None

    def heads(self, notifier: str | None = None) -> list[OutboxRow]:
        """The oldest live row of each (notifier, incident) lane; an unreadable row
        is given up on the spot (logged with its id) so it cannot stall its lane."""
        sql, params = _SELECT + " WHERE state IN ('pending', 'sending')", tuple[str, ...]()
        if notifier is not None:
            sql, params = sql + " AND notifier = ?", (notifier,)
        rows = self.conn.execute(sql + " ORDER BY id", params).fetchall()
        seen: set[tuple[str, str]] = set()
        out = []
        for r in rows:
            lane = (r["notifier"], r["incident_id"] or f"#{r['id']}")
            if lane in seen:
                continue
            try:
                row = _row(r)
            except UnreadableRow as exc:
                self._quarantine(r, str(exc))
                continue
            seen.add(lane)
            out.append(row)
        return out

    def _quarantine(self, r: sqlite3.Row, reason: str) -> None:
        log.error(
            "outbox_row_unreadable", id=r["id"], notifier=r["notifier"], op=r["op"], error=reason
        )
        with self.conn:
            self.conn.execute(
                "UPDATE outbox SET state = 'dead', last_error = ? WHERE id = ?",
                (f"unreadable row: {reason}", r["id"]),
            )

    def rows(self, state: str | None = None) -> list[OutboxRow]:
        """Every row (an unreadable payload shows as ``{}``), oldest first."""
        sql, params = _SELECT, tuple[str, ...]()
        if state is not None:
            sql, params = sql + " WHERE state = ?", (state,)
        return [
            _row(r, strict=False)
            for r in self.conn.execute(sql + " ORDER BY id", params).fetchall()
        ]

    def mark_sending(self, row: OutboxRow) -> None:
        with self.conn:
            self.conn.execute(
                "UPDATE outbox SET state = 'sending', attempts = attempts + 1 WHERE id = ?",
                (row.id,),
            )

    def mark_sent(self, row: OutboxRow, result: dict[str, Any], notifier: Notifier) -> None:
        with self.conn:
            self.conn.execute(
                "UPDATE outbox SET state = 'sent', sent_at = ?, result = ?, last_error = NULL"
                " WHERE id = ?",
                (self._clock.now(), json.dumps(result, default=str), row.id),
            )
            notifier.record(self.conn, row, result)

    def retry_at(self, row: OutboxRow, at: float, error: str, *, uncertain: bool = False) -> None:
        """Try again at ``at``; ``uncertain`` keeps it ``sending`` (reconcile first)."""
        with self.conn:
            self.conn.execute(
                "UPDATE outbox SET state = ?, next_at = ?, last_error = ? WHERE id = ?",
                ("sending" if uncertain else "pending", at, error, row.id),
            )

    def give_up(self, row: OutboxRow, error: str) -> None:
        with self.conn:
            self.conn.execute(
                "UPDATE outbox SET state = 'dead', last_error = ? WHERE id = ?", (error, row.id)
            )

    @staticmethod
    def set_ref(
        conn: sqlite3.Connection, notifier: str, incident_id: str, ref: dict[str, Any]
    ) -> None:
        conn.execute(
            "INSERT INTO outbox_refs (notifier, incident_id, ref) VALUES (?, ?, ?)"
            " ON CONFLICT(notifier, incident_id) DO UPDATE SET ref = excluded.ref",
            (notifier, incident_id, json.dumps(ref)),
        )

    def ref(self, notifier: str, incident_id: str) -> dict[str, Any] | None:
        r = self.conn.execute(
            "SELECT ref FROM outbox_refs WHERE notifier = ? AND incident_id = ?",
            (notifier, incident_id),
        ).fetchone()
        return dict(json.loads(r[0])) if r else None

    def prune(self, older_than: float) -> int:
        with self.conn:
            cur = self.conn.execute(
                "DELETE FROM outbox WHERE state IN ('sent', 'dead') AND created_at < ?",
                (older_than,),
            )
        return cur.rowcount

    def oldest_live_age(self, now: float) -> dict[str, float]:
        """Per notifier, how long its oldest undelivered row has waited (seconds)."""
        rows = self.conn.execute(
            "SELECT notifier, MIN(created_at) FROM outbox"
            " WHERE state IN ('pending', 'sending') GROUP BY notifier"
        ).fetchall()
        return {r[0]: max(now - r[1], 0.0) for r in rows}

    def counts(self) -> dict[str, int]:
        rows = self.conn.execute("SELECT state, COUNT(*) FROM outbox GROUP BY state").fetchall()
        return {r[0]: r[1] for r in rows}


_SELECT = (
    "SELECT id, idem_key, notifier, incident_id, op, CAST(payload AS BLOB) AS payload, state,"
    " attempts, next_at, created_at, last_error FROM outbox"
)
"""The payload comes as bytes: a damaged one (not UTF-8) fails its row, not the query."""


def _payload(raw: object) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
        payload = json.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise UnreadableRow(f"payload is not JSON: {type(exc).__name__}: {exc}"[:300]) from exc
    if not isinstance(payload, dict):
        raise UnreadableRow(f"payload is a JSON {type(payload).__name__}, not an object")
    return payload


def _row(r: sqlite3.Row, *, strict: bool = True) -> OutboxRow:
    try:
        payload = _payload(r["payload"])
    except UnreadableRow:
        if strict:
            raise
        payload = {}
    return OutboxRow(
        id=r["id"],
        idem_key=r["idem_key"],
        notifier=r["notifier"],
        incident_id=r["incident_id"],
        op=r["op"],
        payload=payload,
        state=r["state"],
        attempts=r["attempts"],
        next_at=r["next_at"],
        created_at=r["created_at"],
        last_error=r["last_error"],
    )

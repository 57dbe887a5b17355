"""The durable outbox: every notification is a row before anything is sent.

One row per (notice, notifier) with a unique idempotency key, so telling the
same notice twice queues it once. The :class:`Dispatcher` delivers rows in
order per (notifier, incident) -- a Slack reply never overtakes its root --
with retries: ``Retry-After`` on 429 (which also pauses that notifier), capped
exponential backoff on 5xx and connection errors, and give-up (logged, kept
as ``dead``) on other 4xx.

The window between a successful send and marking it sent is kept tight: a
row is marked ``sending`` before the request, the request is shielded from
cancellation (a stop or cancel lets it finish and be recorded), and the
notifier's own effects (e.g. the Slack thread ``ts``) are written in the same
transaction as ``sent``. Only a hard kill in that window leaves a ``sending``
row; on restart the notifier's :meth:`Notifier.reconcile` looks for it on the
far side (Slack: message metadata) before resending; PagerDuty and
Alertmanager are idempotent by key, so a resend is harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from sentinel.base import db
from sentinel.base.clock import Clock
from sentinel.base.errors import Retryable, SentinelError
from sentinel.notify.metrics import NotifyMetrics
from sentinel.notify.settings import OutboxSettings
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

    def heads(self) -> list[OutboxRow]:
        """The oldest live row of each (notifier, incident) lane."""
        rows = self.conn.execute(
            "SELECT * FROM outbox WHERE state IN ('pending', 'sending') ORDER BY id"
        ).fetchall()
        seen: set[tuple[str, str]] = set()
        out = []
        for r in rows:
            lane = (r["notifier"], r["incident_id"] or f"#{r['id']}")
            if lane not in seen:
                seen.add(lane)
                out.append(_row(r))
        return out

    def rows(self, state: str | None = None) -> list[OutboxRow]:
        sql, params = "SELECT * FROM outbox", tuple[str, ...]()
        if state is not None:
            sql, params = sql + " WHERE state = ?", (state,)
        return [_row(r) for r in self.conn.execute(sql + " ORDER BY id", params).fetchall()]

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

    def retry_at(self, row: OutboxRow, at: float, error: str) -> None:
        with self.conn:
            self.conn.execute(
                "UPDATE outbox SET state = 'pending', next_at = ?, last_error = ? WHERE id = ?",
                (at, error, row.id),
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

    def counts(self) -> dict[str, int]:
        rows = self.conn.execute("SELECT state, COUNT(*) FROM outbox GROUP BY state").fetchall()
        return {r[0]: r[1] for r in rows}


def _row(r: sqlite3.Row) -> OutboxRow:
    return OutboxRow(
        id=r["id"],
        idem_key=r["idem_key"],
        notifier=r["notifier"],
        incident_id=r["incident_id"],
        op=r["op"],
        payload=json.loads(r["payload"]),
        state=r["state"],
        attempts=r["attempts"],
        next_at=r["next_at"],
        created_at=r["created_at"],
        last_error=r["last_error"],
    )


class Dispatcher:
    """Delivers due outbox rows; ``start``/``stop`` run it as a task, tests call ``deliver_due``."""

    def __init__(
        self,
        outbox: Outbox,
        notifiers: Mapping[str, Notifier],
        clock: Clock,
        settings: OutboxSettings | None = None,
        metrics: NotifyMetrics | None = None,
    ) -> None:
        self.outbox = outbox
        self.metrics = metrics
        self.notifiers = dict(notifiers)
        self._clock = clock
        self._s = settings or OutboxSettings()
        self._paused_until: dict[str, float] = {}
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """New rows were queued: look now."""
        self._wake.set()

    async def deliver_due(self) -> float | None:
        """One pass over the lanes; returns when the next row is due (epoch), or None."""
        now = self._clock.now()
        for row in self.outbox.heads():
            if self._stopping:
                break
            if max(row.next_at, self._paused_until.get(row.notifier, 0.0)) > now:
                continue
            notifier = self.notifiers.get(row.notifier)
            if notifier is None:
                self._dead(row, f"notifier {row.notifier!r} is not configured")
            elif now - row.created_at > self._s.give_up_after_s:
                self._dead(row, f"undelivered after {self._s.give_up_after_s:g}s: {row.last_error}")
            else:
                await self._attempt(row, notifier)
        return self._next_due()

    def _next_due(self) -> float | None:
        dues = [
            max(r.next_at, self._paused_until.get(r.notifier, 0.0)) for r in self.outbox.heads()
        ]
        return min(dues) if dues else None

    async def _attempt(self, row: OutboxRow, notifier: Notifier) -> None:
        if row.state == "sending":
            found = await self._reconcile(row, notifier)
            if found is not None:
                self.outbox.mark_sent(row, found, notifier)
                self._count(row, "reconciled")
                log.info("outbox_reconciled", notifier=row.notifier, idem_key=row.idem_key)
                return
        self.outbox.mark_sending(row)
        fut = asyncio.ensure_future(notifier.deliver(row, self.outbox))
        try:
            result = await asyncio.shield(fut)
        except asyncio.CancelledError:
            # finish the send we started and record it, then honour the cancel
            with contextlib.suppress(Exception):
                self.outbox.mark_sent(row, await fut, notifier)
                self._count(row, "sent")
            raise
        except DeliveryError as exc:
            self._failed(row, exc)
            return
        except Exception as exc:  # a bug or an unexpected library error: retry, loudly
            log.exception("outbox_deliver_crashed", notifier=row.notifier, idem_key=row.idem_key)
            self._failed(row, RetryableDelivery(f"{type(exc).__name__}: {exc}"))
            return
        self.outbox.mark_sent(row, result, notifier)
        self._count(row, "sent")
        log.info("notified", notifier=row.notifier, op=row.op, incident=row.incident_id)

    def _count(self, row: OutboxRow, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.delivered(row.notifier, outcome)

    async def _reconcile(self, row: OutboxRow, notifier: Notifier) -> dict[str, Any] | None:
        try:
            return await notifier.reconcile(row, self.outbox)
        except Exception as exc:
            log.warning("outbox_reconcile_failed", notifier=row.notifier, error=str(exc))
            return None

    def _failed(self, row: OutboxRow, exc: DeliveryError) -> None:
        now = self._clock.now()
        if not isinstance(exc, RetryableDelivery):
            self._dead(row, exc.reason)
            return
        if exc.retry_after is not None:
            delay = min(max(exc.retry_after, 0.0), self._s.retry_after_max_s)
            self._paused_until[row.notifier] = now + delay
        else:
            attempts = row.attempts + 1
            delay = min(self._s.backoff_initial_s * 2 ** (attempts - 1), self._s.backoff_max_s)
        self._count(row, "failed")
        log.warning(
            "notify_retry", notifier=row.notifier, op=row.op, error=exc.reason, retry_in_s=delay
        )
        self.outbox.retry_at(row, now + delay, exc.reason)

    def _dead(self, row: OutboxRow, reason: str) -> None:
        self._count(row, "dead")
        log.error("notify_gave_up", notifier=row.notifier, op=row.op, reason=reason)
        self.outbox.give_up(row, reason)

    # -- as a service ------------------------------------------------------------

    async def run(self) -> None:
        """Deliver until :meth:`stop`; an in-flight send always finishes and is recorded."""
        self._stopping = False
        while not self._stopping:
            try:
                nxt = await self.deliver_due()
                self.outbox.prune(self._clock.now() - self._s.keep_sent_s)
                if self.metrics is not None:
                    self.metrics.refresh(self.outbox.conn)
            except sqlite3.Error:
                log.exception("outbox_db_error")
                nxt = None
            now = self._clock.now()
            delay = self._s.poll_s if nxt is None else min(max(nxt - now, 0.0), self._s.poll_s)
            if delay > 0 and not self._stopping:
                await self._idle(delay)

    async def _idle(self, delay: float) -> None:
        self._wake.clear()
        waiter = asyncio.ensure_future(self._wake.wait())
        sleeper = asyncio.ensure_future(self._clock.sleep(delay))
        try:
            await asyncio.wait({waiter, sleeper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (waiter, sleeper):
                t.cancel()
            await asyncio.gather(waiter, sleeper, return_exceptions=True)

    def start(self) -> asyncio.Task[None]:
        self._task = asyncio.create_task(self.run(), name="outbox-dispatcher")
        return self._task

    async def stop(self) -> None:
        """Graceful: the current send finishes and is marked; then the task ends."""
        self._stopping = True
        self._wake.set()
        task, self._task = self._task, None
        if task is not None:
            await asyncio.wait({task})
            if not task.cancelled() and task.exception() is not None:
                log.error("outbox_dispatcher_failed", error=str(task.exception()))
        for n in self.notifiers.values():
            with contextlib.suppress(Exception):
                await n.aclose()

"""The dispatcher: delivers the outbox's rows, one worker per notifier.

Rows go out in order per (notifier, incident) lane -- a Slack reply never
overtakes its root -- with retries: ``Retry-After`` on 429 (which also pauses
that notifier), capped exponential backoff on 5xx and connection errors, and
give-up (logged, kept as ``dead``) on other 4xx. Each notifier has its own
worker, so a hanging Slack never holds back a PagerDuty page.

A row is marked ``sending`` before its request, the request is shielded from
cancellation, and ``sent`` is written with the notifier's effects in one
transaction. A ``sending`` row found later (a hard kill, or a send whose answer
never came: :class:`UncertainDelivery`) is reconciled with the far side before
it is sent again, so a slow Slack is not posted twice.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any

import structlog

from sentinel.base.clock import Clock
from sentinel.notify.metrics import NotifyMetrics
from sentinel.notify.outbox import (
    DeliveryError,
    Notifier,
    Outbox,
    OutboxRow,
    RetryableDelivery,
    UncertainDelivery,
)
from sentinel.notify.settings import OutboxSettings

log = structlog.get_logger(__name__)


class Dispatcher:
    """Delivers due outbox rows; ``start``/``stop`` run it as a task (one worker per
    notifier), tests call ``deliver_due`` (one pass, notifiers side by side)."""

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
        self._wakes: dict[str | None, asyncio.Event] = {None: asyncio.Event()}
        self._wakes.update((name, asyncio.Event()) for name in self.notifiers)
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """New rows were queued: look now."""
        for event in self._wakes.values():
            event.set()

    async def deliver_due(self) -> float | None:
        """One pass over the lanes; returns when the next row is due (epoch), or None."""
        names = {row.notifier for row in self.outbox.heads()}
        results = await asyncio.gather(
            *(self._deliver_notifier(name) for name in sorted(names)), return_exceptions=True
        )
        for r in results:  # every notifier had its pass; now report the first failure
            if isinstance(r, BaseException):
                raise r
        return self._next_due()

    async def _deliver_notifier(self, name: str) -> float | None:
        """One pass over one notifier's lanes, in order; when its next row is due."""
        now = self._clock.now()
        for row in self.outbox.heads(name):
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
        return self._next_due(name)

    def _next_due(self, name: str | None = None) -> float | None:
        dues = [
            max(r.next_at, self._paused_until.get(r.notifier, 0.0)) for r in self.outbox.heads(name)
        ]
        return min(dues) if dues else None

    async def _attempt(self, row: OutboxRow, notifier: Notifier) -> None:
        if row.state == "sending":  # a send may have arrived (crash, timeout): look first
            try:
                found = await self._reconcile(row, notifier)
            except RetryableDelivery as exc:  # cannot look now: do not post blindly
                self._failed(
                    row, UncertainDelivery(f"reconcile: {exc.reason}", retry_after=exc.retry_after)
                )
                return
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
            self._failed(row, UncertainDelivery(f"{type(exc).__name__}: {exc}"))
            return
        self.outbox.mark_sent(row, result, notifier)
        self._count(row, "sent")
        log.info("notified", notifier=row.notifier, op=row.op, incident=row.incident_id)

    def _count(self, row: OutboxRow, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.delivered(row.notifier, outcome)

    async def _reconcile(self, row: OutboxRow, notifier: Notifier) -> dict[str, Any] | None:
        """The far side's record of the row; a permanent failure to look means resend."""
        try:
            return await notifier.reconcile(row, self.outbox)
        except RetryableDelivery:
            raise
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
        uncertain = isinstance(exc, UncertainDelivery)
        if uncertain:
            delay = max(delay, self._s.reconcile_after_s)
        self._count(row, "failed")
        log.warning(
            "notify_retry",
            notifier=row.notifier,
            op=row.op,
            error=exc.reason,
            retry_in_s=delay,
            uncertain=uncertain,
        )
        self.outbox.retry_at(row, now + delay, exc.reason, uncertain=uncertain)

    def _dead(self, row: OutboxRow, reason: str) -> None:
        self._count(row, "dead")
        log.error("notify_gave_up", id=row.id, notifier=row.notifier, op=row.op, reason=reason)
        self.outbox.give_up(row, reason)

    # -- health ------------------------------------------------------------------

    def stuck(self) -> dict[str, float]:
        """Notifiers whose oldest undelivered row is older than ``stuck_after_s``: the
        age in seconds of that row. Empty when delivery keeps up (a readiness hook)."""
        ages = self.outbox.oldest_live_age(self._clock.now())
        return {n: age for n, age in ages.items() if age > self._s.stuck_after_s}

    # -- as a service ------------------------------------------------------------

    async def run(self) -> None:
        """Deliver until :meth:`stop`; an in-flight send always finishes and is recorded."""
        self._stopping = False
        workers = [
            asyncio.create_task(self._worker(name), name=f"outbox-{name}")
            for name in self.notifiers
        ]
        try:
            while not self._stopping:
                self._housekeep()
                await self._idle(self._s.poll_s, self._wakes[None])
        finally:
            self._stopping = True
            self.wake()
            if workers:  # each finishes (and records) the send it has in flight
                await asyncio.wait(workers)

    async def _worker(self, name: str) -> None:
        """One notifier's delivery loop: its slowness delays nobody else."""
        while not self._stopping:
            try:
                nxt = await self._deliver_notifier(name)
            except Exception:  # a damaged database or a bug: say so, keep the others going
                log.exception("outbox_worker_failed", notifier=name)
                nxt = None
            now = self._clock.now()
            delay = self._s.poll_s if nxt is None else min(max(nxt - now, 0.0), self._s.poll_s)
            if delay > 0 and not self._stopping:
                await self._idle(delay, self._wakes[name])

    def _housekeep(self) -> None:
        """Rows for notifiers no longer configured, pruning and metrics."""
        try:
            now = self._clock.now()
            for row in self.outbox.heads():
                if row.notifier not in self.notifiers:
                    self._dead(row, f"notifier {row.notifier!r} is not configured")
            self.outbox.prune(now - self._s.keep_sent_s)
            if self.metrics is not None:
                self.metrics.refresh(self.outbox.conn, now)
        except Exception:
            log.exception("outbox_db_error")

    async def _idle(self, delay: float, wake: asyncio.Event) -> None:
        wake.clear()
        waiter = asyncio.ensure_future(wake.wait())
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
        """Graceful: the current sends finish and are marked; then the tasks end."""
        self._stopping = True
        self.wake()
        task, self._task = self._task, None
        if task is not None:
            await asyncio.wait({task})
            if not task.cancelled() and task.exception() is not None:
                log.error("outbox_dispatcher_failed", error=str(task.exception()))
        for n in self.notifiers.values():
            with contextlib.suppress(Exception):
                await n.aclose()

"""The Teller the other stages call, and the factory the daemon uses.

``OutboxTeller.tell(notice)`` asks each notifier what it would send (policy
and rendering happen now, so the queued row is self-contained), puts each
message in the outbox under its idempotency key, and wakes the dispatcher.
It returns once everything is stored: nothing told is lost to a restart.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TextIO

import structlog
from prometheus_client import CollectorRegistry

from sentinel.base.audit import audit
from sentinel.base.clock import Clock
from sentinel.notify.alertmanager import AlertmanagerNotifier
from sentinel.notify.console import ConsoleNotifier
from sentinel.notify.dispatcher import Dispatcher
from sentinel.notify.metrics import NotifyMetrics
from sentinel.notify.outbox import Notifier, Outbox
from sentinel.notify.pagerduty import PagerDutyNotifier
from sentinel.notify.policy import PagingPolicy
from sentinel.notify.settings import NotifySettings
from sentinel.notify.slack import SlackNotifier
from sentinel.vocabulary.notices import Notice, PageRequest, Teller
from sentinel.vocabulary.ports import OpenIncidents

log = structlog.get_logger(__name__)


class OutboxTeller:
    """Implements :class:`sentinel.vocabulary.notices.Teller` on the durable outbox."""

    def __init__(
        self, outbox: Outbox, notifiers: Sequence[Notifier], dispatcher: Dispatcher | None = None
    ) -> None:
        self.outbox = outbox
        self.notifiers = list(notifiers)
        self.dispatcher = dispatcher

    async def tell(self, notice: Notice) -> None:
        queued = 0
        pages = 0
        for notifier in self.notifiers:
            for msg in notifier.plan(notice, self.outbox):
                if self.outbox.put(notifier.name, msg):
                    queued += 1
                    pages += msg.op == "trigger"
        if isinstance(notice, PageRequest):
            self._audit_page(notice, pages)
        if queued and self.dispatcher is not None:
            self.dispatcher.wake()

    def _audit_page(self, notice: PageRequest, pages: int) -> None:
        """Every page request is on the audit trail, including the ones a silence muted."""
        inc = notice.incident
        if inc.silenced_by:
            outcome = f"suppressed: silenced by {inc.silenced_by}"
        elif inc.inhibited_by:
            outcome = f"suppressed: inhibited by {inc.inhibited_by}"
        else:
            outcome = "paged" if pages else "not paged (no pager configured or already queued)"
        audit(
            self.outbox.conn,
            "sentinel",
            "page.requested",
            inc.key,
            outcome,
            {"incident": inc.id, "reason": notice.reason, "evidence": notice.evidence},
            at=inc.updated_at,
        )


class TappedTeller:
    """A teller that also shows each notice to an observer (the demo's timeline)."""

    def __init__(self, inner: Teller, tap: Callable[[Notice], None]) -> None:
        self._inner = inner
        self._tap = tap

    async def tell(self, notice: Notice) -> None:
        await self._inner.tell(notice)
        self._tap(notice)


@dataclass
class NotifyStack:
    """What the daemon runs: ``teller`` for the stages, ``dispatcher`` as a service."""

    teller: OutboxTeller
    dispatcher: Dispatcher
    outbox: Outbox
    alertmanager: AlertmanagerNotifier | None


def build_notify(
    conn: sqlite3.Connection,
    settings: NotifySettings,
    pod: str,
    clock: Clock,
    *,
    api_url: str = "http://127.0.0.1:9309",
    stream: TextIO | None = None,
    registry: CollectorRegistry | None = None,
    open_incidents: OpenIncidents | None = None,
) -> NotifyStack:
    """Build the enabled notifiers; ValueError names a misconfigured one (missing secret)."""
    policy = PagingPolicy(settings.policy, settings.routes)
    notifiers: list[Notifier] = []
    if settings.console.enabled:
        notifiers.append(ConsoleNotifier(stream))
    if settings.slack.enabled:
        notifiers.append(SlackNotifier(settings.slack, policy))
    if settings.pagerduty.enabled:
        notifiers.append(PagerDutyNotifier(settings.pagerduty, pod, policy))
    am = (
        AlertmanagerNotifier(settings.alertmanager, api_url)
        if settings.alertmanager.enabled
        else None
    )
    if am is not None:
        notifiers.append(am)
    outbox = Outbox(conn, clock)
    metrics = NotifyMetrics(registry, open_incidents) if registry is not None else None
    dispatcher = Dispatcher(
        outbox, {n.name: n for n in notifiers}, clock, settings.outbox, metrics=metrics
    )
    log.info("notifiers_built", notifiers=[n.name for n in notifiers])
    return NotifyStack(OutboxTeller(outbox, notifiers, dispatcher), dispatcher, outbox, am)

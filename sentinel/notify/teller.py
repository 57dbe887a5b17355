"""The Teller the other stages call, and the factory the daemon uses.

``OutboxTeller.tell(notice)`` asks each notifier what it would send (policy
and rendering happen now, so the queued row is self-contained), puts each
message in the outbox under its idempotency key, and wakes the dispatcher.
It returns once everything is stored: nothing told is lost to a restart.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO

import structlog

from sentinel.clock import Clock
from sentinel.notify.alertmanager import AlertmanagerNotifier
from sentinel.notify.console import ConsoleNotifier
from sentinel.notify.events import Notice
from sentinel.notify.outbox import Dispatcher, Notifier, Outbox
from sentinel.notify.pagerduty import PagerDutyNotifier
from sentinel.notify.policy import PagingPolicy
from sentinel.notify.settings import NotifySettings
from sentinel.notify.slack import SlackNotifier

log = structlog.get_logger(__name__)


class OutboxTeller:
    """Implements :class:`sentinel.notify.events.Teller` on the durable outbox."""

    def __init__(
        self, outbox: Outbox, notifiers: Sequence[Notifier], dispatcher: Dispatcher | None = None
    ) -> None:
        self.outbox = outbox
        self.notifiers = list(notifiers)
        self.dispatcher = dispatcher

    async def tell(self, notice: Notice) -> None:
        queued = 0
        for notifier in self.notifiers:
            for msg in notifier.plan(notice, self.outbox):
                queued += self.outbox.put(notifier.name, msg)
        if queued and self.dispatcher is not None:
            self.dispatcher.wake()


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
) -> NotifyStack:
    """Build the enabled notifiers; ValueError names a misconfigured one (missing secret)."""
    policy = PagingPolicy(settings.policy)
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
    dispatcher = Dispatcher(outbox, {n.name: n for n in notifiers}, clock, settings.outbox)
    log.info("notifiers_built", notifiers=[n.name for n in notifiers])
    return NotifyStack(OutboxTeller(outbox, notifiers, dispatcher), dispatcher, outbox, am)

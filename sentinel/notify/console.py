"""Console notifier: one readable line per notice on stdout (the demo's voice)."""

from __future__ import annotations

import sqlite3
import sys
import time
from typing import Any, TextIO

from sentinel.notify.outbox import History, Message, Outbox, OutboxRow
from sentinel.notify.policy import muted_note, notice_key
from sentinel.vocabulary.notices import ActionUpdate, IncidentChanged, Notice


def render_line(notice: Notice) -> str:
    """e.g. ``[incident opened] critical pod-a/resnet:1/latency_spike: p99 412 ms > 250 ms``."""
    if isinstance(notice, IncidentChanged):
        inc = notice.incident
        return (
            f"[incident {notice.change}] {inc.severity.value} {inc.key}: {inc.summary}"
            f"{muted_note(notice)}"
        )
    if isinstance(notice, ActionUpdate):
        where = notice.incident.key if notice.incident else "manual"
        step = f" step {notice.step}" if notice.step else ""
        dry = " (dry run)" if notice.dry_run else ""
        return f"[playbook {notice.playbook}{step} {notice.status}{dry}] {where}: {notice.text}"
    return f"[page] {notice.incident.key}: {notice.reason}{muted_note(notice)}"


class ConsoleNotifier:
    name = "console"

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream

    def plan(self, notice: Notice, history: History) -> list[Message]:
        inc = notice.incident
        return [
            Message(
                op="line",
                payload={"text": render_line(notice)},
                incident_id=inc.id if inc else None,
                key=notice_key(notice),
            )
        ]

    async def deliver(self, row: OutboxRow, outbox: Outbox) -> dict[str, Any]:
        stream = self._stream or sys.stdout
        stamp = time.strftime("%H:%M:%S", time.gmtime(row.created_at))
        print(f"{stamp} {row.payload['text']}", file=stream, flush=True)
        return {}

    async def reconcile(self, row: OutboxRow, outbox: Outbox) -> dict[str, Any] | None:
        return None

    def record(self, conn: sqlite3.Connection, row: OutboxRow, result: dict[str, Any]) -> None:
        return None

    async def aclose(self) -> None:
        return None

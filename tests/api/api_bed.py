"""The control API test bed: a recording PlaybookService stand-in and a client handle."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from sentinel.base.clock import FakeClock
from sentinel.notify.alertmanager import ExternalAlert
from sentinel.runbook.errors import UnknownPlaybook
from sentinel.vocabulary.ports import PlaybookService

TOKEN = "s3cret-api-token-0123"


@dataclass
class PlaybookServiceStandIn(PlaybookService):
    """STAND-IN for the runbook's PlaybookService: knows one playbook, records each call."""

    calls: list[tuple[Any, ...]] = field(default_factory=list)
    resets: list[str] = field(default_factory=list)

    async def run(
        self,
        name: str,
        target: dict[str, str],
        params: dict[str, str],
        dry_run: bool,
        actor: str,
    ) -> dict[str, Any]:
        if name != "restart-server":
            raise UnknownPlaybook(name)
        self.calls.append((name, target, params, dry_run, actor))
        return {"run_id": f"run-{len(self.calls)}", "status": "planned" if dry_run else "ok"}

    def runs(self, limit: int) -> list[dict[str, Any]]:
        return [{"run_id": f"run-{i + 1}", "playbook": c[0]} for i, c in enumerate(self.calls)][
            :limit
        ]

    def reset_breaker(self, actor: str) -> None:
        self.resets.append(actor)

    def list(self) -> list[dict[str, Any]]:
        return [{"name": "restart-server"}]


@dataclass
class Api:
    url: str
    conn: sqlite3.Connection
    clock: FakeClock
    playbooks: PlaybookServiceStandIn
    alerts: list[ExternalAlert]
    session: aiohttp.ClientSession

    def auth(self, token: str = TOKEN, actor: str = "alice") -> dict[str, str]:
        return {"Authorization": f"Bearer {token}", "X-Sentinel-Actor": actor}

"""Fixtures for the control API: a real server on loopback over a real SQLite file."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

import sentinel.audit
import sentinel.incidents.silences
import sentinel.incidents.store  # noqa: F401 -- registers the tables
from sentinel.api import build_app, start_api
from sentinel.clock import FakeClock
from sentinel.db import open_db
from sentinel.notify.alertmanager import ExternalAlert

TOKEN = "s3cret-api-token-0123"


@dataclass
class RecordingPlaybooks:
    """Stand-in for the playbook engine (implements sentinel.api.PlaybookService)."""

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
            raise KeyError(name)
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
    playbooks: RecordingPlaybooks
    alerts: list[ExternalAlert]
    session: aiohttp.ClientSession

    def auth(self, token: str = TOKEN, actor: str = "alice") -> dict[str, str]:
        return {"Authorization": f"Bearer {token}", "X-Sentinel-Actor": actor}


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    c = open_db(tmp_path / "sentinel.db")
    yield c
    c.close()


async def _serve(conn: sqlite3.Connection, token: str | None) -> AsyncIterator[Api]:
    clock = FakeClock()
    playbooks = RecordingPlaybooks()
    alerts: list[ExternalAlert] = []

    async def on_alerts(batch: list[ExternalAlert]) -> None:
        alerts.extend(batch)

    app = build_app(conn=conn, token=token, clock=clock, playbooks=playbooks, on_alerts=on_alerts)
    runner, port = await start_api(app, "127.0.0.1", 0)
    async with aiohttp.ClientSession() as session:
        yield Api(f"http://127.0.0.1:{port}", conn, clock, playbooks, alerts, session)
    await runner.cleanup()


@pytest.fixture
async def api(conn: sqlite3.Connection) -> AsyncIterator[Api]:
    async for a in _serve(conn, TOKEN):
        yield a


@pytest.fixture
async def api_without_token(conn: sqlite3.Connection) -> AsyncIterator[Api]:
    async for a in _serve(conn, None):
        yield a

"""Fixtures for the control API: a real server on loopback over a real SQLite file."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from api_bed import TOKEN, Api, PlaybookServiceStandIn

import sentinel.base.audit
import sentinel.incidents.silences
import sentinel.incidents.store  # noqa: F401 -- registers the tables
from sentinel.api import build_app, start_api
from sentinel.base.clock import FakeClock
from sentinel.base.db import open_db
from sentinel.notify.alertmanager import ExternalAlert


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    c = open_db(tmp_path / "sentinel.db")
    yield c
    c.close()


async def _serve(conn: sqlite3.Connection, token: str | None) -> AsyncIterator[Api]:
    clock = FakeClock()
    playbooks = PlaybookServiceStandIn()
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

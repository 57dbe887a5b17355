"""Fixtures for the notify stage: a real SQLite file, recording Slack/PagerDuty servers."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from notify_servers import PagerDutyServer, SlackServer
from pydantic import SecretStr

import sentinel.base.audit
import sentinel.incidents.silences
import sentinel.incidents.store
import sentinel.notify.outbox  # noqa: F401 -- registers the tables
from sentinel.base.clock import FakeClock
from sentinel.base.db import open_db
from sentinel.notify.settings import (
    ConsoleSettings,
    NotifySettings,
    PagerDutySettings,
    SlackSettings,
)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "sentinel.db"


@pytest.fixture
def conn(db_path: Path) -> Iterator[sqlite3.Connection]:
    c = open_db(db_path)
    yield c
    c.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def slack() -> AsyncIterator[SlackServer]:
    server = await SlackServer().start()
    yield server
    await server.stop()


@pytest.fixture
async def pd(tmp_path: Path) -> AsyncIterator[PagerDutyServer]:
    server = await PagerDutyServer().start(tmp_path)
    yield server
    await server.stop()


@pytest.fixture
def notify_settings(slack: SlackServer, pd: PagerDutyServer) -> NotifySettings:
    return NotifySettings(
        slack=SlackSettings(
            enabled=True,
            token=SecretStr(slack.token),
            channel="C0INCIDENTS",
            base_url=slack.base_url,
        ),
        pagerduty=PagerDutySettings(
            enabled=True,
            routing_key=SecretStr(pd.routing_key),
            base_url=pd.base_url,
            ca_file=pd.cert,
        ),
        console=ConsoleSettings(enabled=False),
    )

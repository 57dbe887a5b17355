"""Fixtures every test folder shares; stage-specific ones live in tests/<stage>/conftest.py.

The fakes themselves are public in ``sentinel.testing``; these fixtures only
start and stop them.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

import sentinel.base.audit
import sentinel.incidents.silences
import sentinel.incidents.store
import sentinel.notify.outbox  # noqa: F401 -- these register their tables with open_db
from sentinel.base.clock import FakeClock
from sentinel.base.db import open_db
from sentinel.testing.notifiers import AlertmanagerServer, PagerDutyServer, SlackServer

pytest_plugins = ["triton_fixtures"]


@pytest.fixture(autouse=True)
async def _no_leftover_tasks() -> AsyncIterator[None]:
    """Fail any test that leaves asyncio tasks running behind it (as kopf's suite does).

    Autouse, so it is set up before and torn down after the test's other
    fixtures: tasks that a fixture stops in its teardown do not count.
    """
    before = asyncio.all_tasks()
    yield
    await asyncio.sleep(0)  # let tasks that were just cancelled finish
    current = asyncio.current_task()
    left = [t for t in asyncio.all_tasks() - before if t is not current and not t.done()]
    if left:
        for t in left:
            t.cancel()
        # end them here, so the loop closes without "Task was destroyed but it is pending"
        await asyncio.wait(left, timeout=5)
        pytest.fail(f"test left asyncio tasks running: {left}", pytrace=False)


@pytest.fixture
def clock() -> FakeClock:
    """A FakeClock at its default epoch; time moves only when the test says so."""
    return FakeClock()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """Where sentinel's SQLite state goes (not created yet)."""
    return tmp_path / "state" / "sentinel.db"


@pytest.fixture
def conn(db_path: Path) -> Iterator[sqlite3.Connection]:
    """A real SQLite database with every table sentinel registers."""
    c = open_db(db_path)
    yield c
    c.close()


@pytest.fixture
async def slack() -> AsyncIterator[SlackServer]:
    """A loopback server speaking the Slack Web API, recording what it accepted."""
    server = await SlackServer().start()
    yield server
    await server.stop()


@pytest.fixture
async def pd(tmp_path: Path) -> AsyncIterator[PagerDutyServer]:
    """A loopback HTTPS server speaking PagerDuty Events v2 (its CA is ``pd.cert``)."""
    server = await PagerDutyServer().start(tmp_path)
    yield server
    await server.stop()


@pytest.fixture
async def am_server() -> AsyncIterator[AlertmanagerServer]:
    """A loopback server speaking Alertmanager's v2 alerts API."""
    server = await AlertmanagerServer().start()
    yield server
    await server.stop()

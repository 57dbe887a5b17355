"""/readyz says when sentinel cannot do its job: pages stuck behind a notifier."""

from __future__ import annotations

import sqlite3

import aiohttp

from sentinel.api import build_app, start_api
from sentinel.base.clock import FakeClock
from sentinel.incidents.manager import IncidentManager
from sentinel.incidents.settings import IncidentSettings
from sentinel.notify.settings import (
    ConsoleSettings,
    NotifySettings,
    OutboxSettings,
    PagerDutySettings,
)
from sentinel.notify.teller import build_notify
from sentinel.testing import PagerDutyServer, drain, finding
from sentinel.wiring import _degraded


async def test_readyz_fails_while_pages_are_stuck_and_recovers(
    conn: sqlite3.Connection, clock: FakeClock, pd: PagerDutyServer
) -> None:
    """A page waiting past stuck_after_s makes /readyz 503 naming the notifier; 200 once sent."""
    settings = NotifySettings(
        pagerduty=PagerDutySettings(
            enabled=True, routing_key=pd.routing_key, base_url=pd.base_url, ca_file=pd.cert
        ),
        console=ConsoleSettings(enabled=False),
        outbox=OutboxSettings(stuck_after_s=300),
    )
    stack = build_notify(conn, settings, "triton-0", clock)
    manager = IncidentManager(conn, IncidentSettings(), "triton-0", clock)
    for change in manager.ingest(finding("resnet", clock.now())):
        await stack.teller.tell(change)
    app = build_app(
        conn=conn, token=None, clock=clock, degraded=lambda: _degraded(stack.dispatcher)
    )
    runner, port = await start_api(app, "127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession(base_url=f"http://127.0.0.1:{port}") as client:
            async with client.get("/readyz") as ready:
                assert 200 == ready.status
            clock.set(clock.monotonic() + 400)
            async with client.get("/readyz") as stuck:
                assert (503, {"pagerduty": 400.0}) == (
                    stuck.status,
                    (await stuck.json())["pages_stuck_s"],
                )
            await drain(stack.dispatcher, clock)
            async with client.get("/readyz") as recovered:
                assert 200 == recovered.status
    finally:
        await stack.dispatcher.stop()
        await runner.cleanup()

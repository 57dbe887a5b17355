"""Notifier details: give-up on 4xx, webhook fallback, console lines, the dispatcher as a
service, Alertmanager re-sends, and webhook-to-finding mapping."""

from __future__ import annotations

import asyncio
import io
import sqlite3
from typing import Any

from aiohttp import web
from pydantic import SecretStr

from sentinel.base.clock import FakeClock
from sentinel.incidents.manager import IncidentManager
from sentinel.incidents.settings import IncidentSettings
from sentinel.notify.alertmanager import AlertmanagerNotifier, ExternalAlert, alert_to_judgement
from sentinel.notify.dispatcher import Dispatcher
from sentinel.notify.outbox import Outbox
from sentinel.notify.settings import (
    AlertmanagerSettings,
    ConsoleSettings,
    NotifySettings,
    PagerDutySettings,
    SlackSettings,
)
from sentinel.notify.slack import SlackNotifier
from sentinel.notify.teller import OutboxTeller, build_notify
from sentinel.testing import Failure, PagerDutyServer, SlackServer, drain, finding
from sentinel.vocabulary.findings import Cleared, Finding, Severity
from sentinel.vocabulary.notices import ActionUpdate

POD = "pod-a"


async def test_4xx_gives_up_with_reason_and_does_not_block_others(
    conn: sqlite3.Connection,
    clock: FakeClock,
    slack: SlackServer,
    pd: PagerDutyServer,
    notify_settings: NotifySettings,
) -> None:
    """A refused PagerDuty event (bad routing key) is dead with the reason; Slack goes on."""
    bad_pd = notify_settings.pagerduty.model_copy(update={"routing_key": SecretStr("wrong")})
    settings = notify_settings.model_copy(update={"pagerduty": bad_pd})
    manager = IncidentManager(conn, IncidentSettings(), POD, clock)
    stack = build_notify(conn, settings, POD, clock)
    [opened] = manager.ingest(finding("resnet", clock.now()))
    await stack.teller.tell(opened)
    await drain(stack.dispatcher, clock)
    await stack.dispatcher.stop()
    [dead] = stack.outbox.rows("dead")
    assert (dead.notifier, dead.op) == ("pagerduty", "trigger")
    assert "refused (400)" in (dead.last_error or "")
    assert "Invalid routing key" in (dead.last_error or "")
    assert [] == pd.events
    assert [f"slack/{opened.incident.id}/root"] == slack.idem_keys()


async def test_slack_error_answer_is_permanent(
    conn: sqlite3.Connection, clock: FakeClock, slack: SlackServer
) -> None:
    """ok=false with a non-transient error (invalid_auth) is given up, not retried forever."""
    settings = SlackSettings(
        enabled=True, token=SecretStr("xoxb-wrong"), channel="C1", base_url=slack.base_url
    )
    notifier = SlackNotifier(settings)
    outbox = Outbox(conn, clock)
    dispatcher = Dispatcher(outbox, {"slack": notifier}, clock)
    manager = IncidentManager(conn, IncidentSettings(), POD, clock)
    [opened] = manager.ingest(finding("resnet", clock.now()))
    await OutboxTeller(outbox, [notifier], dispatcher).tell(opened)
    await drain(dispatcher, clock)
    await dispatcher.stop()
    [dead] = outbox.rows("dead")
    assert "invalid_auth" in (dead.last_error or "")


async def test_slack_5xx_backs_off_exponentially(
    conn: sqlite3.Connection, clock: FakeClock, slack: SlackServer, notify_settings: NotifySettings
) -> None:
    """Repeated 500s are retried after 1, 2, 4 s (the configured initial backoff doubling)."""
    notifier = SlackNotifier(notify_settings.slack)
    outbox = Outbox(conn, clock)
    dispatcher = Dispatcher(outbox, {"slack": notifier}, clock)
    manager = IncidentManager(conn, IncidentSettings(), POD, clock)
    [opened] = manager.ingest(finding("resnet", clock.now()))
    await OutboxTeller(outbox, [notifier]).tell(opened)
    slack.script = [Failure(500)] * 3
    t0 = clock.now()
    waits = []
    for _ in range(3):
        nxt = await dispatcher.deliver_due()
        assert nxt is not None
        waits.append(nxt - clock.now())
        clock.set(clock.monotonic() + (nxt - clock.now()))
    assert [1.0, 2.0, 4.0] == waits
    assert await dispatcher.deliver_due() is None
    await dispatcher.stop()
    assert (len(slack.messages), clock.now() - t0) == (1, 7.0)


async def test_webhook_fallback_posts_without_threads(
    conn: sqlite3.Connection, clock: FakeClock
) -> None:
    """With only a webhook URL, root and replies are plain posts; updates are skipped."""
    received: list[dict[str, Any]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/services/T/B/X", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        url = f"http://127.0.0.1:{port}/services/T/B/X"
        notifier = SlackNotifier(SlackSettings(enabled=True, webhook_url=SecretStr(url)))
        outbox = Outbox(conn, clock)
        dispatcher = Dispatcher(outbox, {"slack": notifier}, clock)
        teller = OutboxTeller(outbox, [notifier])
        manager = IncidentManager(conn, IncidentSettings(), POD, clock)
        [opened] = manager.ingest(finding("resnet", clock.now()))
        await teller.tell(opened)
        for ch in manager.mark_mitigating(opened.incident.id, "int8-to-fp16"):
            await teller.tell(ch)
        await drain(dispatcher, clock)
        await dispatcher.stop()
    finally:
        await runner.cleanup()
    assert 2 == len(received)  # root + mitigating reply; the root update is skipped
    assert "blocks" in received[0]
    assert "*mitigating*" in received[1]["text"]
    assert {"sent"} == {r.state for r in outbox.rows()}


async def test_console_lines_and_dispatcher_service(
    conn: sqlite3.Connection, clock: FakeClock
) -> None:
    """The dispatcher task wakes on tell() and prints readable lines; stop() ends it."""
    out = io.StringIO()
    stack = build_notify(
        conn, NotifySettings(console=ConsoleSettings(enabled=True)), POD, clock, stream=out
    )
    stack.dispatcher.start()
    manager = IncidentManager(conn, IncidentSettings(), POD, clock)
    [opened] = manager.ingest(finding("resnet", clock.now()))
    await stack.teller.tell(opened)
    await stack.teller.tell(
        ActionUpdate(opened.incident, "int8-to-fp16", "r1", "reload", "started", "reloading")
    )
    for _ in range(100):
        await asyncio.sleep(0.01)
        if out.getvalue().count("\n") >= 2:
            break
    await stack.dispatcher.stop()
    lines = [line.split(" ", 1)[1] for line in out.getvalue().splitlines()]
    assert [
        f"[incident opened] critical pod-a/resnet:1/latency_spike: {opened.incident.summary}",
        "[playbook int8-to-fp16 step reload started] pod-a/resnet:1/latency_spike: reloading",
    ] == lines


async def test_alertmanager_resend_pushes_open_unmuted(
    conn: sqlite3.Connection, clock: FakeClock
) -> None:
    """resend() re-pushes every open, unmuted incident as firing (no endsAt)."""
    posts: list[list[dict[str, Any]]] = []

    async def alerts(request: web.Request) -> web.Response:
        posts.append(await request.json())
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/api/v2/alerts", alerts)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        manager = IncidentManager(conn, IncidentSettings(), POD, clock)
        manager.silences.add(["model=bert"], clock.now(), clock.now() + 60, "a", "b", clock.now())
        [firing] = manager.ingest(finding("resnet", clock.now()))
        manager.ingest(finding("bert", clock.now()))
        am = AlertmanagerNotifier(AlertmanagerSettings(url=f"http://127.0.0.1:{port}"))
        assert 1 == await am.resend(manager.store.open())
        await am.aclose()
    finally:
        await runner.cleanup()
    [[alert]] = posts
    assert (firing.incident.id, False) == (alert["annotations"]["incident_id"], "endsAt" in alert)


def test_external_alert_mapping() -> None:
    """Firing alerts map to findings (kind, severity, GPU); resolved ones to Cleared."""
    labels = {"alertname": "GpuXidError", "UUID": "GPU-1", "severity": "warning"}
    firing = alert_to_judgement(ExternalAlert("firing", labels, starts_at=10.0), now=20.0)
    assert isinstance(firing, Finding)
    assert (
        firing.kind,
        firing.severity,
        firing.subject.gpu_uuid,
        firing.started_at,
        firing.detected_at,
    ) == ("gpu_xid_error", Severity.WARNING, "GPU-1", 10.0, 20.0)
    custom = {"alertname": "X", "sentinel_kind": "xid_hardware", "model": "resnet"}
    resolved = alert_to_judgement(ExternalAlert("resolved", custom, ends_at=30.0), now=40.0)
    assert isinstance(resolved, Cleared)
    assert (resolved.kind, resolved.subject.model, resolved.cleared_at) == (
        "xid_hardware",
        "resnet",
        30.0,
    )


def test_pagerduty_settings_refuse_plain_http() -> None:
    """The PagerDuty base URL must be https (the routing key travels in the body)."""
    import pydantic
    import pytest

    with pytest.raises(pydantic.ValidationError, match="https"):
        PagerDutySettings(base_url="http://127.0.0.1:1")


def test_alertmanager_escalation_ends_the_lower_severity_alert(
    conn: sqlite3.Connection, clock: FakeClock
) -> None:
    """On escalation the new alert fires and the same alert at lower severities ends."""
    manager = IncidentManager(conn, IncidentSettings(), POD, clock)
    manager.ingest(finding("resnet", clock.now(), severity=Severity.WARNING))
    [escalated] = manager.ingest(finding("resnet", clock.now() + 5))
    am = AlertmanagerNotifier(AlertmanagerSettings())
    [msg] = am.plan(escalated, Outbox(conn, clock))
    summary = [(a["labels"]["severity"], "endsAt" in a) for a in msg.payload["alerts"]]
    assert [("critical", False), ("info", True), ("warning", True)] == summary

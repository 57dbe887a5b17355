"""Delivery under damage and slowness: a corrupt row, a slow Slack, a hanging Slack."""

from __future__ import annotations

import asyncio
import sqlite3
import time

import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from sentinel.base.clock import FakeClock
from sentinel.incidents.manager import IncidentManager
from sentinel.incidents.settings import IncidentSettings
from sentinel.notify.settings import NotifySettings, OutboxSettings
from sentinel.notify.teller import build_notify
from sentinel.testing import PagerDutyServer, SlackServer, drain, finding
from sentinel.vocabulary.notices import Notice

POD = "pod-a"


async def _open(conn: sqlite3.Connection, clock: FakeClock, *models: str) -> list[Notice]:
    manager = IncidentManager(conn, IncidentSettings(), POD, clock)
    return [n for m in models for n in manager.ingest(finding(m, clock.now()))]


@pytest.mark.parametrize(
    "damage",
    ['\'{"text": "cut sho\'', "X'fffe00'", "'[1, 2]'"],
    ids=["truncated-json", "not-utf8", "not-an-object"],
)
async def test_unreadable_row_is_given_up_and_the_others_are_delivered(
    conn: sqlite3.Connection,
    clock: FakeClock,
    slack: SlackServer,
    pd: PagerDutyServer,
    notify_settings: NotifySettings,
    damage: str,
) -> None:
    """One damaged payload is marked dead with a log naming its id; every other row goes out."""
    stack = build_notify(conn, notify_settings, POD, clock)
    for notice in await _open(conn, clock, "resnet", "bert"):
        await stack.teller.tell(notice)
    bad = stack.outbox.rows()[0]
    with conn:
        conn.execute(f"UPDATE outbox SET payload = {damage} WHERE id = ?", (bad.id,))
    with capture_logs() as logs:
        await drain(stack.dispatcher, clock)
    await stack.dispatcher.stop()
    states = {r.id: r.state for r in stack.outbox.rows()}
    assert "dead" == states.pop(bad.id)
    assert {"sent"} == set(states.values())
    assert 3 == len(states)
    unreadable = [e for e in logs if e["event"] == "outbox_row_unreadable"]
    assert [bad.id] == [e["id"] for e in unreadable]
    assert 1 == len(slack.roots())
    assert 2 == len(pd.events)
    [dead] = stack.outbox.rows("dead")
    assert (dead.last_error or "").startswith("unreadable row")


async def test_running_dispatcher_survives_an_unreadable_row(
    conn: sqlite3.Connection,
    clock: FakeClock,
    slack: SlackServer,
    pd: PagerDutyServer,
    notify_settings: NotifySettings,
) -> None:
    """The dispatcher as a service keeps delivering past a damaged row (no crash loop)."""
    stack = build_notify(conn, notify_settings, POD, clock)
    for notice in await _open(conn, clock, "resnet", "bert"):
        await stack.teller.tell(notice)
    bad = stack.outbox.rows()[0]
    with conn:
        conn.execute("UPDATE outbox SET payload = X'fffe00' WHERE id = ?", (bad.id,))
    stack.dispatcher.start()
    try:
        await _until(lambda: 3 == stack.outbox.counts().get("sent", 0), within_s=20)
    finally:
        await stack.dispatcher.stop()
    assert {"sent": 3, "dead": 1} == stack.outbox.counts()


async def test_slow_slack_answer_is_reconciled_not_posted_again(
    conn: sqlite3.Connection,
    clock: FakeClock,
    slack: SlackServer,
    pd: PagerDutyServer,
    notify_settings: NotifySettings,
) -> None:
    """Posts answered after the client timeout are found by metadata: N notices, N posts."""
    settings = _slack_timeout(notify_settings, 1)
    stack = build_notify(conn, settings, POD, clock)
    notices = await _open(conn, clock, "resnet", "bert")
    for notice in notices:
        await stack.teller.tell(notice)
    slack.delays = [2.5, 2.5]  # both roots arrive, their answers come too late
    await drain(stack.dispatcher, clock)
    await stack.dispatcher.stop()
    expected = sorted(f"slack/{n.incident.id}/root" for n in notices if n.incident is not None)
    assert expected == sorted(slack.idem_keys())
    slack_rows = [r for r in stack.outbox.rows() if r.notifier == "slack"]
    assert {"sent"} == {r.state for r in slack_rows}
    for n in notices:  # the thread refs point at the messages that did arrive
        assert n.incident is not None
        ref = stack.outbox.ref("slack", n.incident.id)
        assert ref is not None
        assert ref["ts"] in {m["ts"] for m in slack.messages}


async def test_hanging_slack_does_not_hold_back_pagerduty(
    conn: sqlite3.Connection,
    clock: FakeClock,
    slack: SlackServer,
    pd: PagerDutyServer,
    notify_settings: NotifySettings,
) -> None:
    """While Slack holds its answer, the running dispatcher still pages, notice after notice."""
    settings = _slack_timeout(notify_settings, 120)  # Slack hangs for the whole test
    slack.hold = asyncio.Event()
    stack = build_notify(conn, settings, POD, clock)
    [first, second] = await _open(conn, clock, "resnet", "bert")
    stack.dispatcher.start()
    try:
        await stack.teller.tell(first)
        await _until(lambda: 1 == len(pd.events), within_s=20)
        await stack.teller.tell(second)  # told while Slack still hangs
        await _until(lambda: 2 == len(pd.events), within_s=20)
        assert 1 == len(slack.messages)  # Slack got the first root and has not answered
        assert [first.incident.key, second.incident.key] == [k for _, k in pd.actions()]
    finally:
        slack.hold.set()
        await stack.dispatcher.stop()


async def test_stuck_notifier_shows_in_the_metric_and_the_readiness_hook(
    conn: sqlite3.Connection,
    clock: FakeClock,
    slack: SlackServer,
    pd: PagerDutyServer,
    notify_settings: NotifySettings,
) -> None:
    """Pages waiting past stuck_after_s show per notifier; back to 0 once they go out."""
    settings = notify_settings.model_copy(update={"outbox": OutboxSettings(stuck_after_s=300)})
    registry = CollectorRegistry()
    stack = build_notify(conn, settings, POD, clock, registry=registry)
    [opened] = await _open(conn, clock, "resnet")
    await stack.teller.tell(opened)  # not delivered: the dispatcher is not running
    clock.set(clock.monotonic() + 400)
    metrics = stack.dispatcher.metrics
    assert metrics is not None
    metrics.refresh(conn, clock.now())
    age = "sentinel_outbox_oldest_pending_age_seconds"
    assert 400.0 == registry.get_sample_value(age, {"notifier": "pagerduty"})
    assert {"slack": 400.0, "pagerduty": 400.0} == stack.dispatcher.stuck()
    await drain(stack.dispatcher, clock)
    await stack.dispatcher.stop()
    metrics.refresh(conn, clock.now())
    assert 0.0 == registry.get_sample_value(age, {"notifier": "pagerduty"})
    assert {} == stack.dispatcher.stuck()


def _slack_timeout(settings: NotifySettings, timeout_s: float) -> NotifySettings:
    slack = settings.slack.model_copy(update={"timeout_s": timeout_s})
    return settings.model_copy(update={"slack": slack})


async def _until(cond: object, within_s: float) -> None:
    """Wait on the real clock until ``cond()`` holds; fail after ``within_s``."""
    assert callable(cond)
    deadline = time.monotonic() + within_s
    while not cond():
        assert time.monotonic() < deadline, f"not within {within_s}s"
        await asyncio.sleep(0.02)

"""Exactly-once delivery through the outbox, across restarts, crashes and 429 storms."""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter
from pathlib import Path

from sentinel.base.clock import FakeClock
from sentinel.base.db import open_db
from sentinel.incidents.manager import IncidentManager
from sentinel.incidents.settings import IncidentSettings
from sentinel.notify.settings import NotifySettings, PagerDutySettings
from sentinel.notify.teller import build_notify
from sentinel.testing import Failure, PagerDutyServer, SlackServer, cleared, drain, finding
from sentinel.vocabulary.notices import ActionUpdate, Notice

POD = "pod-a"


def _timeline(manager: IncidentManager, clock: FakeClock) -> list[Notice]:
    notices: list[Notice] = []
    for model in ("resnet", "bert", "yolo"):
        notices += manager.ingest(finding(model, clock.now()))
    first = notices[0].incident
    assert first is not None
    notices += manager.mark_mitigating(first.id, "int8-to-fp16", "run-1")
    notices.append(
        ActionUpdate(first, "int8-to-fp16", "run-1", "reload", "succeeded", "reloaded as FP16")
    )
    clock.set(clock.monotonic() + 10)
    notices += manager.ingest(cleared("resnet", clock.now()))
    return notices


async def test_restart_in_429_storm_delivers_every_notice_exactly_once(
    db_path: Path,
    clock: FakeClock,
    slack: SlackServer,
    pd: PagerDutyServer,
    notify_settings: NotifySettings,
) -> None:
    """A dispatcher restarted mid 429/500 storm ends with each notice delivered once."""
    conn = open_db(db_path)
    manager = IncidentManager(conn, IncidentSettings(resolve_hold_s=0), POD, clock)
    stack = build_notify(conn, notify_settings, POD, clock)
    slack.script = [Failure(429, retry_after=30)] * 4 + [Failure(500)]
    pd.script = [Failure(429, retry_after=20)] * 3 + [Failure(500)] * 2
    notices = _timeline(manager, clock)
    for n in notices + notices:  # telling twice queues once
        await stack.teller.tell(n)
    await stack.dispatcher.deliver_due()
    clock.set(clock.monotonic() + 30)
    await stack.dispatcher.deliver_due()
    assert stack.outbox.counts().get("pending", 0) > 0  # still mid-storm
    await stack.dispatcher.stop()
    conn.close()

    conn = open_db(db_path)  # the restart: new connection, clients, dispatcher
    stack = build_notify(conn, notify_settings, POD, clock)
    await drain(stack.dispatcher, clock)
    await stack.dispatcher.stop()

    rows = stack.outbox.rows()
    assert {"sent"} == {r.state for r in rows}
    posted = sorted(r.idem_key for r in rows if r.notifier == "slack" and r.op != "update")
    assert posted == sorted(slack.idem_keys())
    assert 3 == len(slack.roots())
    root_of = {m["metadata"]["event_payload"]["idem"]: m["ts"] for m in slack.roots()}
    resnet = notices[0].incident
    assert resnet is not None
    resnet_root = root_of[f"slack/{resnet.id}/root"]
    replies = [m for m in slack.messages if m.get("thread_ts")]
    assert [resnet_root] * 3 == [m["thread_ts"] for m in replies]  # mitigating, step, resolved
    assert [resnet_root] * 2 == [u["ts"] for u in slack.updates]  # root updated twice
    keys = [n.incident.key for n in notices[:3] if n.incident is not None]
    expected_pd = [("trigger", k) for k in keys] + [
        ("acknowledge", resnet.key),
        ("resolve", resnet.key),
    ]
    assert Counter(expected_pd) == Counter(pd.actions())
    resnet_actions = [a for a, k in pd.actions() if k == resnet.key]
    assert ["trigger", "acknowledge", "resolve"] == resnet_actions
    assert 1 == len(pd.changes)
    conn.close()


async def test_send_interrupted_by_a_crash_is_found_not_reposted(
    db_path: Path,
    clock: FakeClock,
    slack: SlackServer,
    pd: PagerDutyServer,
    notify_settings: NotifySettings,
) -> None:
    """A row left 'sending' after Slack got it is reconciled by metadata, not posted again."""
    conn = open_db(db_path)
    manager = IncidentManager(conn, IncidentSettings(), POD, clock)
    stack = build_notify(conn, notify_settings, POD, clock)
    [opened] = manager.ingest(finding("resnet", clock.now()))
    await stack.teller.tell(opened)
    [root] = [r for r in stack.outbox.rows() if r.op == "root"]
    slack_notifier = stack.dispatcher.notifiers["slack"]
    stack.outbox.mark_sending(root)
    await slack_notifier.deliver(root, stack.outbox)  # arrived; then the process "died"
    await slack_notifier.aclose()  # the test's own clean-up (a dead process holds no sockets)
    conn.close()

    conn = open_db(db_path)
    stack = build_notify(conn, notify_settings, POD, clock)
    await drain(stack.dispatcher, clock)
    await stack.dispatcher.stop()
    assert [f"slack/{opened.incident.id}/root"] == slack.idem_keys()
    ref = stack.outbox.ref("slack", opened.incident.id)
    assert {"channel": "C0INCIDENTS", "ts": slack.messages[0]["ts"]} == ref
    conn.close()


async def test_cancelled_dispatcher_finishes_and_records_its_send(
    conn: object,
    db_path: Path,
    clock: FakeClock,
    slack: SlackServer,
    pd: PagerDutyServer,
    notify_settings: NotifySettings,
) -> None:
    """Cancelling the dispatcher task mid-send still records the send, so no repost."""
    c = open_db(db_path)
    manager = IncidentManager(c, IncidentSettings(), POD, clock)
    stack = build_notify(c, notify_settings, POD, clock)
    [opened] = manager.ingest(finding("resnet", clock.now()))
    await stack.teller.tell(opened)
    task = stack.dispatcher.start()
    for _ in range(200):  # let the first request get on the wire
        await asyncio.sleep(0)
        if slack.requests or pd.requests:
            break
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await drain(stack.dispatcher, clock)
    await stack.dispatcher.stop()
    assert 1 == len(slack.messages)
    assert [("trigger", opened.incident.key)] == pd.actions()
    c.close()


async def test_incident_resolved_while_down_is_resolved_in_pagerduty_after_restart(
    db_path: Path,
    clock: FakeClock,
    slack: SlackServer,
    pd: PagerDutyServer,
    notify_settings: NotifySettings,
) -> None:
    """After a restart, an incident no detector re-confirms is resolved with its dedup key."""
    settings = IncidentSettings(restart_grace_s=120)
    conn = open_db(db_path)
    manager = IncidentManager(conn, settings, POD, clock)
    stack = build_notify(conn, notify_settings, POD, clock)
    [opened] = manager.ingest(finding("resnet", clock.now()))
    await stack.teller.tell(opened)
    await drain(stack.dispatcher, clock)
    await stack.dispatcher.stop()
    conn.close()  # sentinel goes down; the problem ends meanwhile

    clock.set(clock.monotonic() + 600)
    conn = open_db(db_path)
    manager = IncidentManager(conn, settings, POD, clock)
    stack = build_notify(conn, notify_settings, POD, clock)
    assert [opened.incident.id] == [i.id for i in manager.recover()]
    assert [] == manager.tick()  # still within the grace period
    clock.set(clock.monotonic() + 121)
    changes = manager.tick()
    assert [("resolved", opened.incident.id)] == [(c.change, c.incident.id) for c in changes]
    for ch in changes:
        await stack.teller.tell(ch)
    await drain(stack.dispatcher, clock)
    await stack.dispatcher.stop()
    key = opened.incident.key
    assert [("trigger", key), ("resolve", key)] == pd.actions()
    conn.close()


async def test_sigkill_between_send_and_mark_does_not_post_twice(
    db_path: Path, slack: SlackServer, notify_settings: NotifySettings
) -> None:
    """A process killed after Slack took the message but before marking it: no repost."""
    clock = FakeClock(time.time())
    conn = open_db(db_path)
    settings = notify_settings.model_copy(update={"pagerduty": PagerDutySettings()})
    manager = IncidentManager(conn, IncidentSettings(), POD, clock)
    stack = build_notify(conn, settings, POD, clock)
    [opened] = manager.ingest(finding("resnet", clock.now()))
    await stack.teller.tell(opened)
    slack.hold = asyncio.Event()  # Slack records the post, then never answers
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        str(Path(__file__).with_name("crash_child.py")),
        str(db_path),
        slack.base_url,
        slack.token,
        "C0INCIDENTS",
    )
    try:
        for _ in range(300):
            if slack.messages:
                break
            await asyncio.sleep(0.02)
    finally:
        child.kill()  # SIGKILL: no chance to mark anything
        await child.wait()
    slack.hold.set()
    assert ["sending"] == [r.state for r in stack.outbox.rows()]

    stack = build_notify(conn, settings, POD, clock)  # the restart
    await drain(stack.dispatcher, clock)
    await stack.dispatcher.stop()
    assert [f"slack/{opened.incident.id}/root"] == slack.idem_keys()
    assert ["sent"] == [r.state for r in stack.outbox.rows()]
    conn.close()

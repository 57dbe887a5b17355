"""Paging policy: what pages, what only goes to Slack, and silences."""

from __future__ import annotations

import sqlite3

from sentinel.base.audit import entries
from sentinel.base.clock import FakeClock
from sentinel.incidents.manager import IncidentManager
from sentinel.incidents.settings import IncidentSettings
from sentinel.notify.policy import PagingPolicy
from sentinel.notify.settings import NotifySettings, PolicySettings
from sentinel.notify.teller import build_notify
from sentinel.testing import PagerDutyServer, SlackServer, drain, finding
from sentinel.vocabulary.findings import Severity
from sentinel.vocabulary.notices import ActionUpdate, PageRequest

POD = "pod-a"


async def test_silence_suppresses_pages_until_it_expires_and_audit_still_records(
    conn: sqlite3.Connection,
    clock: FakeClock,
    slack: SlackServer,
    pd: PagerDutyServer,
    notify_settings: NotifySettings,
) -> None:
    """A matching silence stops PagerDuty (not the audit trail) until it expires."""
    manager = IncidentManager(conn, IncidentSettings(renotify_interval_s=0), POD, clock)
    stack = build_notify(conn, notify_settings, POD, clock)
    silence = manager.silences.add(
        ["model=resnet"],
        clock.now(),
        clock.now() + 3600,
        "alice",
        "rebuilding engines",
        clock.now(),
    )
    [muted] = manager.ingest(finding("resnet", clock.now()))
    [other] = manager.ingest(finding("bert", clock.now()))
    for change in (muted, other):
        await stack.teller.tell(change)
    await drain(stack.dispatcher, clock)
    assert silence.id == muted.incident.silenced_by
    assert [("trigger", other.incident.key)] == pd.actions()
    root = {m["metadata"]["event_payload"]["idem"]: m["text"] for m in slack.roots()}
    assert f"(muted by silence {silence.id}: no page)" in root[f"slack/{muted.incident.id}/root"]
    expected = {
        (muted.incident.key, f"silenced by {silence.id}"),
        (other.incident.key, "recorded"),
    }
    opened = entries(conn, action="incident.opened")
    assert {(e["target"], e["outcome"]) for e in opened} == expected

    clock.set(clock.monotonic() + 1800)
    assert [] == manager.tick()  # still silenced
    clock.set(clock.monotonic() + 1801)
    changes = manager.tick()
    assert [("renotify", muted.incident.id)] == [(c.change, c.incident.id) for c in changes]
    for change in changes:
        await stack.teller.tell(change)
    await drain(stack.dispatcher, clock)
    await stack.dispatcher.stop()
    assert [("trigger", other.incident.key), ("trigger", muted.incident.key)] == pd.actions()


async def test_warning_goes_to_slack_only_and_page_request_pages(
    conn: sqlite3.Connection,
    clock: FakeClock,
    slack: SlackServer,
    pd: PagerDutyServer,
    notify_settings: NotifySettings,
) -> None:
    """Below page_severity only Slack hears; a PageRequest then pages with its reason."""
    manager = IncidentManager(conn, IncidentSettings(), POD, clock)
    stack = build_notify(conn, notify_settings, POD, clock)
    [opened] = manager.ingest(finding("resnet", clock.now(), severity=Severity.WARNING))
    await stack.teller.tell(opened)
    await drain(stack.dispatcher, clock)
    assert [] == pd.actions()
    assert [f"slack/{opened.incident.id}/root"] == slack.idem_keys()

    await stack.teller.tell(
        PageRequest(opened.incident, "guard blocked restart: HW thermal slowdown", {"temp_c": 91})
    )
    await stack.teller.tell(
        ActionUpdate(opened.incident, "restart", "r1", None, "blocked", "HW slowdown", dry_run=True)
    )
    await drain(stack.dispatcher, clock)
    await stack.dispatcher.stop()
    [event] = pd.events
    assert ("trigger", opened.incident.key) == (event["event_action"], event["dedup_key"])
    details = event["payload"]["custom_details"]
    assert "guard blocked restart: HW thermal slowdown" == details["page_reason"]
    assert (
        event["payload"]["severity"],
        event["payload"]["source"],
        event["payload"]["component"],
    ) == ("warning", POD, "resnet")
    assert [] == pd.changes  # dry runs are not changes
    replies = [m["text"] for m in slack.messages if m.get("thread_ts")]
    assert 2 == len(replies)
    assert "paging a human" in replies[0]


def test_policy_pages_critical_but_never_muted(conn: sqlite3.Connection, clock: FakeClock) -> None:
    """Critical opens page; muted or resolved ones do not; page_severity is configurable."""
    manager = IncidentManager(conn, IncidentSettings(resolve_hold_s=0), POD, clock)
    [crit] = manager.ingest(finding("resnet", clock.now()))
    [warn] = manager.ingest(finding("bert", clock.now(), severity=Severity.WARNING))
    policy = PagingPolicy()
    assert (policy.pages(crit), policy.pages(warn)) == (True, False)
    assert PagingPolicy(PolicySettings(page_severity=Severity.WARNING)).pages(warn)
    muted = crit.incident
    muted.silenced_by = "s1"
    assert not policy.pages(PageRequest(muted, "failed"))
    assert not PagingPolicy(PolicySettings(slack_when_muted=False)).to_slack(
        crit.__class__(muted, "opened")
    )


async def test_page_requests_are_audited_even_when_silenced(
    conn: sqlite3.Connection,
    clock: FakeClock,
    slack: SlackServer,
    pd: PagerDutyServer,
    notify_settings: NotifySettings,
) -> None:
    """A PageRequest on a silenced incident pages no one but lands in the audit trail."""
    manager = IncidentManager(conn, IncidentSettings(), POD, clock)
    stack = build_notify(conn, notify_settings, POD, clock)
    s = manager.silences.add(
        ["kind=gpu_oom"], clock.now(), clock.now() + 60, "ann", "drill", clock.now()
    )
    [muted] = manager.ingest(finding("resnet", clock.now(), kind="gpu_oom"))
    [loud] = manager.ingest(finding("bert", clock.now(), kind="error_burst"))
    await stack.teller.tell(PageRequest(muted.incident, "restart failed"))
    await stack.teller.tell(PageRequest(loud.incident, "guard blocked"))
    await drain(stack.dispatcher, clock)
    await stack.dispatcher.stop()
    assert [("trigger", loud.incident.key)] == pd.actions()
    audited = {(e["target"], e["outcome"]) for e in entries(conn, action="page.requested")}
    assert {
        (muted.incident.key, f"suppressed: silenced by {s.id}"),
        (loud.incident.key, "paged"),
    } == audited


async def test_playbook_acknowledge_and_resolve_follow_a_page(
    conn: sqlite3.Connection,
    clock: FakeClock,
    pd: PagerDutyServer,
    notify_settings: NotifySettings,
) -> None:
    """A playbook's pagerduty.acknowledge/resolve acts on the incident's page, never alone."""
    manager = IncidentManager(conn, IncidentSettings(), POD, clock)
    stack = build_notify(conn, notify_settings, POD, clock)
    [opened] = manager.ingest(finding("resnet", clock.now(), severity=Severity.WARNING))
    await stack.teller.tell(PageRequest(opened.incident, "before any page", action="resolve"))
    await drain(stack.dispatcher, clock)
    assert [] == pd.actions()
    await stack.teller.tell(PageRequest(opened.incident, "restart blocked"))
    await stack.teller.tell(PageRequest(opened.incident, "taken", action="acknowledge"))
    await stack.teller.tell(PageRequest(opened.incident, "fixed", action="resolve"))
    await drain(stack.dispatcher, clock)
    await stack.dispatcher.stop()
    key = opened.incident.key
    assert [("trigger", key), ("acknowledge", key), ("resolve", key)] == pd.actions()

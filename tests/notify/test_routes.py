"""Routes: pages and playbook messages go to the Slack channel and PagerDuty key their
playbook, step, severity, cause or kind route to; everything else to the defaults."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import yaml
from pydantic import SecretStr, ValidationError

from sentinel.base.clock import FakeClock
from sentinel.incidents.manager import IncidentManager
from sentinel.incidents.settings import IncidentSettings
from sentinel.notify.settings import NotifySettings, RouteSettings
from sentinel.notify.teller import build_notify
from sentinel.runbook.context import incident_causes
from sentinel.testing import PagerDutyServer, SlackServer, drain, finding
from sentinel.testing.notifiers import Failure
from sentinel.vocabulary.findings import Finding, Severity, Subject
from sentinel.vocabulary.incidents import Incident
from sentinel.vocabulary.notices import ActionUpdate, PageRequest

POD = "pod-a"
HW_KEY = "HARDWAREKEY012345678901234567890"
HW_CHANNEL = "C0HARDWARE"
DEFAULT_CHANNEL = "C0INCIDENTS"


def _routed(settings: NotifySettings, *routes: RouteSettings) -> NotifySettings:
    return settings.model_copy(update={"routes": NotifySettings(routes=list(routes)).routes})


def _hardware_route(**match: object) -> RouteSettings:
    return RouteSettings.model_validate(
        {
            "name": "hardware",
            "match": match,
            "slack_channel": HW_CHANNEL,
            "pagerduty_routing_key": HW_KEY,
        }
    )


def _thermal(clock: FakeClock) -> Finding:
    return Finding(
        kind="thermal_throttle",
        severity=Severity.WARNING,
        subject=Subject(gpu_uuid="GPU-a"),
        started_at=clock.now() - 60,
        detected_at=clock.now(),
        summary="GPU-a clocks held down by HwThermalSlowdown for 60 s",
        evidence={"hardware": True, "reasons": ["HwThermalSlowdown"]},
        detector="thermal",
    )


def _incidents(conn: sqlite3.Connection, clock: FakeClock) -> IncidentManager:
    return IncidentManager(conn, IncidentSettings(), POD, clock)


def _open(manager: IncidentManager, f: Finding) -> Incident:
    [change] = manager.ingest(f)
    return change.incident


@pytest.fixture
def hardware_pd(pd: PagerDutyServer) -> PagerDutyServer:
    """The loopback PagerDuty also accepts the hardware team's key."""
    pd.other_routing_keys.append(HW_KEY)
    return pd


async def test_thermal_page_goes_to_the_hardware_route_and_others_to_the_default(
    conn: sqlite3.Connection,
    clock: FakeClock,
    slack: SlackServer,
    hardware_pd: PagerDutyServer,
    notify_settings: NotifySettings,
) -> None:
    """A page from the thermal-throttle playbook uses the hardware key and is posted in
    the hardware channel; a gpu-oom page uses the default key and channel only."""
    stack = build_notify(
        conn, _routed(notify_settings, _hardware_route(playbook="thermal-throttle")), POD, clock
    )
    manager = _incidents(conn, clock)
    thermal = _open(manager, _thermal(clock))
    oom = _open(manager, finding("resnet", clock.now(), kind="gpu_oom", severity=Severity.WARNING))
    await stack.teller.tell(
        PageRequest(
            thermal,
            "skipped shed_load: hardware is slowing the GPU",
            playbook="thermal-throttle",
            step="shed_load",
            causes=incident_causes(thermal),
        )
    )
    await stack.teller.tell(PageRequest(oom, "gpu-oom failed", playbook="gpu-oom", step="free"))
    await drain(stack.dispatcher, clock)
    await stack.dispatcher.stop()
    by_key = {e["dedup_key"]: e["routing_key"] for e in hardware_pd.events}
    assert {thermal.key: HW_KEY, oom.key: hardware_pd.routing_key} == by_key
    hardware_posts = [m["text"] for m in slack.messages if m["channel"] == HW_CHANNEL]
    assert 1 == len(hardware_posts)
    assert hardware_posts[0].startswith(f"{thermal.key}: :rotating_light: *paging a human*")
    assert {DEFAULT_CHANNEL} == {m["channel"] for m in slack.roots() if m["channel"] != HW_CHANNEL}


async def test_route_by_kind_starts_the_thread_in_the_routed_channel(
    conn: sqlite3.Connection,
    clock: FakeClock,
    slack: SlackServer,
    hardware_pd: PagerDutyServer,
    notify_settings: NotifySettings,
) -> None:
    """A route by kind puts the incident's thread (root and replies) in its channel."""
    route = _hardware_route(kind=["thermal_throttle", "power_brake"])
    stack = build_notify(conn, _routed(notify_settings, route), POD, clock)
    [opened] = _incidents(conn, clock).ingest(_thermal(clock))
    thermal = opened.incident
    await stack.teller.tell(opened)
    await stack.teller.tell(
        ActionUpdate(thermal, "thermal-throttle", "run-1", "diagnose", "succeeded", "captured")
    )
    await drain(stack.dispatcher, clock)
    await stack.dispatcher.stop()
    [root] = slack.roots()
    replies = [m for m in slack.messages if m.get("thread_ts")]
    assert (HW_CHANNEL, [HW_CHANNEL]) == (root["channel"], [m["channel"] for m in replies])


async def test_cause_route_and_resolve_through_the_trigger_key(
    conn: sqlite3.Connection,
    clock: FakeClock,
    slack: SlackServer,
    hardware_pd: PagerDutyServer,
    notify_settings: NotifySettings,
) -> None:
    """A route by cause takes the page; its resolve goes through the same key, although
    the resolve itself carries no cause."""
    route = _hardware_route(cause="hardware_*", severity="warning")
    stack = build_notify(conn, _routed(notify_settings, route), POD, clock)
    manager = _incidents(conn, clock)
    thermal = _open(manager, _thermal(clock))
    assert ("hardware_thermal",) == incident_causes(thermal)
    await stack.teller.tell(
        PageRequest(thermal, "hardware", playbook="thermal-throttle", causes=("hardware_thermal",))
    )
    await drain(stack.dispatcher, clock)
    await stack.teller.tell(PageRequest(thermal, "resolved by hand", action="resolve"))
    await drain(stack.dispatcher, clock)
    await stack.dispatcher.stop()
    expected = [("trigger", HW_KEY), ("resolve", HW_KEY)]
    assert expected == [(e["event_action"], e["routing_key"]) for e in hardware_pd.events]


async def test_retry_keeps_the_route(
    conn: sqlite3.Connection,
    clock: FakeClock,
    slack: SlackServer,
    hardware_pd: PagerDutyServer,
    notify_settings: NotifySettings,
) -> None:
    """A routed page that fails once (503) is retried with the same routing key."""
    stack = build_notify(
        conn, _routed(notify_settings, _hardware_route(step="shed_load")), POD, clock
    )
    thermal = _open(_incidents(conn, clock), _thermal(clock))
    hardware_pd.script.append(Failure(503))
    await stack.teller.tell(PageRequest(thermal, "blocked", playbook="x", step="shed_load"))
    await drain(stack.dispatcher, clock)
    await stack.dispatcher.stop()
    assert (2, [HW_KEY]) == (hardware_pd.requests, [e["routing_key"] for e in hardware_pd.events])


async def test_first_matching_route_with_a_target_wins(
    conn: sqlite3.Connection,
    clock: FakeClock,
    slack: SlackServer,
    hardware_pd: PagerDutyServer,
    notify_settings: NotifySettings,
) -> None:
    """For PagerDuty a Slack-only route is passed over; the next matching one decides."""
    slack_only = RouteSettings.model_validate(
        {"match": {"playbook": "thermal-*"}, "slack_channel": "C0CHATTER"}
    )
    stack = build_notify(
        conn,
        _routed(notify_settings, slack_only, _hardware_route(playbook="thermal-throttle")),
        POD,
        clock,
    )
    thermal = _open(_incidents(conn, clock), _thermal(clock))
    await stack.teller.tell(PageRequest(thermal, "look", playbook="thermal-throttle"))
    await drain(stack.dispatcher, clock)
    await stack.dispatcher.stop()
    posted = {m["channel"] for m in slack.messages if not m.get("thread_ts")}
    assert ({DEFAULT_CHANNEL, "C0CHATTER"}, [HW_KEY]) == (
        posted,
        [e["routing_key"] for e in hardware_pd.events],
    )


def test_route_without_a_target_or_with_a_twice_used_name_is_refused() -> None:
    """A route that sends nowhere, and two routes of one name, are config errors."""
    with pytest.raises(ValidationError, match="needs a slack_channel or a pagerduty"):
        RouteSettings.model_validate({"match": {"kind": "gpu_oom"}})
    twice = {"name": "a", "slack_channel": "C1"}
    with pytest.raises(ValidationError, match="route names must be unique: a"):
        NotifySettings.model_validate({"routes": [twice, twice]})


def test_routes_get_names_and_the_key_may_come_from_a_file(tmp_path: Path) -> None:
    """Unnamed routes are named route-N; a key file is read like the default key's."""
    key = tmp_path / "hw.key"
    key.write_text(HW_KEY + "\n")
    settings = NotifySettings.model_validate(
        {
            "routes": [
                {"slack_channel": "C1"},
                {"match": {"kind": "x"}, "pagerduty_routing_key_file": str(key)},
            ]
        }
    )
    assert (["route-1", "route-2"], HW_KEY) == (
        [r.name for r in settings.routes],
        settings.routes[1].pagerduty_key(),
    )


def test_default_key_stays_secret_in_the_settings() -> None:
    """A route's inline key is a secret (not shown in the settings' repr)."""
    route = RouteSettings(slack_channel=None, pagerduty_routing_key=SecretStr(HW_KEY))
    assert HW_KEY not in repr(route)


def test_example_config_route_is_valid_when_uncommented() -> None:
    """The commented notifiers block of examples/sentinel.yaml, uncommented, validates and
    routes thermal-throttle to the hardware key file."""
    example = Path(__file__).parents[2] / "examples" / "sentinel.yaml"
    lines = example.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("# notifiers:"))
    block = []
    for line in lines[start:]:
        if not line.startswith("#"):
            break
        block.append(line[2:])
    data = yaml.safe_load("\n".join(block))
    settings = NotifySettings.model_validate(data["notifiers"])
    [route] = settings.routes
    assert (["thermal-throttle"], "C0HARDWARE") == (route.match.playbook, route.slack_channel)

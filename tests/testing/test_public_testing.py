"""How a user tests their own config and playbook with ``sentinel.testing``.

Each test reads like a site's own test: a config file and a playbook written
the way an operator would, the fakes from ``sentinel.testing`` around them
(FakeClock, NvmlStandIn, sample builders, loopback Slack/PagerDuty/Alertmanager),
and sentinel's real stages in between.
"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from sentinel.config import Config, load_config
from sentinel.detect.suite import DetectorSuite
from sentinel.incidents.manager import IncidentManager
from sentinel.notify.teller import build_notify
from sentinel.probes.gpu import GpuSampler
from sentinel.runbook.engine import Engine
from sentinel.runbook.schema import load_dirs
from sentinel.testing import (
    T0,
    AlertmanagerServer,
    FakeClock,
    GpuScript,
    NvmlStandIn,
    PagerDutyServer,
    SlackServer,
    drain,
    gpu,
)
from sentinel.vocabulary.findings import Finding

MY_PLAYBOOK = """\
name: hot-gpu-note
description: Tell the team in Slack and page hardware on-call when a GPU throttles.
triggers:
  - kinds: [thermal_throttle]
steps:
  - name: tell_slack
    action: notify.slack
    with: {text: "{{ subject.gpu_uuid }} throttled: hardware on-call paged"}
  - name: page
    action: pagerduty.trigger
    with: {reason: "GPU clocks held down by heat"}
"""


def write_site(
    folder: Path,
    slack: SlackServer,
    pd: PagerDutyServer,
    am: AlertmanagerServer | None = None,
) -> Path:
    """The site's sentinel.yaml and playbook folder, notifiers pointed at the fakes."""
    (folder / "playbooks").mkdir()
    (folder / "playbooks" / "hot-gpu-note.yaml").write_text(MY_PLAYBOOK, encoding="utf-8")
    alertmanager = f"alertmanager: {{enabled: true, url: '{am.url}'}}" if am else ""
    config = folder / "sentinel.yaml"
    config.write_text(
        f"""\
pod: gpu-node-7
state_dir: state
gpu: {{source: nvml}}
playbooks: {{dirs: [playbooks]}}
notifiers:
  slack: {{enabled: true, token: {slack.token}, channel: C0HOT, base_url: '{slack.base_url}'}}
  pagerduty:
    enabled: true
    routing_key: {pd.routing_key}
    base_url: '{pd.base_url}'
    ca_file: '{pd.cert}'
  console: {{enabled: false}}
  {alertmanager}
""",
        encoding="utf-8",
    )
    return config


def thermal_findings(config: Config, clock: FakeClock, seconds: int = 120) -> list[Finding]:
    """Run the config's detectors over a GPU held at 91 C by hardware thermal slowdown."""
    suite = DetectorSuite(config.detectors)
    found: list[Finding] = []
    for i in range(seconds):
        sample = gpu(clock.now() + i, temp=91.0, reasons=0x40)
        found += [j for j in suite.observe(sample) if isinstance(j, Finding)]
    return found


def test_importing_sentinel_testing_stays_light() -> None:
    """`import sentinel.testing` loads neither aiohttp, numpy, tritonclient nor pytriton."""
    probe = "import sys, sentinel.testing; print(sorted(m for m in sys.modules if m in {1}))"
    heavy = {"aiohttp", "numpy", "tritonclient", "pytriton"}
    done = subprocess.run(
        [sys.executable, "-c", probe.replace("{1}", repr(heavy))],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert "[]" == done.stdout.strip()


def test_my_config_points_the_notifiers_at_the_fakes(
    tmp_path: Path, slack: SlackServer, pd: PagerDutyServer
) -> None:
    """The site config loads, with Slack and PagerDuty aimed at the loopback servers."""
    config = load_config(write_site(tmp_path, slack, pd))
    assert (slack.base_url, pd.base_url, "gpu-node-7") == (
        config.notifiers.slack.base_url,
        config.notifiers.pagerduty.base_url,
        config.pod,
    )


def test_nvml_standin_feeds_my_detectors(
    tmp_path: Path, slack: SlackServer, pd: PagerDutyServer
) -> None:
    """A stand-in GPU at 91 C with hardware slowdown, sampled through NVML, is a finding."""
    config = load_config(write_site(tmp_path, slack, pd))
    clock = FakeClock(T0)
    nvml = NvmlStandIn([GpuScript(uuid="GPU-hot", temp=91, reasons=0x40)])
    sampler = GpuSampler(nvml, config.gpu, clock)
    sampler.open()
    suite = DetectorSuite(config.detectors)
    kinds: list[str] = []
    for _ in range(120):
        for sample in sampler.tick_sync():
            kinds += [j.kind for j in suite.observe(sample) if isinstance(j, Finding)]
        clock.set(clock.monotonic() + 1)
    assert ["thermal_throttle"] == kinds


def test_my_playbook_is_valid_and_matches_the_finding(
    tmp_path: Path, conn: sqlite3.Connection, slack: SlackServer, pd: PagerDutyServer
) -> None:
    """The playbook loads without problems and is the one chosen for a thermal incident."""
    config = load_config(write_site(tmp_path, slack, pd))
    found, problems = load_dirs(list(config.playbooks.dirs))
    clock = FakeClock(T0)
    manager = IncidentManager(conn, config.incidents, config.pod, clock)
    [change] = manager.ingest(thermal_findings(config, clock)[0])
    engine = Engine(settings=config.playbooks, conn=conn, clock=clock, playbooks=found)
    assert ([], ["hot-gpu-note"]) == (
        problems,
        [lp.playbook.name for lp, _ in engine.matching(change.incident)],
    )


async def test_my_playbook_notes_in_slack_and_pages(
    tmp_path: Path, conn: sqlite3.Connection, slack: SlackServer, pd: PagerDutyServer
) -> None:
    """Run against the fakes, the playbook posts its note in the thread and triggers a page."""
    config = load_config(write_site(tmp_path, slack, pd))
    clock = FakeClock(T0)
    manager = IncidentManager(conn, config.incidents, config.pod, clock)
    stack = build_notify(conn, config.notifiers, config.pod, clock)
    engine = Engine(settings=config.playbooks, conn=conn, clock=clock, teller=stack.teller)
    [change] = manager.ingest(thermal_findings(config, clock)[0])
    await stack.teller.tell(change)
    [result] = await engine.consider(change.incident)
    await drain(stack.dispatcher, clock)
    await stack.dispatcher.stop()
    notes = [m["text"] for m in slack.messages if m.get("thread_ts")]
    assert "paged" == result.status  # a run that ends by paging a human
    assert any("GPU-test throttled: hardware" in text for text in notes), notes
    # the paging policy pages on its own too: both use the incident's key, so PagerDuty keeps one
    assert {("trigger", change.incident.key)} == set(pd.actions())
    assert any("held down by heat" in e["payload"]["summary"] for e in pd.events), pd.events


async def test_alertmanager_gets_the_incident_until_it_resolves(
    tmp_path: Path,
    conn: sqlite3.Connection,
    slack: SlackServer,
    pd: PagerDutyServer,
    am_server: AlertmanagerServer,
) -> None:
    """The incident fires in Alertmanager, and ends there once the GPU cools down."""
    config = load_config(write_site(tmp_path, slack, pd, am_server))
    clock = FakeClock(T0)
    manager = IncidentManager(conn, config.incidents, config.pod, clock)
    stack = build_notify(conn, config.notifiers, config.pod, clock)
    suite = DetectorSuite(config.detectors)
    for i in range(3600):
        sample = gpu(T0 + i, temp=91.0 if i < 600 else 50.0, reasons=0x40 if i < 600 else 0)
        clock.set(float(i))
        for judgement in suite.observe(sample):
            for change in manager.ingest(judgement):
                await stack.teller.tell(change)
        for change in manager.tick():
            await stack.teller.tell(change)
    await drain(stack.dispatcher, clock)
    await stack.dispatcher.stop()
    alerts = am_server.alerts()
    assert ["sentinel_thermal_throttle"] == sorted({a["labels"]["alertname"] for a in alerts})
    assert {} == am_server.firing()


@pytest.mark.parametrize("minutes", [1, 30])
async def test_fake_clock_runs_a_long_timeline_at_once(minutes: int) -> None:
    """FakeClock.advance wakes a sleeper after any span of fake time, instantly."""
    clock = FakeClock(T0)
    woke: list[float] = []

    async def sleeper() -> None:
        await clock.sleep(minutes * 60)
        woke.append(clock.now())

    task = asyncio.create_task(sleeper())
    await asyncio.sleep(0)  # the sleeper starts sleeping
    await clock.advance(minutes * 60)
    await task
    assert [T0 + minutes * 60] == woke

"""Alertmanager both ways, against the real binary (Debian prometheus-alertmanager).

sentinel pushes incidents to Alertmanager's v2 API; Alertmanager's webhook
receiver posts back to sentinel's control API, where external alerts (an Xid
alert as dcgm-exporter would raise) become findings and sentinel's own
alerts are recognised and ignored.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import sqlite3
import subprocess
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import aiohttp
import pytest

from sentinel.api import build_app, start_api
from sentinel.base.clock import FakeClock
from sentinel.incidents.manager import IncidentManager
from sentinel.incidents.settings import IncidentSettings
from sentinel.notify.alertmanager import (
    AlertmanagerNotifier,
    ExternalAlert,
    alert_to_judgement,
)
from sentinel.notify.dispatcher import Dispatcher
from sentinel.notify.outbox import Outbox
from sentinel.notify.settings import AlertmanagerSettings
from sentinel.notify.teller import OutboxTeller
from sentinel.testing import cleared, drain, finding
from sentinel.vocabulary.findings import Finding

AM_BINARY = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
TOKEN = "am-webhook-token-0123"
pytestmark = [
    pytest.mark.promtool,
    pytest.mark.skipif(AM_BINARY is None, reason="prometheus-alertmanager is not installed"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def sentinel_api(conn: sqlite3.Connection) -> AsyncIterator[tuple[int, list[ExternalAlert]]]:
    received: list[ExternalAlert] = []

    async def on_alerts(batch: list[ExternalAlert]) -> None:
        received.extend(batch)

    app = build_app(conn=conn, token=TOKEN, clock=FakeClock(time.time()), on_alerts=on_alerts)
    runner, port = await start_api(app, "127.0.0.1", 0)
    yield port, received
    await runner.cleanup()


@pytest.fixture
def alertmanager(tmp_path: Path, sentinel_api: tuple[int, list[ExternalAlert]]) -> Iterator[str]:
    """The real Alertmanager on free ports, its webhook receiver pointed at our API."""
    api_port, _ = sentinel_api
    port = _free_port()
    config = tmp_path / "alertmanager.yml"
    config.write_text(
        f"""
route:
  receiver: sentinel
  group_by: [alertname]
  group_wait: 100ms
  group_interval: 500ms
  repeat_interval: 1h
receivers:
  - name: sentinel
    webhook_configs:
      - url: http://127.0.0.1:{api_port}/v1/alertmanager
        send_resolved: true
        http_config:
          authorization:
            type: Bearer
            credentials: {TOKEN}
""",
        encoding="utf-8",
    )
    assert AM_BINARY is not None
    log = tmp_path / "am.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [
                AM_BINARY,
                f"--config.file={config}",
                f"--storage.path={tmp_path / 'am-data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
            ],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url + "/-/ready", log)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _wait_ready(url: str, log: Path) -> None:
    for _ in range(100):
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError("alertmanager did not start: " + log.read_text())


async def _until(check: Callable[[], bool], limit_s: float = 15.0) -> None:
    deadline = time.monotonic() + limit_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for Alertmanager's webhook")
        await asyncio.sleep(0.05)


async def test_incident_round_trip_through_real_alertmanager(
    conn: sqlite3.Connection,
    alertmanager: str,
    sentinel_api: tuple[int, list[ExternalAlert]],
) -> None:
    """Pushed incidents come back as sentinel's own (ignored); resolution comes back resolved."""
    _, received = sentinel_api
    clock = FakeClock(time.time())
    manager = IncidentManager(conn, IncidentSettings(resolve_hold_s=0), "pod-a", clock)
    am = AlertmanagerNotifier(
        AlertmanagerSettings(enabled=True, url=alertmanager, labels={"cluster": "test"})
    )
    outbox = Outbox(conn, clock)
    dispatcher = Dispatcher(outbox, {am.name: am}, clock)
    teller = OutboxTeller(outbox, [am], dispatcher)

    [opened] = manager.ingest(finding("resnet", clock.now()))
    await teller.tell(opened)
    await drain(dispatcher, clock)
    await _until(lambda: any(a.status == "firing" for a in received))
    [alert] = received
    expected = {
        "alertname": "sentinel_latency_spike",
        "severity": "critical",
        "pod": "pod-a",
        "model": "resnet",
        "kind": "latency_spike",
        "origin": "sentinel",
        "cluster": "test",
    }
    assert {k: alert.labels.get(k) for k in expected} == expected
    assert opened.incident.id == alert.annotations["incident_id"]
    assert alert_to_judgement(alert, clock.now()) is None  # never feeds itself

    clock.set(clock.monotonic() + 5)
    [resolved] = manager.ingest(cleared("resnet", clock.now()))
    await teller.tell(resolved)
    await drain(dispatcher, clock)
    await _until(lambda: any(a.status == "resolved" for a in received))
    assert "resolved" == received[-1].status
    await dispatcher.stop()


async def test_external_xid_alert_becomes_a_finding(
    conn: sqlite3.Connection,
    alertmanager: str,
    sentinel_api: tuple[int, list[ExternalAlert]],
) -> None:
    """A dcgm-exporter style Xid alert posted to Alertmanager reaches sentinel as a finding."""
    _, received = sentinel_api
    xid = {
        "labels": {
            "alertname": "GpuXidError",
            "severity": "critical",
            "UUID": "GPU-8f1c",
            "Hostname": "node-7",
        },
        "annotations": {"summary": "Xid 79 (GPU fell off the bus) on GPU-8f1c"},
    }
    async with (
        aiohttp.ClientSession() as s,
        s.post(alertmanager + "/api/v2/alerts", json=[xid]) as r,
    ):
        assert 200 == r.status
    await _until(lambda: bool(received))
    judgement = alert_to_judgement(received[0], time.time())
    assert isinstance(judgement, Finding)
    assert (
        judgement.kind,
        judgement.subject.gpu_uuid,
        judgement.severity.value,
    ) == ("gpu_xid_error", "GPU-8f1c", "critical")
    assert "Xid 79 (GPU fell off the bus) on GPU-8f1c" == judgement.summary

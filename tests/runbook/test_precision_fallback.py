"""INT8 -> FP16 fallback the three ways deployments switch plans, on real tritonserver.

1. a ``precision`` parameter (``int8-to-fp16``);
2. a second plan file chosen by ``default_model_filename`` (``int8-to-fp16-plan-file``);
3. a second model version chosen by the version policy (``int8-to-fp16-version``).

Each test builds a model repository from the digits model laid out that way, with a
badly calibrated INT8 plan serving, offers all three playbooks, and checks that exactly
the right one acts and that the canary agrees again afterwards.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from runbook_standins import FixedFacts, RecordingTeller
from triton_fixtures import GOLDEN_DIGITS, MODEL_REPOSITORY

import sentinel.incidents.store  # noqa: F401 -- registers the incident tables
from sentinel.base.db import open_db
from sentinel.probes.canary import CanaryGroup, CanaryProbe
from sentinel.probes.settings import CanarySettings, TritonSettings
from sentinel.probes.triton import TritonAdapter, connect
from sentinel.runbook.engine import Engine
from sentinel.runbook.schema import load_playbook
from sentinel.runbook.settings import RunbookSettings
from sentinel.testing.triton_local import LocalTriton
from sentinel.vocabulary.findings import Severity, Subject
from sentinel.vocabulary.incidents import Incident, IncidentStatus
from sentinel.vocabulary.samples import TritonHealth

pytestmark = pytest.mark.triton
ROOT = Path(__file__).resolve().parents[2]
PLAYBOOKS = ("int8-to-fp16", "int8-to-fp16-plan-file", "int8-to-fp16-version")


class FastClock:
    """A test clock 20x faster than real time, so verification windows pass in seconds."""

    def __init__(self) -> None:
        self._real0 = time.monotonic()

    def monotonic(self) -> float:
        return (time.monotonic() - self._real0) * 20.0

    def now(self) -> float:
        return 1_700_000_000.0 + self.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / 20.0)


def digits_repository(tmp: Path, way: str) -> Path:
    """The digits model with a bad INT8 plan serving, its FP16 plan laid out ``way``."""
    model = tmp / "repo" / "digits"
    shutil.copytree(MODEL_REPOSITORY / "digits", model)
    config = (model / "config.pbtxt").read_text()
    config = config.replace(
        '"int8_calibration" value { string_value: "good" }',
        '"int8_calibration" value { string_value: "bad" }',
    )
    precision = 'parameters { key: "precision" value { string_value: "fp32" } }\n'
    assert precision in config
    if way == "parameter":
        config = config.replace(precision, precision.replace("fp32", "int8"))
    elif way == "plan_file":
        config = config.replace(precision, "") + 'default_model_filename: "model_int8.py"\n'
        shutil.copy(model / "1" / "model.py", model / "1" / "model_fp16.py")
        (model / "1" / "model.py").rename(model / "1" / "model_int8.py")
    else:  # version 1 is the FP16 engine, version 2 the INT8 one that replaced it
        config = config.replace(precision, "")
        shutil.copytree(model / "1", model / "2")
        (model / "1" / "PRECISION").write_text("fp16\n")
        (model / "2" / "PRECISION").write_text("int8\n")
    (model / "config.pbtxt").write_text(config)
    return model.parent


def playbooks(tmp: Path) -> dict[str, Any]:
    """The three shipped playbooks; the version one told that version 1 is the FP16 one."""
    out = {}
    for name in PLAYBOOKS:
        text = (ROOT / "playbooks" / f"{name}.yaml").read_text()
        path = tmp / f"{name}.yaml"
        path.write_text(text.replace('fallback_version: ""', 'fallback_version: "1"'))
        loaded = load_playbook(path)
        out[loaded.playbook.name] = loaded
    return out


def live_config(server: LocalTriton) -> dict[str, Any]:
    url = f"http://{server.http_url}/v2/models/digits/config"
    with urllib.request.urlopen(url, timeout=10) as resp:
        config: dict[str, Any] = json.loads(resp.read())
    return config


def fallback_engine(
    tmp: Path,
    conn: sqlite3.Connection,
    clock: FastClock,
    triton: TritonAdapter,
    probe: CanaryProbe,
    facts: FixedFacts | None = None,
) -> Engine:
    """An engine offering the three fallback playbooks, verified by ``probe``."""
    return Engine(
        settings=RunbookSettings(dirs=[], canary_interval_s=5.0),
        conn=conn,
        clock=clock,
        playbooks=playbooks(tmp),
        triton=triton,
        canary=CanaryGroup([probe]),
        facts=facts,
        teller=RecordingTeller(),
        pod="pod-a",
    )


def drift_incident(now: float, version: str) -> Incident:
    return Incident(
        id="inc-drift",
        key=f"pod-a/digits:{version}/accuracy_drift",
        kind="accuracy_drift",
        severity=Severity.WARNING,
        subject=Subject(model="digits", version=version),
        status=IncidentStatus.FIRING,
        summary="top-1 agreement down",
        started_at=now - 40,
        detected_at=now - 40,
        updated_at=now,
    )


@pytest.mark.parametrize(
    ("way", "playbook"),
    [
        ("parameter", "int8-to-fp16"),
        ("plan_file", "int8-to-fp16-plan-file"),
        ("version", "int8-to-fp16-version"),
    ],
)
async def test_int8_drift_falls_back_to_fp16_the_way_the_model_is_laid_out(
    triton_factory: Callable[..., LocalTriton],
    tmp_path: Path,
    way: str,
    playbook: str,
) -> None:
    """Only the playbook for this layout acts; afterwards the canary agrees (top-1 >= 0.99)."""
    server = triton_factory(repo=digits_repository(tmp_path, way))
    clock = FastClock()
    triton = connect(TritonSettings(url=server.http_url, protocol="http", timeout_s=10))
    settings = CanarySettings(model="digits", golden_set=GOLDEN_DIGITS, batch_sizes=[8])
    probe = CanaryProbe(triton, settings, clock=clock)
    conn = open_db(tmp_path / "state.db")
    engine = fallback_engine(tmp_path, conn, clock, triton, probe)
    try:
        [before] = await probe.check()
        assert before.agreement is not None
        assert before.agreement.top1 < 0.9  # the INT8 plan really drifts
        runs = await engine.consider(drift_incident(clock.now(), before.version))
        acted = [(r.playbook, r.status) for r in runs if r.status not in ("skipped",)]
        assert [(playbook, "succeeded")] == acted[-1:]
        [after] = await probe.check()
    finally:
        await engine.stop()
        await triton.close()
        conn.close()
    assert after.agreement is not None
    assert after.agreement.top1 >= 0.99
    config = live_config(server)
    if way == "parameter":
        assert "fp16" == config["parameters"]["precision"]["string_value"]
    if way == "plan_file":
        assert "model_fp16.py" == config["default_model_filename"]
    if way == "version":
        assert ("2", "1") == (before.version, after.version)
        assert {"specific": {"versions": [1]}} == config["version_policy"]


async def test_a_missed_health_deadline_does_not_make_the_fallback_skip(
    triton_factory: Callable[..., LocalTriton], tmp_path: Path
) -> None:
    """The last health sample said 'not live' (a deadline missed under load) while the
    server serves: the playbook still reads the live config, and its `when:` holds."""
    server = triton_factory(repo=digits_repository(tmp_path, "parameter"))
    clock = FastClock()
    triton = connect(TritonSettings(url=server.http_url, protocol="http", timeout_s=10))
    settings = CanarySettings(model="digits", golden_set=GOLDEN_DIGITS, batch_sizes=[8])
    probe = CanaryProbe(triton, settings, clock=clock)
    facts = FixedFacts()
    facts.health = TritonHealth(ts=clock.now(), live=False, ready=False, error="no answer in 1 s")
    conn = open_db(tmp_path / "state.db")
    engine = fallback_engine(tmp_path, conn, clock, triton, probe, facts)
    try:
        [before] = await probe.check()
        runs = await engine.consider(drift_incident(clock.now(), before.version))
    finally:
        await engine.stop()
        await triton.close()
        conn.close()
    statuses = {r.playbook: r.status for r in runs}
    assert "succeeded" == statuses["int8-to-fp16"]

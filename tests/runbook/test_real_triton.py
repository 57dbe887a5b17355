"""The runbook against a real tritonserver and the real canary probe.

Triton, its live model config and the canary's inferences are all real. The
injected clock runs 20x faster than real time (so verification deadlines and
detector windows pass in seconds while real reloads still fit in their
timeouts) and jumps forward over lease periods.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from runbook_standins import FixedFacts, RecordingTeller
from triton_fixtures import GOLDEN_DIGITS, ModelHandle

import sentinel.incidents.store  # noqa: F401 -- registers the incident tables
from sentinel.base.db import open_db
from sentinel.detect.suite import DetectorSuite
from sentinel.incidents.manager import IncidentManager
from sentinel.incidents.settings import IncidentSettings
from sentinel.pipeline import LatestFacts, Pipeline
from sentinel.probes.canary import CanaryGroup, CanaryProbe
from sentinel.probes.settings import CanarySettings, TritonSettings
from sentinel.probes.triton import TritonAdapter, connect
from sentinel.runbook.engine import Engine
from sentinel.runbook.schema import load_playbook
from sentinel.runbook.settings import RunbookSettings
from sentinel.testing.triton_local import LocalTriton
from sentinel.vocabulary.findings import Severity, Subject
from sentinel.vocabulary.incidents import Incident, IncidentStatus
from sentinel.vocabulary.notices import PageRequest

pytestmark = pytest.mark.triton
ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def playbook(name: str) -> Any:
    lp = load_playbook(ROOT / "playbooks" / f"{name}.yaml")
    return {lp.playbook.name: lp}


def live_config_bytes(server: LocalTriton, model: str = "digits") -> bytes:
    url = f"http://{server.http_url}/v2/models/{model}/config"
    with urllib.request.urlopen(url, timeout=10) as resp:
        body: bytes = resp.read()
    return body


def live_config(server: LocalTriton, model: str = "digits") -> dict[str, Any]:
    config: dict[str, Any] = json.loads(live_config_bytes(server, model))
    return config


class ScaledClock:
    """A test clock: time runs ``scale`` times faster than real time, and ``jump`` skips ahead."""

    def __init__(self, scale: float = 20.0, start: float = 1_700_000_000.0) -> None:
        self.scale = scale
        self._real0 = time.monotonic()
        self._offset = 0.0
        self._epoch = start

    def monotonic(self) -> float:
        return (time.monotonic() - self._real0) * self.scale + self._offset

    def now(self) -> float:
        return self._epoch + self.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.scale)

    def jump(self, seconds: float) -> None:
        self._offset += seconds


class Rig:
    """A real adapter and canary on the session server, and a fake clock."""

    def __init__(self, server: LocalTriton, tmp: Path) -> None:
        self.server = server
        self.clock = ScaledClock()
        self.triton: TritonAdapter = connect(
            TritonSettings(url=server.http_url, protocol="http", timeout_s=10)
        )
        settings = CanarySettings(
            model="digits", golden_set=GOLDEN_DIGITS, batch_sizes=[1, 8], timeout_s=10
        )
        self.probe = CanaryProbe(self.triton, settings, clock=self.clock)
        self.canary = CanaryGroup([self.probe])
        self.conn = open_db(tmp / "state.db")
        self.teller = RecordingTeller()

    def engine(self, playbooks: dict[str, Any], facts: Any = None, **settings: Any) -> Engine:
        return Engine(
            settings=RunbookSettings(**{"dirs": [], "canary_interval_s": 5.0, **settings}),
            conn=self.conn,
            clock=self.clock,
            playbooks=playbooks,
            triton=self.triton,
            canary=self.canary,
            facts=facts,
            teller=self.teller,
            pod="pod-a",
        )

    async def close(self) -> None:
        await self.triton.close()
        self.conn.close()


@pytest.fixture
async def rig(triton_server: LocalTriton, digits: ModelHandle, tmp_path: Path) -> Any:
    r = Rig(triton_server, tmp_path)
    try:
        yield r
    finally:
        await r.close()


def latency_incident(now: float) -> Incident:
    subject = Subject(model="digits", version="1")
    return Incident(
        id="inc-latency",
        key="pod-a/digits:1/latency_spike",
        kind="latency_spike",
        severity=Severity.CRITICAL,
        subject=subject,
        status=IncidentStatus.FIRING,
        summary="p99 latency up",
        started_at=now - 40,
        detected_at=now - 40,
        updated_at=now,
    )


async def test_int8_drift_is_fixed_by_fp16_and_the_incident_clears(
    rig: Rig, digits: ModelHandle
) -> None:
    """Bad INT8 calibration drifts; int8-to-fp16 runs by itself; agreement >= 0.99; resolved."""
    digits.reconfigure(precision="int8", int8_calibration="bad")
    manager = IncidentManager(rig.conn, IncidentSettings(), "pod-a", rig.clock)
    engine = rig.engine(playbook("int8-to-fp16"))
    facts = LatestFacts()
    engine.ports.facts = facts
    engine.ports.incidents = manager
    pipeline = Pipeline(
        facts=facts,
        judge=DetectorSuite(only=["accuracy"]),
        memory=manager,
        teller=rig.teller,
        actor=engine,
    )

    async def observe_until_resolved() -> Incident:
        while True:
            for sample in await rig.probe.once():
                await pipeline.accept(sample)
            await pipeline.tick(rig.clock.now())
            done = [i for i in manager.store.list() if i.kind == "accuracy_drift"]
            if done and done[0].status == IncidentStatus.RESOLVED:
                return done[0]
            await rig.clock.sleep(5)

    try:
        resolved = await asyncio.wait_for(observe_until_resolved(), 120)
    finally:
        await engine.stop()
    [run] = engine.history.runs(5)
    assert ("int8-to-fp16", "succeeded") == (run["playbook"], run["status"])
    assert run["incident_id"] == resolved.id
    assert "fp16" == live_config(rig.server)["parameters"]["precision"]["string_value"]
    [verify_row] = [s for s in run["steps"] if s["phase"] == "verify"]
    assert verify_row["output"]["rounds"][-1]["agreement_min"] >= 0.99


async def test_reduce_batch_lease_restores_after_health(rig: Rig, digits: ModelHandle) -> None:
    """max_batch_size is halved live; the lease restores it after 30 min healthy."""
    facts = FixedFacts()
    for _ in range(3):  # the healthy baseline, before the fault
        facts.canary_results += await rig.canary.check("digits")
    digits.reconfigure(slow_above_batch=16, delay_ms=150)
    original = live_config(rig.server)["max_batch_size"]
    rig.clock.jump(600)
    engine = rig.engine(playbook("reduce-batch-size"), facts=facts)
    [run] = await engine.consider(latency_incident(rig.clock.now()))
    assert "succeeded" == run.status
    assert original // 2 == live_config(rig.server)["max_batch_size"]

    # an operator removes the slowness meanwhile; the lease keeps that and restores the batch
    digits.load(digits.config_with(max_batch_size=original // 2, slow_above_batch=0, delay_ms=0))
    rig.clock.jump(25 * 60)
    assert [] == await engine.leases.tick()
    rig.clock.jump(5 * 60)
    events = await engine.leases.tick()
    assert ["restored"] == [e["event"] for e in events]
    restored = live_config(rig.server)
    assert original == restored["max_batch_size"]
    assert "0" == restored["parameters"]["delay_ms"]["string_value"]


async def test_lease_reapplies_when_the_fault_is_still_there(rig: Rig, digits: ModelHandle) -> None:
    """Restoring the batch size brings the latency back: verification fails, half again."""
    facts = FixedFacts()
    for _ in range(3):
        facts.canary_results += await rig.canary.check("digits")
    digits.reconfigure(slow_above_batch=16, delay_ms=150)
    original = live_config(rig.server)["max_batch_size"]
    rig.clock.jump(600)
    engine = rig.engine(playbook("reduce-batch-size"), facts=facts)
    [run] = await engine.consider(latency_incident(rig.clock.now()))
    assert "succeeded" == run.status
    rig.clock.jump(30 * 60)
    events = await engine.leases.tick()
    assert ["verify_failed"] == [e["event"] for e in events]
    assert original // 2 == live_config(rig.server)["max_batch_size"]
    [lease] = engine.history.leases()
    assert (2 * 30 * 60, 1) == (lease["restore_after"], lease["reapplied"])


async def test_dry_run_leaves_the_live_config_byte_for_byte(rig: Rig, digits: ModelHandle) -> None:
    """A dry run of every shipped playbook leaves Triton's model config unchanged."""
    digits.reconfigure(precision="int8", int8_calibration="bad")
    before = live_config_bytes(rig.server)
    playbooks: dict[str, Any] = {}
    for name in ("int8-to-fp16", "reduce-batch-size", "gpu-oom", "restart-server"):
        playbooks.update(playbook(name))
    engine = rig.engine(playbooks)
    statuses = []
    for name in sorted(playbooks):
        result = await engine.run_manual(name, {"model": "digits"}, dry_run=True, actor="t")
        statuses.append(result.status)
    assert ["planned"] * len(playbooks) == statuses
    assert before == live_config_bytes(rig.server)
    assert [] == rig.teller.notices


async def test_failing_verification_rolls_back_live(rig: Rig, digits: ModelHandle) -> None:
    """FP16 that does not fix agreement (here: fp32 outputs broken by errors) is rolled back."""
    digits.reconfigure(precision="int8", int8_calibration="bad", error_rate=1.0)
    before = live_config(rig.server)
    engine = rig.engine(playbook("int8-to-fp16"))
    incident = latency_incident(rig.clock.now())
    incident.kind = "accuracy_drift"
    [run] = await engine.consider(incident)
    assert "failed" == run.status
    phases = [(s["phase"], s["status"]) for s in run.steps]
    assert ("rollback", "rolled_back") in phases
    assert before == live_config(rig.server)
    [page] = rig.teller.of(PageRequest)
    assert page.reason.startswith("digits: switching INT8")


async def test_budget_and_breaker_with_live_reloads(rig: Rig, digits: ModelHandle) -> None:
    """Live reloads count: the fourth run pages; a tripped breaker stops every run."""
    lp = load_playbook_text(
        "name: toggle\nguards: {cooldown: 0s, budget: {runs: 3, per: 24h}}\nsteps:\n"
        "  - name: toggle\n    action: triton.load_model\n"
        "    with: {model: digits, patch: {max_batch_size: '{{ 48 - config.max_batch_size }}'}}\n",
        rig,
    )
    engine = rig.engine(lp, breaker_max_actions=5)
    sizes, statuses = [], []
    for _ in range(4):
        result = await engine.run_manual("toggle", {"model": "digits"}, actor="t")
        statuses.append(result.status)
        sizes.append(live_config(rig.server)["max_batch_size"])
    assert ["succeeded", "succeeded", "succeeded", "paged"] == statuses
    assert [16, 32, 16, 16] == sizes
    other = rig.engine(lp, breaker_max_actions=3)  # the same state: 3 actions already ran
    other.ports.pod = "pod-b"  # another target, so the budget is not what stops it
    blocked = await other.run_manual("toggle", {"model": "digits"}, actor="t")
    assert ("blocked", 16) == (blocked.status, live_config(rig.server)["max_batch_size"])
    again = await other.run_manual("toggle", {"model": "digits"}, actor="t")
    assert "blocked" == again.status
    other.reset_breaker("alice")
    after = await other.run_manual("toggle", {"model": "digits"}, actor="t")
    assert ("succeeded", 32) == (after.status, live_config(rig.server)["max_batch_size"])


def load_playbook_text(text: str, rig: Rig) -> dict[str, Any]:
    path = Path(rig.conn.execute("PRAGMA database_list").fetchone()[2]).parent / "toggle.yaml"
    path.write_text(text, encoding="utf-8")
    return {"toggle": load_playbook(path)}


async def test_triton_refusing_a_config_leaves_the_model_serving(
    rig: Rig, digits: ModelHandle
) -> None:
    """A config Triton cannot load fails the step; the model still serves its old config."""
    before = live_config_bytes(rig.server)
    lp = load_playbook_text(
        "name: toggle\nsteps:\n  - name: broken\n    action: triton.load_model\n"
        "    with: {model: digits, patch: {dynamic_batching: {preferred_batch_size: [64]}}}\n",
        rig,
    )
    engine = rig.engine(lp)
    result = await engine.run_manual("toggle", {"model": "digits"}, actor="t")
    assert "failed" == result.status
    assert "Triton refused the config for digits" in result.steps[0]["reason"]
    assert await rig.triton.model_ready("digits")
    assert before == live_config_bytes(rig.server)


async def test_restart_server_signals_the_real_server(
    triton_factory: Callable[..., LocalTriton], tmp_path: Path
) -> None:
    """restart-server SIGTERMs tritonserver (pid file), its supervisor restarts it, verified."""
    server = triton_factory()
    server.supervise(backoff_s=0.2)
    old_pid = server.pid
    pid_file = tmp_path / "triton.pid"
    pid_file.write_text(f"{old_pid}\n")
    rig = Rig(server, tmp_path)
    rig.clock = ScaledClock(scale=5.0)
    rig.probe.clock = rig.clock
    try:
        engine = rig.engine(playbook("restart-server"), server_pid_file=pid_file)
        result = await engine.run_manual("restart-server", {"model": "digits"}, actor="t")
    finally:
        await rig.close()
    steps = [(s["phase"], s["name"], s["status"]) for s in result.steps]
    assert "succeeded" == result.status, steps
    assert ("step", "restart", "succeeded") in steps
    assert ("verify", "wait_ready", "verified") in steps
    assert server.pid not in (None, old_pid)

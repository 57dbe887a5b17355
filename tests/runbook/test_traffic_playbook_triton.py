"""A latency fault seen in users' traffic runs reduce-batch-size, and the canary verifies it.

Real tritonserver (the session server), real load (LoadGenerator), the real health probe,
detector suite (``traffic`` only), incident manager, playbook engine and canary; time is
real. The shipped reduce-batch-size playbook is used as shipped (``for: 30s``).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from runbook_standins import RecordingTeller
from triton_fixtures import GOLDEN_DIGITS, ModelHandle

import sentinel.incidents.store  # noqa: F401 -- registers the incident tables
from sentinel.base.clock import SystemClock
from sentinel.base.db import open_db
from sentinel.detect.settings import DetectorSettings, TrafficSettings
from sentinel.detect.suite import DetectorSuite
from sentinel.incidents.manager import IncidentManager
from sentinel.incidents.settings import IncidentSettings
from sentinel.pipeline import LatestFacts, Pipeline
from sentinel.probes.canary import CanaryGroup, CanaryProbe
from sentinel.probes.settings import CanarySettings, TritonSettings
from sentinel.probes.triton import connect
from sentinel.probes.triton_health import TritonHealthProbe
from sentinel.runbook.engine import Engine
from sentinel.runbook.schema import load_playbook
from sentinel.runbook.settings import RunbookSettings
from sentinel.testing.load import LoadGenerator

pytestmark = pytest.mark.triton
ROOT = Path(__file__).resolve().parents[2]
TRAFFIC = TrafficSettings(
    window_s=3.0,
    min_requests=10,
    baseline_min_samples=8,
    min_duration_s=2.0,
    min_samples=2,
    clear_duration_s=5.0,
)


@pytest.mark.timeout(300)
async def test_traffic_latency_spike_runs_reduce_batch_size_verified_by_canary(
    digits: ModelHandle, tmp_path: Path
) -> None:
    """Traffic p99/mean spike -> incident -> max_batch_size halved -> canary verifies."""
    clock = SystemClock()
    triton = connect(TritonSettings(url=digits.server.http_url, protocol="http", timeout_s=10))
    conn = open_db(tmp_path / "state.db")
    probe = CanaryProbe(
        triton, CanarySettings(model="digits", golden_set=GOLDEN_DIGITS, timeout_s=10)
    )
    health = TritonHealthProbe(triton, ["digits"], metrics_url=digits.server.metrics_url)
    lp = load_playbook(ROOT / "playbooks" / "reduce-batch-size.yaml")
    manager = IncidentManager(conn, IncidentSettings(), "pod-a", clock)
    facts = LatestFacts()
    engine = Engine(
        settings=RunbookSettings(dirs=[], canary_interval_s=1.0),
        conn=conn,
        clock=clock,
        playbooks={lp.playbook.name: lp},
        triton=triton,
        canary=CanaryGroup([probe]),
        facts=facts,
        teller=RecordingTeller(),
        pod="pod-a",
    )
    engine.ports.incidents = manager
    pipeline = Pipeline(
        facts=facts,
        judge=DetectorSuite(DetectorSettings(traffic=TRAFFIC), only=["traffic"]),
        memory=manager,
        teller=RecordingTeller(),
        actor=engine,
    )

    async def observe(seconds: float, until_run: bool = False) -> list[dict[str, Any]]:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for sample in [*await health.sample(), *await probe.once()]:
                await pipeline.accept(sample)
            await pipeline.tick(clock.now())
            runs = [r for r in engine.history.runs(5) if r["status"] != "running"]
            if until_run and runs:
                return runs
            await asyncio.sleep(0.5)
        return list(engine.history.runs(5))

    try:
        async with LoadGenerator(digits.server.http_url, "digits", rate_per_s=20):
            assert [] == await observe(12.0)  # baselines: traffic and canary
            await asyncio.to_thread(digits.reconfigure, slow_above_batch=16, delay_ms=150)
            runs = await observe(150.0, until_run=True)
        incidents = [i for i in manager.store.list() if i.kind == "traffic_latency_spike"]
    finally:
        await engine.stop()
        await triton.close()
        conn.close()
    assert 1 == len(incidents)
    [run] = runs
    assert ("reduce-batch-size", "succeeded") == (run["playbook"], run["status"])
    assert incidents[0].id == run["incident_id"]
    served = digits.served_config()
    assert served is not None
    assert 16 == served["max_batch_size"]
    [verify_row] = [s for s in run["steps"] if s["phase"] == "verify"]
    assert verify_row["output"]["baseline_p99_s"] is not None  # the canary's, before

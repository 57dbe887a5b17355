"""Real traffic through a real tritonserver, judged by the traffic detector.

A LoadGenerator sends requests to ``digits`` on a server started with latency summaries
on; TritonHealthProbe scrapes its /metrics and the samples go to TrafficDetector with
windows sized for a test (seconds instead of minutes), as a daemon would feed it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from triton_fixtures import ModelHandle, make_adapter

from sentinel.detect.settings import TrafficSettings
from sentinel.detect.traffic import TrafficDetector
from sentinel.probes.triton_health import TritonHealthProbe
from sentinel.testing.load import LoadGenerator
from sentinel.testing.triton_local import LocalTriton
from sentinel.vocabulary.findings import Finding, Judgement

pytestmark = pytest.mark.triton

SUMMARIES = "--metrics-config=summary_latencies=true"
FAST = TrafficSettings(
    window_s=3.0,
    min_requests=10,
    baseline_min_samples=8,
    min_duration_s=2.0,
    min_samples=2,
    clear_duration_s=5.0,
    rate_step_s=1.0,
    collapse_min_samples=8,
    collapse_level_samples=8,
    seasonal_periods_s=[],
)


class Watch:
    """The probe and the detector, one scrape every 0.5 s."""

    def __init__(self, server: LocalTriton) -> None:
        self.adapter = make_adapter(server, "http")
        self.probe = TritonHealthProbe(self.adapter, ["digits"], metrics_url=server.metrics_url)
        self.detector = TrafficDetector(FAST)
        self.seen: list[Judgement] = []

    async def run(self, seconds: float, until: Callable[[Finding], bool] | None = None) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for sample in await self.probe.sample():
                self.seen += self.detector.observe(sample)
            if until is not None and any(until(f) for f in self.findings()):
                return
            await asyncio.sleep(0.5)

    def findings(self, kind: str | None = None) -> list[Finding]:
        return [j for j in self.seen if isinstance(j, Finding) and kind in (None, j.kind)]


@pytest.mark.timeout(180)
async def test_latency_fault_under_load_is_a_traffic_latency_spike(
    triton_factory: Callable[..., LocalTriton],
) -> None:
    """Steady load raises nothing; a 60 ms delay injected under load is found from traffic."""
    server = triton_factory(extra_args=[SUMMARIES])
    model = ModelHandle(server, "digits")
    watch = Watch(server)
    try:
        async with LoadGenerator(server.http_url, "digits", rate_per_s=20) as load:
            await watch.run(12.0)
            assert [] == watch.findings()
            await asyncio.to_thread(model.reconfigure, delay_ms=60)
            onset = time.time()
            await watch.run(60.0, until=lambda f: f.kind == "traffic_latency_spike")
        [spike] = watch.findings("traffic_latency_spike")
        assert spike.detected_at - onset < 60.0
        assert spike.evidence["quantile_value"] >= 0.05  # p99 from Triton's summary
        assert spike.evidence["mean_request_s"] > spike.evidence["mean_baseline_median"]
        assert load.stats.ok > 200
    finally:
        await watch.adapter.close()


@pytest.mark.timeout(180)
async def test_load_stopped_after_a_steady_baseline_is_a_throughput_collapse(
    triton_factory: Callable[..., LocalTriton],
) -> None:
    """Load stopped after a learnt baseline is a collapse; before one, it is not."""
    server = triton_factory(extra_args=[SUMMARIES])
    watch = Watch(server)
    try:
        async with LoadGenerator(server.http_url, "digits", rate_per_s=20):
            await watch.run(3.0)  # fewer rate steps than collapse_min_samples
        await watch.run(6.0)
        assert [] == watch.findings()  # no baseline yet: stopping is no collapse
        async with LoadGenerator(server.http_url, "digits", rate_per_s=20):
            # long enough that the rate's usual spread outweighs its ramp from zero
            await watch.run(30.0)
            assert [] == watch.findings()
        await watch.run(30.0, until=lambda f: f.kind == "throughput_collapse")
        [collapse] = watch.findings()
        assert "throughput_collapse" == collapse.kind
        assert collapse.evidence["expected_rate_per_s"] > 10.0
        assert collapse.evidence["step_rate_per_s"] < 5.0
    finally:
        await watch.adapter.close()

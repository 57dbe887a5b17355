"""The 'triton' and 'dcgm' GPU sources: exporter text mapped onto GpuSamples, read over HTTP.

Triton's text was captured from a real tritonserver on an H200 (idle, and under a bf16
matmul load holding 40 GB): tests/data/gpu/triton-h200-*.prom. No dcgm-exporter was
reachable, so its text is a hand-written STAND-IN of the exporter's documented series
(tests/data/gpu/dcgm-exporter-standin.prom). The sources are read from a loopback HTTP
server, the way the daemon reads them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest

from sentinel.base.clock import FakeClock
from sentinel.detect.suite import DetectorSuite
from sentinel.probes.gpu_metrics import GpuCollector, GpuTelemetry
from sentinel.probes.gpu_scrape import ScrapedGpuSource, parse_dcgm, parse_triton
from sentinel.probes.settings import GpuSettings
from sentinel.vocabulary.findings import Finding
from sentinel.vocabulary.samples import GpuEvent, GpuSample, Sample

DATA = Path(__file__).parents[1] / "data" / "gpu"
TRITON_IDLE = (DATA / "triton-h200-idle.prom").read_text(encoding="utf-8")
TRITON_LOAD = (DATA / "triton-h200-load.prom").read_text(encoding="utf-8")
DCGM = (DATA / "dcgm-exporter-standin.prom").read_text(encoding="utf-8")
GPU0 = "GPU-5c0bf24b-5f67-e6eb-7366-95e28a901d8e"
GPU1 = "GPU-0d1e2f30-4152-6374-8596-a7b8c9d0e1f2"
MIB = 1 << 20


class MetricsEndpoint:
    """A loopback STAND-IN for an exporter's /metrics: serves whatever text it is given."""

    def __init__(self) -> None:
        self.text = ""
        self.status = 200
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/metrics"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(text=self.text, status=self.status, content_type="text/plain")


@pytest.fixture
async def endpoint() -> AsyncIterator[MetricsEndpoint]:
    """A running metrics endpoint on a free loopback port."""
    server = MetricsEndpoint()
    await server.start()
    yield server
    await server.stop()


def gpu_samples(samples: list[Sample]) -> list[GpuSample]:
    return [s for s in samples if isinstance(s, GpuSample)]


def test_triton_text_of_a_real_h200_maps_to_samples() -> None:
    """Triton's gauges (real H200) give utilization %, memory and power; the rest stays None."""
    (idle,) = parse_triton(TRITON_IDLE, ts=1.0)
    (busy,) = parse_triton(TRITON_LOAD, ts=2.0)
    assert idle.uuid == busy.uuid
    assert idle.uuid.startswith("GPU-")
    assert 0 == idle.index
    assert 140_000 * MIB < (idle.memory_total_bytes or 0) < 150_000 * MIB  # an H200
    assert (busy.memory_used_bytes or 0) - (idle.memory_used_bytes or 0) > 40e9  # the 40 GB
    assert (busy.utilization_gpu_pct or 0) > 50 > (idle.utilization_gpu_pct or 0)
    assert (busy.power_w or 0) > (idle.power_w or 0) > 0
    assert (idle.power_limit_w or 0) > 0
    unseen = (busy.temperature_c, busy.clock_event_reasons, busy.sm_clock_mhz, busy.processes)
    assert (None, None, None, ()) == unseen


def test_dcgm_text_maps_to_samples_of_this_pods_gpus() -> None:
    """dcgm-exporter's series map field by field; the pod filter keeps this pod's GPU only."""
    (gpu,) = parse_dcgm(DCGM, ts=1.0, pod="triton-0")
    assert (0, GPU0, "NVIDIA H200") == (gpu.index, gpu.uuid, gpu.name)
    memory = (gpu.memory_used_bytes, gpu.memory_free_bytes, gpu.memory_reserved_bytes)
    assert (140000 * MIB, 3157 * MIB, 614 * MIB) == memory
    assert (140000 + 3157 + 614) * MIB == gpu.memory_total_bytes
    assert (97.0, 41.0, 88.0, 90.0) == (
        gpu.utilization_gpu_pct,
        gpu.utilization_memory_pct,
        gpu.temperature_c,
        gpu.temperature_slowdown_c,
    )
    assert (612.5, 700.0, 1410.0) == (gpu.power_w, gpu.power_limit_w, gpu.sm_clock_mhz)
    assert (0x44, ("SwPowerCap", "HwThermalSlowdown")) == (
        gpu.clock_event_reasons,
        gpu.clock_event_names,
    )
    assert (3, False, None) == (
        gpu.pcie_replay_count,
        gpu.remapped_rows_failure,
        gpu.ecc_uncorrected_volatile,
    )


def test_dcgm_without_a_pod_keeps_every_gpu_or_the_chosen_devices() -> None:
    """With no pod filter the node's GPUs come back; gpu.devices narrows by index or UUID."""
    assert [GPU0, GPU1] == [s.uuid for s in parse_dcgm(DCGM, ts=1.0)]
    assert [GPU1] == [s.uuid for s in parse_dcgm(DCGM, ts=1.0, devices=[1])]
    assert [GPU0] == [s.uuid for s in parse_dcgm(DCGM, ts=1.0, devices=[GPU0])]


async def test_triton_source_reads_samples_over_http(endpoint: MetricsEndpoint) -> None:
    """The 'triton' source scrapes the endpoint and yields one sample per GPU."""
    endpoint.text = TRITON_LOAD
    clock = FakeClock(start=100.0)
    source = ScrapedGpuSource("triton", endpoint.url, GpuSettings(source="triton"), clock)
    (sample,) = await source.tick()
    assert isinstance(sample, GpuSample)
    assert (100.0, parse_triton(TRITON_LOAD, 0.0)[0].uuid) == (sample.ts, sample.uuid)


async def test_a_blind_source_says_so_once_and_recovers(endpoint: MetricsEndpoint) -> None:
    """A failing scrape gives one nvml_unavailable event per outage; samples resume after."""
    clock = FakeClock()
    settings = GpuSettings(source="dcgm", metrics_url=endpoint.url, dcgm_pod="triton-0")
    source = ScrapedGpuSource("dcgm", endpoint.url, settings, clock)
    endpoint.status, endpoint.text = 503, "down"
    first, second = await source.tick(), await source.tick()
    endpoint.status, endpoint.text = 200, "# no GPU series\n"
    third = await source.tick()
    endpoint.text = DCGM
    fourth = await source.tick()
    assert [["nvml_unavailable"], [], []] == [
        [e.kind for e in batch if isinstance(e, GpuEvent)] for batch in (first, second, third)
    ]
    assert [GPU0] == [s.uuid for s in gpu_samples(fourth)]


async def test_a_new_dcgm_xid_becomes_an_event_but_one_from_before_start_does_not(
    endpoint: MetricsEndpoint,
) -> None:
    """The exporter's last Xid changing (0 -> 79) is a hardware Xid event; at start it is not."""
    clock = FakeClock()
    settings = GpuSettings(source="dcgm", metrics_url=endpoint.url, dcgm_pod="triton-0")
    source = ScrapedGpuSource("dcgm", endpoint.url, settings, clock)
    endpoint.text = DCGM.replace("} 79\n", "} 0\n")
    at_start = await source.tick()
    endpoint.text = DCGM
    after = await source.tick()
    again = await source.tick()
    xids = [
        [(e.xid, e.cause) for e in b if isinstance(e, GpuEvent)] for b in (at_start, after, again)
    ]
    assert [[], [(79, "hardware")], []] == xids


async def test_source_up_gauge_follows_the_source(endpoint: MetricsEndpoint) -> None:
    """sentinel_gpu_source_up: absent before any news, 1 while GPUs are seen, 0 when blind."""
    clock = FakeClock()
    registry = CollectorRegistry()
    telemetry = GpuTelemetry(clock)
    GpuCollector(telemetry, registry)
    source = ScrapedGpuSource("triton", endpoint.url, GpuSettings(source="triton"), clock)

    def gauge() -> float | None:
        return registry.get_sample_value("sentinel_gpu_source_up")

    before = gauge()
    endpoint.text = TRITON_IDLE
    for sample in await source.tick():
        telemetry.observe(sample)
    seeing = gauge()
    endpoint.status = 500
    for sample in await source.tick():
        telemetry.observe(sample)
    assert (None, 1.0, 0.0) == (before, seeing, gauge())
    assert b"sentinel_gpu_source_up 0.0" in generate_latest(registry)


def test_dcgm_source_needs_its_endpoint() -> None:
    """gpu.source 'dcgm' without gpu.metrics_url is a config error; 'triton' needs none."""
    with pytest.raises(ValueError, match="metrics_url"):
        GpuSettings(source="dcgm")
    assert "triton" == GpuSettings(source="triton").source


def test_detectors_judge_dcgm_samples_and_stay_quiet_on_what_triton_cannot_see() -> None:
    """The thermal detector finds the throttled GPU in dcgm samples; Triton's never trip it."""
    dcgm, triton = DetectorSuite(only=["thermal"]), DetectorSuite(only=["thermal"])
    found: list[tuple[str, str]] = []
    quiet: list[object] = []
    for t in range(10):
        for sample in parse_dcgm(DCGM, ts=float(t), pod="triton-0"):
            found += [(j.kind, j.subject.gpu_uuid or "") for j in dcgm.observe(sample)
                      if isinstance(j, Finding)]  # fmt: skip
        for sample in parse_triton(TRITON_LOAD, ts=float(t)):
            quiet += triton.observe(sample)
    assert [("thermal_throttle", GPU0)] == found
    assert [] == quiet

"""Pieces of the wiring between stages."""

from __future__ import annotations

import pytest

from sentinel.base.clock import FakeClock
from sentinel.config import Config
from sentinel.probes import triton as triton_adapter
from sentinel.probes.gpu_scrape import ScrapedGpuSource
from sentinel.runbook.fleet import FleetHalt
from sentinel.testing import RecordingTeller
from sentinel.vocabulary.notices import PageRequest
from sentinel.wiring import ConfigError, _page_fleet_halt, build_probes


async def test_fleet_halt_pages_once_with_the_degraded_replicas() -> None:
    """A fleet-wide stop becomes one page naming how many replicas degraded together."""
    teller = RecordingTeller()
    on_halt = _page_fleet_halt(Config(pod="triton-0"), FakeClock(), teller)
    await on_halt(FleetHalt("budget", ["triton-0", "triton-1", "triton-2"], 4, 10.0))
    [page] = teller.notices
    assert isinstance(page, PageRequest)
    assert ("fleet_halt", "trigger", ["triton-0", "triton-1", "triton-2"]) == (
        page.incident.kind,
        page.action,
        page.evidence["degraded"],
    )
    assert page.reason.startswith("3 of 4 replicas degraded together")


async def test_gpu_source_triton_scrapes_tritons_metrics() -> None:
    """gpu.source 'triton' builds a scraping GPU probe on triton.metrics_url, no NVML."""
    config = Config(gpu={"source": "triton"}, triton={"metrics_url": "http://127.0.0.1:1/m"})
    triton = triton_adapter.connect(config.triton)
    try:
        probes, _ = build_probes(config, FakeClock(), triton)
    finally:
        await triton.close()
    [gpu] = [p for p in probes if p.name == "gpu"]
    assert isinstance(gpu, ScrapedGpuSource)
    assert ("triton", "http://127.0.0.1:1/m") == (gpu.kind, gpu.url)


async def test_gpu_source_triton_without_metrics_url_is_a_config_error() -> None:
    """gpu.source 'triton' with Triton's metrics turned off names both fields."""
    config = Config(gpu={"source": "triton"}, triton={"metrics_url": None})
    triton = triton_adapter.connect(config.triton)
    try:
        with pytest.raises(ConfigError, match=r"gpu.source 'triton' needs triton.metrics_url"):
            build_probes(config, FakeClock(), triton)
    finally:
        await triton.close()

"""The GPU Prometheus collector, read back through prometheus_client's own parser."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from sentinel.base.clock import FakeClock
from sentinel.probes.gpu_metrics import GpuCollector, GpuTelemetry
from sentinel.probes.replay import ReplaySource, load_samples
from sentinel.vocabulary.samples import GpuEvent, GpuProcess, GpuSample

TRACES = Path(__file__).parents[1] / "data" / "gpu"
GIB = 1 << 30


def _scrape(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition as {(name, sorted labels): value}."""
    text = generate_latest(registry).decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _gpu(**fields: object) -> GpuSample:
    base: dict[str, object] = {"ts": 1.0, "index": 0, "uuid": "GPU-a"}
    base.update(fields)
    return GpuSample(**base)  # type: ignore[arg-type]


def _labels(**extra: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted({"gpu": "0", "gpu_uuid": "GPU-a", **extra}.items()))


def _setup(
    *samples: GpuSample | GpuEvent, pids: object = ()
) -> tuple[FakeClock, GpuTelemetry, CollectorRegistry]:
    clock = FakeClock()
    telemetry = GpuTelemetry(clock, stale_after_s=10)
    for s in samples:
        telemetry.observe(s)
    registry = CollectorRegistry()
    GpuCollector(telemetry, registry, server_pids=pids)  # type: ignore[arg-type]
    return clock, telemetry, registry


def test_each_reason_is_a_0_or_1_gauge_and_unknown_bits_get_their_own() -> None:
    """Set reasons read 1, the other known reasons 0, an unknown bit 1 under its name."""
    names = ("SwPowerCap", "HwSlowdown", "Unknown0x400")
    _, _, registry = _setup(_gpu(clock_event_reasons=0x40C, clock_event_names=names))
    got = {
        dict(labels)["reason"]: v
        for (name, labels), v in _scrape(registry).items()
        if name == "sentinel_gpu_clock_event_reason"
    }
    expected = {
        "GpuIdle": 0.0,
        "ApplicationsClocksSetting": 0.0,
        "SwPowerCap": 1.0,
        "HwSlowdown": 1.0,
        "SyncBoost": 0.0,
        "SwThermalSlowdown": 0.0,
        "HwThermalSlowdown": 0.0,
        "HwPowerBrakeSlowdown": 0.0,
        "DisplayClockSetting": 0.0,
        "Unknown0x400": 1.0,
    }
    assert expected == got


def test_margin_ratio_and_foreign_memory() -> None:
    """Margin is slowdown minus temperature; foreign memory excludes the server's pids."""
    sample = _gpu(
        temperature_c=80.0,
        temperature_slowdown_c=89.0,
        memory_used_bytes=30 * GIB,
        memory_total_bytes=80 * GIB,
        processes=(
            GpuProcess(pid=100, used_bytes=20 * GIB),
            GpuProcess(pid=200, used_bytes=6 * GIB),
            GpuProcess(pid=300, used_bytes=4 * GIB),
            GpuProcess(pid=400, used_bytes=None),
        ),
    )
    _, _, registry = _setup(sample, pids=lambda: [100])
    got = _scrape(registry)
    assert (9.0, 30 / 80, float(10 * GIB)) == (
        got[("sentinel_gpu_temperature_margin_celsius", _labels())],
        got[("sentinel_gpu_memory_used_ratio", _labels())],
        got[("sentinel_gpu_memory_foreign_bytes", _labels())],
    )


def test_foreign_memory_is_left_out_without_server_pids() -> None:
    """Without Triton's pids the collector does not guess foreign memory."""
    _, _, registry = _setup(_gpu(processes=(GpuProcess(pid=1, used_bytes=GIB),)))
    assert [] == [k for k in _scrape(registry) if k[0] == "sentinel_gpu_memory_foreign_bytes"]


def test_up_goes_to_zero_when_lost_stale_or_nvml_gone() -> None:
    """up is 1 for a fresh sample, 0 after gpu_lost, after going stale, or without NVML."""
    clock, telemetry, registry = _setup(_gpu(temperature_c=40.0, temperature_slowdown_c=89.0))
    up = ("sentinel_gpu_up", _labels())
    seen = [_scrape(registry)[up]]
    telemetry.observe(GpuEvent(ts=2.0, uuid="GPU-a", kind="gpu_lost"))
    seen.append(_scrape(registry)[up])
    telemetry.observe(_gpu(ts=3.0))
    seen.append(_scrape(registry)[up])
    clock.set(11.0)
    seen.append(_scrape(registry)[up])
    telemetry.observe(_gpu(ts=4.0))
    telemetry.observe(GpuEvent(ts=5.0, uuid="", kind="nvml_unavailable"))
    seen.append(_scrape(registry)[up])
    assert [1.0, 0.0, 1.0, 0.0, 0.0] == seen


def test_down_gpu_exports_no_stale_values() -> None:
    """A lost GPU keeps its up=0 line but no margin/ratio from its last reading."""
    _, telemetry, registry = _setup(_gpu(temperature_c=40.0, temperature_slowdown_c=89.0))
    telemetry.observe(GpuEvent(ts=2.0, uuid="GPU-a", kind="gpu_lost"))
    assert ["sentinel_gpu_source_up", "sentinel_gpu_up"] == sorted(
        {name for name, _ in _scrape(registry)}
    )
    assert 0.0 == registry.get_sample_value("sentinel_gpu_source_up")  # its only GPU is gone


def test_xid_counter_by_xid_and_cause() -> None:
    """Xid events count up per (xid, cause)."""
    events = [
        GpuEvent(ts=1.0, uuid="GPU-a", kind="xid", xid=31, cause="application"),
        GpuEvent(ts=2.0, uuid="GPU-a", kind="xid", xid=31, cause="application"),
        GpuEvent(ts=3.0, uuid="GPU-a", kind="xid", xid=79, cause="hardware"),
    ]
    _, _, registry = _setup(*events)
    got = {k: v for k, v in _scrape(registry).items() if k[0] == "sentinel_gpu_xid_events_total"}
    assert {
        ("sentinel_gpu_xid_events_total", (("cause", "application"), ("xid", "31"))): 2.0,
        ("sentinel_gpu_xid_events_total", (("cause", "hardware"), ("xid", "79"))): 1.0,
    } == got


async def test_real_matmul_trace_exports_sw_power_cap() -> None:
    """Replaying the H200 matmul trace into the collector shows SwPowerCap=1, GpuIdle=0."""
    clock = FakeClock()
    telemetry = GpuTelemetry(clock)
    registry = CollectorRegistry()
    GpuCollector(telemetry, registry)
    await ReplaySource(TRACES / "h200-matmul.jsonl", clock, speed=None).run(telemetry.sink)
    got = _scrape(registry)
    labels = (("gpu", "0"), ("gpu_uuid", "GPU-5c0bf24b-5f67-e6eb-7366-95e28a901d8e"))
    reason = "sentinel_gpu_clock_event_reason"
    assert (1.0, 0.0) == (
        got[(reason, tuple(sorted((*labels, ("reason", "SwPowerCap")))))],
        got[(reason, tuple(sorted((*labels, ("reason", "GpuIdle")))))],
    )


@pytest.mark.promtool
def test_exposition_passes_promtool_check_metrics() -> None:
    """promtool's metric linter finds nothing to complain about in our names and help."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed")
    clock = FakeClock()
    telemetry = GpuTelemetry(clock)
    registry = CollectorRegistry()
    GpuCollector(telemetry, registry, server_pids=[1])
    for name in ("h200-oom.jsonl", "h200-xid31.jsonl"):
        for sample in load_samples(TRACES / name):
            telemetry.observe(sample)
    result = subprocess.run(
        [promtool, "check", "metrics"],
        input=generate_latest(registry),
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert (0, b"") == (result.returncode, result.stdout + result.stderr)

"""Real traces recorded on an H200 (docs/gpu-verification.md), replayed and checked.

Recorded with tools/gpu_verify.sh: idle, sustained bf16 matmuls, a process
filling memory to a real CUDA OOM, and a kernel writing to an unmapped address
(Xid 31). The assertions are what was seen there.
"""

from __future__ import annotations

import asyncio
import json
import statistics
from pathlib import Path
from typing import Any

import pytest

from sentinel.base.clock import FakeClock
from sentinel.cli import main
from sentinel.probes.replay import ReplaySource, load_samples
from sentinel.vocabulary.samples import GpuEvent, GpuSample, Sample

TRACES = Path(__file__).parents[1] / "data" / "gpu"
H200_UUID = "GPU-5c0bf24b-5f67-e6eb-7366-95e28a901d8e"
SW_POWER_CAP = 0x4
GPU_IDLE = 0x1


def _gpu(name: str) -> list[GpuSample]:
    bad: list[tuple[int, str]] = []
    samples = load_samples(TRACES / name, lambda n, why: bad.append((n, why)))
    assert [] == bad
    return [s for s in samples if isinstance(s, GpuSample)]


@pytest.mark.parametrize(
    "name", ["h200-idle.jsonl", "h200-matmul.jsonl", "h200-oom.jsonl", "h200-xid31.jsonl"]
)
def test_traces_are_one_h200_with_its_thresholds(name: str) -> None:
    """Every sample names the H200, its 89 C slowdown threshold and its 700 W limit."""
    samples = _gpu(name)
    assert {("NVIDIA H200", H200_UUID, 89.0, 700.0)} == {
        (s.name, s.uuid, s.temperature_slowdown_c, s.power_limit_w) for s in samples
    }


def test_idle_gpu_reports_gpu_idle_and_nothing_else() -> None:
    """Idle: every sample has exactly the GpuIdle reason and 0 % utilization."""
    samples = _gpu("h200-idle.jsonl")
    assert {(GPU_IDLE, ("GpuIdle",), 0.0)} == {
        (s.clock_event_reasons, s.clock_event_names, s.utilization_gpu_pct) for s in samples
    }


def test_matmul_load_hits_the_sw_power_cap() -> None:
    """Under sustained bf16 matmuls the SW power cap bit is set, near the 700 W limit."""
    samples = _gpu("h200-matmul.jsonl")
    capped = [s for s in samples if s.clock_event_reasons == SW_POWER_CAP]
    assert len(capped) > 0.8 * len(samples)
    assert all(s.clock_event_names == ("SwPowerCap",) for s in capped)
    # NVML averages power over 1 s, so the first capped samples still show the ramp
    power = statistics.median(s.power_w or 0.0 for s in capped)
    assert power > 0.95 * 700.0
    # the cap holds the SM clock well under its maximum
    assert all(
        s.sm_clock_mhz is not None
        and s.sm_clock_max_mhz is not None
        and s.sm_clock_mhz < 0.8 * s.sm_clock_max_mhz
        for s in capped
    )


def test_memory_is_near_total_before_the_oom_then_released() -> None:
    """Before the CUDA OOM, used memory is within 1 % of total and held by one process."""
    samples = _gpu("h200-oom.jsonl")
    peak = max(samples, key=lambda s: s.memory_used_bytes or 0)
    assert peak.memory_used_bytes is not None
    assert peak.memory_total_bytes is not None
    assert peak.memory_used_bytes > 0.99 * peak.memory_total_bytes
    assert 1 == len(peak.processes)
    held = peak.processes[0].used_bytes
    assert held is not None
    assert held > 0.99 * peak.memory_used_bytes
    after = samples[samples.index(peak) :]
    assert 0 == after[-1].memory_used_bytes  # the filler exited and the memory came back


def test_application_fault_is_one_xid_31() -> None:
    """The illegal-address kernel produced exactly one Xid 31, classified as application."""
    samples = load_samples(TRACES / "h200-xid31.jsonl")
    events = [s for s in samples if isinstance(s, GpuEvent)]
    assert [("xid", 31, "application", H200_UUID)] == [
        (e.kind, e.xid, e.cause, e.uuid) for e in events
    ]


async def test_real_trace_replays_paced_on_the_clock() -> None:
    """The matmul trace replays at 10x in a tenth of its recorded span on a FakeClock."""
    samples = load_samples(TRACES / "h200-matmul.jsonl")
    span = samples[-1].ts - samples[0].ts
    clock = FakeClock()
    got: list[Sample] = []

    async def sink(s: Sample) -> None:
        got.append(s)

    task = asyncio.create_task(
        ReplaySource(TRACES / "h200-matmul.jsonl", clock, speed=10).run(sink)
    )
    await asyncio.sleep(0)
    last_gap = samples[-1].ts - samples[-2].ts
    await clock.advance((span - last_gap / 2) / 10)
    early = len(got)
    await clock.advance(last_gap / 10)
    await task
    assert (len(samples) - 1, samples) == (early, got)


def _replay_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[dict[str, Any]]]:
    code = main(["replay", *argv, "--json"])
    return code, [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_sentinel_replay_finds_the_real_oom(capsys: pytest.CaptureFixture[str]) -> None:
    """`sentinel replay` of the OOM trace: one critical gpu_oom finding on the H200."""
    code, findings = _replay_cli(capsys, str(TRACES / "h200-oom.jsonl"))
    assert (0, [("gpu_oom", "critical", H200_UUID)]) == (
        code,
        [(f["kind"], f["severity"], f["subject"]) for f in findings],
    )
    assert findings[0]["evidence"]["used_fraction"] > 0.99


def test_sentinel_replay_treats_sw_power_cap_as_normal_unless_asked(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The matmul trace raises nothing by default, a throttle finding when SwPowerCap counts."""
    trace = str(TRACES / "h200-matmul.jsonl")
    default = _replay_cli(capsys, trace)
    strict = _replay_cli(
        capsys, trace, "--detector", "thermal", "--set", "sw_power_cap_is_incident=true"
    )
    assert (0, []) == default
    assert (0, [("thermal_throttle", ["SwPowerCap"])]) == (
        strict[0],
        [(f["kind"], f["evidence"]["reasons"]) for f in strict[1]],
    )

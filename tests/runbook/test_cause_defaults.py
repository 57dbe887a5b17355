"""Cause-aware safety as the executor's default: no changing step acts on a hardware
cause, a lost GPU, foreign memory or a finding that has cleared, unless the step opts
out explicitly with a reason."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from runbook_standins import Bed, incident

from sentinel.base.yamlsource import InvalidFile
from sentinel.runbook.schema import LoadedPlaybook
from sentinel.runbook.status import Guard
from sentinel.vocabulary.incidents import IncidentStatus
from sentinel.vocabulary.notices import IncidentChanged, PageRequest
from sentinel.vocabulary.samples import GpuProcess, GpuSample, TritonHealth

Loader = Callable[[str], LoadedPlaybook]

UNLOAD = """\
name: site-unload
triggers: [{kinds: [latency_spike, gpu_oom, xid_hardware, gpu_lost, thermal_throttle]}]
guards: {cooldown: 0s}
steps:
  - name: diagnose
    action: diagnostics.capture
    with: {model: digits}
  - name: unload
    action: triton.unload_model
    with: {model: digits}
"""
"""A site's own playbook without any cause gate: the executor must still refuse."""


def _gpu(reasons: int = 0, foreign: bool = False) -> GpuSample:
    processes = (GpuProcess(pid=11, used_bytes=6 << 30, name="python3 train.py"),)
    return GpuSample(
        ts=0.0,
        index=0,
        uuid="GPU-1",
        clock_event_reasons=reasons,
        processes=processes if foreign else (),
    )


CASES: dict[str, tuple[str, int, bool, dict[str, Any]]] = {
    "hardware_thermal": ("latency_spike", 0x40, False, {}),
    "hardware_power": ("latency_spike", 0x80, False, {}),
    "xid_hardware": ("xid_hardware", 0, False, {"xid": 79}),
    "gpu_lost": ("gpu_lost", 0, False, {}),
    "foreign_memory": ("gpu_oom", 0, False, {"cause": "other_process", "other_bytes": 6 << 30}),
}


@pytest.mark.parametrize("cause", sorted(CASES))
async def test_each_cause_is_refused_recorded_and_paged(
    bed: Bed, write_playbook: Loader, cause: str
) -> None:
    """A changing step of a playbook with no gates is refused for each cause by default."""
    kind, reasons, foreign, evidence = CASES[cause]
    bed.facts.gpu_samples = [_gpu(reasons, foreign)]
    engine = bed.engine([write_playbook(UNLOAD)])
    [r] = await engine.consider(incident(kind, bed.clock.now(), evidence=evidence))
    [row] = engine.history.runs(1)
    steps = {s["name"]: (s["status"], s["reason"]) for s in row["steps"]}
    [page] = bed.teller.of(PageRequest)
    assert ("blocked", Guard.CAUSE, []) == (r.status, r.refused_by, bed.triton.mutations())
    assert ("blocked", "succeeded") == (row["status"], steps["diagnose"][0])
    assert "blocked" == steps["unload"][0]
    assert f"cause: {cause}" in steps["unload"][1]
    assert f"cause: {cause}" in page.reason


async def test_a_step_opts_out_per_cause_with_a_reason(bed: Bed, write_playbook: Loader) -> None:
    """allow_causes + because lets that step act on that cause, and only that cause."""
    allowed = UNLOAD + (
        "    allow_causes: [hardware_thermal]\n"
        "    because: the model is drained by hand on a hot GPU\n"
    )
    engine = bed.engine([write_playbook(allowed)])
    bed.facts.gpu_samples = [_gpu(0x40)]
    [hot] = await engine.consider(incident("latency_spike", bed.clock.now()))
    bed.facts.gpu_samples = [_gpu(0x40, foreign=True)]
    [hot_and_foreign] = await engine.consider(incident("latency_spike", bed.clock.now()))
    assert ("succeeded", "blocked") == (hot.status, hot_and_foreign.status)
    assert [("unload_model", "digits")] == bed.triton.mutations()
    assert "cause: foreign_memory" in hot_and_foreign.reason


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ("    allow_causes: [hardware_thermal]\n", "allow_causes and because go together"),
        ("    because: trust me\n", "allow_causes and because go together"),
        ("    allow_causes: [hardware_thermall]\n    because: typo\n", "hardware_thermal"),
    ],
)
def test_opt_out_needs_known_causes_and_a_reason(
    write_playbook: Loader, extra: str, problem: str
) -> None:
    """A cause without a reason, a reason without a cause, or an unknown cause is refused."""
    with pytest.raises(InvalidFile) as caught:
        write_playbook(UNLOAD + extra)
    assert problem in str(caught.value)


async def test_foreign_memory_does_not_refuse_a_fix_it_cannot_cause(
    bed: Bed, write_playbook: Loader
) -> None:
    """Another process's memory refuses memory/latency fixes, not an accuracy fix."""
    bed.facts.gpu_samples = [_gpu(foreign=True)]
    lp = write_playbook(UNLOAD.replace("thermal_throttle]", "thermal_throttle, accuracy_drift]"))
    engine = bed.engine([lp])
    [drift] = await engine.consider(incident("accuracy_drift", bed.clock.now()))
    [slow] = await engine.consider(incident("latency_spike", bed.clock.now()))
    assert ("succeeded", "blocked") == (drift.status, slow.status)


async def test_finding_cleared_before_the_first_step_is_refused_and_paged(
    bed: Bed, write_playbook: Loader
) -> None:
    """Matched while firing, cleared before step one: nothing runs; recorded, paged once."""
    second = UNLOAD.replace("name: site-unload", "name: site-unload-2")
    engine = bed.engine([write_playbook(UNLOAD), write_playbook(second)])
    firing = incident("latency_spike", bed.clock.now())
    await engine.handle(IncidentChanged(firing, "opened"))
    await engine.stop()  # the spawned run is not under test; the snapshot below is
    resolved = incident("latency_spike", bed.clock.now(), status=IncidentStatus.RESOLVED)
    await engine.handle(IncidentChanged(resolved, "resolved"))
    [r] = await engine.consider(firing)
    [page] = bed.teller.of(PageRequest)
    assert ("skipped", Guard.CLEARED, []) == (r.status, r.refused_by, bed.triton.mutations())
    assert "has cleared before the run acted" in page.reason
    assert "skipped" == engine.history.run(r.run_id)["status"]  # type: ignore[index]


async def test_reopened_finding_is_acted_on_again(bed: Bed, write_playbook: Loader) -> None:
    """A finding that cleared and came back is no longer treated as cleared."""
    engine = bed.engine([write_playbook(UNLOAD)])
    resolved = incident("latency_spike", bed.clock.now(), status=IncidentStatus.RESOLVED)
    await engine.handle(IncidentChanged(resolved, "resolved"))
    again = incident("latency_spike", bed.clock.now())
    await engine.handle(IncidentChanged(again, "reopened"))
    await engine.stop()
    [r] = await engine.consider(again)
    assert "succeeded" == r.status


async def test_manual_run_is_not_refused_as_cleared(bed: Bed, write_playbook: Loader) -> None:
    """A person's run is their decision: the cleared check does not apply to it."""
    engine = bed.engine([write_playbook(UNLOAD)])
    resolved = incident("latency_spike", bed.clock.now(), status=IncidentStatus.RESOLVED)
    await engine.handle(IncidentChanged(resolved, "resolved"))
    r = await engine.run_manual("site-unload", {"model": "digits"}, incident=resolved)
    assert "succeeded" == r.status


async def test_shipped_restart_never_restarts_for_hardware(bed: Bed, shipped: Loader) -> None:
    """restart-server, now without its own gate: diagnostics, then the restart is refused."""
    bed.facts.health = TritonHealth(ts=bed.clock.now(), live=True, ready=False, uptime_s=3600.0)
    bed.facts.gpu_samples = [_gpu(0x40)]
    engine = bed.engine([shipped("restart-server")])
    [r] = await engine.consider(incident("server_unhealthy", bed.clock.now(), age=61))
    steps = {s["name"]: s["status"] for s in r.steps}
    assert ("blocked", {"diagnose": "succeeded", "restart": "blocked"}) == (r.status, steps)
    [page] = bed.teller.of(PageRequest)
    assert "hardware is slowing the GPU" in page.reason

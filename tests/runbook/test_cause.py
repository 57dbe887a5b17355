"""Cause facts for guards: the finding's evidence, or the GPU's current state."""

from __future__ import annotations

import dataclasses

from sentinel.runbook.context import cause_facts, synthetic_incident


def incident(kind: str, **evidence: object):  # type: ignore[no-untyped-def]
    return dataclasses.replace(synthetic_incident("pod", {}, kind, 0), evidence=evidence)


def test_foreign_memory_from_the_evidence_when_the_gpu_has_freed_it() -> None:
    """An OOM caused by another process stays foreign after that process let go."""
    inc = incident(
        "gpu_oom",
        cause="other_process",
        other_bytes=150 << 30,
        other_processes=[{"pid": 528, "used_bytes": 150 << 30}],
    )
    facts = cause_facts(inc, {"foreign_memory_bytes": 0})
    assert (True, 150 << 30, [{"pid": 528, "used_bytes": 150 << 30}]) == (
        facts["foreign_memory"],
        facts["foreign_memory_bytes"],
        facts["foreign_processes"],
    )


def test_server_caused_oom_is_not_foreign() -> None:
    """Memory held by the server itself does not count as foreign."""
    inc = incident("gpu_oom", cause="server", other_bytes=0)
    assert False is cause_facts(inc, {"foreign_memory_bytes": 0})["foreign_memory"]


def test_hardware_throttle_from_evidence_or_current_bits() -> None:
    """A thermal finding marked hardware, a power brake, or HW bits now: all hardware."""
    assert cause_facts(incident("thermal_throttle", hardware=True), {})["hardware_throttle"]
    assert cause_facts(incident("power_brake"), {})["hardware_throttle"]
    assert cause_facts(incident("latency_spike"), {"hw_thermal_slowdown": True})[
        "hardware_throttle"
    ]
    assert not cause_facts(incident("thermal_throttle", hardware=False), {})["hardware_throttle"]

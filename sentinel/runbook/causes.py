"""Causes the executor refuses to act on by default, and the facts that show them.

A mutating step (one that changes the serving system) is refused when the incident's
cause is one a change to the model or the server cannot fix: hardware slowing the GPU
(thermal or power), a hardware Xid, a lost GPU, or -- for a finding about memory or
speed, or one whose evidence names another process -- memory held by another process.
A step opts out explicitly, per cause and with a reason (``allow_causes`` and
``because`` in the playbook). Diagnostics and pages are never refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any


class Cause(StrEnum):
    """A cause the executor will not act on unless a step allows it."""

    HARDWARE_THERMAL = "hardware_thermal"
    """NVML HW slowdown or HW thermal slowdown (clock-event bits 0x8, 0x40)."""
    HARDWARE_POWER = "hardware_power"
    """NVML HW power brake (0x80), or a ``power_brake`` finding."""
    XID_HARDWARE = "xid_hardware"
    """An Xid of the hardware class (``xid_hardware`` finding)."""
    GPU_LOST = "gpu_lost"
    """The GPU fell off the bus (``gpu_lost`` finding)."""
    FOREIGN_MEMORY = "foreign_memory"
    """Another process (not the server) holds memory on the GPU."""


_WHY = {
    Cause.HARDWARE_THERMAL: (
        "hardware is slowing the GPU (HW thermal slowdown: cooling or a failing board); "
        "a restart or a config change cannot help and hides the evidence"
    ),
    Cause.HARDWARE_POWER: (
        "hardware is braking the GPU's power (HW power brake); a restart or a config change "
        "cannot help and hides the evidence"
    ),
    Cause.XID_HARDWARE: "the GPU reported a hardware Xid; hardware on-call must look",
    Cause.GPU_LOST: "the GPU is lost (off the bus); only a person can bring it back",
}


PRESSURE_KINDS = frozenset(
    {
        "gpu_oom",
        "gpu_oom_predicted",
        "latency_spike",
        "ttft_spike",
        "backlog",
        "traffic_latency_spike",
        "queue_buildup",
    }
)
"""Findings another process's memory (or its work on the GPU) can cause; a drift or a
damaged file is not refused because some other process holds memory."""


def active_causes(
    kind: str, evidence: Mapping[str, Any], cause: Mapping[str, Any]
) -> dict[Cause, str]:
    """The refused causes an incident of ``kind`` shows (its evidence, and the cause facts
    of ``context.cause_facts``: the evidence or the GPU now), each with why."""
    found: dict[Cause, str] = {}
    if cause.get("hardware_thermal"):
        found[Cause.HARDWARE_THERMAL] = _WHY[Cause.HARDWARE_THERMAL]
    if cause.get("hardware_power"):
        found[Cause.HARDWARE_POWER] = _WHY[Cause.HARDWARE_POWER]
    if kind == Cause.XID_HARDWARE:
        found[Cause.XID_HARDWARE] = _WHY[Cause.XID_HARDWARE]
    if kind == Cause.GPU_LOST:
        found[Cause.GPU_LOST] = _WHY[Cause.GPU_LOST]
    foreign_named = evidence.get("cause") == "other_process"
    if cause.get("foreign_memory") and (foreign_named or kind in PRESSURE_KINDS):
        mib = int(cause.get("foreign_memory_bytes") or 0) // (1 << 20)
        pids = [p.get("pid") for p in cause.get("foreign_processes") or [] if isinstance(p, dict)]
        found[Cause.FOREIGN_MEMORY] = (
            f"another process holds GPU memory (foreign: {mib} MiB, pids {pids}); "
            "a change to the model or the server will not free it"
        )
    return found

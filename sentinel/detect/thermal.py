"""``thermal_throttle`` and ``power_brake`` from NVML clock-event reasons, per GPU.

Severity: ``thermal_throttle`` is a warning when software (driver) throttles or the
temperature nears the slowdown threshold, critical when hardware slows the clocks
(HwThermalSlowdown, HwSlowdown). ``power_brake`` is critical: an external signal from
the board or PSU that no action on the server can fix.
"""

from __future__ import annotations

import math
from typing import Any

from sentinel.detect.base import rnd
from sentinel.detect.episode import Episodes
from sentinel.detect.settings import ThermalSettings
from sentinel.vocabulary.findings import Judgement, Severity, Subject
from sentinel.vocabulary.samples import ClockEventReason, GpuSample, Sample

THERMAL = "thermal_throttle"
POWER_BRAKE = "power_brake"

_HARDWARE = {"HwThermalSlowdown", "HwSlowdown"}


def reason_names(sample: GpuSample) -> set[str]:
    """Set reasons, from the decoded names or else the raw bitmask."""
    if sample.clock_event_names:
        return set(sample.clock_event_names)
    mask = sample.clock_event_reasons or 0
    return {name for name, bit in ClockEventReason.__members__.items() if mask & bit}


class ThermalDetector:
    name = "thermal"
    accepts: tuple[type, ...] = (GpuSample,)

    def __init__(self, settings: ThermalSettings | None = None) -> None:
        self.settings = settings or ThermalSettings()
        self._episodes = Episodes(self.name)

    def observe(self, sample: Sample) -> list[Judgement]:
        if not isinstance(sample, GpuSample):
            return []
        s = self.settings
        reasons = reason_names(sample)
        thermal_set = set(s.thermal_reasons)
        if s.sw_power_cap_is_incident:
            thermal_set.add("SwPowerCap")
        thermal = sorted(reasons & thermal_set)
        brake = sorted(reasons & set(s.power_brake_reasons))
        slowdown = _finite(sample.temperature_slowdown_c) or s.fallback_slowdown_c
        temperature = _finite(sample.temperature_c)
        margin = (
            slowdown - temperature if slowdown is not None and temperature is not None else None
        )
        near = s.min_margin_c is not None and margin is not None and margin <= s.min_margin_c
        subject = Subject(gpu_uuid=sample.uuid)
        facts = _facts(sample, reasons, margin, slowdown)
        out: list[Judgement] = []
        timing = {"min_samples": s.min_samples, "clear_samples": s.clear_samples}
        hot = self._episodes.get(THERMAL, subject, **timing)
        j = hot.update(
            sample.ts,
            breached=bool(thermal) or near,
            recovered=not thermal and not near,
            fire=lambda started, ts: self._fire_thermal(
                thermal, near, {**facts, "samples": hot.breach_count}, started, ts
            ),
            clear_evidence=lambda: facts,
        )
        if j is not None:
            out.append(j)
        braked = self._episodes.get(POWER_BRAKE, subject, **timing)
        j = braked.update(
            sample.ts,
            breached=bool(brake),
            recovered=not brake,
            fire=lambda started, ts: self._fire_brake(
                brake, {**facts, "samples": braked.breach_count}, started, ts
            ),
            clear_evidence=lambda: facts,
        )
        if j is not None:
            out.append(j)
        return out

    def suspects(self, model: str) -> bool:
        return False  # reads no canaries

    def tick(self, now: float) -> list[Judgement]:
        return []

    def _fire_thermal(
        self, thermal: list[str], near: bool, facts: dict[str, Any], started: float, ts: float
    ) -> tuple[Severity, str, dict[str, Any]]:
        s = self.settings
        hardware = bool(_HARDWARE & set(thermal))
        severity = Severity.CRITICAL if hardware else Severity.WARNING
        if thermal:
            what = "clocks throttled by " + ", ".join(thermal)
        else:
            what = f"temperature {facts['temperature_c']:.0f} °C within {s.min_margin_c:g} °C "
            what += "of the slowdown threshold"
        summary = f"GPU {what} for {s.min_samples} samples"
        if facts.get("sm_clock_ratio") is not None:
            summary += f" (SM clock at {facts['sm_clock_ratio']:.0%} of max)"
        evidence = {
            "trigger": "clock_event_reasons" if thermal else "temperature_margin",
            "thermal_reasons": thermal,
            "hardware": hardware,
            "min_samples": s.min_samples,
            "min_margin_c": s.min_margin_c,
            "sustained_s": rnd(ts - started, 3),
            **facts,
        }
        return severity, summary, evidence

    def _fire_brake(
        self, brake: list[str], facts: dict[str, Any], started: float, ts: float
    ) -> tuple[Severity, str, dict[str, Any]]:
        s = self.settings
        summary = f"GPU power brake ({', '.join(brake)}) for {s.min_samples} samples"
        if facts.get("power_w") is not None:
            summary += f" at {facts['power_w']:.0f} W"
        evidence = {
            "trigger": "clock_event_reasons",
            "reasons_matched": brake,
            "min_samples": s.min_samples,
            "sustained_s": rnd(ts - started, 3),
            **facts,
        }
        return Severity.CRITICAL, summary, evidence


def _facts(
    sample: GpuSample, reasons: set[str], margin: float | None, slowdown: float | None
) -> dict[str, Any]:
    ratio = (
        sample.sm_clock_mhz / sample.sm_clock_max_mhz
        if sample.sm_clock_mhz is not None and sample.sm_clock_max_mhz
        else None
    )
    return {
        "reasons": sorted(reasons),
        "clock_event_reasons": sample.clock_event_reasons,
        "temperature_c": sample.temperature_c,
        "slowdown_c": slowdown,
        "margin_c": rnd(margin, 2) if margin is not None else None,
        "sm_clock_mhz": sample.sm_clock_mhz,
        "sm_clock_max_mhz": sample.sm_clock_max_mhz,
        "sm_clock_ratio": rnd(ratio, 3) if ratio is not None else None,
        "power_w": sample.power_w,
        "power_limit_w": sample.power_limit_w,
    }


def _finite(x: float | None) -> float | None:
    """A reading, or None when the probe gave nothing usable (None, NaN, infinity)."""
    return x if x is not None and math.isfinite(x) else None

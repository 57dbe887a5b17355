"""thermal_throttle and power_brake from clock-event reasons and temperature margin."""

from __future__ import annotations

from sentinel.detect.settings import ThermalSettings
from sentinel.detect.thermal import ThermalDetector
from sentinel.testing.builders import T0, gpu
from sentinel.vocabulary.findings import Finding, Judgement, Severity
from sentinel.vocabulary.samples import ClockEventReason


def _run(d: ThermalDetector, reasons: list[int], **kw: object) -> list[Judgement]:
    out: list[Judgement] = []
    for i, r in enumerate(reasons):
        out += d.observe(gpu(T0 + i, reasons=r, **kw))  # type: ignore[arg-type]
    return out


def test_hw_thermal_slowdown_held_three_samples_is_critical() -> None:
    """HwThermalSlowdown on three samples in a row is a critical thermal_throttle."""
    out = _run(ThermalDetector(), [0, 0x40, 0x40, 0x40, 0, 0, 0, 0, 0, 0])
    assert ["Finding", "Cleared"] == [type(j).__name__ for j in out]
    f = out[0]
    assert isinstance(f, Finding)
    assert ("thermal_throttle", Severity.CRITICAL, ["HwThermalSlowdown"], 0.5) == (
        f.kind,
        f.severity,
        f.evidence["thermal_reasons"],
        f.evidence["sm_clock_ratio"],
    )
    assert T0 + 3 == f.detected_at


def test_two_samples_are_not_enough() -> None:
    """A throttle reason seen on two samples only is no finding."""
    assert [] == _run(ThermalDetector(), [0x20, 0x20, 0, 0x20, 0x20, 0])


def test_sw_power_cap_is_normal_by_default() -> None:
    """SwPowerCap alone is no incident, unless the setting says it is."""
    cap = [int(ClockEventReason.SwPowerCap)] * 5
    assert [] == _run(ThermalDetector(), cap)
    strict = ThermalDetector(ThermalSettings(sw_power_cap_is_incident=True))
    out = _run(strict, cap)
    assert [("thermal_throttle", Severity.WARNING)] == [
        (j.kind, j.severity) for j in out if isinstance(j, Finding)
    ]


def test_power_brake_is_its_own_critical_finding() -> None:
    """HwPowerBrakeSlowdown is a power_brake, not a thermal_throttle."""
    out = _run(ThermalDetector(), [0x80] * 4)
    assert [("power_brake", Severity.CRITICAL)] == [
        (j.kind, j.severity) for j in out if isinstance(j, Finding)
    ]


def test_temperature_near_slowdown_warns_before_throttling() -> None:
    """Within 2 C of the slowdown threshold, a warning fires before any clock drops."""
    out = _run(ThermalDetector(), [0] * 4, temp=88.0)
    f = out[0]
    assert isinstance(f, Finding)
    assert ("temperature_margin", 1.0, Severity.WARNING) == (
        f.evidence["trigger"],
        f.evidence["margin_c"],
        f.severity,
    )


def test_decoded_names_win_over_the_bitmask() -> None:
    """When the probe decoded the reasons, the names are what counts."""
    from dataclasses import replace

    d = ThermalDetector()
    out: list[Judgement] = []
    for i in range(3):
        out += d.observe(replace(gpu(T0 + i, reasons=0), clock_event_names=("HwSlowdown",)))
    assert ["thermal_throttle"] == [j.kind for j in out]

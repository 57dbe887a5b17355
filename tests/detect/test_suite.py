"""DetectorSuite: routing, settings, one open finding per (kind, subject)."""

from __future__ import annotations

from sentinel.detect.settings import DetectorSettings, ThermalSettings
from sentinel.detect.suite import DETECTOR_NAMES, DetectorSuite
from sentinel.testing.builders import GPU, T0, canary, gpu
from sentinel.vocabulary.findings import Finding
from sentinel.vocabulary.samples import GpuEvent, GpuProcess


def test_every_detector_runs_by_default_and_disabled_ones_do_not() -> None:
    """All six detectors are built; one turned off in settings is left out."""
    assert list(DETECTOR_NAMES) == [d.name for d in DetectorSuite().detectors]
    off = DetectorSettings(thermal=ThermalSettings(enabled=False))
    assert "thermal" not in [d.name for d in DetectorSuite(off).detectors]


def test_samples_reach_only_detectors_that_read_them() -> None:
    """A GPU sample goes to memory, thermal, errors and model_integrity; a canary not to thermal."""
    suite = DetectorSuite()
    assert ["memory", "thermal", "errors", "model_integrity"] == [
        d.name for d in suite._route(type(gpu(T0)))
    ]
    assert "thermal" not in [d.name for d in suite._route(type(canary(T0)))]


def test_one_open_finding_per_kind_and_subject() -> None:
    """A condition that persists for an hour yields one finding, not one per sample."""
    suite = DetectorSuite()
    out = []
    for i in range(3600):
        out += suite.observe(gpu(T0 + i, 0.97, reasons=0x40))
    assert ["gpu_oom", "thermal_throttle"] == sorted(j.kind for j in out if isinstance(j, Finding))


def test_server_pids_can_be_set_after_start() -> None:
    """The daemon may learn the server's pid late; attribution uses it from then on."""
    suite = DetectorSuite()
    suite.set_server_pids([42])
    procs = (GpuProcess(pid=42, used_bytes=20 * 2**30), GpuProcess(pid=9, used_bytes=58 * 2**30))
    out = []
    for i in range(10):
        out += suite.observe(gpu(T0 + i, 0.995, processes=procs))
    f = out[0]
    assert isinstance(f, Finding)
    assert ("other_process", [42]) == (f.evidence["cause"], f.evidence["server_pids"])


def test_tick_reaches_detectors() -> None:
    """tick(now) lets the errors detector close a quiet hardware Xid."""
    suite = DetectorSuite()
    suite.observe(GpuEvent(ts=T0, uuid=GPU, kind="xid", xid=79, cause="hardware"))
    assert ["xid_hardware"] == [c.kind for c in suite.tick(T0 + 7200)]


def test_direct_engine_canaries_do_not_judge_the_service() -> None:
    """Canaries run straight against a TensorRT engine never open latency or error findings."""
    from dataclasses import replace

    suite = DetectorSuite()
    out = []
    for i in range(200):
        c = canary(T0 + 5 * i, 2.0 if i > 100 else 0.02, outcome="ok" if i < 150 else "timeout")
        out += suite.observe(replace(c, target="tensorrt"))
    assert [] == out

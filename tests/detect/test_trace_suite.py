"""Every detector on the committed labelled trace suite and on the real H200 recordings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sentinel.cli.replay import read_csv
from sentinel.detect.backtest import Fault, allowed_delay, run, score
from sentinel.detect.series import SAMPLE_FOR
from sentinel.detect.settings import DetectorSettings, MemorySettings, ThermalSettings
from sentinel.detect.suite import build_detector
from sentinel.probes.recording import iter_recording
from sentinel.vocabulary.findings import Finding
from sentinel.vocabulary.samples import Sample

DATA = Path(__file__).resolve().parent.parent / "data"
TRACES = DATA / "traces"
SUITE: list[dict[str, Any]] = json.loads((TRACES / "labels.json").read_text(encoding="utf-8"))
REAL: list[dict[str, Any]] = json.loads((TRACES / "gpu_labels.json").read_text(encoding="utf-8"))
REAL_RUNS = [(e, det) for e in REAL for det in e["detectors"]]


def _samples(path: Path, detector: str) -> list[Sample]:
    if path.suffix == ".csv":
        rows, _ = read_csv(path)
        return [SAMPLE_FOR[detector](ts, v) for ts, v in rows]
    return list(iter_recording(path))


def _check(entry: dict[str, Any], detector: str, path: Path) -> None:
    settings = DetectorSettings()
    episodes = run(build_detector(detector, settings), _samples(path, detector))
    faults = [
        Fault(tuple(lb["kinds"]), lb["start"], lb["due"], lb["end"]) for lb in entry["labels"]
    ]
    result = score(episodes, faults)
    assert [] == [f"{f.kind} at {f.detected_at}: {f.summary}" for f in result.false]
    assert [] == result.missed
    limits = [allowed_delay(f.kinds[0], entry["interval_s"], settings) for f in faults]
    assert len(faults) == len(result.delays)
    for delay, limit in zip(result.delays, limits, strict=True):
        assert delay <= limit


@pytest.mark.parametrize("entry", SUITE, ids=[e["file"] for e in SUITE])
def test_labelled_trace(entry: dict[str, Any]) -> None:
    """Each injected fault is found within its minimum duration plus 3 samples, and nothing
    else is found (clean traces: nothing at all)."""
    _check(entry, entry["detector"], TRACES / entry["file"])


def test_suite_covers_every_detector_and_clean_traces() -> None:
    """The committed suite has faults and a clean trace for each of the six detectors."""
    with_faults = {e["detector"] for e in SUITE if e["labels"]}
    clean = {e["detector"] for e in SUITE if not e["labels"]}
    expected = {"latency", "memory", "thermal", "accuracy", "errors", "backlog"}
    assert (expected, expected) == (with_faults, clean)


@pytest.mark.parametrize(
    ("entry", "detector"), REAL_RUNS, ids=[f"{e['file']}-{d}" for e, d in REAL_RUNS]
)
def test_real_gpu_recording(entry: dict[str, Any], detector: str) -> None:
    """On H200 recordings: the real OOM and the thermal episode synthesized from the real
    matmul run are found; idle, full-power and app-Xid runs are quiet."""
    _check(entry, detector, TRACES / entry["file"])


def _real(name: str) -> list[Sample]:
    return list(iter_recording(DATA / "gpu" / name))


def test_real_oom_blames_the_process_that_is_not_the_server() -> None:
    """In the real OOM, pid 528 filled the GPU: the server (pid 1) is not blamed, and as the
    server itself pid 528 is."""
    samples = _real("h200-oom.jsonl")
    blamed = [
        e.finding.evidence
        for e in run(
            build_detector("memory", DetectorSettings(memory=MemorySettings(server_pids=[1]))),
            samples,
        )
    ]
    own = [
        e.finding.evidence
        for e in run(build_detector("memory", DetectorSettings(), server_pids=[528]), samples)
    ]
    assert [("other_process", [528])] == [
        (ev["cause"], [p["pid"] for p in ev["other_processes"]]) for ev in blamed
    ]
    assert ["server"] == [ev["cause"] for ev in own]


def test_real_full_power_run_is_throttling_only_when_asked() -> None:
    """The real matmul sat at SwPowerCap: no incident by default, throttling if configured."""
    samples = _real("h200-matmul.jsonl")
    strict = DetectorSettings(thermal=ThermalSettings(sw_power_cap_is_incident=True))
    found = [e.finding for e in run(build_detector("thermal", strict), samples)]
    assert [("thermal_throttle", ["SwPowerCap"])] == [
        (f.kind, f.evidence["thermal_reasons"]) for f in found if isinstance(f, Finding)
    ]

"""The model_integrity detector on sample streams (pure; time from the samples)."""

from __future__ import annotations

from sentinel.detect.integrity import (
    FILES_CHANGED,
    GPU_MISMATCH,
    REPO_UNREACHABLE,
    UNVERIFIED,
    IntegrityDetector,
)
from sentinel.detect.settings import IntegritySettings
from sentinel.detect.suite import DetectorSuite
from sentinel.vocabulary.findings import Cleared, Finding, Judgement, Severity
from sentinel.vocabulary.model_files import FileDigest, ModelFilesSample, VersionFiles
from sentinel.vocabulary.samples import GpuSample, Sample, TritonHealth, from_record, to_record

GOOD = (
    FileDigest("1/model.plan", "a" * 64, 1000),
    FileDigest("config.pbtxt", "c" * 64, 50),
)
T0 = 1_700_000_000.0


def files(
    ts: float,
    now: tuple[FileDigest, ...] = GOOD,
    expected: tuple[FileDigest, ...] = GOOD,
    present: bool = True,
    gpu: str | None = None,
) -> ModelFilesSample:
    version = VersionFiles("1", present, now, expected, gpu, "d" * 64 if expected else None)
    return ModelFilesSample(ts, "digits", "/models", versions=(version,))


def served(ts: float, *versions: str) -> TritonHealth:
    return TritonHealth(ts, True, True, model="digits", model_versions=versions)


def run(detector: IntegrityDetector, samples: list[Sample]) -> list[Judgement]:
    out: list[Judgement] = []
    for s in samples:
        out += detector.observe(s)
    return out


def test_truncated_file_is_a_critical_finding_with_both_digests() -> None:
    """A served file shorter than its manifest fires at once, naming file and digests."""
    short = (FileDigest("1/model.plan", "b" * 64, 400), GOOD[1])
    found = run(IntegrityDetector(), [served(T0, "1"), files(T0 + 1), files(T0 + 2, short)])
    assert [FILES_CHANGED] == [j.kind for j in found]
    finding = found[0]
    assert isinstance(finding, Finding)
    assert Severity.CRITICAL == finding.severity
    assert "1" == finding.subject.version
    expected = {
        "file": "1/model.plan",
        "problem": "truncated",
        "expected": "a" * 64,
        "actual": "b" * 64,
        "expected_size": 1000,
        "actual_size": 400,
    }
    assert [expected] == finding.evidence["files"]


def test_finding_clears_after_two_good_scans() -> None:
    """Restored files clear the finding only after clear_samples good scans in a row."""
    changed = (FileDigest("1/model.plan", "b" * 64, 1000), GOOD[1])
    d = IntegrityDetector()
    found = run(d, [served(T0, "1"), files(T0, changed), files(T0 + 1)])
    assert [FILES_CHANGED] == [j.kind for j in found]
    cleared = d.observe(files(T0 + 2))
    assert [Cleared] == [type(j) for j in cleared]


def test_missing_version_folder_is_reported() -> None:
    """A proven version whose folder was deleted by hand is a finding (every file missing)."""
    found = run(IntegrityDetector(), [served(T0, "1"), files(T0, now=(), present=False)])
    assert [FILES_CHANGED] == [j.kind for j in found]
    assert isinstance(found[0], Finding)
    assert {"missing"} == {f["problem"] for f in found[0].evidence["files"]}


def test_unserved_version_is_not_judged() -> None:
    """A changed version that Triton does not serve is none of this detector's business."""
    changed = (FileDigest("1/model.plan", "b" * 64, 1000), GOOD[1])
    assert [] == run(IntegrityDetector(), [served(T0, "2"), files(T0, changed)])


def test_unreachable_repository_fires_after_the_configured_time() -> None:
    """An unreadable repository is reported only once it stayed so unreachable_after_s."""
    d = IntegrityDetector(IntegritySettings(unreachable_after_s=30))
    down = [
        ModelFilesSample(T0 + t, "digits", "/models", reachable=False, error="gone")
        for t in (0, 10, 20)
    ]
    assert [] == run(d, down)
    late = d.observe(ModelFilesSample(T0 + 31, "digits", "/models", reachable=False))
    assert [REPO_UNREACHABLE] == [j.kind for j in late]


def test_served_version_without_manifest_is_unverified_after_a_while() -> None:
    """A served version never proven by canaries is a warning after unverified_after_s."""
    d = IntegrityDetector(IntegritySettings(unverified_after_s=600))
    assert [] == run(d, [served(T0, "1"), files(T0, expected=()), files(T0 + 300, expected=())])
    late = d.observe(files(T0 + 601, expected=()))
    assert [UNVERIFIED] == [j.kind for j in late]
    assert isinstance(late[0], Finding)
    assert Severity.WARNING == late[0].severity


def test_engine_proven_on_another_gpu_class_is_reported() -> None:
    """A plan recorded good on an A100 but served on an H100 is a finding."""
    gpu = GpuSample(T0, 0, "GPU-1", name="NVIDIA H100 80GB HBM3")
    found = run(IntegrityDetector(), [served(T0, "1"), gpu, files(T0, gpu="NVIDIA A100-SXM4-80GB")])
    assert [GPU_MISMATCH] == [j.kind for j in found]
    assert isinstance(found[0], Finding)
    assert "NVIDIA A100-SXM4-80GB" == found[0].evidence["proven_on"]


def test_replayed_recording_gives_the_same_findings() -> None:
    """Samples through to_record/from_record (a recording) judge exactly as live ones."""
    short = (FileDigest("1/model.plan", "b" * 64, 400), GOOD[1])
    live: list[Sample] = [served(T0, "1"), files(T0 + 1), files(T0 + 2, short), files(T0 + 3)]
    replayed = [from_record(to_record(s)) for s in live]
    suite_live, suite_replay = DetectorSuite(), DetectorSuite()
    expected = [j for s in live for j in suite_live.observe(s)]
    assert expected == [j for s in replayed for j in suite_replay.observe(s)]
    assert [FILES_CHANGED] == [j.kind for j in expected]


def test_damage_that_stops_the_model_loading_says_so() -> None:
    """After a restart the damaged model never loads: the finding says it is not ready."""
    short = (FileDigest("1/model.plan", "b" * 64, 400), GOOD[1])
    not_loaded = TritonHealth(T0, True, True, model="digits", model_ready=False)
    found = run(IntegrityDetector(), [not_loaded, files(T0 + 1, short)])
    assert [FILES_CHANGED] == [j.kind for j in found]
    assert isinstance(found[0], Finding)
    assert found[0].evidence["model_ready"] is False
    assert found[0].summary.endswith("(it failed to load)")

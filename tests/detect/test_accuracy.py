"""accuracy_drift: agreement with the reference, sudden versus gradual."""

from __future__ import annotations

from detect_builders import T0, canary

from sentinel.detect.accuracy import AccuracyDetector
from sentinel.detect.findings import Cleared, Finding, Judgement


def _run(
    d: AccuracyDetector, top1: list[float], versions: list[str] | None = None, cosine: float = 0.999
) -> list[Judgement]:
    out: list[Judgement] = []
    for i, a in enumerate(top1):
        v = versions[i] if versions else "1"
        out += d.observe(canary(T0 + 5 * i, top1=a, version=v, cosine=cosine))
    return out


def test_deployment_drop_is_sudden_and_names_versions() -> None:
    """A drop that arrives with version 2 is 'sudden' with the version change in evidence."""
    top1 = [0.98] * 200 + [0.80] * 40
    versions = ["1"] * 200 + ["2"] * 40
    out = _run(AccuracyDetector(), top1, versions)
    f = out[0]
    assert isinstance(f, Finding)
    assert ("accuracy_drift", "sudden", {"from": "1", "to": "2"}, "m:2") == (
        f.kind,
        f.evidence["onset"],
        f.evidence["version_change"],
        f.subject.key(),
    )
    assert 0.8 == f.evidence["mean_top1"]


def test_slow_slide_is_gradual() -> None:
    """A slide from 0.98 to 0.85 over an hour is reported as 'gradual'."""
    slide = [0.98 - 0.13 * i / 720 for i in range(720)]
    out = _run(AccuracyDetector(), [0.98] * 200 + slide)
    f = out[0]
    assert isinstance(f, Finding)
    assert "gradual" == f.evidence["onset"]
    assert f.evidence["healthy_to_breach_s"] > 120


def test_drop_relative_to_baseline_above_the_floor() -> None:
    """0.99 -> 0.92 is above the 0.9 floor but more than max_drop below baseline."""
    out = _run(AccuracyDetector(), [0.99] * 200 + [0.92] * 30)
    f = out[0]
    assert isinstance(f, Finding)
    assert ["baseline_drop"] == f.evidence["rules"]


def test_cosine_floor_and_recovery_clears() -> None:
    """Low cosine alone is drift; agreement back to normal clears it."""
    d = AccuracyDetector()
    out = _run(d, [0.99] * 20, cosine=0.9)
    out += _run(d, [0.99] * 40)
    assert ["Finding", "Cleared"] == [type(j).__name__ for j in out]
    assert ["cosine_floor"] == out[0].evidence["rules"]  # type: ignore[union-attr]
    assert isinstance(out[1], Cleared)


def test_noise_around_a_high_level_is_quiet() -> None:
    """Binomial noise of a 64-row canary at 98.5 % agreement never fires."""
    import numpy as np

    top1 = (np.random.default_rng(5).binomial(64, 0.985, 3000) / 64).tolist()
    assert [] == _run(AccuracyDetector(), top1)

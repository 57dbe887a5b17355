"""The generic metric detector on synthetic series (no real data)."""

from __future__ import annotations

import math

import numpy as np

from sentinel.detect.generic import KIND, MetricDetector, MetricScorer, Verdict
from sentinel.detect.settings import GenericSettings
from sentinel.vocabulary.findings import Cleared, Finding, Judgement

T0 = 1.7e9
STEP = 60.0


def feed(det: MetricDetector, values: np.ndarray, ts: np.ndarray | None = None) -> list[Judgement]:
    times = ts if ts is not None else T0 + STEP * np.arange(len(values))
    out: list[Judgement] = []
    for t, v in zip(times.tolist(), values.tolist(), strict=False):
        out.extend(det.update(t, v))
    return out


def findings_from(judgements: list[Judgement], since: float) -> list[Finding]:
    return [j for j in judgements if isinstance(j, Finding) and j.detected_at >= since]


def noise(n: int, seed: int = 1, sigma: float = 1.0) -> np.ndarray:
    return 100.0 + np.random.default_rng(seed).normal(0.0, sigma, n)


def test_a_rise_is_found_at_once_with_its_evidence() -> None:
    """A level shift up fires on its first sample, with baseline, spread, score, threshold."""
    values = noise(3000)
    values[2000:] += 15.0
    det = MetricDetector()
    found = findings_from(feed(det, values), T0 + STEP * 2000)
    first = found[0]
    assert KIND == first.kind
    assert T0 + STEP * 2000 == first.detected_at
    ev = first.evidence
    assert "rise" == ev["direction"]
    assert "level" == ev["rule"]
    assert abs(ev["baseline"] - 100.0) < 1.0
    assert 0.5 < ev["spread"] < 2.0
    assert ev["score"] >= ev["threshold"]
    assert 2001 == ev["samples"]
    assert 60.0 == ev["interval_s"]


def test_a_drop_is_found_as_a_drop() -> None:
    """A collapse (values falling) fires too, named as a drop."""
    values = noise(3000, seed=2)
    values[2500:] = 20.0 + np.random.default_rng(9).normal(0.0, 1.0, 500)
    found = findings_from(feed(MetricDetector(), values), T0 + STEP * 2500)
    assert T0 + STEP * 2500 == found[0].detected_at
    assert "drop" == found[0].evidence["direction"]


def test_a_flat_line_is_found_when_the_rule_is_on() -> None:
    """A normally noisy series that stops changing fires the flat-line rule."""
    settings = GenericSettings(flat_samples=20, threshold=50.0)
    values = noise(3000, seed=3)
    values[2000:] = values[1999]
    found = findings_from(feed(MetricDetector(settings), values), T0 + STEP * 2000)
    assert "flat" == found[0].evidence["rule"]
    assert T0 + STEP * 2018 == found[0].detected_at


def test_a_variance_change_is_found_when_the_rule_is_on() -> None:
    """Noise four times wider, with no single sample far out, fires the variance rule."""
    settings = GenericSettings(threshold=8.0, variance_log_odds=20.0)
    values = noise(3000, seed=4)
    values[2000:] = noise(1000, seed=5, sigma=4.0)
    judgements = feed(MetricDetector(settings), values)
    before = [j for j in judgements if isinstance(j, Finding) and j.detected_at < T0 + STEP * 2000]
    after = findings_from(judgements, T0 + STEP * 2000)
    assert [] == before
    assert "variance" in {f.evidence["rule"] for f in after}
    assert after[0].detected_at < T0 + STEP * 2050


def test_a_daily_pattern_stops_firing_once_a_day_of_history_holds_it() -> None:
    """A surge at the same time every day fires on the first days only with seasonality,
    and every day without it."""
    step = 300.0
    per_day = int(86400 / step)
    n = 8 * per_day
    values = noise(n, seed=6)
    for day in range(8):
        values[day * per_day + 100 : day * per_day + 104] += 30.0
    ts = T0 + step * np.arange(n)
    late = T0 + step * 4 * per_day
    seasonal = findings_from(feed(MetricDetector(), values, ts), late)
    plain = findings_from(
        feed(MetricDetector(GenericSettings(seasonal_periods_s=[])), values, ts), late
    )
    surge_times = {T0 + step * (d * per_day + 100) for d in range(4, 8)}
    assert surge_times <= {f.started_at for f in plain}
    assert set() == surge_times & {f.started_at for f in seasonal}


def test_irregular_steps_and_holes_are_tolerated() -> None:
    """Jittered timestamps and hour-long holes still give the interval and find a jump."""
    rng = np.random.default_rng(7)
    n = 4000
    ts = T0 + np.cumsum(STEP * rng.uniform(0.8, 1.2, n))
    keep = np.ones(n, bool)
    keep[1000:1060] = False
    keep[2500:2560] = False
    values = noise(n, seed=8)
    values[3000:] += 20.0
    det = MetricDetector()
    found = findings_from(feed(det, values[keep], ts[keep]), float(ts[3000]))
    assert float(ts[3000]) == found[0].detected_at
    assert abs(det.scorer.interval_s - STEP) < 0.1 * STEP


def test_every_sample_gets_a_finite_score_and_bad_ones_are_counted() -> None:
    """Each accepted sample has a score; out-of-order, repeated and NaN samples are dropped."""
    scorer = MetricScorer()
    scores = [scorer.update(T0 + i, float(i % 7)) for i in range(200)]
    assert all(v is not None and math.isfinite(v.score) for v in scores)
    assert scorer.update(T0 + 100, 1.0) is None
    assert scorer.update(T0 + 199, 1.0) is None
    assert scorer.update(T0 + 300, math.nan) is None
    assert 3 == scorer.dropped


def test_state_stays_bounded_however_long_the_series() -> None:
    """The detector holds as many numbers after 40,000 samples as after 22,000 (a week of
    history plus a full strided window of one-week differences)."""
    scorer = MetricScorer()
    values = noise(40_000, seed=10).tolist()
    for i in range(22_000):
        scorer.update(T0 + STEP * i, values[i])
    held = scorer.state_size()
    for i in range(22_000, 40_000):
        scorer.update(T0 + STEP * i, values[i])
    assert held == scorer.state_size()


def test_a_finding_clears_after_the_series_recovers() -> None:
    """A short spike opens a finding that clears once the scores stay low."""
    values = noise(3000, seed=11)
    values[2000:2003] += 40.0
    judgements = feed(MetricDetector(GenericSettings(threshold=8.0)), values)
    opened = findings_from(judgements, T0 + STEP * 2000)
    cleared = [j for j in judgements if isinstance(j, Cleared) and j.cleared_at >= T0 + STEP * 2000]
    assert T0 + STEP * 2000 == opened[0].detected_at
    assert cleared[0].cleared_at < T0 + STEP * 2020


def test_a_sustained_outage_keeps_breaching_against_one_period_earlier() -> None:
    """An outage at zero still breaches 100 samples in, as 'seasonal', only with that score."""
    day = int(86400 / STEP)
    n = 9 * day + 300
    t = np.arange(n)
    values = 50.0 + 20.0 * np.sin(2 * math.pi * t / day) + noise(n, seed=12) - 100.0
    values[9 * day :] = 0.0
    verdicts: dict[float, Verdict | None] = {}
    for weight in (1.0, 0.0):
        scorer = MetricScorer(GenericSettings(season_weight=weight))
        for i, (ts, value) in enumerate(
            zip((T0 + STEP * t).tolist(), values.tolist(), strict=True)
        ):
            verdict = scorer.update(ts, value)
            if i == 9 * day + 100:
                verdicts[weight] = verdict
    assert verdicts[1.0] is not None
    assert verdicts[0.0] is not None
    assert "seasonal" == verdicts[1.0].rule
    assert "drop" == verdicts[1.0].direction
    assert None is verdicts[0.0].rule

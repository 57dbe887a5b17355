"""Rolling windows: order statistics, running sums, slopes and counter deltas."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sentinel.detect.windows import CounterRate, Cusum, LinearTrend, RollingWindow, binomial_llr

values = st.lists(
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), min_size=1, max_size=200
)


@given(values, st.integers(min_value=1, max_value=50), st.floats(min_value=0, max_value=1))
@settings(max_examples=60, deadline=None)
def test_quantile_matches_numpy_over_the_live_window(xs: list[float], span: int, q: float) -> None:
    """The window's quantile equals numpy's percentile of exactly the samples still inside."""
    w = RollingWindow(span - 0.5)
    for i, x in enumerate(xs):
        w.add(float(i), x)
    live = xs[-span:]
    assert len(live) == len(w)
    assert float(np.percentile(live, q * 100)) == pytest.approx(w.quantile(q), abs=1e-6)
    assert float(np.mean(live)) == pytest.approx(w.mean(), abs=1e-6)


def test_samples_leave_by_time_not_count() -> None:
    """A sample older than the span leaves when a newer one arrives, whatever the count."""
    w = RollingWindow(10.0)
    for ts in (0.0, 1.0, 2.0, 11.5):
        w.add(ts, ts)
    assert 2 == len(w)
    assert 2.0 == w.oldest_ts
    w.expire(30.0)
    assert 0 == len(w)
    assert math.isnan(w.median())


def test_robust_sigma_ignores_an_outlier() -> None:
    """IQR/1.349 of a normal sample is near its sigma, and one huge outlier barely moves it."""
    rng = np.random.default_rng(3)
    w = RollingWindow(1e9)
    for i, x in enumerate(rng.normal(10.0, 2.0, 2000)):
        w.add(float(i), float(x))
    before = w.robust_sigma()
    w.add(2001.0, 1e9)
    assert 2.0 == pytest.approx(before, rel=0.1)
    assert before == pytest.approx(w.robust_sigma(), rel=0.01)


def test_quantile_needs_an_ordered_window() -> None:
    """A window built without order statistics refuses quantiles instead of guessing."""
    w = RollingWindow(5.0, ordered=False)
    w.add(0.0, 1.0)
    with pytest.raises(ValueError, match="ordered"):
        w.quantile(0.5)


@given(
    st.floats(min_value=-5, max_value=5),
    st.floats(min_value=-100, max_value=100),
    st.integers(min_value=3, max_value=300),
)
@settings(max_examples=40, deadline=None)
def test_slope_matches_least_squares_after_evictions(slope: float, offset: float, n: int) -> None:
    """The running-sum slope equals numpy's least-squares fit of the samples in the window."""
    rng = np.random.default_rng(n)
    t = LinearTrend(60.0)
    ts = 1.7e9 + np.arange(n) * 1.0
    ys = offset + slope * (ts - ts[0]) + rng.normal(0, 0.1, n)
    for a, b in zip(ts.tolist(), ys.tolist(), strict=True):
        t.add(a, b)
    keep = ts >= ts[-1] - 60.0
    expected = np.polyfit(ts[keep] - ts[-1], ys[keep], 1)[0]
    fit = t.fit()
    assert fit is not None
    assert expected == pytest.approx(fit.slope, abs=1e-6)
    assert int(keep.sum()) == fit.n


def test_fit_needs_three_samples_with_time_spread() -> None:
    """No line through fewer than three samples or through samples at one instant."""
    t = LinearTrend(10.0)
    t.add(0.0, 1.0)
    t.add(1.0, 2.0)
    assert t.fit() is None
    same = LinearTrend(10.0)
    for v in (1.0, 2.0, 3.0):
        same.add(5.0, v)
    assert same.fit() is None


def test_counter_delta_survives_a_reset() -> None:
    """A counter that restarts from zero adds its new count instead of going negative."""
    c = CounterRate(100.0)
    for ts, raw in ((0.0, 100.0), (10.0, 150.0), (20.0, 5.0), (30.0, 25.0)):
        c.add(ts, raw)
    assert 75.0 == c.delta()
    assert 30.0 == c.covered_s()


@given(st.integers(min_value=4, max_value=300), st.floats(min_value=0.01, max_value=1.0))
@settings(max_examples=40, deadline=None)
def test_fit_standard_errors_match_numpy(n: int, noise: float) -> None:
    """The slope's and the value's standard errors equal those of numpy's covariance."""
    rng = np.random.default_rng(n)
    t = LinearTrend(1e6)
    ts = 1.7e9 + np.arange(n) * 5.0
    ys = 0.4 + 1e-4 * (ts - ts[0]) + rng.normal(0, noise, n)
    for a, b in zip(ts.tolist(), ys.tolist(), strict=True):
        t.add(a, b)
    (slope, value_now), cov = np.polyfit(ts - ts[-1], ys, 1, cov=True)
    fit = t.fit()
    assert fit is not None
    assert (slope, value_now) == pytest.approx((fit.slope, fit.value_at(float(ts[-1]))))
    assert math.sqrt(cov[0, 0]) == pytest.approx(fit.slope_se, rel=1e-6)
    assert math.sqrt(cov[1, 1]) == pytest.approx(fit.value_se_at(float(ts[-1])), rel=1e-6)


def test_cusum_climbs_on_evidence_and_fades_at_zero() -> None:
    """The sum climbs with positive evidence, never goes below zero, marks where the climb
    began, and tallies only the climb's own samples."""
    c = Cusum(10.0)
    c.add(0.0, -3.0, hits=1, trials=1)  # evidence for normal: nothing to climb from
    assert (0.0, None, 0.0) == (c.value, c.since, c.trials)
    for ts, llr in ((1.0, 4.0), (2.0, -1.0), (3.0, 4.0)):
        c.add(ts, llr, hits=1 if llr > 0 else 0, trials=1)
    assert (7.0, 1.0, False, 2 / 3) == (c.value, c.since, c.alarmed, c.rate)
    c.add(4.0, 3.0, hits=1, trials=1)
    assert (True, 3 / 4) == (c.alarmed, c.rate)
    c.add(5.0, -20.0, trials=1)  # back to zero: the climb is over
    assert (0.0, None, 0.0, True) == (c.value, c.since, c.trials, math.isnan(c.rate))


@given(
    st.floats(min_value=0.05, max_value=0.999),
    st.floats(min_value=0.001, max_value=0.5),
    st.integers(min_value=1, max_value=256),
)
@settings(max_examples=60, deadline=None)
def test_binomial_evidence_at_the_normal_rate_favours_normal(
    p_normal: float, drop: float, rows: int
) -> None:
    """Rows that agree exactly at the normal rate give negative evidence for any lower
    changed rate (minus rows x the KL divergence), so a steady model never climbs."""
    p_changed = max(p_normal - drop, 1e-3)
    assert binomial_llr(p_normal * rows, rows, p_normal, p_changed) < 0


def test_binomial_evidence_of_one_failure() -> None:
    """One failed canary against a normal 1 % and a burst 50 %: ln(50), about 3.9."""
    assert math.log(50) == pytest.approx(binomial_llr(1, 1, 0.01, 0.5))

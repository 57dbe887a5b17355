"""Time-based rolling windows over (timestamp, value) pairs.

Every update is amortized O(1) (ring buffer, running sums) or O(log n) (order
statistics in a sorted list), so a detector's cost does not grow with its window.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from sortedcontainers import SortedList  # type: ignore[import-untyped]

_IQR_TO_SIGMA = 1.349
"""IQR of a normal distribution in units of its standard deviation."""


class RollingWindow:
    """Samples of the last ``span_s`` seconds, with mean, quantiles, median and IQR.

    A sample older than ``newest - span_s`` leaves the window when a newer one arrives
    (or on :meth:`expire`). Timestamps are expected in order; a late one is kept but
    expires by its own timestamp.
    """

    def __init__(self, span_s: float, *, ordered: bool = True) -> None:
        if span_s <= 0:
            raise ValueError("span_s must be > 0")
        self.span_s = span_s
        self._items: deque[tuple[float, float]] = deque()
        self._sorted: SortedList | None = SortedList() if ordered else None
        self._sum = 0.0
        self._evictions = 0

    def __len__(self) -> int:
        return len(self._items)

    def add(self, ts: float, value: float) -> None:
        """Add one sample and drop the ones that fell out of the window."""
        self._items.append((ts, value))
        self._sum += value
        if self._sorted is not None:
            self._sorted.add(value)
        self.expire(ts)

    def expire(self, now: float) -> None:
        """Drop samples older than ``now - span_s``."""
        horizon = now - self.span_s
        items = self._items
        while items and items[0][0] < horizon:
            _, value = items.popleft()
            self._sum -= value
            if self._sorted is not None:
                self._sorted.remove(value)
            self._evictions += 1
        # running sums drift with many subtractions; a rare exact recount keeps them honest
        if self._evictions > 4 * len(items) + 1024:
            self._sum = math.fsum(v for _, v in items)
            self._evictions = 0

    def clear(self) -> None:
        """Forget every sample."""
        self._items.clear()
        if self._sorted is not None:
            self._sorted.clear()
        self._sum = 0.0

    @property
    def oldest_ts(self) -> float | None:
        return self._items[0][0] if self._items else None

    @property
    def newest_ts(self) -> float | None:
        return self._items[-1][0] if self._items else None

    @property
    def newest(self) -> float | None:
        return self._items[-1][1] if self._items else None

    def total(self) -> float:
        """Sum of the values in the window (0 when empty)."""
        return self._sum if self._items else 0.0

    def mean(self) -> float:
        """Arithmetic mean (NaN when empty)."""
        return self._sum / len(self._items) if self._items else math.nan

    def quantile(self, q: float) -> float:
        """The q-quantile, linear interpolation between ranks (numpy's default); NaN if empty."""
        if self._sorted is None:
            raise ValueError("this window keeps no order statistics (ordered=False)")
        n = len(self._sorted)
        if n == 0:
            return math.nan
        pos = q * (n - 1)
        lo = math.floor(pos)
        hi = min(lo + 1, n - 1)
        frac = pos - lo
        low: float = self._sorted[lo]
        if frac == 0.0:
            return low
        high: float = self._sorted[hi]
        return low + (high - low) * frac

    def median(self) -> float:
        return self.quantile(0.5)

    def robust_sigma(self) -> float:
        """Spread that ignores outliers: interquartile range / 1.349."""
        return (self.quantile(0.75) - self.quantile(0.25)) / _IQR_TO_SIGMA


@dataclass(frozen=True, slots=True)
class Fit:
    """A least-squares line through a window, with time measured in epoch seconds."""

    slope: float
    """Units of value per second."""
    intercept_at: float
    """Reference timestamp the intercept is taken at."""
    intercept: float
    """Fitted value at ``intercept_at``."""
    r2: float
    """Share of the variance the line explains (0..1)."""
    n: int
    span_s: float
    """Time between the oldest and the newest sample in the fit."""
    residual_var: float = 0.0
    """Variance of the samples around the line (n - 2 degrees of freedom)."""
    time_ss: float = math.inf
    """Sum of squared time deviations from the window's mean time (s^2)."""

    def value_at(self, ts: float) -> float:
        return self.intercept + self.slope * (ts - self.intercept_at)

    @property
    def slope_se(self) -> float:
        """Standard error of the slope."""
        return math.sqrt(self.residual_var / self.time_ss)

    def value_se_at(self, ts: float) -> float:
        """Standard error of the line's value at ``ts``."""
        dx = ts - self.intercept_at
        return math.sqrt(self.residual_var * (1.0 / self.n + dx * dx / self.time_ss))


class LinearTrend:
    """Least-squares slope over the last ``span_s`` seconds, from running sums.

    Times are shifted by a reference ``t0`` to keep the sums well conditioned; the sums are
    recounted exactly (amortized O(1)) once evictions outnumber the samples held.
    """

    def __init__(self, span_s: float) -> None:
        if span_s <= 0:
            raise ValueError("span_s must be > 0")
        self.span_s = span_s
        self._items: deque[tuple[float, float]] = deque()
        self._t0 = 0.0
        self._sx = self._sy = self._sxx = self._sxy = self._syy = 0.0
        self._evictions = 0

    def __len__(self) -> int:
        return len(self._items)

    def add(self, ts: float, value: float) -> None:
        """Add one sample and drop the ones that fell out of the window."""
        if not self._items:
            self._t0 = ts
        self._items.append((ts, value))
        self._accumulate(ts - self._t0, value, 1.0)
        horizon = ts - self.span_s
        while self._items and self._items[0][0] < horizon:
            old_ts, old_v = self._items.popleft()
            self._accumulate(old_ts - self._t0, old_v, -1.0)
            self._evictions += 1
        if self._evictions > len(self._items) + 64:
            self._recount()

    def _accumulate(self, x: float, y: float, sign: float) -> None:
        self._sx += sign * x
        self._sy += sign * y
        self._sxx += sign * x * x
        self._sxy += sign * x * y
        self._syy += sign * y * y

    def _recount(self) -> None:
        self._t0 = self._items[0][0] if self._items else 0.0
        self._sx = self._sy = self._sxx = self._sxy = self._syy = 0.0
        for ts, v in self._items:
            self._accumulate(ts - self._t0, v, 1.0)
        self._evictions = 0

    def clear(self) -> None:
        self._items.clear()
        self._recount()

    def fit(self) -> Fit | None:
        """The line through the window, or None with fewer than 3 samples or no time spread."""
        n = len(self._items)
        if n < 3:
            return None
        mx = self._sx / n
        my = self._sy / n
        vxx = self._sxx - n * mx * mx
        vxy = self._sxy - n * mx * my
        vyy = self._syy - n * my * my
        span = self._items[-1][0] - self._items[0][0]
        if vxx <= 1e-12 * max(1.0, span * span):
            return None
        slope = vxy / vxx
        r2 = 1.0 if vyy <= 1e-18 else min(1.0, max(0.0, vxy * vxy / (vxx * vyy)))
        residual_var = max(0.0, vyy - slope * vxy) / (n - 2) if n > 2 else 0.0
        return Fit(
            slope=slope,
            intercept_at=self._t0 + mx,
            intercept=my,
            r2=r2,
            n=n,
            span_s=span,
            residual_var=residual_var,
            time_ss=vxx,
        )


class CounterRate:
    """Deltas of a cumulative counter over the last ``span_s`` seconds.

    A counter that goes down (the server restarted) starts a new series rather than
    producing a negative delta.
    """

    def __init__(self, span_s: float) -> None:
        self.span_s = span_s
        self._items: deque[tuple[float, float]] = deque()
        self._base = 0.0
        """Total of earlier series, so the stored values are monotonic across resets."""
        self._last_raw: float | None = None

    def add(self, ts: float, raw: float) -> None:
        if not math.isfinite(raw):
            return
        if self._last_raw is not None and raw < self._last_raw:
            self._base += self._last_raw
        self._last_raw = raw
        self._items.append((ts, self._base + raw))
        horizon = ts - self.span_s
        # keep one sample at or before the horizon so the delta covers the whole span
        while len(self._items) > 1 and self._items[1][0] <= horizon:
            self._items.popleft()

    def delta(self) -> float:
        """Increase of the counter over the window (0 with fewer than two samples)."""
        if len(self._items) < 2:
            return 0.0
        return self._items[-1][1] - self._items[0][1]

    def covered_s(self) -> float:
        return self._items[-1][0] - self._items[0][0] if len(self._items) >= 2 else 0.0


class Cusum:
    """Page's CUSUM: evidence that a rate has changed, gathered sample by sample.

    Each sample adds its log-likelihood ratio (how much likelier it is under the changed
    rate than under the normal one); the sum never goes below zero, so it climbs only
    while samples keep favouring the change, and a stray bad sample soon fades. Crossing
    ``threshold`` (natural log of the odds) is the alarm. On normal data the mean run
    between false alarms is at least ``e ** threshold`` samples (Lorden, 1971); on changed
    data the alarm comes after about ``threshold / mean LLR`` samples, however the samples
    are spaced in time. The climb also tallies its samples' hits and trials, so a caller
    can judge the rate since the change began against its own threshold.
    """

    def __init__(self, threshold: float) -> None:
        if threshold <= 0:
            raise ValueError("threshold must be > 0")
        self.threshold = threshold
        self.value = 0.0
        self.since: float | None = None
        """Time of the first sample of the current climb (the change-point estimate)."""
        self.hits = 0.0
        self.trials = 0.0

    def add(self, ts: float, llr: float, hits: float = 0.0, trials: float = 0.0) -> float:
        """Add one sample's log-likelihood ratio (and its tallies); returns the new sum."""
        if self.value == 0.0:
            if llr <= 0:
                return 0.0
            self.since, self.hits, self.trials = ts, 0.0, 0.0
        self.value = max(0.0, self.value + llr)
        if self.value == 0.0:
            self.reset()
        else:
            self.hits += hits
            self.trials += trials
        return self.value

    SUSPICIOUS_LOG_ODDS = math.log(2.0)
    """Two to one for the change: worth a closer look (a canary recheck), not an alarm;
    a trace of evidence (a round whose batch sizes disagree a little each way) is not."""

    @property
    def alarmed(self) -> bool:
        return self.value >= self.threshold

    @property
    def suspicious(self) -> bool:
        return self.value >= self.SUSPICIOUS_LOG_ODDS

    @property
    def rate(self) -> float:
        """Hits per trial since the climb began (NaN with no trials)."""
        return self.hits / self.trials if self.trials else math.nan

    def reset(self) -> None:
        self.value = 0.0
        self.since = None
        self.hits = self.trials = 0.0


def binomial_llr(hits: float, n: float, p_normal: float, p_changed: float) -> float:
    """Log-likelihood ratio of ``hits`` successes in ``n`` trials: changed vs normal rate.

    Rates are clamped into (0, 1) so that a rate of exactly 0 or 1 (a model that always
    agrees) gives strong but finite evidence.
    """
    p0 = min(max(p_normal, _P_EPS), 1 - _P_EPS)
    p1 = min(max(p_changed, _P_EPS), 1 - _P_EPS)
    misses = n - hits
    return hits * math.log(p1 / p0) + misses * math.log((1 - p1) / (1 - p0))


_P_EPS = 1e-4
"""Rates are kept this far from 0 and 1 (see :func:`binomial_llr`)."""


class CountWindow:
    """The last ``size`` values (however far apart in time), with quantiles and a mean.

    For series whose sampling interval is unknown or irregular: a hole in the data does
    not empty the window. add is O(log size) (sorted list), quantile O(log size).
    """

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("size must be >= 1")
        self.size = size
        self._items: deque[float] = deque()
        self._sorted = SortedList()
        self._sum = 0.0
        self._evictions = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def full(self) -> bool:
        return len(self._items) >= self.size

    def add(self, value: float) -> None:
        """Add one value; the oldest leaves once the window is full."""
        self._items.append(value)
        self._sorted.add(value)
        self._sum += value
        if len(self._items) > self.size:
            old = self._items.popleft()
            self._sorted.remove(old)
            self._sum -= old
            self._evictions += 1
            # running sums drift with many subtractions; a rare exact recount keeps them honest
            if self._evictions > 4 * self.size + 1024:
                self._sum = math.fsum(self._items)
                self._evictions = 0

    def clear(self) -> None:
        self._items.clear()
        self._sorted.clear()
        self._sum = 0.0

    def mean(self) -> float:
        """Arithmetic mean (NaN when empty)."""
        return self._sum / len(self._items) if self._items else math.nan

    def quantile(self, q: float) -> float:
        """The q-quantile, linear interpolation between ranks (numpy's default); NaN if empty."""
        n = len(self._sorted)
        if n == 0:
            return math.nan
        pos = q * (n - 1)
        lo = math.floor(pos)
        frac = pos - lo
        low: float = self._sorted[lo]
        if frac == 0.0:
            return low
        high: float = self._sorted[min(lo + 1, n - 1)]
        return low + (high - low) * frac

    def median(self) -> float:
        return self.quantile(0.5)

    def robust_sigma(self) -> float:
        """Spread that ignores outliers: interquartile range / 1.349."""
        return (self.quantile(0.75) - self.quantile(0.25)) / _IQR_TO_SIGMA

"""``metric_anomaly``: a detector for any numeric series, at any sampling interval.

Each sample's *deviation* is its distance from the median of the few samples before it;
the *score* is that deviation in robust sigmas of the deviations seen over a long window
(IQR / 1.349, with outliers clipped before they are learnt). Two-sided, so rises, drops
and the first samples of a level shift score alike. Once the history holds a day (or a
week), the deviation is also compared with the one the series had one period earlier,
and the smaller score counts: a surge that happens every morning is not an anomaly.
The value itself is also compared with the value at the same time one period earlier
(the smallest of the daily and weekly scores, in robust sigmas of those differences):
that score stays high for as long as a sustained anomaly lasts (an outage at zero, a
level that has moved), after the short level window has long accepted it.
A CUSUM over squared scores catches variance changes that no single sample shows, and
an optional run counter catches a series that goes flat.

Windows are counted in samples, so they follow the series' own interval; seasonal
periods are in seconds and become slots at the observed interval (the median of the
recent steps), so holes in the data and irregular steps are tolerated. Per sample the
work is O(log W) (sorted lists) and the memory is O(W + season slots).
"""

from __future__ import annotations

import math
from array import array
from collections import deque
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

from sentinel.detect.base import rnd
from sentinel.detect.episode import Episode
from sentinel.detect.settings import GenericSettings
from sentinel.detect.windows import CountWindow, Cusum
from sentinel.vocabulary.findings import Judgement, Severity, Subject

KIND = "metric_anomaly"
_CLIP_Z = 4.0
"""Deviations are clipped to this many sigmas before the spread learns them."""
_STEPS_KEPT = 9
"""Recent steps whose median is the observed sampling interval."""
_Z_CAP = 6.0
"""Squared scores fed to the variance CUSUM are capped here, so one spike is not a
variance change (the level rule sees spikes)."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """One sample as the detector judged it: the evidence of a finding."""

    ts: float
    value: float
    score: float
    """Anomaly score in robust sigmas (0 while warming up); breach at >= threshold."""
    rule: str | None
    """What breached: 'level', 'seasonal', 'variance' or 'flat'; None when nothing did."""
    expected: float
    """Median of the samples before (NaN while warming up)."""
    spread: float
    """Robust sigma of the deviations (NaN while warming up)."""
    seasonal: bool
    """A seasonal comparison was available for this sample."""
    samples: int
    season_score: float = 0.0
    """The value against the same time one period earlier, in robust sigmas of those
    differences (smallest over the seasons; 0 until a season is learnt)."""
    season_expected: float = math.nan
    """The value at the same time one period earlier (of the season that scored lowest)."""

    @property
    def direction(self) -> str:
        base = self.season_expected if self.rule == "seasonal" else self.expected
        return "rise" if self.value >= base else "drop"


class _Season:
    """Deviations and values of the last ``slots`` sampling slots, to compare with one
    period later."""

    __slots__ = ("differences", "level_spread", "levels", "slots", "spread", "stamps", "values")

    def __init__(self, slots: int, spread_samples: int) -> None:
        self.slots = slots
        self.values = array("d", bytes(8 * slots))
        self.levels = array("d", bytes(8 * slots))
        self.stamps = array("q", [-1]) * slots
        self.spread = CountWindow(spread_samples)
        self.level_spread = CountWindow(spread_samples)
        """Differences of the value from the value one period earlier (every
        ``season_stride``-th one, so the window spans that many times more history)."""
        self.differences = 0

    def earlier(self, slot: int) -> tuple[float, float] | None:
        """Median deviation and median value around the same slot one period ago (1 slot
        of jitter each way)."""
        devs: list[float] = []
        vals: list[float] = []
        for s in (slot - self.slots - 1, slot - self.slots, slot - self.slots + 1):
            i = s % self.slots
            if self.stamps[i] == s:
                devs.append(self.values[i])
                vals.append(self.levels[i])
        if not devs:
            return None
        devs.sort()
        vals.sort()
        return devs[len(devs) // 2], vals[len(vals) // 2]

    def store(self, slot: int, deviation: float, value: float) -> None:
        i = slot % self.slots
        self.values[i] = deviation
        self.levels[i] = value
        self.stamps[i] = slot


class MetricScorer:
    """The per-sample anomaly score of one series; no findings (see MetricDetector)."""

    def __init__(self, settings: GenericSettings | None = None) -> None:
        s = self.settings = settings or GenericSettings()
        self._level = CountWindow(s.level_samples)
        self._spread = CountWindow(s.spread_samples)
        self._abs_dev = 0.0
        self._tail_width = (
            2.0 * NormalDist().inv_cdf(s.spread_tail) if s.spread_tail is not None else 0.0
        )
        """Exponential mean of |clipped deviation|: a spread floor for stepwise series."""
        self._steps: deque[float] = deque(maxlen=_STEPS_KEPT)
        self._slot_s = math.nan
        """Sampling interval the seasonal slots are laid out with."""
        self._t0 = 0.0
        self._seasons: list[_Season] = []
        self._variance = Cusum(s.variance_log_odds or 1.0)
        self._run = 0
        self._flat_share = 0.0
        self.last_ts: float | None = None
        self._last_value = math.nan
        self.samples = 0
        self.dropped = 0
        """Samples refused: out of order, duplicate timestamps, non-finite."""

    def update(self, ts: float, value: float) -> Verdict | None:
        """Score one sample; None (and counted in ``dropped``) when it is out of order,
        a duplicate or not finite."""
        if not (math.isfinite(ts) and math.isfinite(value)):
            self.dropped += 1
            return None
        if self.last_ts is not None and ts <= self.last_ts:
            self.dropped += 1
            return None
        s = self.settings
        if self.last_ts is not None:
            self._steps.append(ts - self.last_ts)
            self._follow_interval(ts)
        expected = self._level.median() if len(self._level) else math.nan
        deviation = value - expected if len(self._level) else 0.0
        flat = value == self._last_value
        self._run = self._run + 1 if flat else 0
        self._flat_share += (float(flat) - self._flat_share) / s.spread_samples
        score, rule, spread, seasonal = 0.0, None, math.nan, False
        season_score, season_expected = math.inf, math.nan
        slot = round((ts - self._t0) / self._slot_s) if self._seasons else 0
        earlier = [season.earlier(slot) for season in self._seasons]
        if self.samples >= s.min_samples and len(self._spread) >= s.min_samples // 2:
            spread = self._sigma(self._spread, self._abs_dev, expected)
            z = (deviation - self._spread.median()) / spread
            score = abs(z)
            for season, before in zip(self._seasons, earlier, strict=True):
                if before is None or len(season.spread) < s.min_samples:
                    continue
                seasonal = True
                sz = (deviation - before[0] - season.spread.median()) / self._sigma(
                    season.spread, 0.0, expected
                )
                score = min(score, abs(sz))
                lz = abs(value - before[1] - season.level_spread.median()) / self._sigma(
                    season.level_spread, 0.0, value
                )
                if lz < season_score:
                    season_score, season_expected = lz, before[1]
            if score >= s.threshold:
                rule = "level"
            if not math.isfinite(season_score):
                season_score = 0.0
            elif s.season_weight * season_score > score:
                score = s.season_weight * season_score
                if score >= s.threshold:
                    rule = "seasonal"
            if s.variance_log_odds is not None:
                z2 = min(z * z, _Z_CAP * _Z_CAP)
                llr = math.log(1.0 / s.variance_ratio) + 0.5 * z2 * (
                    1.0 - 1.0 / s.variance_ratio**2
                )
                self._variance.add(ts, llr)
                # counts only once alarmed: a climb that fades must not hold the score up
                if self._variance.alarmed and score < s.threshold:
                    score, rule = s.threshold, "variance"
            if s.flat_samples is not None and self._flat_share < 0.5 / s.flat_samples:
                # the run counts repeats; with the first value it is run + 1 identical ones
                flat_score = s.threshold * (self._run + 1) / s.flat_samples
                if flat_score > score:
                    score = flat_score
                    rule = "flat" if self._run + 1 >= s.flat_samples else rule
            self._learn_deviation(deviation, value, spread, slot, earlier)
        elif len(self._level):
            self._learn_deviation(deviation, value, math.nan, slot, earlier)
        self._level.add(value)
        self.last_ts = ts
        self._last_value = value
        self.samples += 1
        return Verdict(
            ts=ts,
            value=value,
            score=score,
            rule=rule,
            expected=expected,
            spread=spread,
            seasonal=seasonal,
            samples=self.samples,
            season_score=season_score if math.isfinite(season_score) else 0.0,
            season_expected=season_expected,
        )

    def _sigma(self, window: CountWindow, abs_dev: float, level: float) -> float:
        floor = 1e-9 * max(1.0, abs(level))
        sigma = max(window.robust_sigma(), 0.6 * abs_dev, floor)
        if self._tail_width:
            q = self.settings.spread_tail or 0.5
            tail = (window.quantile(q) - window.quantile(1.0 - q)) / self._tail_width
            sigma = max(sigma, tail)
        return sigma

    def _learn_deviation(
        self,
        deviation: float,
        value: float,
        spread: float,
        slot: int,
        earlier: list[tuple[float, float] | None],
    ) -> None:
        clipped = self._clip(deviation, self._spread) if math.isfinite(spread) else deviation
        self._spread.add(clipped)
        self._abs_dev += (abs(clipped) - self._abs_dev) / self.settings.spread_samples
        for season, before in zip(self._seasons, earlier, strict=True):
            if before is not None:
                season.spread.add(self._clip(deviation - before[0], season.spread))
                if season.differences % self.settings.season_stride == 0:
                    season.level_spread.add(self._clip(value - before[1], season.level_spread))
                season.differences += 1
            # the raw deviation and value: a surge that recurs must match its own size
            # next period
            season.store(slot, deviation, value)

    def _clip(self, deviation: float, window: CountWindow) -> float:
        """The deviation clipped to the window's median +- _CLIP_Z sigmas (once it has a
        history), so outliers cannot widen the spread they are judged by."""
        if len(window) < self.settings.min_samples // 2:
            return deviation
        centre = window.median()
        sigma = self._sigma(window, 0.0, centre)
        return min(max(deviation, centre - _CLIP_Z * sigma), centre + _CLIP_Z * sigma)

    def _follow_interval(self, ts: float) -> None:
        """Lock the sampling interval once a few steps are seen; a lasting change of it
        re-lays the seasonal slots (their history is lost, the level is kept)."""
        if len(self._steps) < 3:
            return
        step = self.interval_s
        if math.isfinite(self._slot_s) and 0.67 < step / self._slot_s < 1.5:
            return
        self._slot_s = step
        self._t0 = ts
        s = self.settings
        self._seasons = [
            _Season(n, s.spread_samples)
            for n in (round(p / step) for p in s.seasonal_periods_s)
            if 2 <= n <= s.max_season_slots
        ]

    @property
    def interval_s(self) -> float:
        """The observed sampling interval: median of the recent steps (NaN before 3)."""
        if len(self._steps) < 3:
            return math.nan
        return sorted(self._steps)[len(self._steps) // 2]

    def state_size(self) -> int:
        """Numbers held for this series (bounded by the settings, whatever the length)."""
        held = len(self._level) + len(self._spread) + len(self._steps)
        return held + sum(3 * x.slots + len(x.spread) + len(x.level_spread) for x in self._seasons)


class MetricDetector:
    """Findings (``metric_anomaly``) for one named series, from :class:`MetricScorer`."""

    name = "generic"
    accepts: tuple[type, ...] = ()

    def __init__(self, settings: GenericSettings | None = None, *, series: str = "series"):
        self.settings = settings or GenericSettings()
        self.scorer = MetricScorer(self.settings)
        self.last: Verdict | None = None
        s = self.settings
        self.episode = Episode(
            kind=KIND,
            subject=Subject(model=series),
            detector=self.name,
            min_samples=s.min_breach_samples,
            clear_samples=s.clear_samples,
        )

    def update(self, ts: float, value: float) -> list[Judgement]:
        """Judge one (timestamp, value) sample; a dropped one judges nothing."""
        verdict = self.scorer.update(ts, value)
        if verdict is None:
            return []
        self.last = verdict
        s = self.settings
        out = self.episode.update(
            ts,
            breached=verdict.rule is not None,
            recovered=verdict.score < s.clear_fraction * s.threshold,
            fire=lambda started, now: self._fire(verdict, started, now),
            clear_evidence=lambda: {"score": rnd(verdict.score, 3), "value": verdict.value},
        )
        return [out] if out is not None else []

    def _fire(self, v: Verdict, started: float, ts: float) -> tuple[Severity, str, dict[str, Any]]:
        s = self.settings
        what = {
            "level": f"{v.direction} to {v.value:.6g}",
            "variance": "variance change",
            "flat": "flat line",
            "seasonal": f"{v.direction} to {v.value:.6g} against {v.season_expected:.6g} "
            "one period earlier",
        }[v.rule or "level"]
        summary = (
            f"{what} (expected {v.expected:.6g} ± {v.spread:.3g}), "
            f"score {v.score:.1f} >= {s.threshold:g}"
        )
        evidence = {
            "rule": v.rule,
            "direction": v.direction,
            "value": v.value,
            "baseline": v.expected,
            "spread": v.spread,
            "score": rnd(v.score, 3),
            "threshold": s.threshold,
            "samples": v.samples,
            "level_samples": s.level_samples,
            "spread_samples": s.spread_samples,
            "interval_s": rnd(self.scorer.interval_s, 3),
            "seasonal": v.seasonal,
            "season_score": rnd(v.season_score, 3),
            "season_expected": v.season_expected,
            "sustained_s": rnd(ts - started, 3),
        }
        return Severity.WARNING, summary, evidence

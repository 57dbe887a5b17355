"""``latency_spike``: canary latency's short-window quantile against a robust baseline.

Per (model, batch size). Latencies are despiked first (median of the last three), so
a lone GC pause is not a spike. The baseline (median and IQR over a long window) learns only
from samples taken while no breach is pending or open, so a spike cannot raise its own
bar. Severity: critical when the SLO is breached, warning for a relative spike.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any

from sentinel.detect.base import fmt_s, rnd
from sentinel.detect.episode import Episode
from sentinel.detect.settings import LatencySettings
from sentinel.detect.windows import RollingWindow
from sentinel.vocabulary.findings import Judgement, Severity, Subject
from sentinel.vocabulary.samples import CanaryResult, Sample

KIND = "latency_spike"


@dataclass(slots=True)
class _Series:
    short: RollingWindow
    baseline: RollingWindow
    episode: Episode
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=3))
    last: dict[str, Any] = field(default_factory=dict)
    suspect: bool = False
    """The latest latency was over the bar (or a breach is pending) and nothing is open."""


class LatencyDetector:
    name = "latency"
    accepts: tuple[type, ...] = (CanaryResult,)

    def __init__(self, settings: LatencySettings | None = None) -> None:
        self.settings = settings or LatencySettings()
        self._series: dict[tuple[str, int], _Series] = {}

    def observe(self, sample: Sample) -> list[Judgement]:
        # direct TensorRT engine runs time the engine, not the service people call
        if not isinstance(sample, CanaryResult) or sample.latency_s is None:
            return []
        if sample.target != "triton":
            return []
        if sample.outcome != "ok" or not math.isfinite(sample.latency_s):
            return []
        s = self.settings
        series = self._get(sample)
        ep = series.episode
        if not ep.is_active and ep.subject.version != sample.version:
            ep.subject = replace(ep.subject, version=sample.version)
        series.recent.append(sample.latency_s)
        value = sorted(series.recent)[len(series.recent) // 2] if s.despike else sample.latency_s
        series.short.add(sample.ts, value)
        series.baseline.expire(sample.ts)
        if len(series.short) < s.min_samples:
            series.suspect = False
            self._learn(series, sample)
            return []
        value = series.short.quantile(s.quantile)
        verdict = self._judge(series, value)
        series.last = verdict
        out = ep.update(
            sample.ts,
            breached=verdict["breached"],
            recovered=verdict["recovered"],
            fire=lambda started, ts: self._fire(series, started, ts),
            clear_evidence=lambda: self._clear_evidence(series),
        )
        # judged on the raw latency: one slow answer is worth a recheck, not yet a spike
        series.suspect = not ep.is_open and (
            ep.is_active or sample.latency_s > verdict["threshold"]
        )
        self._learn(series, sample)
        return [out] if out is not None else []

    def tick(self, now: float) -> list[Judgement]:
        return []

    def suspects(self, model: str) -> bool:
        return any(s.suspect for (m, _), s in self._series.items() if m == model)

    def _get(self, sample: CanaryResult) -> _Series:
        key = (sample.model, sample.batch_size)
        series = self._series.get(key)
        if series is None:
            s = self.settings
            series = _Series(
                short=RollingWindow(s.short_window_s),
                baseline=RollingWindow(s.baseline_window_s),
                episode=Episode(
                    kind=KIND,
                    subject=Subject(
                        model=sample.model, version=sample.version, batch_size=sample.batch_size
                    ),
                    detector=self.name,
                    min_duration_s=s.min_duration_s,
                    min_samples=1,
                    clear_duration_s=s.clear_duration_s,
                    clear_samples=1,
                ),
            )
            self._series[key] = series
        return series

    def _learn(self, series: _Series, sample: CanaryResult) -> None:
        """Baseline from scheduled canaries only: a recheck follows a slow answer, and
        learning from it would raise the bar toward the suspicion."""
        if series.episode.is_active or sample.recheck or sample.latency_s is None:
            return
        series.baseline.add(sample.ts, sample.latency_s)

    def _judge(self, series: _Series, value: float) -> dict[str, Any]:
        s = self.settings
        verdict: dict[str, Any] = {"value": value, "rule": None}
        base_ok = len(series.baseline) >= s.baseline_min_samples
        rel_thr = clear_rel = math.inf
        median = sigma = math.nan
        if base_ok:
            median = series.baseline.median()
            sigma = series.baseline.robust_sigma()
            rel_thr = max(median * s.ratio, median + s.k_sigma * sigma, median + s.min_increase_s)
            clear_rel = median + s.clear_fraction * (rel_thr - median)
        slo_thr = clear_slo = math.inf
        if s.slo_s is not None:
            slo_thr = s.slo_s
            floor = median if base_ok and median < s.slo_s else 0.0
            clear_slo = floor + s.clear_fraction * (s.slo_s - floor)
        if value > slo_thr:
            verdict["rule"] = "slo"
        elif value > rel_thr:
            verdict["rule"] = "baseline"
        verdict.update(
            breached=verdict["rule"] is not None,
            recovered=value <= min(clear_rel, clear_slo),
            baseline_median=median,
            baseline_sigma=sigma,
            threshold=min(rel_thr, slo_thr),
            clear_level=min(clear_rel, clear_slo),
        )
        return verdict

    def _fire(
        self, series: _Series, started: float, ts: float
    ) -> tuple[Severity, str, dict[str, Any]]:
        s = self.settings
        v = series.last
        q = f"p{s.quantile * 100:g}"
        severity = Severity.CRITICAL if v["rule"] == "slo" else Severity.WARNING
        if v["rule"] == "slo":
            bar = f"SLO {fmt_s(s.slo_s if s.slo_s is not None else v['threshold'])}"
        else:
            bar = f"{fmt_s(v['threshold'])} (baseline median {fmt_s(v['baseline_median'])})"
        summary = f"{q} latency over {bar} for {ts - started:.0f} s (now {fmt_s(v['value'])})"
        evidence = {
            "quantile": s.quantile,
            "value_s": rnd(v["value"]),
            "threshold_s": rnd(v["threshold"]),
            "rule": v["rule"],
            "baseline_median_s": _num(v["baseline_median"]),
            "baseline_sigma_s": _num(v["baseline_sigma"]),
            "baseline_samples": len(series.baseline),
            "slo_s": s.slo_s,
            "ratio": s.ratio,
            "k_sigma": s.k_sigma,
            "short_window_s": s.short_window_s,
            "baseline_window_s": s.baseline_window_s,
            "samples": len(series.short),
            "min_duration_s": s.min_duration_s,
            "sustained_s": rnd(ts - started, 3),
        }
        return severity, summary, evidence

    def _clear_evidence(self, series: _Series) -> dict[str, Any]:
        v = series.last
        return {
            "value_s": rnd(v["value"]),
            "clear_level_s": _num(v["clear_level"]),
            "samples": len(series.short),
        }


def _num(x: float) -> float | None:
    return rnd(x) if math.isfinite(x) else None

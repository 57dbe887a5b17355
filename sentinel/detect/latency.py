"""``latency_spike``: canary latency's short-window quantile against a robust baseline.

Per (model, batch size). Latencies are despiked first (median of the last three), so
a lone GC pause is not a spike. The baseline (median and IQR over a long window) learns only
from samples taken while no breach is pending or open, so a spike cannot raise its own
bar. A sequential test (CUSUM) over the canaries that exceed the bar finds a step within
a few rechecks, before the window's quantile does. Severity: critical when the SLO is
breached, warning for a relative spike.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any

from sentinel.detect.base import fmt_s, rnd
from sentinel.detect.episode import Episode
from sentinel.detect.settings import LatencySettings
from sentinel.detect.windows import Cusum, RollingWindow, binomial_llr
from sentinel.vocabulary.findings import Judgement, Severity, Subject
from sentinel.vocabulary.samples import CanaryResult, Sample

KIND = "latency_spike"
NORMAL_EXCEED_RATE = 0.005
"""Share of canaries over the bar on a healthy model, taken by the sequential rule
(lone GC pauses and host stalls: about one canary in 200)."""
SPIKE_EXCEED_RATE = 0.9
"""Share over the bar during a spike (a slower model slows nearly every canary). With
the normal rate above, one canary over the bar adds ln(180) = 5.2 to the evidence and
one under takes 2.3 away: three over the bar in a row reach 13.8."""


@dataclass(slots=True)
class _Series:
    short: RollingWindow
    baseline: RollingWindow
    episode: Episode
    evidence: Cusum | None
    """Sequential evidence that canaries exceed the bar (None when the rule is off)."""
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
        verdict["latest"] = sample.latency_s
        bar = verdict["threshold"]
        if math.isfinite(verdict["baseline_median"]):
            bar = max(bar, verdict["baseline_median"] + s.sequential_min_increase_s)
        verdict["sequential_bar"] = bar
        sequential = self._gather(series, sample.ts, sample.latency_s, bar)
        if sequential:
            verdict["rule"] = "sequential"
            verdict["breached"], verdict["recovered"] = True, False
        series.last = verdict
        out = ep.update(
            sample.ts,
            breached=verdict["breached"],
            recovered=verdict["recovered"],
            fire=lambda started, ts: self._fire(series, started, ts),
            clear_evidence=lambda: self._clear_evidence(series),
            sustained_since=series.evidence.since if sequential and series.evidence else None,
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
                evidence=Cusum(s.evidence_log_odds) if s.evidence_log_odds is not None else None,
            )
            self._series[key] = series
        return series

    def _learn(self, series: _Series, sample: CanaryResult) -> None:
        """Baseline from scheduled canaries only, while no evidence of a spike gathers: a
        recheck follows a slow answer, and learning from it would raise the bar toward
        the suspicion."""
        gathering = series.evidence is not None and series.evidence.suspicious
        if series.episode.is_active or gathering or sample.recheck or sample.latency_s is None:
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

    def _gather(self, series: _Series, ts: float, latency: float, threshold: float) -> bool:
        """Add this canary to the sequential evidence that canaries now exceed the bar at
        SPIKE_EXCEED_RATE rather than NORMAL_EXCEED_RATE; True once it is enough and most
        canaries since the climb began were over the bar."""
        if series.evidence is None or not math.isfinite(threshold):
            return False
        if series.episode.is_open:
            series.evidence.reset()  # spent on the open finding; the window clears it
            return False
        over = 1.0 if latency > threshold else 0.0
        llr = binomial_llr(over, 1.0, NORMAL_EXCEED_RATE, SPIKE_EXCEED_RATE)
        series.evidence.add(ts, llr, over, 1.0)
        return series.evidence.alarmed and series.evidence.rate > 0.5

    def _fire(
        self, series: _Series, started: float, ts: float
    ) -> tuple[Severity, str, dict[str, Any]]:
        s = self.settings
        v = series.last
        q = f"p{s.quantile * 100:g}"
        over_slo = s.slo_s is not None and v["latest"] > s.slo_s
        slo = v["rule"] == "slo" or (v["rule"] == "sequential" and over_slo)
        severity = Severity.CRITICAL if slo else Severity.WARNING
        if v["rule"] == "slo":
            bar = f"SLO {fmt_s(s.slo_s if s.slo_s is not None else v['threshold'])}"
        else:
            bar = f"{fmt_s(v['threshold'])} (baseline median {fmt_s(v['baseline_median'])})"
        if v["rule"] == "sequential" and series.evidence is not None:
            n = int(series.evidence.hits)
            over = f"{fmt_s(v['sequential_bar'])} (baseline median {fmt_s(v['baseline_median'])})"
            summary = (
                f"{n} of {int(series.evidence.trials)} canaries over {over} "
                f"(now {fmt_s(v['latest'])})"
            )
        else:
            summary = f"{q} latency over {bar} for {ts - started:.0f} s (now {fmt_s(v['value'])})"
        evidence = {
            "quantile": s.quantile,
            "value_s": rnd(v["value"]),
            "latest_s": rnd(v["latest"]),
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
        if series.evidence is not None and v["rule"] == "sequential":
            evidence["log_odds"] = rnd(series.evidence.value, 2)
            evidence["log_odds_threshold"] = s.evidence_log_odds
            evidence["sequential_bar_s"] = rnd(v["sequential_bar"])
            evidence["over_since_s"] = series.evidence.since
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

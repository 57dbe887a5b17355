"""Streaming canaries judged: ``ttft_spike``, ``stream_stalled``, ``generation_drift``.

Per model, from :class:`~sentinel.vocabulary.samples.StreamResult` samples:

* ``ttft_spike``: the short-window quantile of time to first token against a robust
  baseline (median and IQR of a long window that learns only while nothing is pending
  or open, and not from rechecks) and an optional SLO, the way ``latency_spike`` judges
  round trips;
* ``stream_stalled``: several streams in a row that stalled after their first token (a
  token came later than the canary's stall timeout, or the stream ran out of time);
  completed streams clear it;
* ``generation_drift``: the mean normalised edit distance of the generated text to the
  golden text over a window (and, optionally, the share of exact matches). Garbage
  tokens or a badly quantized plan make it critical; a small drift is a warning.

Pure: time comes from the samples, so recordings replay to the same findings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from sentinel.detect.base import fmt_s, rnd
from sentinel.detect.episode import Episode
from sentinel.detect.settings import GenerationSettings
from sentinel.detect.windows import RollingWindow
from sentinel.vocabulary.findings import Judgement, Severity, Subject
from sentinel.vocabulary.samples import Sample, StreamResult

TTFT = "ttft_spike"
STALLED = "stream_stalled"
DRIFT = "generation_drift"


@dataclass(slots=True)
class _Model:
    ttft: RollingWindow
    ttft_baseline: RollingWindow
    distance: RollingWindow
    exact: RollingWindow
    episodes: dict[str, Episode]
    ttft_verdict: dict[str, Any] = field(default_factory=dict)
    stalled_in_row: int = 0
    last_stall: StreamResult | None = None
    suspect: bool = False


class GenerationDetector:
    name = "generation"
    accepts: tuple[type, ...] = (StreamResult,)

    def __init__(self, settings: GenerationSettings | None = None) -> None:
        self.settings = settings or GenerationSettings()
        self._models: dict[str, _Model] = {}

    def observe(self, sample: Sample) -> list[Judgement]:
        if not isinstance(sample, StreamResult):
            return []
        model = self._get(sample)
        model.suspect = False
        for ep in model.episodes.values():
            if not ep.is_active and ep.subject.version != sample.version:
                ep.subject = replace(ep.subject, version=sample.version)
        return [
            *self._judge_ttft(model, sample),
            *self._judge_stall(model, sample),
            *self._judge_drift(model, sample),
        ]

    def tick(self, now: float) -> list[Judgement]:
        return []

    def suspects(self, model: str) -> bool:
        m = self._models.get(model)
        return m is not None and m.suspect and not any(e.is_open for e in m.episodes.values())

    def _get(self, sample: StreamResult) -> _Model:
        model = self._models.get(sample.model)
        if model is None:
            s = self.settings
            subject = Subject(model=sample.model, version=sample.version)
            model = _Model(
                ttft=RollingWindow(s.ttft_window_s),
                ttft_baseline=RollingWindow(s.ttft_baseline_window_s),
                distance=RollingWindow(s.drift_window_s),
                exact=RollingWindow(s.drift_window_s, ordered=False),
                episodes={
                    TTFT: Episode(
                        TTFT,
                        subject,
                        self.name,
                        min_duration_s=s.ttft_min_duration_s,
                        clear_duration_s=s.ttft_clear_duration_s,
                    ),
                    STALLED: Episode(
                        STALLED,
                        subject,
                        self.name,
                        min_samples=s.stall_min_streams,
                        clear_samples=s.stall_clear_streams,
                    ),
                    DRIFT: Episode(
                        DRIFT, subject, self.name, clear_duration_s=s.drift_clear_duration_s
                    ),
                },
            )
            self._models[sample.model] = model
        return model

    # -- time to first token ----------------------------------------------------

    def _judge_ttft(self, model: _Model, sample: StreamResult) -> list[Judgement]:
        s = self.settings
        ep = model.episodes[TTFT]
        if sample.ttft_s is None or not math.isfinite(sample.ttft_s):
            return []
        model.ttft.add(sample.ts, sample.ttft_s)
        model.ttft_baseline.expire(sample.ts)
        verdict = self._ttft_verdict(model)
        model.ttft_verdict = verdict
        out = None
        if len(model.ttft) >= s.ttft_min_samples:
            out = ep.update(
                sample.ts,
                breached=verdict["rule"] is not None,
                recovered=verdict["value"] <= verdict["clear_level"],
                fire=lambda started, ts: self._fire_ttft(model, started, ts),
                clear_evidence=lambda: {"ttft_s": rnd(verdict["value"])},
            )
        if sample.ttft_s > verdict["threshold"] or ep.is_active:
            model.suspect = True
        if not ep.is_active and not sample.recheck:
            model.ttft_baseline.add(sample.ts, sample.ttft_s)
        return [out] if out is not None else []

    def _ttft_verdict(self, model: _Model) -> dict[str, Any]:
        s = self.settings
        value = model.ttft.quantile(s.ttft_quantile)
        rel = clear_rel = math.inf
        median = math.nan
        if len(model.ttft_baseline) >= s.ttft_baseline_min_samples:
            median = model.ttft_baseline.median()
            sigma = model.ttft_baseline.robust_sigma()
            rel = max(
                median * s.ttft_ratio,
                median + s.ttft_k_sigma * sigma,
                median + s.ttft_min_increase_s,
            )
            clear_rel = median + 0.5 * (rel - median)
        slo = s.ttft_slo_s if s.ttft_slo_s is not None else math.inf
        rule = "slo" if value > slo else "baseline" if value > rel else None
        return {
            "value": value,
            "rule": rule,
            "threshold": min(rel, slo),
            "clear_level": min(clear_rel, 0.5 * slo if math.isfinite(slo) else math.inf),
            "baseline_median": median,
        }

    def _fire_ttft(
        self, model: _Model, started: float, ts: float
    ) -> tuple[Severity, str, dict[str, Any]]:
        s, v = self.settings, model.ttft_verdict
        severity = Severity.CRITICAL if v["rule"] == "slo" else Severity.WARNING
        median = v["baseline_median"]
        base = f" (baseline median {fmt_s(median)})" if math.isfinite(median) else ""
        summary = (
            f"time to first token p{s.ttft_quantile * 100:g} {fmt_s(v['value'])} over "
            f"{fmt_s(v['threshold'])}{base} for {ts - started:.0f} s"
        )
        evidence = {
            "ttft_s": rnd(v["value"]),
            "threshold_s": rnd(v["threshold"]),
            "rule": v["rule"],
            "baseline_median_s": rnd(median) if math.isfinite(median) else None,
            "baseline_samples": len(model.ttft_baseline),
            "samples": len(model.ttft),
            "quantile": s.ttft_quantile,
            "slo_s": s.ttft_slo_s,
            "sustained_s": rnd(ts - started, 3),
        }
        return severity, summary, evidence

    # -- stalled streams --------------------------------------------------------

    def _judge_stall(self, model: _Model, sample: StreamResult) -> list[Judgement]:
        ep = model.episodes[STALLED]
        # tokens came, then stopped: a stream with no token at all (a frozen or unreachable
        # server) is the health and error detectors' business, as is an error answer
        stalled = sample.stalled or (sample.outcome == "timeout" and sample.tokens > 0)
        if not stalled and not sample.completed:
            return []
        if stalled:
            model.stalled_in_row += 1
            model.last_stall = sample
            model.suspect = True
        else:
            model.stalled_in_row = 0
        out = ep.update(
            sample.ts,
            breached=stalled,
            recovered=sample.completed,
            fire=lambda started, ts: self._fire_stall(model, started, ts),
            clear_evidence=lambda: {"tokens": sample.tokens},
        )
        return [out] if out is not None else []

    def _fire_stall(
        self, model: _Model, started: float, ts: float
    ) -> tuple[Severity, str, dict[str, Any]]:
        last = model.last_stall
        assert last is not None
        where = f"after {last.tokens} token(s)" if last.tokens else "before the first token"
        summary = (
            f"{model.stalled_in_row} stream(s) in a row stalled; the last {where} "
            f"({last.error or last.outcome})"
        )
        evidence = {
            "streams_in_row": model.stalled_in_row,
            "tokens": last.tokens,
            "max_gap_s": rnd(last.max_gap_s) if last.max_gap_s is not None else None,
            "ttft_s": rnd(last.ttft_s) if last.ttft_s is not None else None,
            "outcome": last.outcome,
            "error": last.error,
            "prompt": last.prompt,
        }
        return Severity.CRITICAL, summary, evidence

    # -- generation drift -------------------------------------------------------

    def _judge_drift(self, model: _Model, sample: StreamResult) -> list[Judgement]:
        s = self.settings
        ep = model.episodes[DRIFT]
        if not sample.completed or sample.edit_distance is None:
            return []
        model.distance.add(sample.ts, sample.edit_distance)
        model.exact.add(sample.ts, 1.0 if sample.exact_match else 0.0)
        if sample.edit_distance > s.max_edit_distance:
            model.suspect = True
        if len(model.distance) < s.drift_min_samples:
            return []
        mean, exact = model.distance.mean(), model.exact.mean()
        low_exact = s.min_exact_share is not None and exact < s.min_exact_share
        out = ep.update(
            sample.ts,
            breached=mean > s.max_edit_distance or low_exact,
            recovered=mean <= 0.5 * s.max_edit_distance and not low_exact,
            fire=lambda started, ts: self._fire_drift(model, started, ts),
            clear_evidence=lambda: {"mean_edit_distance": rnd(mean), "exact_share": rnd(exact)},
        )
        return [out] if out is not None else []

    def _fire_drift(
        self, model: _Model, started: float, ts: float
    ) -> tuple[Severity, str, dict[str, Any]]:
        s = self.settings
        mean, exact = model.distance.mean(), model.exact.mean()
        critical = mean >= s.critical_edit_distance
        severity = Severity.CRITICAL if critical else Severity.WARNING
        summary = (
            f"generated text drifted: mean edit distance to the golden text {mean:.2f} "
            f"(bar {s.max_edit_distance:g}), {exact:.0%} exact, over {len(model.distance)} streams"
        )
        evidence = {
            "mean_edit_distance": rnd(mean),
            "max_edit_distance": s.max_edit_distance,
            "exact_share": rnd(exact),
            "min_exact_share": s.min_exact_share,
            "samples": len(model.distance),
            "window_s": s.drift_window_s,
            "critical_edit_distance": s.critical_edit_distance,
        }
        return severity, summary, evidence

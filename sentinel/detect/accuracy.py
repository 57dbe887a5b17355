"""``accuracy_drift``: canary agreement with the golden reference, per model.

The top-1 agreement (per row, over the canaries of a short window) and the mean cosine
are judged against absolute floors, and top-1 against the model's own long-window
agreement (a drop larger than ``max_drop``); a sequential test (CUSUM) over the rows
finds a drop within a few canaries, before the window's mean does. The finding says
whether the loss was ``sudden`` (from healthy to breached within ``sudden_max_s``, or
across a version change: a deployment) or ``gradual`` (a slide). Severity: warning;
wrong answers are served, but nothing is down.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from sentinel.detect.base import rnd
from sentinel.detect.episode import Episode
from sentinel.detect.settings import AccuracySettings
from sentinel.detect.windows import Cusum, RollingWindow, binomial_llr
from sentinel.vocabulary.findings import Judgement, Severity, Subject
from sentinel.vocabulary.samples import CanaryResult, Sample

KIND = "accuracy_drift"


@dataclass(slots=True)
class _Model:
    hits: RollingWindow
    """Agreeing rows of each canary in the short window, and (below) its rows: agreement
    is counted per row, so canaries of several batch sizes, each with its own steady
    agreement on a fixed golden set, weigh by what they compared."""
    rows: RollingWindow
    cosine: RollingWindow
    baseline_hits: RollingWindow
    """The same over the long window: the model's normal per-row agreement."""
    baseline_rows: RollingWindow
    episode: Episode
    evidence: Cusum | None
    """Sequential evidence of a drop below the bar (None when the rule is off)."""
    last_healthy_ts: float | None = None
    last_healthy_version: str | None = None
    version: str = ""
    last: dict[str, Any] = field(default_factory=dict)
    suspect: bool = False
    """The latest canary agreed too little (or a breach is pending) and nothing is open."""


class AccuracyDetector:
    name = "accuracy"
    accepts: tuple[type, ...] = (CanaryResult,)

    def __init__(self, settings: AccuracySettings | None = None) -> None:
        self.settings = settings or AccuracySettings()
        self._models: dict[str, _Model] = {}

    def observe(self, sample: Sample) -> list[Judgement]:
        if not isinstance(sample, CanaryResult) or sample.agreement is None:
            return []
        if sample.target != "triton":
            return []  # engine-file checks belong to the runbook, not to the served model
        a = sample.agreement
        if not (math.isfinite(a.top1) and math.isfinite(a.cosine)):
            return []
        s = self.settings
        m = self._get(sample)
        ep = m.episode
        if not ep.is_active and ep.subject.version != sample.version:
            ep.subject = replace(ep.subject, version=sample.version)
        m.version = sample.version
        m.hits.add(sample.ts, a.top1 * _rows(sample))
        m.rows.add(sample.ts, _rows(sample))
        m.cosine.add(sample.ts, a.cosine)
        for w in (m.baseline_hits, m.baseline_rows):
            w.expire(sample.ts)
        if len(m.rows) < s.min_samples:
            m.suspect = False
            self._learn(m, sample)
            return []
        verdict = self._judge(m, sample)
        m.last = verdict
        if verdict["healthy"]:
            m.last_healthy_ts = sample.ts
            m.last_healthy_version = sample.version
        out = ep.update(
            sample.ts,
            breached=verdict["breached"],
            recovered=verdict["recovered"],
            fire=lambda started, ts: self._fire(m, started, ts),
            clear_evidence=lambda: {
                "mean_top1": rnd(verdict["top1"], 4),
                "mean_cosine": rnd(verdict["cosine"], 4),
            },
            # a million to one is sustained enough: no min_duration_s on top of it
            sustained_since=m.evidence.since
            if m.evidence is not None and "sequential" in verdict["rules"]
            else None,
        )
        # one canary under the bar, or evidence gathering, is worth a recheck, not yet drift
        gathering = m.evidence is not None and m.evidence.suspicious
        m.suspect = not ep.is_open and (
            ep.is_active or gathering or a.top1 < verdict["top1_bar"] or a.cosine < s.cosine_floor
        )
        if verdict["healthy"] and not gathering:
            self._learn(m, sample)
        return [out] if out is not None else []

    def tick(self, now: float) -> list[Judgement]:
        return []

    def suspects(self, model: str) -> bool:
        m = self._models.get(model)
        return m is not None and m.suspect

    def _get(self, sample: CanaryResult) -> _Model:
        m = self._models.get(sample.model)
        if m is None:
            s = self.settings
            m = _Model(
                hits=RollingWindow(s.window_s, ordered=False),
                rows=RollingWindow(s.window_s, ordered=False),
                cosine=RollingWindow(s.window_s, ordered=False),
                baseline_hits=RollingWindow(s.baseline_window_s, ordered=False),
                baseline_rows=RollingWindow(s.baseline_window_s, ordered=False),
                episode=Episode(
                    kind=KIND,
                    subject=Subject(model=sample.model, version=sample.version),
                    detector=self.name,
                    min_duration_s=s.min_duration_s,
                    clear_duration_s=s.clear_duration_s,
                ),
                evidence=Cusum(s.evidence_log_odds) if s.evidence_log_odds is not None else None,
            )
            self._models[sample.model] = m
        return m

    def _learn(self, m: _Model, sample: CanaryResult) -> None:
        """Baseline from scheduled canaries, while the window is healthy and no evidence of
        a drop is gathering: rechecks follow suspicious answers, and a slide under way
        would drag the baseline down with it."""
        if m.episode.is_active or sample.recheck or sample.agreement is None:
            return
        rows = _rows(sample)
        m.baseline_hits.add(sample.ts, sample.agreement.top1 * rows)
        m.baseline_rows.add(sample.ts, rows)

    def _judge(self, m: _Model, sample: CanaryResult) -> dict[str, Any]:
        s = self.settings
        top1 = m.hits.total() / m.rows.total()
        cosine = m.cosine.mean()
        base = (
            m.baseline_hits.total() / m.baseline_rows.total()
            if len(m.baseline_rows) >= s.baseline_min_samples
            else math.nan
        )
        base_known = math.isfinite(base)
        bar = max(s.top1_floor, base - s.max_drop) if base_known else s.top1_floor
        # recovered: back above every floor with half the margin again (hysteresis)
        top1_clear = s.top1_floor + (1.0 - s.top1_floor) / 2
        cos_clear = s.cosine_floor + (1.0 - s.cosine_floor) / 2
        if base_known:
            top1_clear = min(top1_clear, base - s.max_drop / 2)
        rules = []
        if top1 < s.top1_floor:
            rules.append("top1_floor")
        if cosine < s.cosine_floor:
            rules.append("cosine_floor")
        if base_known and top1 < base - s.max_drop:
            rules.append("baseline_drop")
        if base_known and self._gather(m, sample, base, bar):
            rules.append("sequential")
        # healthy: where the slide has not started yet (used to tell sudden from gradual)
        healthy_top1 = base - s.max_drop / 2 if base_known else top1_clear
        sequential = "sequential" in rules
        return {
            "top1": top1,
            "cosine": cosine,
            "baseline": base,
            "top1_bar": bar,
            "rules": rules,
            "breached": bool(rules),
            "recovered": top1 >= top1_clear and cosine >= cos_clear and not sequential,
            "healthy": top1 >= healthy_top1 and cosine >= cos_clear and not sequential,
            "log_odds": m.evidence.value if m.evidence is not None else None,
        }

    def _gather(self, m: _Model, sample: CanaryResult, normal: float, bar: float) -> bool:
        """Add this canary's rows to the sequential evidence that top-1 agreement fell from
        its normal level to the bar; True once the evidence is enough."""
        if m.evidence is None or sample.agreement is None or not normal > bar:
            return False
        if m.episode.is_open:
            m.evidence.reset()  # spent on the open finding; the window clears it
            return False
        rows = _rows(sample)
        hits = sample.agreement.top1 * rows
        m.evidence.add(sample.ts, binomial_llr(hits, rows, normal, bar), hits, rows)
        # enough evidence, and agreement since the drop began is under the bar itself (a
        # slight steady loss also gathers evidence, slowly; it is no drift)
        return m.evidence.alarmed and m.evidence.rate < bar

    def _fire(self, m: _Model, started: float, ts: float) -> tuple[Severity, str, dict[str, Any]]:
        s = self.settings
        v = m.last
        since_healthy = started - m.last_healthy_ts if m.last_healthy_ts is not None else None
        version_changed = m.last_healthy_version is not None and m.last_healthy_version != m.version
        sudden = version_changed or (since_healthy is not None and since_healthy <= s.sudden_max_s)
        onset = "sudden" if sudden else "gradual"
        evidence: dict[str, Any] = {
            "onset": onset,
            "rules": v["rules"],
            "mean_top1": rnd(v["top1"], 4),
            "mean_cosine": rnd(v["cosine"], 4),
            "baseline_top1": rnd(v["baseline"], 4) if math.isfinite(v["baseline"]) else None,
            "top1_floor": s.top1_floor,
            "cosine_floor": s.cosine_floor,
            "max_drop": s.max_drop,
            "window_s": s.window_s,
            "samples": len(m.rows),
            "rows": int(m.rows.total()),
            "baseline_samples": len(m.baseline_rows),
            "last_healthy_at": m.last_healthy_ts,
            "healthy_to_breach_s": rnd(since_healthy, 3) if since_healthy is not None else None,
            "sudden_max_s": s.sudden_max_s,
            "sustained_s": rnd(ts - started, 3),
        }
        if v["log_odds"] is not None:
            evidence["log_odds"] = rnd(v["log_odds"], 2)
            evidence["log_odds_threshold"] = s.evidence_log_odds
        if version_changed:
            evidence["version_change"] = {"from": m.last_healthy_version, "to": m.version}
        base = f" (baseline {v['baseline']:.3f})" if math.isfinite(v["baseline"]) else ""
        summary = (
            f"{onset} accuracy loss: mean top-1 agreement {v['top1']:.3f}{base}, "
            f"cosine {v['cosine']:.3f} over {len(m.rows)} canaries"
        )
        return Severity.WARNING, summary, evidence


def _rows(sample: CanaryResult) -> float:
    """Rows a canary compared; batch 0 (a model without batching) counts as one."""
    return float(max(sample.batch_size, 1))

"""``accuracy_drift``: canary agreement with the golden reference, per model.

The mean top-1 agreement and cosine over a short window are judged against absolute
floors, and top-1 against the model's own long-window median (a drop larger than
``max_drop``). The finding says whether the loss was ``sudden`` (from healthy to breached
within ``sudden_max_s``, or across a version change: a deployment) or ``gradual`` (a
slide). Severity: warning; wrong answers are served, but nothing is down.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from sentinel.detect.base import rnd
from sentinel.detect.episode import Episode
from sentinel.detect.findings import Judgement, Severity, Subject
from sentinel.detect.settings import AccuracySettings
from sentinel.detect.windows import RollingWindow
from sentinel.probes.samples import CanaryResult, Sample

KIND = "accuracy_drift"


@dataclass(slots=True)
class _Model:
    top1: RollingWindow
    cosine: RollingWindow
    baseline: RollingWindow
    episode: Episode
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
        m.top1.add(sample.ts, a.top1)
        m.cosine.add(sample.ts, a.cosine)
        m.baseline.expire(sample.ts)
        if len(m.top1) < s.min_samples:
            m.suspect = False
            self._learn(m, sample.ts, a.top1)
            return []
        verdict = self._judge(m)
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
        )
        # one canary under the bar is worth a recheck, not yet drift
        m.suspect = not ep.is_open and (
            ep.is_active or a.top1 < verdict["top1_bar"] or a.cosine < s.cosine_floor
        )
        self._learn(m, sample.ts, a.top1)
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
                top1=RollingWindow(s.window_s, ordered=False),
                cosine=RollingWindow(s.window_s, ordered=False),
                baseline=RollingWindow(s.baseline_window_s),
                episode=Episode(
                    kind=KIND,
                    subject=Subject(model=sample.model, version=sample.version),
                    detector=self.name,
                    min_duration_s=s.min_duration_s,
                    clear_duration_s=s.clear_duration_s,
                ),
            )
            self._models[sample.model] = m
        return m

    def _learn(self, m: _Model, ts: float, top1: float) -> None:
        if not m.episode.is_active:
            m.baseline.add(ts, top1)

    def _judge(self, m: _Model) -> dict[str, Any]:
        s = self.settings
        top1 = m.top1.mean()
        cosine = m.cosine.mean()
        base = m.baseline.median() if len(m.baseline) >= s.baseline_min_samples else math.nan
        base_known = math.isfinite(base)
        rules = []
        if top1 < s.top1_floor:
            rules.append("top1_floor")
        if cosine < s.cosine_floor:
            rules.append("cosine_floor")
        if base_known and top1 < base - s.max_drop:
            rules.append("baseline_drop")
        # recovered: back above every floor with half the margin again (hysteresis)
        top1_clear = s.top1_floor + (1.0 - s.top1_floor) / 2
        cos_clear = s.cosine_floor + (1.0 - s.cosine_floor) / 2
        if base_known:
            top1_clear = min(top1_clear, base - s.max_drop / 2)
        # healthy: where the slide has not started yet (used to tell sudden from gradual)
        healthy_top1 = base - s.max_drop / 2 if base_known else top1_clear
        return {
            "top1": top1,
            "cosine": cosine,
            "baseline": base,
            "top1_bar": max(s.top1_floor, base - s.max_drop) if base_known else s.top1_floor,
            "rules": rules,
            "breached": bool(rules),
            "recovered": top1 >= top1_clear and cosine >= cos_clear,
            "healthy": top1 >= healthy_top1 and cosine >= cos_clear,
        }

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
            "samples": len(m.top1),
            "baseline_samples": len(m.baseline),
            "last_healthy_at": m.last_healthy_ts,
            "healthy_to_breach_s": rnd(since_healthy, 3) if since_healthy is not None else None,
            "sudden_max_s": s.sudden_max_s,
            "sustained_s": rnd(ts - started, 3),
        }
        if version_changed:
            evidence["version_change"] = {"from": m.last_healthy_version, "to": m.version}
        base = f" (baseline {v['baseline']:.3f})" if math.isfinite(v["baseline"]) else ""
        summary = (
            f"{onset} accuracy loss: mean top-1 agreement {v['top1']:.3f}{base}, "
            f"cosine {v['cosine']:.3f} over {len(m.top1)} canaries"
        )
        return Severity.WARNING, summary, evidence

"""``traffic``: the requests users send, judged from Triton's per-model counters.

Canaries see one golden request every few seconds; Triton counts every request. From
the counter deltas over a short window (``TritonHealth`` samples) this detector takes,
per model, the request rate, the failure ratio and the mean request, queue and compute
time per request, and reads the request-time quantile (p99) of Triton's latency summary
when the server exports one. Four findings, each against the model's own baseline:

* ``traffic_latency_spike``: the p99 (or, without a summary, the mean) request time, or
  the mean, over its baseline (median x ratio, + k sigma, + a floor), or over an SLO;
* ``queue_buildup``: the mean queue wait per request over its baseline. ``backlog`` keeps
  the absolute bars (queue depth, queue share of request time); this one sees a queue
  that is growing for this model before those bars are reached;
* ``error_rate_rise``: the failure ratio over its baseline (``error_burst`` keeps the
  absolute bar);
* ``throughput_collapse``: the request rate over steps of ``rate_step_s`` falling by half
  or more on two steps in a row, scored by the generic detector's scorer (its daily and
  weekly seasons: a rate that falls every night is not a collapse).

Latency, queue and failures are judged only while the window holds ``min_requests``
requests: without traffic there is nothing to judge (an open finding stays open until
traffic says otherwise). Baselines learn only while their finding is idle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from sentinel.detect.base import fmt_s, rnd
from sentinel.detect.episode import Episode, Episodes
from sentinel.detect.generic import MetricScorer, Verdict
from sentinel.detect.settings import GenericSettings, TrafficSettings
from sentinel.detect.windows import CounterRate, RollingWindow
from sentinel.vocabulary.findings import Finding, Judgement, Severity, Subject
from sentinel.vocabulary.samples import Sample, TritonHealth

LATENCY = "traffic_latency_spike"
QUEUE = "queue_buildup"
ERRORS = "error_rate_rise"
COLLAPSE = "throughput_collapse"
COLLAPSE_STEPS = 2
"""Rate steps in a row that must breach before a collapse is a finding."""


@dataclass(frozen=True, slots=True)
class Level:
    """One measure judged against its baseline (and an optional absolute bar)."""

    value: float
    rule: str | None
    """'slo' or 'baseline' when breached, else None."""
    threshold: float
    clear_level: float
    median: float
    sigma: float

    @property
    def breached(self) -> bool:
        return self.rule is not None

    @property
    def recovered(self) -> bool:
        return self.value <= self.clear_level


def judge_level(
    value: float,
    baseline: RollingWindow,
    *,
    min_samples: int,
    ratio: float,
    k_sigma: float,
    min_increase: float,
    clear_fraction: float,
    absolute: float | None = None,
) -> Level:
    """Relative rule (all of: median x ratio, median + k sigma, median + min_increase) once
    the baseline holds ``min_samples``; the absolute bar always."""
    median = sigma = math.nan
    rel = clear_rel = math.inf
    if len(baseline) >= min_samples:
        median, sigma = baseline.median(), baseline.robust_sigma()
        rel = max(median * ratio, median + k_sigma * sigma, median + min_increase)
        clear_rel = median + clear_fraction * (rel - median)
    bar = clear_bar = math.inf
    if absolute is not None:
        bar = absolute
        floor = median if math.isfinite(median) and median < absolute else 0.0
        clear_bar = floor + clear_fraction * (absolute - floor)
    rule = "slo" if value > bar else "baseline" if value > rel else None
    return Level(value, rule, min(rel, bar), min(clear_rel, clear_bar), median, sigma)


@dataclass(slots=True)
class _Model:
    success: CounterRate
    failure: CounterRate
    request_us: CounterRate
    queue_us: CounterRate
    compute_us: CounterRate
    inferences: CounterRate
    executions: CounterRate
    baselines: dict[str, RollingWindow]
    scorer: MetricScorer
    step_ts: float | None = None
    step_total: float = 0.0
    low_run: int = 0
    """Rate steps in a row at least ``collapse_min_drop`` under the expected rate."""
    facts: dict[str, Any] = field(default_factory=dict)
    rate_verdict: Verdict | None = None


class TrafficDetector:
    name = "traffic"
    accepts: tuple[type, ...] = (TritonHealth,)

    def __init__(self, settings: TrafficSettings | None = None) -> None:
        self.settings = settings or TrafficSettings()
        self._models: dict[str, _Model] = {}
        self._episodes = Episodes(self.name)
        s = self.settings
        self._rate_settings = GenericSettings(
            level_samples=s.collapse_level_samples,
            min_samples=s.collapse_min_samples,
            threshold=s.collapse_threshold,
            # a level question: the spread of the rate's usual steps (IQR), not its
            # rare jumps (a past rise in traffic must not hide a later collapse)
            spread_tail=None,
            seasonal_periods_s=list(s.seasonal_periods_s),
            max_season_slots=max(
                [2, *(math.ceil(p / s.rate_step_s) + 1 for p in s.seasonal_periods_s)]
            ),
        )

    def observe(self, sample: Sample) -> list[Judgement]:
        if not isinstance(sample, TritonHealth) or sample.model is None:
            return []
        if sample.success_total is None or sample.failure_total is None:
            return []  # no counters (scrape off or failed): nothing to judge
        m = self._model(sample.model)
        self._add_counters(m, sample)
        subject = Subject(
            model=sample.model,
            version=sample.model_versions[0] if len(sample.model_versions) == 1 else None,
        )
        out: list[Judgement | None] = []
        m.facts = self._facts(m, sample)
        if m.facts["requests"] >= self.settings.min_requests:
            out += self._judge_traffic(m, sample.ts, subject)
        out.append(self._judge_rate(m, sample, subject))
        return [j for j in out if j is not None]

    def suspects(self, model: str) -> bool:
        return False  # reads no canaries

    def tick(self, now: float) -> list[Judgement]:
        return []

    # -- measures ---------------------------------------------------------

    def _model(self, model: str) -> _Model:
        m = self._models.get(model)
        if m is None:
            s = self.settings
            w = s.window_s
            m = _Model(
                success=CounterRate(w),
                failure=CounterRate(w),
                request_us=CounterRate(w),
                queue_us=CounterRate(w),
                compute_us=CounterRate(w),
                inferences=CounterRate(w),
                executions=CounterRate(w),
                baselines={
                    k: RollingWindow(s.baseline_window_s)
                    for k in ("quantile", "mean", "queue", "failure")
                },
                scorer=MetricScorer(self._rate_settings),
            )
            self._models[model] = m
        return m

    @staticmethod
    def _add_counters(m: _Model, x: TritonHealth) -> None:
        ts = x.ts
        m.success.add(ts, x.success_total or 0.0)
        m.failure.add(ts, x.failure_total or 0.0)
        if x.request_duration_us_total is not None:
            m.request_us.add(ts, x.request_duration_us_total)
        if x.queue_duration_us_total is not None:
            m.queue_us.add(ts, x.queue_duration_us_total)
        parts = (x.compute_input_us_total, x.compute_infer_us_total, x.compute_output_us_total)
        if any(p is not None for p in parts):
            m.compute_us.add(ts, sum(p or 0.0 for p in parts))
        if x.inference_count_total is not None and x.exec_count_total is not None:
            m.inferences.add(ts, x.inference_count_total)
            m.executions.add(ts, x.exec_count_total)

    def _facts(self, m: _Model, x: TritonHealth) -> dict[str, Any]:
        """The window's measures (None where the window cannot say)."""
        ok, failed = m.success.delta(), m.failure.delta()
        requests = ok + failed
        covered = m.success.covered_s()

        def per_ok(counter: CounterRate) -> float | None:
            return counter.delta() / ok / 1e6 if ok > 0 and counter.covered_s() > 0 else None

        q = self.settings.quantile
        raw_q = x.request_quantiles_us.get(f"{q:g}") if q is not None else None
        execs = m.executions.delta()
        return {
            "requests": requests,
            "window_s": rnd(covered, 3),
            "rate_per_s": rnd(requests / covered, 4) if covered > 0 else None,
            "failure_ratio": rnd(failed / requests, 6) if requests > 0 else None,
            "mean_request_s": _opt(per_ok(m.request_us)),
            "mean_queue_s": _opt(per_ok(m.queue_us)),
            "mean_compute_s": _opt(per_ok(m.compute_us)),
            "mean_batch": rnd(m.inferences.delta() / execs, 3) if execs > 0 else None,
            "quantile": q if raw_q is not None else None,
            "quantile_s": _opt(raw_q / 1e6 if raw_q is not None else None),
            "pending": x.pending_requests,
        }

    def _episode(self, kind: str, subject: Subject, steps: bool = False) -> Episode:
        s = self.settings
        ep = self._episodes.get(
            kind,
            Subject(model=subject.model),
            min_duration_s=0.0 if steps else s.min_duration_s,
            min_samples=COLLAPSE_STEPS if steps else s.min_samples,
            clear_duration_s=s.clear_duration_s,
        )
        if not ep.is_active and ep.subject != subject:
            ep.subject = replace(ep.subject, version=subject.version)
        return ep

    def _judge_traffic(self, m: _Model, ts: float, subject: Subject) -> list[Judgement | None]:
        s = self.settings
        f = m.facts

        def level(
            key: str, value: float, ratio: float, floor: float, bar: float | None = None
        ) -> Level:
            return judge_level(
                value,
                m.baselines[key],
                min_samples=s.baseline_min_samples,
                ratio=ratio,
                k_sigma=s.k_sigma,
                min_increase=floor,
                clear_fraction=s.clear_fraction,
                absolute=bar,
            )

        out: list[Judgement | None] = []
        # latency: the summary's quantile and the mean, each against its own baseline;
        # the SLO applies to the quantile (to the mean only when there is no summary)
        latency: dict[str, Level] = {}
        for key, value in (("quantile", f["quantile_s"]), ("mean", f["mean_request_s"])):
            if value is not None:
                slo_here = key == "quantile" or f["quantile_s"] is None
                bar = s.latency_slo_s if slo_here else None
                latency[key] = level(key, value, s.latency_ratio, s.latency_min_increase_s, bar)
        if latency:
            out.append(self._update(LATENCY, m, ts, subject, latency))
        if f["mean_queue_s"] is not None:
            queue = level("queue", f["mean_queue_s"], s.queue_ratio, s.queue_min_increase_s)
            out.append(self._update(QUEUE, m, ts, subject, {"queue": queue}))
        if f["failure_ratio"] is not None:
            failures = level("failure", f["failure_ratio"], 1.0, s.failure_min_increase)
            out.append(self._update(ERRORS, m, ts, subject, {"failure": failures}))
        return out

    def _update(
        self, kind: str, m: _Model, ts: float, subject: Subject, levels: dict[str, Level]
    ) -> Judgement | None:
        ep = self._episode(kind, subject)
        facts = dict(m.facts)
        judgement = ep.update(
            ts,
            breached=any(v.breached for v in levels.values()),
            recovered=all(v.recovered for v in levels.values()),
            fire=lambda started, now: self._fire(kind, subject, levels, facts, started, now),
            clear_evidence=lambda: {**facts, **_levels_evidence(levels)},
        )
        if not ep.is_active:  # learn only from healthy windows: a spike cannot raise its bar
            for key, level in levels.items():
                m.baselines[key].add(ts, level.value)
        else:
            for key in levels:
                m.baselines[key].expire(ts)
        return judgement

    def _judge_rate(self, m: _Model, x: TritonHealth, subject: Subject) -> Judgement | None:
        """One request-rate step scored by the generic scorer; judged once per step."""
        s = self.settings
        total = (x.success_total or 0.0) + (x.failure_total or 0.0)
        if m.step_ts is None or total < m.step_total or x.ts <= m.step_ts:
            m.step_ts, m.step_total = x.ts, total  # first sample, or the counters reset
            return None
        if x.ts - m.step_ts < s.rate_step_s:
            return None
        rate = (total - m.step_total) / (x.ts - m.step_ts)
        m.step_ts, m.step_total = x.ts, total
        verdict = m.scorer.update(x.ts, rate)
        if verdict is None:
            return None
        m.rate_verdict = verdict
        expected = verdict.expected
        enough = math.isfinite(expected) and expected * s.rate_step_s >= s.min_requests
        low = enough and rate <= (1.0 - s.collapse_min_drop) * expected
        m.low_run = m.low_run + 1 if low else 0
        ep = self._episode(COLLAPSE, subject, steps=True)
        # a collapse is anomalous from its first low steps (the first may straddle the
        # drop): a drop the season explained at its onset stays explained while the
        # recent median catches up with it
        breached = low and verdict.score >= s.collapse_threshold
        breached = breached and (ep.is_active or m.low_run <= COLLAPSE_STEPS)
        # pending: every step must breach (one noisy step as the level's median crosses
        # over is not a collapse); open: hysteresis as for the other measures
        # open: cleared when the rate is back near what was expected before the collapse
        # (not when the recent median has merely caught up with the collapsed rate)
        recovered = not breached
        if ep.is_open:
            before = float(ep.extra.get("expected_rate_per_s", expected))
            recovered = rate > (1.0 - s.clear_fraction * s.collapse_min_drop) * before
        facts = {**m.facts, **_rate_evidence(verdict, s)}
        judgement = ep.update(
            x.ts,
            breached=breached,
            recovered=recovered,
            fire=lambda started, now: self._fire_collapse(subject, facts, started, now),
            clear_evidence=lambda: facts,
        )
        if isinstance(judgement, Finding):
            ep.extra["expected_rate_per_s"] = expected
        return judgement

    # -- findings ---------------------------------------------------------

    def _fire(
        self,
        kind: str,
        subject: Subject,
        levels: dict[str, Level],
        facts: dict[str, Any],
        started: float,
        ts: float,
    ) -> tuple[Severity, str, dict[str, Any]]:
        s = self.settings
        key, level = next((k, v) for k, v in levels.items() if v.breached)
        bar = (
            f"SLO {fmt_s(level.threshold)}"
            if level.rule == "slo"
            else f"{_show(kind, level.threshold)} (baseline median {_show(kind, level.median)})"
        )
        what = {
            "quantile": f"p{(s.quantile or 0) * 100:g} request time",
            "mean": "mean request time",
            "queue": "mean queue wait per request",
            "failure": "failure ratio",
        }[key]
        rate = facts["rate_per_s"]
        summary = (
            f"{subject.model}: {what} {_show(kind, level.value)} over {bar} "
            f"for {ts - started:.0f} s, at {rate or 0:.3g} requests/s"
        )
        severity = Severity.CRITICAL if level.rule == "slo" else Severity.WARNING
        evidence = {
            "measure": key,
            "rule": level.rule,
            **facts,
            **_levels_evidence(levels),
            "slo_s": s.latency_slo_s if kind == LATENCY else None,
            "min_requests": s.min_requests,
            "baseline_window_s": s.baseline_window_s,
            "min_duration_s": s.min_duration_s,
            "sustained_s": rnd(ts - started, 3),
        }
        return severity, summary, evidence

    def _fire_collapse(
        self, subject: Subject, facts: dict[str, Any], started: float, ts: float
    ) -> tuple[Severity, str, dict[str, Any]]:
        summary = (
            f"{subject.model}: request rate {facts['step_rate_per_s']:.3g}/s, expected "
            f"{facts['expected_rate_per_s']:.3g}/s"
            f"{' (seasonal)' if facts['seasonal'] else ''}, for {ts - started:.0f} s"
        )
        evidence = {**facts, "sustained_s": rnd(ts - started, 3)}
        return Severity.WARNING, summary, evidence


def _levels_evidence(levels: dict[str, Level]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, v in levels.items():
        out[f"{key}_value"] = _opt(v.value)
        out[f"{key}_threshold"] = _opt(v.threshold)
        out[f"{key}_clear_level"] = _opt(v.clear_level)
        out[f"{key}_baseline_median"] = _opt(v.median)
        out[f"{key}_baseline_sigma"] = _opt(v.sigma)
    return out


def _rate_evidence(v: Verdict, s: TrafficSettings) -> dict[str, Any]:
    return {
        "step_rate_per_s": rnd(v.value, 4),
        "expected_rate_per_s": _opt(v.expected),
        "rate_spread": _opt(v.spread),
        "score": rnd(v.score, 3),
        "threshold": s.collapse_threshold,
        "min_drop": s.collapse_min_drop,
        "seasonal": v.seasonal,
        "steps": v.samples,
        "rate_step_s": s.rate_step_s,
    }


def _show(kind: str, value: float) -> str:
    if not math.isfinite(value):
        return "n/a"
    return f"{value:.2%}" if kind == ERRORS else fmt_s(value)


def _opt(x: float | None) -> float | None:
    return rnd(x) if x is not None and math.isfinite(x) else None

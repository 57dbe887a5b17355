"""Verification: after a step, canary rounds until they pass or the deadline."""

from __future__ import annotations

from typing import Any

from sentinel.base.clock import Clock
from sentinel.runbook.actions.basic import summarize_canaries
from sentinel.runbook.schema import Verify
from sentinel.vocabulary.ports import CanaryRunner, Facts
from sentinel.vocabulary.samples import CanaryResult


def baseline_p99(facts: Facts | None, model: str, before: float) -> float | None:
    """p99 of good canary latencies recorded before the incident began."""
    if facts is None:
        return None
    lat = sorted(
        c.latency_s
        for c in facts.canaries(model)
        if c.ts < before and c.outcome == "ok" and c.latency_s is not None
    )
    if not lat:
        return None
    return lat[min(len(lat) - 1, int(0.99 * len(lat)))]


def judge_round(
    results: list[CanaryResult], spec: Verify, baseline: float | None
) -> tuple[bool, dict[str, Any]]:
    """Whether one canary round passes the spec, and the numbers that decided it."""
    summary = summarize_canaries(results)
    reasons: list[str] = []
    if not results:
        reasons.append("no canary results")
    elif summary["ok"] < summary["count"]:
        reasons.append(f"outcomes {summary['outcomes']}")
    agreement = summary["agreement_min"]
    if spec.min_agreement is not None and results:
        if agreement is None:
            reasons.append("no agreement measured")
        elif agreement < spec.min_agreement:
            reasons.append(f"agreement {agreement:.4f} < {spec.min_agreement}")
    latency = summary["latency_max_s"]
    if spec.max_p99_ratio is not None and baseline is not None and latency is not None:
        limit = baseline * spec.max_p99_ratio
        summary["latency_limit_s"] = limit
        if latency > limit:
            reasons.append(f"latency {latency * 1000:.1f} ms > {limit * 1000:.1f} ms")
    summary["failed_because"] = reasons
    return not reasons, summary


async def verify(
    spec: Verify,
    *,
    canary: CanaryRunner,
    clock: Clock,
    model: str,
    baseline: float | None,
    interval: float,
) -> tuple[bool, dict[str, Any]]:
    """Canary rounds until ``rounds`` pass in a row (True) or ``within`` runs out (False)."""
    start = clock.monotonic()
    passed = 0
    rounds: list[dict[str, Any]] = []
    while True:
        try:
            results = await canary.check(model)
            ok, summary = judge_round(results, spec, baseline)
        except Exception as exc:  # a canary error is a failed round, never a crash
            ok, summary = False, {"failed_because": [f"canary error: {exc}"]}
        summary["t_s"] = round(clock.monotonic() - start, 3)
        rounds.append(summary)
        passed = passed + 1 if ok else 0
        evidence = {"rounds": rounds[-5:], "baseline_p99_s": baseline, "spec": spec.model_dump()}
        if passed >= spec.rounds:
            return True, evidence
        if clock.monotonic() - start >= spec.within:
            return False, evidence
        await clock.sleep(min(interval, max(0.0, spec.within - (clock.monotonic() - start))))

"""Verification: after a step, canary rounds until they pass or the deadline.

Latency is judged so that host noise (a busy node is exactly when playbooks run)
neither fails a real fix nor passes a fault that is still there:

* the baseline p99 drops cold-start and stall outliers while it has too few samples
  to *have* a 99th percentile (:func:`baseline_p99`);
* a round's latency is the median per batch size over the last ``LATENCY_POOL_ROUNDS``
  rounds, not the single slowest canary: a fault slows every request, noise does not;
* the bar widens by the spread those canaries show themselves (``NOISE_SIGMAS``
  robust standard deviations), so a shift smaller than the noise is not evidence;
* failed rounds are retried until ``within`` runs out.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from sentinel.base.clock import Clock
from sentinel.runbook.actions.basic import summarize_canaries
from sentinel.runbook.schema import Verify
from sentinel.vocabulary.ports import CanaryRunner, Facts
from sentinel.vocabulary.samples import CanaryResult

LATENCY_POOL_ROUNDS = 3
"""Rounds whose canary latencies are judged together (per batch size, by their median)."""
NOISE_SIGMAS = 3.0
"""How many robust standard deviations of the canaries' own spread the bar allows."""
P99_MIN_SAMPLES = 100
"""Below this, a "p99" is just the maximum, so outliers are left out first."""
_MAD_SIGMA = 1.4826  # median absolute deviation -> standard deviation, for normal noise


def _mad_sigma(values: Sequence[float]) -> float:
    """A standard deviation estimated from the median absolute deviation (robust);
    0 below three values, too few to tell noise from a shift."""
    if len(values) < 3:
        return 0.0
    mid = statistics.median(values)
    return _MAD_SIGMA * statistics.median(abs(v - mid) for v in values)


def robust_p99(latencies: Sequence[float]) -> float | None:
    """The p99 of ``latencies``; with fewer than P99_MIN_SAMPLES, samples over 3x the
    median (and over 5 robust sigmas above it) are cold starts or stalls and left out."""
    lat = sorted(latencies)
    if not lat:
        return None
    if len(lat) < P99_MIN_SAMPLES:
        mid = statistics.median(lat)
        cutoff = mid + max(2.0 * mid, 5.0 * _mad_sigma(lat))
        lat = [v for v in lat if v <= cutoff]
    return lat[min(len(lat) - 1, int(0.99 * len(lat)))]


def baseline_p99(facts: Facts | None, model: str, before: float) -> float | None:
    """p99 of good canary latencies recorded before the incident began (see robust_p99)."""
    if facts is None:
        return None
    return robust_p99(
        [
            c.latency_s
            for c in facts.canaries(model)
            if c.ts < before and c.outcome == "ok" and c.latency_s is not None
        ]
    )


def pooled_latency(history: Sequence[Sequence[CanaryResult]]) -> tuple[float, float] | None:
    """(latency, noise) over rounds of canaries: the slowest batch size's median latency and
    the largest robust sigma among batch sizes; None when no canary answered."""
    by_batch: dict[int, list[float]] = {}
    for results in history:
        for r in results:
            if r.outcome == "ok" and r.latency_s is not None:
                by_batch.setdefault(r.batch_size, []).append(r.latency_s)
    if not by_batch:
        return None
    latency = max(statistics.median(v) for v in by_batch.values())
    noise = max(_mad_sigma(v) for v in by_batch.values())
    return latency, noise


def judge_round(
    results: list[CanaryResult],
    spec: Verify,
    baseline: float | None,
    earlier: Sequence[Sequence[CanaryResult]] = (),
) -> tuple[bool, dict[str, Any]]:
    """Whether one canary round passes the spec, and the numbers that decided it.

    ``earlier`` are the rounds before it in this verification (latency is pooled with the
    last LATENCY_POOL_ROUNDS - 1 of them)."""
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
    pooled = pooled_latency([*earlier[-(LATENCY_POOL_ROUNDS - 1) :], results])
    if spec.max_p99_ratio is not None and baseline is not None and pooled is not None:
        latency, noise = pooled
        limit = max(baseline * spec.max_p99_ratio, baseline + NOISE_SIGMAS * noise)
        summary.update(latency_median_s=latency, latency_noise_s=noise, latency_limit_s=limit)
        if latency > limit:
            reasons.append(f"median latency {latency * 1000:.1f} ms > {limit * 1000:.1f} ms")
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
    history: list[list[CanaryResult]] = []
    while True:
        try:
            results = await canary.check(model)
            ok, summary = judge_round(results, spec, baseline, history)
            history.append(results)
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

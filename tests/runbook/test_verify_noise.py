"""Latency verification on a noisy host: stalled canaries and cold starts neither fail a
real fix nor hide a fault that is still there."""

from __future__ import annotations

from collections.abc import Callable

from runbook_standins import FixedFacts, drive

from sentinel.base.clock import FakeClock
from sentinel.runbook.schema import Verify
from sentinel.runbook.verify import baseline_p99, verify
from sentinel.vocabulary.samples import Agreement, CanaryResult

BASELINE = 0.010
SPEC = Verify(within=120, min_agreement=0.99, max_p99_ratio=1.2, rounds=2)


class ScriptedCanaryStandIn:
    """STAND-IN CanaryRunner: round ``i`` answers batch 1 and 8 with ``latency(i, batch)``."""

    def __init__(self, latency: Callable[[int, int], float]) -> None:
        self.latency = latency
        self.rounds = 0

    async def check(self, model: str, version: str = "") -> list[CanaryResult]:
        i, self.rounds = self.rounds, self.rounds + 1
        return [
            CanaryResult(
                ts=float(i),
                model=model,
                version="1",
                batch_size=b,
                outcome="ok",
                latency_s=self.latency(i, b),
                agreement=Agreement(max_abs_error=0.0, cosine=1.0, top1=1.0),
            )
            for b in (1, 8)
        ]


async def _verify(latency: Callable[[int, int], float]) -> tuple[bool, int, str]:
    """(verified, rounds run, why the last round failed)."""
    clock = FakeClock()
    canary = ScriptedCanaryStandIn(latency)
    ok, evidence = await drive(
        clock,
        verify(SPEC, canary=canary, clock=clock, model="digits", baseline=BASELINE, interval=5),
    )
    return ok, canary.rounds, " ".join(evidence["rounds"][-1]["failed_because"])


def _stalls(i: int, batch: int) -> float:
    """A fixed model on a busy host: each round, one canary is stalled 3x by the scheduler
    (batch 1 on rounds 0, 3, 6...; batch 8 on rounds 1, 4, 7...)."""
    stalled = i % 3 == (0 if batch == 1 else 1)
    return BASELINE * 3 if stalled else BASELINE


async def test_a_fix_verifies_although_every_round_has_a_stalled_canary() -> None:
    """Per-batch medians over recent rounds see through one stalled canary per round."""
    ok, rounds, _ = await _verify(_stalls)
    assert (True, 4) == (ok, rounds)


async def test_a_fault_still_there_fails_despite_the_noise() -> None:
    """Every canary 150 ms slower (the fault) fails verification, stalls or not."""
    ok, _, why = await _verify(lambda i, b: _stalls(i, b) + 0.150)
    assert (False, True) == (ok, why.startswith("median latency"))


async def test_a_fault_on_one_batch_size_is_not_averaged_away() -> None:
    """Batch 8 slow, batch 1 fine: the slow batch size's median decides, so it fails."""
    ok, _, why = await _verify(lambda i, b: BASELINE + (0.150 if b == 8 else 0.0))
    assert (False, True) == (ok, why.startswith("median latency"))


async def test_a_modest_steady_slowdown_still_fails() -> None:
    """1.5x the baseline on every canary, with no noise, stays a failure (no blanket slack)."""
    ok, _, why = await _verify(lambda i, b: BASELINE * 1.5)
    assert (False, True) == (ok, why.startswith("median latency"))


def _canaries(latencies: list[float]) -> FixedFacts:
    facts = FixedFacts()
    facts.canary_results = [
        CanaryResult(float(i), "digits", "1", 1, "ok", latency_s=v) for i, v in enumerate(latencies)
    ]
    return facts


def test_baseline_from_few_samples_leaves_out_a_cold_start() -> None:
    """Six baseline canaries, the first a cold start: the p99 is the slowest warm one."""
    facts = _canaries([0.160, 0.021, 0.026, 0.019, 0.024, 0.022])
    assert 0.026 == baseline_p99(facts, "digits", before=100.0)


def test_baseline_from_many_samples_is_the_plain_p99() -> None:
    """With enough samples the p99 is an honest tail: nothing is left out."""
    latencies = [0.020] * 196 + [0.090] * 4
    assert 0.090 == baseline_p99(_canaries(latencies), "digits", before=1000.0)

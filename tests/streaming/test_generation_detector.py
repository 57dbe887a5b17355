"""The generation detector on streams of samples: TTFT spikes, stalls, drift, and replay."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from sentinel.cli import main
from sentinel.detect.generation import DRIFT, STALLED, TTFT, GenerationDetector
from sentinel.detect.settings import GenerationSettings
from sentinel.detect.suite import DetectorSuite
from sentinel.vocabulary.findings import Cleared, Finding, Judgement, Severity
from sentinel.vocabulary.samples import StreamResult, from_record, to_record

INTERVAL_S = 10.0


def healthy(ts: float, ttft_s: float = 0.004) -> StreamResult:
    """A stand-in for a completed stream that matches its golden text."""
    return StreamResult(
        ts=ts,
        model="charlm",
        version="1",
        prompt=0,
        outcome="ok",
        ttft_s=ttft_s,
        tokens=48,
        duration_s=0.15,
        itl_s=0.003,
        max_gap_s=0.005,
        tokens_per_s=330.0,
        completed=True,
        exact_match=True,
        edit_distance=0.0,
    )


def stalled(ts: float) -> StreamResult:
    """A stand-in for a stream the canary gave up on after five tokens."""
    return StreamResult(
        ts=ts,
        model="charlm",
        version="1",
        prompt=0,
        outcome="timeout",
        ttft_s=0.004,
        tokens=5,
        max_gap_s=2.0,
        stalled=True,
        error="stream charlm: no token for 2 s after 5",
    )


def drifted(ts: float, distance: float) -> StreamResult:
    """A stand-in for a completed stream whose text is ``distance`` away from the golden."""
    return dataclasses.replace(healthy(ts), exact_match=False, edit_distance=distance)


def feed(detector: GenerationDetector, samples: list[StreamResult]) -> list[Judgement]:
    out: list[Judgement] = []
    for sample in samples:
        out.extend(detector.observe(sample))
    return out


def findings(judgements: list[Judgement], kind: str) -> list[Finding]:
    return [j for j in judgements if isinstance(j, Finding) and j.kind == kind]


def test_slow_first_tokens_fire_ttft_spike_against_the_baseline() -> None:
    """Once the baseline is learnt, a lasting rise in time to first token is a ttft_spike."""
    detector = GenerationDetector()
    base = [healthy(i * INTERVAL_S, 0.004 + 0.0002 * (i % 3)) for i in range(12)]
    assert [] == feed(detector, base)
    slow = [healthy((12 + i) * INTERVAL_S, 0.3) for i in range(6)]
    fired = findings(feed(detector, slow), TTFT)
    assert 1 == len(fired)
    assert Severity.WARNING == fired[0].severity
    assert "baseline" == fired[0].evidence["rule"]
    assert 0.3 == fired[0].evidence["ttft_s"]


def test_ttft_over_the_slo_is_critical_without_a_baseline() -> None:
    """With an SLO set, slow first tokens are critical even before a baseline exists."""
    detector = GenerationDetector(GenerationSettings(ttft_slo_s=0.2, ttft_min_duration_s=0))
    fired = findings(feed(detector, [healthy(i * INTERVAL_S, 0.5) for i in range(3)]), TTFT)
    assert [Severity.CRITICAL] == [f.severity for f in fired]


def test_one_stall_is_suspicious_two_in_a_row_are_a_finding_and_completions_clear_it() -> None:
    """stream_stalled needs two stalls in a row; two completed streams clear it."""
    detector = GenerationDetector()
    assert [] == feed(detector, [healthy(0), stalled(10)])
    assert detector.suspects("charlm")
    assert [] == feed(detector, [healthy(20)])
    judgements = feed(detector, [stalled(30), stalled(40)])
    fired = findings(judgements, STALLED)
    assert 1 == len(fired)
    assert 5 == fired[0].evidence["tokens"]
    assert "after 5 token(s)" in fired[0].summary
    cleared = feed(detector, [healthy(50), healthy(60)])
    assert [STALLED] == [c.kind for c in cleared if isinstance(c, Cleared)]


def test_garbage_text_is_critical_drift_and_a_small_drift_a_warning() -> None:
    """Edit distance over the bar is generation_drift: critical from 0.5, else a warning."""
    garbage = GenerationDetector()
    fired = findings(feed(garbage, [drifted(i * INTERVAL_S, 0.8) for i in range(3)]), DRIFT)
    assert [Severity.CRITICAL] == [f.severity for f in fired]
    small = GenerationDetector()
    fired = findings(feed(small, [drifted(i * INTERVAL_S, 0.3) for i in range(3)]), DRIFT)
    assert [Severity.WARNING] == [f.severity for f in fired]
    assert 0.3 == fired[0].evidence["mean_edit_distance"]


def test_exact_share_rule_catches_a_drift_under_the_distance_bar() -> None:
    """With min_exact_share set, rare small changes (a quantized plan) are drift too."""
    samples = [healthy(0), drifted(10, 0.05), healthy(20), drifted(30, 0.05)]
    assert [] == findings(feed(GenerationDetector(), samples), DRIFT)
    strict = GenerationDetector(GenerationSettings(min_exact_share=0.9))
    fired = findings(feed(strict, samples), DRIFT)
    assert 1 == len(fired)
    assert 0.666667 == fired[0].evidence["exact_share"]


def test_stream_results_record_and_replay_to_the_same_findings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A recording of stream samples round-trips and `sentinel replay` finds the stall."""
    samples = [healthy(0), stalled(10), stalled(20), healthy(30)]
    assert samples == [from_record(json.loads(json.dumps(to_record(s)))) for s in samples]
    recording = tmp_path / "streams.jsonl"
    recording.write_text("".join(json.dumps(to_record(s)) + "\n" for s in samples))
    suite = DetectorSuite()
    assert [STALLED] == [j.kind for s in samples for j in suite.observe(s)]
    assert 0 == main(["replay", str(recording), "--json"])
    replayed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [STALLED] == [r["kind"] for r in replayed]


def test_a_stream_without_any_token_is_not_a_stall() -> None:
    """Timeouts before the first token (a frozen server) are left to the health detectors."""
    frozen = [
        dataclasses.replace(stalled(ts), stalled=False, tokens=0, ttft_s=None) for ts in (0, 10, 20)
    ]
    assert [] == feed(GenerationDetector(), frozen)

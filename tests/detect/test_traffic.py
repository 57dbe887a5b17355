"""The traffic detector on synthetic Triton counters (pure, time from the samples)."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sentinel.cli import main
from sentinel.detect.settings import DetectorSettings, TrafficSettings
from sentinel.detect.suite import DetectorSuite
from sentinel.detect.traffic import TrafficDetector
from sentinel.testing.builders import T0
from sentinel.vocabulary.findings import Cleared, Finding, Judgement, Severity
from sentinel.vocabulary.samples import TritonHealth, from_record, to_record


@dataclass
class Users:
    """Synthetic users of one model: Triton's cumulative counters as their requests add up."""

    rate_per_s: float = 20.0
    request_s: float = 0.010
    queue_s: float = 0.001
    failure_ratio: float = 0.0
    p99_s: float | None = 0.015
    noise: float = 0.05
    ts: float = T0
    seed: int = 7
    totals: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def run(self, seconds: float, step_s: float = 2.0) -> Iterator[TritonHealth]:
        """Samples every ``step_s`` for ``seconds`` at the current behaviour."""
        for _ in range(round(seconds / step_s)):
            yield self.step(step_s)

    def step(self, step_s: float) -> TritonHealth:
        self.ts += step_s
        jitter = 1.0 + self.rng.uniform(-self.noise, self.noise)
        n = self.rate_per_s * step_s * jitter
        failed = n * self.failure_ratio
        ok = n - failed
        t = self.totals
        for key, add in (
            ("ok", ok),
            ("failed", failed),
            ("request", ok * self.request_s * 1e6 * jitter),
            ("queue", ok * self.queue_s * 1e6 * jitter),
            ("infer", ok * (self.request_s - self.queue_s) * 1e6),
        ):
            t[key] = t.get(key, 0.0) + add
        return TritonHealth(
            ts=self.ts,
            live=True,
            ready=True,
            model="digits",
            model_ready=True,
            model_versions=("1",),
            success_total=t["ok"],
            failure_total=t["failed"],
            request_duration_us_total=t["request"],
            queue_duration_us_total=t["queue"],
            compute_infer_us_total=t["infer"],
            inference_count_total=t["ok"] + t["failed"],
            exec_count_total=t["ok"] + t["failed"],
            request_quantiles_us=(
                {} if self.p99_s is None else {"0.5": 9000.0, "0.99": self.p99_s * 1e6 * jitter}
            ),
        )


def feed(detector: TrafficDetector, samples: Iterator[TritonHealth]) -> list[Judgement]:
    out: list[Judgement] = []
    for s in samples:
        out += detector.observe(s)
    return out


def findings(judgements: list[Judgement], kind: str | None = None) -> list[Finding]:
    return [j for j in judgements if isinstance(j, Finding) and kind in (None, j.kind)]


def test_steady_traffic_raises_nothing() -> None:
    """An hour of steady traffic with noise raises no finding at the defaults."""
    users = Users()
    assert [] == feed(TrafficDetector(), users.run(3600))


def test_p99_spike_under_traffic_is_a_traffic_latency_spike_with_evidence() -> None:
    """p99 and mean 5x their baseline fire once, after min_duration_s, with the numbers."""
    users = Users()
    d = TrafficDetector()
    feed(d, users.run(600))
    onset = users.ts
    users.request_s, users.p99_s = 0.050, 0.075
    out = feed(d, users.run(60))
    [f] = findings(out)
    assert "traffic_latency_spike" == f.kind
    assert Severity.WARNING == f.severity
    assert ("digits", "1") == (f.subject.model, f.subject.version)
    assert onset < f.detected_at <= onset + 10.0 + 3 * 2.0 + 2.0
    ev = f.evidence
    assert "quantile" == ev["measure"]
    assert "baseline" == ev["rule"]
    assert ev["quantile_value"] > ev["quantile_threshold"] > ev["quantile_baseline_median"]
    assert 0.99 == ev["quantile"]
    assert ev["requests"] >= 20
    assert ev["mean_request_s"] > 0.03
    assert 1.0 == ev["mean_batch"]


def test_latency_spike_clears_after_recovery_held() -> None:
    """Back to normal for clear_duration_s closes the finding."""
    users = Users()
    d = TrafficDetector()
    feed(d, users.run(600))
    users.request_s, users.p99_s = 0.050, 0.075
    feed(d, users.run(60))
    users.request_s, users.p99_s = 0.010, 0.015
    out = feed(d, users.run(120))
    assert ["traffic_latency_spike"] == [j.kind for j in out if isinstance(j, Cleared)]


def test_mean_request_time_is_judged_without_a_summary() -> None:
    """A server without summaries: the mean request time per request makes the finding."""
    users = Users(p99_s=None)
    d = TrafficDetector()
    feed(d, users.run(600))
    users.request_s = 0.060
    [f] = findings(feed(d, users.run(60)))
    assert ("traffic_latency_spike", "mean") == (f.kind, f.evidence["measure"])
    assert f.evidence["quantile_s"] is None


def test_slo_breach_is_critical_before_the_baseline_is_learnt() -> None:
    """The absolute SLO needs no baseline; a breach of it is critical."""
    users = Users(p99_s=0.300)
    d = TrafficDetector(TrafficSettings(latency_slo_s=0.25))
    [f] = findings(feed(d, users.run(60)))
    assert (Severity.CRITICAL, "slo") == (f.severity, f.evidence["rule"])


def test_no_traffic_no_verdict() -> None:
    """Below min_requests per window nothing is judged, however slow the few requests."""
    users = Users(rate_per_s=0.5)
    d = TrafficDetector(TrafficSettings(latency_slo_s=0.05, baseline_min_samples=3))
    feed(d, users.run(300))
    users.request_s, users.p99_s = 1.0, 2.0
    assert [] == feed(d, users.run(300))


def test_queue_wait_rising_is_a_queue_buildup() -> None:
    """Queue wait per request 20x its baseline fires queue_buildup with queue evidence."""
    users = Users()
    d = TrafficDetector()
    feed(d, users.run(600))
    users.queue_s = 0.020
    [f] = findings(feed(d, users.run(60)), "queue_buildup")
    assert f.evidence["queue_value"] > f.evidence["queue_threshold"]
    assert f.evidence["mean_queue_s"] > 0.015


def test_failure_ratio_rise_is_an_error_rate_rise() -> None:
    """Failures from none to 10 % of requests fire error_rate_rise."""
    users = Users()
    d = TrafficDetector()
    feed(d, users.run(600))
    users.failure_ratio = 0.10
    [f] = findings(feed(d, users.run(60)))
    assert "error_rate_rise" == f.kind
    assert 0.08 < f.evidence["failure_ratio"] < 0.12
    assert "failure ratio 10" in f.summary


def test_traffic_stopping_after_a_steady_baseline_is_a_throughput_collapse() -> None:
    """Rate to zero after 20 steady steps: a collapse within two steps, with the expected rate."""
    users = Users()
    d = TrafficDetector()
    feed(d, users.run(30 * 25))
    onset = users.ts
    users.rate_per_s = 0.0
    [f] = findings(feed(d, users.run(120)))
    assert "throughput_collapse" == f.kind
    assert f.detected_at - onset <= 2 * 30.0 + 2.0
    assert 0.0 == f.evidence["step_rate_per_s"]
    assert 19.0 < f.evidence["expected_rate_per_s"] < 21.0
    assert not f.evidence["seasonal"]


def test_traffic_stopping_before_a_baseline_is_no_collapse() -> None:
    """No baseline of the rate yet (fewer steps than collapse_min_samples): no finding."""
    users = Users()
    d = TrafficDetector()
    feed(d, users.run(30 * 10))
    users.rate_per_s = 0.0
    assert [] == feed(d, users.run(600))


def test_a_halving_of_a_small_rate_is_no_collapse() -> None:
    """A rate too small for min_requests per step is never a collapse."""
    users = Users(rate_per_s=0.5)
    d = TrafficDetector()
    feed(d, users.run(30 * 30))
    users.rate_per_s = 0.0
    assert [] == feed(d, users.run(600))


def test_nightly_drop_seen_the_day_before_is_no_collapse() -> None:
    """With a day of history the nightly drop is expected (seasonal); a new daytime drop fires."""
    users = Users(noise=0.1)
    d = TrafficDetector(TrafficSettings(rate_step_s=60.0, seasonal_periods_s=[86400.0]))

    def day(drop_at_noon: bool) -> list[Judgement]:
        out: list[Judgement] = []
        for minute in range(1440):
            hour = minute / 60
            night = hour < 6 or hour >= 22
            noon = drop_at_noon and 12 <= hour < 12.5
            users.rate_per_s = 0.0 if noon else 2.0 if night else 20.0
            out += d.observe(users.step(60.0))
        return out

    day(False)
    second = findings(day(True), "throughput_collapse")
    assert 1 == len(second)
    assert 12 * 3600 <= (second[0].started_at - T0) % 86400 < 12.5 * 3600


def test_suite_runs_traffic_by_default_and_routes_health_samples() -> None:
    """The traffic detector is enabled by default and fed Triton health samples."""
    suite = DetectorSuite(DetectorSettings(traffic=TrafficSettings(latency_slo_s=0.1)))
    users = Users(p99_s=0.5)
    out: list[Judgement] = []
    for s in users.run(60):
        out += suite.observe(s)
    assert ["traffic_latency_spike"] == [f.kind for f in findings(out)]


def test_new_sample_fields_round_trip_and_old_records_load() -> None:
    """Recordings keep the new counters and quantiles; a record without them still loads."""
    sample = Users().step(2.0)
    assert sample == from_record(to_record(sample))
    old = to_record(sample)
    for key in (
        "inference_count_total",
        "exec_count_total",
        "compute_input_us_total",
        "compute_infer_us_total",
        "compute_output_us_total",
        "request_quantiles_us",
    ):
        del old[key]
    loaded = from_record(old)
    assert isinstance(loaded, TritonHealth)
    assert ({}, None) == (loaded.request_quantiles_us, loaded.exec_count_total)


def test_collapse_stays_open_until_traffic_returns() -> None:
    """A collapse is not cleared by the recent median catching up; returning traffic clears it."""
    users = Users()
    d = TrafficDetector()
    feed(d, users.run(30 * 25))
    users.rate_per_s = 0.0
    during = feed(d, users.run(1800))
    assert ["throughput_collapse"] == [f.kind for f in findings(during)]
    assert [] == [j for j in during if isinstance(j, Cleared)]
    users.rate_per_s = 20.0
    after = feed(d, users.run(300))
    assert ["throughput_collapse"] == [j.kind for j in after if isinstance(j, Cleared)]


def test_replay_of_a_csv_with_the_traffic_detector_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A one-value CSV cannot feed counters: exit 2 with why, not a crash."""
    csv = tmp_path / "x.csv"
    csv.write_text("timestamp,value\n1700000000,1\n")
    assert 2 == main(["replay", str(csv), "--detector", "traffic"])
    assert "recording, not a CSV" in capsys.readouterr().err


def test_replay_of_a_recording_runs_the_traffic_detector(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A recording of health samples replays through the traffic detector."""
    users = Users(p99_s=0.5)
    path = tmp_path / "rec.jsonl"
    path.write_text("".join(json.dumps(to_record(s)) + "\n" for s in users.run(60)))
    assert 0 == main(["replay", str(path), "--detector", "traffic", "--set", "latency_slo_s=0.1"])
    assert "traffic_latency_spike" in capsys.readouterr().out

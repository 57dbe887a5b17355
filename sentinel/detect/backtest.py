"""Run detectors over recorded samples and score them against labelled faults.

Pure functions: `sentinel replay` prints :func:`run`'s episodes; the benchmark and the
tests score them with :func:`score`.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from sentinel.detect.settings import DetectorSettings
from sentinel.vocabulary.findings import Cleared, Finding, Judgement
from sentinel.vocabulary.samples import Sample


class Judge(Protocol):
    def observe(self, sample: Sample) -> list[Judgement]: ...

    def tick(self, now: float) -> list[Judgement]: ...


@dataclass
class Episode:
    """One finding and, if it closed, when and why."""

    finding: Finding
    cleared_at: float | None = None
    clear_evidence: dict[str, Any] = field(default_factory=dict)


class _Pairing:
    """Findings in order, each paired with the clear that closed it."""

    def __init__(self) -> None:
        self.episodes: list[Episode] = []
        self._open: dict[tuple[str, str], Episode] = {}

    def take(self, judgements: list[Judgement]) -> None:
        for j in judgements:
            key = (j.kind, j.subject.key())
            if isinstance(j, Finding):
                ep = Episode(j)
                self.episodes.append(ep)
                self._open[key] = ep
            elif isinstance(j, Cleared) and key in self._open:
                ep = self._open.pop(key)
                ep.cleared_at = j.cleared_at
                ep.clear_evidence = dict(j.evidence)


MAX_TICKS_PER_GAP = 1000
"""Ticks run in one gap between samples; past them (hours of silence at 10 s) the replay
jumps to the last tick before the next sample, so a gap of years costs no more."""


def run(judge: Judge, samples: Iterable[Sample], tick_s: float = 10.0) -> list[Episode]:
    """Findings of a sample stream in order, paired with their clears.

    ``tick`` is called whenever sample time passes a multiple of ``tick_s``, as the
    daemon would, so quiet-period clears happen during a replay too. Work per sample is
    bounded (:data:`MAX_TICKS_PER_GAP`); a non-finite sample time is a ValueError.
    """
    if not (math.isfinite(tick_s) and tick_s > 0):
        raise ValueError(f"tick_s must be a positive number, not {tick_s!r}")
    pairing = _Pairing()
    take = pairing.take
    next_tick: float | None = None

    for sample in samples:
        if not math.isfinite(sample.ts):
            raise ValueError(f"sample time is not finite: {sample.ts!r}")
        if next_tick is None:
            next_tick = sample.ts + tick_s
        ticks = 0
        while sample.ts >= next_tick:
            if ticks == MAX_TICKS_PER_GAP:
                # whatever waiting clears has cleared: skip to the last tick before ts
                next_tick += math.floor((sample.ts - next_tick) / tick_s) * tick_s
            take(judge.tick(next_tick))
            ticks += 1
            after = next_tick + tick_s
            next_tick = after if after > next_tick else math.nextafter(next_tick, math.inf)
            if ticks > MAX_TICKS_PER_GAP:
                next_tick = max(next_tick, math.nextafter(sample.ts, math.inf))
        take(judge.observe(sample))
    return pairing.episodes


class ValueJudge(Protocol):
    """A detector of one bare numeric series (e.g. the generic metric detector)."""

    def update(self, ts: float, value: float) -> list[Judgement]: ...


def run_values(judge: ValueJudge, rows: Iterable[tuple[float, float]]) -> list[Episode]:
    """Findings of a (timestamp, value) series in order, paired with their clears."""
    pairing = _Pairing()
    for ts, value in rows:
        pairing.take(judge.update(ts, value))
    return pairing.episodes


@dataclass(frozen=True)
class Fault:
    """A labelled fault: findings of ``kinds`` between ``start`` and ``end`` are true;
    detection delay counts from ``due`` (when the fault becomes detectable by definition)."""

    kinds: tuple[str, ...]
    start: float
    due: float
    end: float


@dataclass
class Score:
    faults: int = 0
    found: int = 0
    findings: int = 0
    true_findings: int = 0
    delays: list[float] = field(default_factory=list)
    missed: list[Fault] = field(default_factory=list)
    false: list[Finding] = field(default_factory=list)

    def add(self, other: Score) -> None:
        self.faults += other.faults
        self.found += other.found
        self.findings += other.findings
        self.true_findings += other.true_findings
        self.delays += other.delays
        self.missed += other.missed
        self.false += other.false

    @property
    def precision(self) -> float:
        return self.true_findings / self.findings if self.findings else 1.0

    @property
    def recall(self) -> float:
        return self.found / self.faults if self.faults else 1.0

    @property
    def median_delay(self) -> float | None:
        return statistics.median(self.delays) if self.delays else None


def score(episodes: list[Episode], faults: list[Fault], grace_s: float = 300.0) -> Score:
    """Match findings to faults: a finding is true when its kind is one of a fault's and it
    was detected between the fault's start and ``grace_s`` after its end."""
    result = Score(faults=len(faults), findings=len(episodes))
    first: dict[int, float] = {}
    for ep in episodes:
        f = ep.finding
        hit = next(
            (
                i
                for i, fault in enumerate(faults)
                if f.kind in fault.kinds and fault.start <= f.detected_at <= fault.end + grace_s
            ),
            None,
        )
        if hit is None:
            result.false.append(f)
            continue
        result.true_findings += 1
        first[hit] = min(first.get(hit, f.detected_at), f.detected_at)
    for i, fault in enumerate(faults):
        if i in first:
            result.found += 1
            result.delays.append(first[i] - fault.due)
        else:
            result.missed.append(fault)
    return result


def allowed_delay(kind: str, interval_s: float, settings: DetectorSettings) -> float:
    """The detection-delay target of a fault of ``kind``: the detector's minimum duration
    (its sustain setting) plus 3 samples at ``interval_s``."""
    s = settings
    minimum = {
        "latency_spike": s.latency.min_duration_s,
        "gpu_oom": s.memory.high_min_duration_s,
        "gpu_oom_predicted": s.memory.predict_min_duration_s,
        "thermal_throttle": (s.thermal.min_samples - 1) * interval_s,
        "power_brake": (s.thermal.min_samples - 1) * interval_s,
        "accuracy_drift": s.accuracy.min_duration_s,
        "error_burst": s.errors.min_duration_s,
        "server_unhealthy": (s.errors.unhealthy_samples - 1) * 2.0,
        "model_not_ready": (s.errors.unhealthy_samples - 1) * 2.0,
        "gpu_lost": 0.0,
        "xid_hardware": 0.0,
        "backlog": s.backlog.min_duration_s,
    }[kind]
    return minimum + 3 * interval_s

"""The labelled trace suite: documented fault models on realistically noisy signals.

Every trace is generated from a seed, so the suite is deterministic. Canaries come at the
shipped ``CanarySettings`` interval (2 s) with its rechecks, health at the shipped
``TritonSettings.health_interval_s`` (1 s). Fault models:

* latency (canaries): median 20 ms with a +-20 % diurnal swing, log-normal jitter
  (sigma 0.15), GC-pause outliers (1 sample in 180 multiplied by 4..12, pairs happen).
  Faults: steps x2.5 and x3 (10 min), a burst x6 (2 min), a ramp 1x -> 6x over 10 min
  (due when it reaches 2.5x).
* memory (NVML every 5 s, used fraction): 0.40 plus noise (sigma 0.0005), model loads and
  unloads of 5..15 % ramping over 20 s every ~8 h, allocator bumps of +2 % for 10 min
  every ~2 h. Faults: a jump to 97 % for 5 min (``gpu_oom``); leaks to exhaustion in
  30 min, 2 h, 6 h and 24 h (``gpu_oom_predicted``, or ``gpu_oom`` once at 95 %; due when
  the true line reaches 100 % within the 1 h horizon, and not before one 300 s trend window
  of growth exists, or when it reaches 95 %, whichever is first).
* thermal (NVML every 2 s): 55 + 20 x load degrees (noise sigma 0.7), SwPowerCap at high
  load and GpuIdle at low load (both normal). Faults: a heat episode (5 min ramp to 88 C,
  then Sw+HwThermalSlowdown for 3 min, clocks at 60 %), HwSlowdown for 2 min, HW power
  brake for 1 min (clocks at 30 %).
* accuracy (canaries, 64 rows): top-1 agreement Binomial(64, 0.985)/64, cosine
  0.995. Faults: a deployment (version 2) dropping to 0.80 (sudden), a sudden drop to
  0.90 without a version change, a slide from 0.985 to 0.75 over 2 h (due when it
  crosses 0.935, the baseline minus max_drop).
* errors (canaries and health): 0.3 % timeouts. Faults: 100 % and 70 %
  error bursts of 3 min, server not ready for 1 min, model unloaded for 1 min, GPU lost,
  a hardware Xid.
* backlog (Triton health): pending ~ Poisson(3 x load), queue share 0.1..0.2.
  Fault: pending ~ Poisson(30) and queue share 0.7 for 5 min.

``python bench/traces.py --write tests/data/traces`` writes the compact suite (CSV for
single-value traces, JSONL recordings otherwise, and ``labels.json``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from sentinel.detect.series import SAMPLE_FOR, SERIES_GPU, SERIES_MODEL
from sentinel.detect.settings import DetectorSettings
from sentinel.detect.suite import build_detector
from sentinel.probes.settings import CanarySettings, TritonSettings
from sentinel.vocabulary.samples import (
    Agreement,
    CanaryResult,
    GpuEvent,
    GpuSample,
    Sample,
    TritonHealth,
    to_record,
)

T0 = 1_763_000_000.0
"""2025-11-13T02:13:20Z; traces start here."""
DAY = 86400.0
Rng = np.random.Generator


@dataclass(frozen=True)
class Label:
    """One injected fault: findings of these kinds from ``start`` to ``end`` are true."""

    kinds: tuple[str, ...]
    start: float
    due: float
    """When the fault is detectable by definition; detection delay is measured from here."""
    end: float
    note: str = ""


@dataclass
class Trace:
    name: str
    detector: str
    interval_s: float
    labels: list[Label]
    series: list[tuple[float, float]] | None = None
    """(ts, value) when the trace is a single-value series (written as CSV)."""
    records: list[Sample] = field(default_factory=list)

    @property
    def samples(self) -> Iterator[Sample]:
        if self.series is not None:
            make = SAMPLE_FOR[self.detector]
            for ts, v in self.series:
                yield make(ts, v)
        else:
            yield from self.records

    @property
    def span_s(self) -> float:
        if self.series is not None:
            return self.series[-1][0] - self.series[0][0]
        return self.records[-1].ts - self.records[0].ts


def _times(start: float, duration: float, interval: float) -> np.ndarray:
    return start + np.arange(0.0, duration, interval)


def _diurnal(ts: np.ndarray) -> np.ndarray:
    """Load 0.3..1.0 peaking mid-afternoon UTC."""
    return 0.65 + 0.35 * np.sin(2 * math.pi * ((ts - T0) / DAY - 0.35))


CANARY_S: float = CanarySettings.model_fields["interval_s"].default
RECHECK_S: float = CanarySettings.model_fields["recheck_interval_s"].default
MAX_RECHECKS: int = CanarySettings.model_fields["max_rechecks"].default
HEALTH_S: float = TritonSettings.model_fields["health_interval_s"].default


def canary_schedule(
    detector: str, start: float, end: float, interval: float, draw: Callable[[float], Sample]
) -> list[Sample]:
    """Canaries at the times sentinel's probe takes them: every ``interval``, and rechecks
    (the CanarySettings defaults) while the detector, on its default settings, suspects
    the model (see ``CanaryProbe.next_delay``). ``draw(t)`` is the canary taken at ``t``."""
    judge = build_detector(detector, DetectorSettings())
    out: list[Sample] = []
    t, rechecks = start, 0
    while t < end:
        sample = draw(t)
        if rechecks and isinstance(sample, CanaryResult):
            sample = dataclasses.replace(sample, recheck=True)
        out.append(sample)
        judge.observe(sample)
        if rechecks < MAX_RECHECKS and judge.suspects(SERIES_MODEL):
            rechecks += 1
            t += min(RECHECK_S, interval)
        else:
            rechecks = 0
            t += interval
    return out


# -- latency ---------------------------------------------------------------------------


def latency_value(rng: Rng, t: float, factor: float) -> float:
    base = 0.020 * (1 + 0.2 * math.sin(2 * math.pi * (t - T0) / DAY))
    jitter = rng.lognormal(0.0, 0.15)
    gc = rng.uniform(4, 12) if rng.random() < 1 / 180 else 1.0
    return float(base * jitter * gc * factor)


def latency_trace(name: str, seed: int, fault: str | None, days: float = 0.0) -> Trace:
    rng = np.random.default_rng(seed)
    interval = CANARY_S
    duration = days * DAY if fault is None else 1800.0 + 1500.0
    labels: list[Label] = []
    kinds = ("latency_spike",)
    at = T0 + 1800.0

    def factor(t: float) -> float:
        if fault in ("step3", "step2.5") and at <= t < at + 600:
            return 3.0 if fault == "step3" else 2.5
        if fault == "burst" and at <= t < at + 120:
            return 6.0
        if fault == "ramp" and at <= t < at + 900:
            return 1 + 5 * min((t - at) / 600.0, 1.0)
        return 1.0

    if fault in ("step3", "step2.5"):
        labels.append(Label(kinds, at, at, at + 600, f"step x{factor(at):g}"))
    elif fault == "burst":
        labels.append(Label(kinds, at, at, at + 120, "burst x6 for 2 min"))
    elif fault == "ramp":
        due = at + 600.0 * 1.5 / 5
        labels.append(Label(kinds, at, due, at + 900, "ramp 1x->6x over 10 min"))
    make = SAMPLE_FOR["latency"]
    samples = canary_schedule(
        "latency", T0, T0 + duration, interval, lambda t: make(t, latency_value(rng, t, factor(t)))
    )
    series = [(s.ts, s.latency_s or 0.0) for s in samples if isinstance(s, CanaryResult)]
    return Trace(name, "latency", interval, labels, series=series)


# -- memory ----------------------------------------------------------------------------


def memory_values(rng: Rng, ts: np.ndarray) -> np.ndarray:
    level = np.full(ts.size, 0.40)
    interval = ts[1] - ts[0]
    # model loads/unloads every ~8 h, ramping over 20 s
    n_events = max(1, int((ts[-1] - ts[0]) / (8 * 3600)))
    for at in rng.uniform(ts[0], ts[-1], n_events):
        delta = rng.uniform(0.05, 0.15) * rng.choice([-1, 1])
        level += delta * np.clip((ts - at) / 20.0, 0, 1)
    level = np.clip(level, 0.25, 0.75)
    # allocator bumps +2 % for 10 min every ~2 h
    for at in rng.uniform(ts[0], ts[-1], max(1, int((ts[-1] - ts[0]) / 7200))):
        level += np.where((ts >= at) & (ts < at + 600), 0.02, 0.0)
    del interval
    return level + rng.normal(0.0, 0.0005, ts.size)


def memory_trace(name: str, seed: int, fault: str | None, days: float = 0.0) -> Trace:
    rng = np.random.default_rng(seed)
    interval, horizon, window = 5.0, 3600.0, 300.0
    at = T0 + 1800.0
    leak_s = {"leak30m": 1800.0, "leak2h": 7200.0, "leak6h": 21600.0, "leak24h": 86400.0}
    if fault is None:
        duration = days * DAY
    elif fault == "high":
        duration = 2700.0
    else:
        duration = 1800.0 + leak_s[fault] + 900.0
    ts = _times(T0, duration, interval)
    rng_level = np.random.default_rng(seed + 1)
    values = memory_values(rng_level, ts) if fault is None else 0.40 + rng.normal(0, 5e-4, ts.size)
    labels: list[Label] = []
    if fault == "high":
        on = (ts >= at) & (ts < at + 300)
        values[on] = 0.97 + rng.normal(0, 5e-4, int(on.sum()))
        labels.append(Label(("gpu_oom",), at, at, at + 300, "jump to 97 % for 5 min"))
    elif fault is not None:
        span = leak_s[fault]
        slope = 0.6 / span
        grow = np.clip((ts - at) * slope, 0, 0.595)
        values = values + grow
        # due: the true line within the horizon of 100 % (with one trend window of growth
        # seen), or memory already at the 95 % high mark, whichever comes first
        predictable = max(at + (0.6 - slope * horizon) / slope, at + window)
        due = min(predictable, at + 0.55 / slope)
        labels.append(
            Label(
                ("gpu_oom_predicted", "gpu_oom"), at, due, ts[-1], f"leak to 100 % in {fault[4:]}"
            )
        )
    return Trace(
        name,
        "memory",
        interval,
        labels,
        series=list(zip(ts.tolist(), values.tolist(), strict=True)),
    )


# -- thermal ---------------------------------------------------------------------------


def thermal_trace(name: str, seed: int, fault: str | None, days: float = 0.0) -> Trace:
    rng = np.random.default_rng(seed)
    interval = 2.0
    duration = days * DAY if fault is None else 600.0 + 900.0
    ts = _times(T0 + 0.3 * DAY, duration, interval)
    load = _diurnal(ts) + rng.normal(0, 0.05, ts.size)
    temp = 55 + 20 * load + rng.normal(0, 0.7, ts.size)
    clock = 1980 * np.where(load > 0.8, rng.uniform(0.93, 1.0, ts.size), 1.0)
    bits = np.where((load > 0.8) & (rng.random(ts.size) < 0.5), 0x4, 0)
    bits = bits | np.where(load < 0.35, 0x1, 0)
    at = ts[0] + 600.0
    labels: list[Label] = []
    if fault == "heat":
        ramp = (ts >= at) & (ts < at + 300)
        temp[ramp] += (88 - temp[ramp]) * (ts[ramp] - at) / 300
        hot = (ts >= at + 300) & (ts < at + 480)
        temp[hot] = 88 + rng.normal(0, 0.3, int(hot.sum()))
        bits[hot] |= 0x20 | 0x40
        clock[hot] = 1980 * 0.6
        due = float(ts[np.argmax((temp >= 87) | (bits & 0x60 > 0))])
        labels.append(Label(("thermal_throttle",), at, due, at + 480, "heat episode"))
    elif fault == "hwslowdown":
        on = (ts >= at) & (ts < at + 120)
        bits[on] |= 0x8
        clock[on] = 1980 * 0.5
        labels.append(Label(("thermal_throttle",), at, at, at + 120, "HwSlowdown 2 min"))
    elif fault == "brake":
        on = (ts >= at) & (ts < at + 60)
        bits[on] |= 0x80
        clock[on] = 1980 * 0.3
        labels.append(Label(("power_brake",), at, at, at + 60, "HW power brake 1 min"))
    records: list[Sample] = [
        GpuSample(
            ts=t,
            index=0,
            uuid=SERIES_GPU,
            temperature_c=round(c, 1),
            temperature_slowdown_c=89.0,
            power_w=round(70 * ld, 1),
            power_limit_w=72.0,
            sm_clock_mhz=round(k),
            sm_clock_max_mhz=1980.0,
            clock_event_reasons=int(b),
        )
        for t, c, ld, k, b in zip(
            ts.tolist(), temp.tolist(), load.tolist(), clock.tolist(), bits.tolist(), strict=True
        )
    ]
    return Trace(name, "thermal", interval, labels, records=records)


# -- accuracy --------------------------------------------------------------------------


def accuracy_trace(name: str, seed: int, fault: str | None, days: float = 0.0) -> Trace:
    rng = np.random.default_rng(seed)
    interval = CANARY_S
    duration = days * DAY if fault is None else (900.0 + 9000.0 if fault == "slide" else 1800.0)
    end = T0 + duration
    at = T0 + 900.0
    labels: list[Label] = []
    kinds = ("accuracy_drift",)

    def canary(t: float) -> Sample:
        p, cos, version = 0.985, 0.995, "1"
        if fault == "deploy" and t >= at:
            p, cos, version = 0.80, 0.97, "2"
        elif fault == "drop" and t >= at:
            p = 0.90
        elif fault == "slide":
            p = 0.985 - (0.985 - 0.75) * min(max((t - at) / 7200.0, 0.0), 1.0)
        top1 = float(rng.binomial(64, p)) / 64
        cosine = min(max(cos + float(rng.normal(0, 0.001)), -1.0), 1.0)
        return CanaryResult(
            ts=t,
            model=SERIES_MODEL,
            version=version,
            batch_size=64,
            outcome="ok",
            latency_s=0.02,
            agreement=Agreement(max_abs_error=0.01, cosine=round(cosine, 5), top1=top1),
        )

    if fault == "deploy":
        labels.append(Label(kinds, at, at, end, "sudden: deployment of version 2"))
    elif fault == "drop":
        labels.append(Label(kinds, at, at, end, "sudden: drop to 0.90"))
    elif fault == "slide":
        due = at + 7200.0 * (0.985 - 0.935) / (0.985 - 0.75)
        labels.append(Label(kinds, at, due, end, "gradual: 0.985 -> 0.75 over 2 h"))
    records = canary_schedule("accuracy", T0, end, interval, canary)
    return Trace(name, "accuracy", interval, labels, records=records)


# -- errors and health -----------------------------------------------------------------


def errors_trace(name: str, seed: int, fault: str | None, days: float = 0.0) -> Trace:
    rng = np.random.default_rng(seed)
    duration = days * DAY if fault is None else 1200.0
    at = T0 + 600.0
    labels: list[Label] = []
    if fault in ("burst100", "burst70"):
        p_fail = 1.0 if fault == "burst100" else 0.7
        make = SAMPLE_FOR["errors"]

        def failed(t: float) -> float:
            p = p_fail if at <= t < at + 180 else 0.003
            return 1.0 if rng.random() < p else 0.0

        samples = canary_schedule(
            "errors", T0, T0 + duration, CANARY_S, lambda t: make(t, failed(t))
        )
        labels.append(Label(("error_burst",), at, at, at + 180, f"{p_fail:.0%} errors 3 min"))
        series = [(s.ts, 0.0 if s.outcome == "ok" else 1.0) for s in samples]
        return Trace(name, "errors", CANARY_S, labels, series=series)

    def canary(t: float) -> Sample:
        timeout = rng.random() < 0.003
        return CanaryResult(
            ts=t,
            model=SERIES_MODEL,
            version="1",
            batch_size=1,
            outcome="timeout" if timeout else "ok",
            latency_s=None if timeout else 0.02,
            error="deadline exceeded" if timeout else None,
        )

    records = canary_schedule("errors", T0, T0 + duration, CANARY_S, canary)
    success = failure = 0.0
    for t in _times(T0 + 1.0, duration, HEALTH_S).tolist():
        ready = not (fault == "notready" and at <= t < at + 60)
        model_ready = not (fault == "unloaded" and at <= t < at + 60)
        success += rng.poisson(50 * HEALTH_S)
        failure += rng.poisson(0.025 * HEALTH_S)
        records.append(
            TritonHealth(
                ts=t,
                live=True,
                ready=ready,
                model=SERIES_MODEL,
                model_ready=model_ready,
                success_total=success,
                failure_total=failure,
            )
        )
    if fault == "notready":
        labels.append(Label(("server_unhealthy",), at, at, at + 60, "server not ready 1 min"))
    elif fault == "unloaded":
        labels.append(Label(("model_not_ready",), at, at, at + 60, "model unloaded 1 min"))
    elif fault == "gpulost":
        records.append(GpuEvent(ts=at, uuid=SERIES_GPU, kind="gpu_lost", xid=79))
        labels.append(Label(("gpu_lost",), at, at, at + 60, "GPU fell off the bus"))
    elif fault == "xid":
        records.append(GpuEvent(ts=at, uuid=SERIES_GPU, kind="xid", xid=48, cause="hardware"))
        labels.append(Label(("xid_hardware",), at, at, at + 60, "Xid 48 double-bit ECC"))
    records.sort(key=lambda s: s.ts)
    return Trace(name, "errors", CANARY_S, labels, records=records)


# -- backlog ---------------------------------------------------------------------------


def backlog_trace(name: str, seed: int, fault: str | None, days: float = 0.0) -> Trace:
    rng = np.random.default_rng(seed)
    interval = HEALTH_S
    duration = days * DAY if fault is None else 1500.0
    ts = _times(T0, duration, interval)
    load = _diurnal(ts)
    pending = rng.poisson(3 * load).astype(float)
    share = 0.1 + 0.1 * load + rng.normal(0, 0.02, ts.size)
    at = T0 + 600.0
    labels: list[Label] = []
    if fault == "queue":
        on = (ts >= at) & (ts < at + 300)
        pending[on] = rng.poisson(30, int(on.sum()))
        share[on] = 0.7 + rng.normal(0, 0.02, int(on.sum()))
        labels.append(Label(("backlog",), at, at, at + 300, "queue builds for 5 min"))
    request_us = rng.poisson(200 * load) * 20_000.0
    req_total = np.cumsum(request_us)
    queue_total = np.cumsum(request_us * np.clip(share, 0, 1))
    records: list[Sample] = [
        TritonHealth(
            ts=t,
            live=True,
            ready=True,
            model=SERIES_MODEL,
            model_ready=True,
            pending_requests=pr,
            request_duration_us_total=rq,
            queue_duration_us_total=qu,
        )
        for t, pr, rq, qu in zip(
            ts.tolist(), pending.tolist(), req_total.tolist(), queue_total.tolist(), strict=True
        )
    ]
    return Trace(name, "backlog", interval, labels, records=records)


# -- the suite -------------------------------------------------------------------------

Maker = Callable[[str, int, "str | None", float], Trace]
MAKERS: dict[str, Maker] = {
    "latency": latency_trace,
    "memory": memory_trace,
    "thermal": thermal_trace,
    "accuracy": accuracy_trace,
    "errors": errors_trace,
    "backlog": backlog_trace,
}
FAULTS: dict[str, tuple[str, ...]] = {
    "latency": ("step3", "step2.5", "burst", "ramp"),
    "memory": ("high", "leak30m", "leak2h", "leak6h", "leak24h"),
    "thermal": ("heat", "hwslowdown", "brake"),
    "accuracy": ("deploy", "drop", "slide"),
    "errors": ("burst100", "burst70", "notready", "unloaded", "gpulost", "xid"),
    "backlog": ("queue",),
}
COMPACT_SKIP = {"leak6h", "leak24h"}
"""Faults too long for the committed suite (the benchmark generates them)."""


def fault_traces(seed: int, compact: bool = False) -> list[Trace]:
    """One trace per fault model of every detector."""
    out = []
    for det, faults in FAULTS.items():
        for i, fault in enumerate(faults):
            if compact and fault in COMPACT_SKIP:
                continue
            out.append(MAKERS[det](f"{det}_{fault}", seed * 1000 + i, fault, 0.0))
    return out


def clean_traces(seed: int, days: float) -> list[Trace]:
    """Clean but noisy traces, one per detector."""
    return [MAKERS[det](f"{det}_clean", seed * 1000 + 999, None, days) for det in FAULTS]


def write_suite(folder: Path, seed: int = 7, clean_days: float = 1 / 24) -> None:
    """The compact suite for tests: faults plus a few hours of clean traces."""
    folder.mkdir(parents=True, exist_ok=True)
    index = []
    for trace in fault_traces(seed, compact=True) + clean_traces(seed, clean_days):
        if trace.series is not None:
            path = folder / f"{trace.name}.csv"
            with path.open("w", encoding="utf-8") as fh:
                fh.write("timestamp,value\n")
                for ts, v in trace.series:
                    fh.write(f"{ts:.0f},{v:.6g}\n")
        else:
            path = folder / f"{trace.name}.jsonl"
            with path.open("w", encoding="utf-8") as fh:
                for s in trace.records:
                    # unset fields are left out: they read back as their defaults
                    record = {k: v for k, v in to_record(s).items() if v not in (None, (), [], {})}
                    fh.write(json.dumps(record, separators=(",", ":")) + "\n")
        index.append(
            {
                "file": path.name,
                "detector": trace.detector,
                "interval_s": trace.interval_s,
                "labels": [asdict(label) for label in trace.labels],
            }
        )
    (folder / "labels.json").write_text(json.dumps(index, indent=1) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--write", type=Path, required=True, help="folder for the compact suite")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    write_suite(args.write, args.seed)
    print(f"wrote {args.write}")


if __name__ == "__main__":
    main()

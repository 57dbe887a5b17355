"""Detector quality on the labelled trace suite (see bench/traces.py for the fault models).

Prints, per detector: precision, recall, median detection delay, false findings per
simulated day and per week on clean traces, and whether every fault was found within its minimum
duration plus 3 samples. The H200 recordings under tests/data/gpu/ (real, plus one
thermal episode synthesized from the real matmul run) are scored too, with the labels in
tests/data/traces/gpu_labels.json.

    python bench/detectors.py [--seeds 60] [--clean-days 7]

Every detector runs at its shipped defaults (``DetectorSettings()``), on canaries at the
shipped interval with the shipped rechecks (see ``traces.canary_schedule``): the same
settings ``bench/time_to_mitigate.py`` times on real Triton faults.

A fault model with random draws (the 70 % error burst) can, in a few seeds, fail less
than the burst rate all through the allowed time; such a late finding is listed apart,
with what its canaries showed, and is not counted against the target.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from traces import Label, Trace, clean_traces, fault_traces

from sentinel.detect.backtest import Fault, Score, allowed_delay, run, score
from sentinel.detect.settings import DetectorSettings
from sentinel.detect.suite import DETECTOR_NAMES, build_detector
from sentinel.probes.recording import iter_recording

UNSHOWN = "not shown in time"
"""Marks a late finding whose fault's draws stayed under the detector's rate (see _shown)."""
GPU_LABELS = (
    Path(__file__).resolve().parent.parent / "tests" / "data" / "traces" / "gpu_labels.json"
)


def evaluate(trace: Trace, settings: DetectorSettings) -> tuple[Score, list[str]]:
    detector = build_detector(trace.detector, settings)
    episodes = run(detector, trace.samples)
    faults = [Fault(lb.kinds, lb.start, lb.due, lb.end) for lb in trace.labels]
    sc = score(episodes, faults)
    late = []
    for fault, label in zip(faults, trace.labels, strict=True):
        if fault in sc.missed:
            late.append(f"{trace.name}: MISSED {label.note}")
            continue
        found = min(
            e.finding.detected_at
            for e in episodes
            if e.finding.kind in fault.kinds and fault.start <= e.finding.detected_at
        )
        limit = allowed_delay(fault.kinds[0], trace.interval_s, settings)
        if found - fault.due > limit:
            late.append(
                f"{trace.name}: late {label.note}: {found - fault.due:.0f} s > {limit:.0f} s"
                + _shown(trace, fault.due, fault.due + limit, settings)
            )
    return sc, late


def _shown(trace: Trace, start: float, end: float, settings: DetectorSettings) -> str:
    """For a random error burst: what its canaries showed in the allowed time (a burst
    whose draws fail less than max_error_rate by then is not one yet)."""
    if trace.detector != "errors" or trace.series is None:
        return ""
    values = [v for ts, v in trace.series if start <= ts <= end]
    if not values:
        return ""
    share = sum(1 for v in values if v) / len(values)
    bar = settings.errors.max_error_rate
    return f" (its canaries in that time: {share:.0%} of {len(values)} failed, " + (
        f"under the {bar:.0%} burst rate: {UNSHOWN})" if share < bar else "a burst)"
    )


def real_gpu_traces() -> list[Trace]:
    """Real NVML recordings (tests/data/gpu/), labelled in tests/data/traces/gpu_labels.json."""
    if not GPU_LABELS.exists():
        return []
    out = []
    for entry in json.loads(GPU_LABELS.read_text(encoding="utf-8")):
        path = GPU_LABELS.parent / entry["file"]
        if not path.exists():
            continue
        records = list(iter_recording(path))
        labels = [
            Label(tuple(lb["kinds"]), lb["start"], lb["due"], lb["end"], entry["note"])
            for lb in entry["labels"]
        ]
        for det in entry["detectors"]:
            out.append(
                Trace(f"{path.name}/{det}", det, entry["interval_s"], labels, records=records)
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description="detector precision/recall/delay")
    parser.add_argument("--seeds", type=int, default=60, help="fault traces per model")
    parser.add_argument("--clean-days", type=float, default=7.0)
    args = parser.parse_args()
    settings = DetectorSettings()
    started = time.perf_counter()
    faults = {n: Score() for n in DETECTOR_NAMES}
    problems: list[str] = []
    per_model: dict[str, Score] = {}
    limits: dict[str, float] = {}
    for seed in range(1, args.seeds + 1):
        for trace in fault_traces(seed):
            sc, late = evaluate(trace, settings)
            faults[trace.detector].add(sc)
            per_model.setdefault(trace.name, Score()).add(sc)
            limits[trace.name] = allowed_delay(trace.labels[0].kinds[0], trace.interval_s, settings)
            problems += late
    clean = {n: Score() for n in DETECTOR_NAMES}
    for trace in clean_traces(seed=42, days=args.clean_days):
        sc, _ = evaluate(trace, settings)
        clean[trace.detector].add(sc)
        problems += [
            f"{trace.name}: false {f.kind} at {f.detected_at:.0f}: {f.summary}" for f in sc.false
        ]
    real = real_gpu_traces()
    for trace in real:
        sc, late = evaluate(trace, settings)
        faults[trace.detector].add(sc)
        problems += late + [f"{trace.name}: false {f.kind}: {f.summary}" for f in sc.false]

    print(
        f"fault traces: {args.seeds} seeds x each fault model; clean: {args.clean_days:g} days "
        f"per detector; H200 recording x detector runs (one synthesized): {len(real)}"
    )
    head = (
        f"{'detector':<10} {'faults':>6} {'found':>6} {'recall':>7} {'precision':>9} "
        f"{'median delay s':>14} {'false/day clean':>15} {'false/week':>10}"
    )
    print(head)
    print("-" * len(head))
    for name in DETECTOR_NAMES:
        f, c = faults[name], clean[name]
        total_findings = f.findings + c.findings
        true = f.true_findings
        precision = true / total_findings if total_findings else 1.0
        delay = f"{f.median_delay:.1f}" if f.median_delay is not None else "-"
        print(
            f"{name:<10} {f.faults:>6} {f.found:>6} {f.recall:>7.2f} {precision:>9.2f} "
            f"{delay:>14} {len(c.false) / args.clean_days:>15.2f} "
            f"{7 * len(c.false) / args.clean_days:>10.2f}"
        )
    print()
    head = (
        f"{'fault model':<22} {'found':>7} {'median delay s':>14} {'max delay s':>11} "
        f"{'target s':>8} {'on time':>7}"
    )
    print(head)
    print("-" * len(head))
    for name, sc in per_model.items():
        on_time = sum(1 for d in sc.delays if d <= limits[name])
        worst = max(sc.delays) if sc.delays else float("nan")
        med = sc.median_delay if sc.median_delay is not None else float("nan")
        print(
            f"{name:<22} {sc.found:>3}/{sc.faults:<3} {med:>14.1f} {worst:>11.1f} "
            f"{limits[name]:>8.0f} {on_time:>3}/{sc.faults:<3}"
        )
    print()
    print(
        "targets: every fault within min duration + 3 samples; "
        "at most 1 false finding per clean week"
    )
    unshown = [p for p in problems if UNSHOWN in p]
    problems = [p for p in problems if UNSHOWN not in p]
    if problems:
        for p in problems:
            print("  " + p)
    else:
        print(
            "  all met" + (f", but for {len(unshown)} faults not shown in time:" if unshown else "")
        )
    for p in unshown:
        print("  " + p)
    print(f"\nran in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()

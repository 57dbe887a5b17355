"""Quality and cost of the generic detector on 29 real, operator-labelled service KPIs.

Data: the AIOps Challenge 2018 KPI corpus (``--data``, default ``../shared/data/kpi``
next to the repository; its SOURCE.md says where it comes from). Each series is split at
its ``split_ts``: the first part is for tuning, the second for testing. Scoring is the
conventional point-adjusted F1 with delay k = 7 on each series' regular grid (missing
slots are label 0 and no alarm), pooled over all series.

sentinel's generic detector runs at its shipped defaults (``GenericSettings()``, fixed
beforehand on the tuning part, one configuration for all series): a sample is an alarm
when it breaches. Each classical baseline (``bench/kpi_baselines.py``) gets the one
threshold that maximises the pooled F1 on the tuning part; nothing looks at the test
part's labels before the figures are printed.

    python bench/kpi.py [--data DIR] [--quick]
    python bench/kpi.py --tune [--set NAME=VALUE ...]   # tuning parts only

``--tune`` reads only the rows before each series' ``split_ts`` and prints sentinel's pooled
F1 on them over a sweep of thresholds (the score is threshold-free while the variance and
flat-line rules are off), so settings can be compared without running the test part.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import sys
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.kpi_baselines import BASELINES
from sentinel.detect.generic import MetricScorer
from sentinel.detect.settings import GenericSettings

K = 7
"""Delay limit of the point-adjusted F1: an alarm in a segment's first k + 1 points."""
REPO = Path(__file__).resolve().parent.parent


@dataclass
class Series:
    name: str
    step: int
    split: float
    ts: np.ndarray
    values: np.ndarray
    labels: np.ndarray


@dataclass
class Part:
    """What the point-adjusted F1 needs of one part of one or more series."""

    seg_score: np.ndarray
    """Per labelled segment: the highest score in its first k + 1 grid points."""
    seg_len: np.ndarray
    normal_scores: np.ndarray
    """Scores of the label-0 samples."""

    @staticmethod
    def pool(parts: list[Part]) -> Part:
        return Part(
            np.concatenate([p.seg_score for p in parts]),
            np.concatenate([p.seg_len for p in parts]),
            np.concatenate([p.normal_scores for p in parts]),
        )

    def counts(self, threshold: float) -> tuple[int, int, int]:
        """(true positives, false positives, false negatives) in points."""
        tp = int(self.seg_len[self.seg_score >= threshold].sum())
        fp = int((self.normal_scores >= threshold).sum())
        return tp, fp, int(self.seg_len.sum()) - tp

    def best_threshold(self) -> float:
        """The threshold with the highest F1 on this part (for the baselines' tuning)."""
        finite = self.seg_score[np.isfinite(self.seg_score)]
        tail = np.quantile(self.normal_scores, np.linspace(0.9, 1.0, 2001))
        cand = np.unique(np.concatenate([finite, tail]))
        normal = np.sort(self.normal_scores)
        order = np.argsort(-self.seg_score)
        cum_len = np.cumsum(self.seg_len[order])
        caught = np.searchsorted(-self.seg_score[order], -cand, side="right")
        tp = np.where(caught > 0, cum_len[np.maximum(caught - 1, 0)], 0)
        fp = len(normal) - np.searchsorted(normal, cand, side="left")
        f1 = 2 * tp / np.maximum(2 * tp + fp + (self.seg_len.sum() - tp), 1)
        return float(cand[int(np.argmax(f1))])


def fmt_bytes(n: int) -> str:
    return f"{n / 1024:.0f} KiB" if n >= 10 * 1024 else f"{n} B"


def prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return (2 * p * r / (p + r) if p + r else 0.0), p, r


def load(data: Path, quick: bool) -> list[Series]:
    manifest = json.loads((data / "manifest.json").read_text())["series"]
    if quick:
        manifest = manifest[::4]
    out = []
    for entry in manifest:
        with gzip.open(data / entry["file"], "rt") as fh:
            rows = np.loadtxt(fh, delimiter=",", skiprows=1)
        out.append(
            Series(
                entry["kpi_id"][:8],
                int(entry["interval_s"]),
                float(entry["split_ts"]),
                rows[:, 0],
                rows[:, 1],
                rows[:, 2].astype(np.int8),
            )
        )
    return out


def split_parts(series: Series, scores: np.ndarray) -> tuple[Part, Part]:
    """Tuning and test parts on the series' regular grid (missing slots: label 0, no alarm)."""
    slot = ((series.ts - series.ts[0]) // series.step).astype(np.int64)
    size = int(slot[-1]) + 1
    labels = np.zeros(size, np.int8)
    labels[slot] = series.labels
    grid_scores = np.full(size, -np.inf)
    grid_scores[slot] = scores
    grid_ts = series.ts[0] + series.step * np.arange(size)
    parts = []
    for mask in (grid_ts < series.split, grid_ts >= series.split):
        y, s = labels[mask], grid_scores[mask]
        edges = np.diff(np.concatenate([[0], y, [0]]))
        starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        seg = np.array([s[a : min(a + K + 1, b)].max() for a, b in zip(starts, ends, strict=False)])
        parts.append(Part(seg.reshape(-1), (ends - starts), s[(y == 0) & np.isfinite(s)]))
    return parts[0], parts[1]


def sentinel_scores(series: Series, settings: GenericSettings) -> tuple[np.ndarray, float]:
    """1.0 where the detector breaches, else 0; and the seconds it took."""
    scorer = MetricScorer(settings)
    alarms = np.zeros(len(series.ts))
    update = scorer.update
    start = time.perf_counter()
    for i, (ts, value) in enumerate(zip(series.ts.tolist(), series.values.tolist(), strict=False)):
        verdict = update(ts, value)
        if verdict is not None and verdict.rule is not None:
            alarms[i] = 1.0
    return alarms, time.perf_counter() - start


def sentinel_memory(settings: GenericSettings, step: float, n: int) -> int:
    """Bytes one series' detector holds after ``n`` samples at ``step`` seconds."""
    rng = np.random.default_rng(3)
    values = (100 + 10 * np.sin(np.arange(n) * step * 2 * math.pi / 86400)).tolist()
    noise = rng.normal(0, 1, n).tolist()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    scorer = MetricScorer(settings)
    for i in range(n):
        scorer.update(1.5e9 + i * step, values[i] + noise[i])
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return held


def one_hz_cost(settings: GenericSettings, n: int = 100_000) -> float:
    """Microseconds per sample of one series sampled every second (steady state)."""
    rng = np.random.default_rng(5)
    values = rng.normal(50, 2, n).tolist()
    scorer = MetricScorer(settings)
    for i in range(n // 2):
        scorer.update(1.7e9 + i, values[i])
    start = time.perf_counter()
    for i in range(n // 2, n):
        scorer.update(1.7e9 + i, values[i])
    return (time.perf_counter() - start) / (n - n // 2) * 1e6


def tune_only(data: Path, quick: bool, overrides: list[str]) -> int:
    """Pooled tuning-part F1 of sentinel's score over a sweep of thresholds."""
    fields: dict[str, object] = {}
    for item in overrides:
        name, _, raw = item.partition("=")
        fields[name] = json.loads(raw)
    settings = GenericSettings(**fields)
    parts = []
    for s in load(data, quick):
        keep = s.ts < s.split
        s = Series(s.name, s.step, s.split, s.ts[keep], s.values[keep], s.labels[keep])
        scorer = MetricScorer(settings)
        scores = np.zeros(len(s.ts))
        for i, (ts, value) in enumerate(zip(s.ts.tolist(), s.values.tolist(), strict=False)):
            verdict = scorer.update(ts, value)
            scores[i] = verdict.score if verdict is not None else 0.0
        parts.append(split_parts(s, scores)[0])
    pool = Part.pool(parts)
    thresholds = np.round(np.arange(2.0, 4.51, 0.05), 2)
    f1 = np.array([prf(*pool.counts(float(x)))[0] for x in thresholds])
    # the F1 averaged over +-0.1 around a threshold: a choice that does not sit on a cliff
    smooth = np.convolve(f1, np.ones(5) / 5, mode="same")
    pick = int(np.argmax(smooth[2:-2])) + 2
    print(f"settings {fields or 'defaults'}; pooled F1 on the tuning parts")
    for x, f, m in zip(thresholds, f1, smooth, strict=True):
        mark = " <- best smoothed" if x == thresholds[pick] else ""
        print(f"threshold {x:4.2f}  F1 {f:.3f}  smoothed {m:.3f}{mark}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "kpi")
    ap.add_argument("--quick", action="store_true", help="every 4th series only")
    ap.add_argument("--tune", action="store_true", help="tuning parts only: threshold sweep")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=JSON")
    args = ap.parse_args()
    if not (args.data / "manifest.json").is_file():
        print(f"bench/kpi.py: no KPI corpus at {args.data} (--data DIR)", file=sys.stderr)
        return 2
    if args.tune:
        return tune_only(args.data, args.quick, args.set)
    corpus = load(args.data, args.quick)
    total = sum(len(s.ts) for s in corpus)
    print(f"{len(corpus)} series, {total:,} samples, point-adjusted F1 with k = {K}, pooled")
    settings = GenericSettings()
    rows = []

    tune, test, elapsed = [], [], 0.0
    for s in corpus:
        alarms, took = sentinel_scores(s, settings)
        elapsed += took
        a, b = split_parts(s, alarms)
        tune.append(a)
        test.append(b)
    memory = sentinel_memory(settings, 60.0, 3 * 1440 + 100)
    rows.append(
        (
            "sentinel generic (defaults)",
            Part.pool(tune),
            Part.pool(test),
            0.5,
            elapsed,
            f"{fmt_bytes(memory)} (60 s)",
        )
    )

    for base in BASELINES:
        tune, test, elapsed = [], [], 0.0
        for s in corpus:
            start = time.perf_counter()
            scores = base.score(s.values)
            elapsed += time.perf_counter() - start
            a, b = split_parts(s, scores)
            tune.append(a)
            test.append(b)
        tuned = Part.pool(tune)
        rows.append(
            (
                base.name,
                tuned,
                Part.pool(test),
                tuned.best_threshold(),
                elapsed,
                f"{fmt_bytes(base.state_floats * 8)}*",
            )
        )

    print(
        f"\n{'detector':<30} {'F1 test':>8} {'P':>6} {'R':>6} {'F1 tune':>8} "
        f"{'us/sample':>10} {'memory/series':>14}"
    )
    for name, tuned, tested, thr, secs, mem in rows:
        f1, p, r = prf(*tested.counts(thr))
        f1_tune = prf(*tuned.counts(thr))[0]
        print(
            f"{name:<30} {f1:8.3f} {p:6.3f} {r:6.3f} {f1_tune:8.3f} "
            f"{secs / total * 1e6:10.2f} {mem:>14}"
        )
    print(
        "* baselines: batch (numpy) cost, and the numbers a streaming version would keep;"
        " their thresholds were picked on the tuning part."
    )
    us = one_hz_cost(settings)
    print(
        f"\n1,000 series at 1 Hz: {us:.1f} us/sample -> {us * 1000 / 1e6:.1%} of one core "
        f"(seasons longer than {settings.max_season_slots} samples are skipped at 1 Hz)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

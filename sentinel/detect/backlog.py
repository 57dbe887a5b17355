"""``backlog``: requests pile up in Triton's queue, per model.

Two measures over a window: the median of ``pending_requests`` (queue depth), and the
queue's share of request time from the cumulative counters (delta queue us / delta
request us). Either above its threshold, held for ``min_duration_s``, is a backlog.
Severity: warning (latency follows; the latency detector says how bad).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sentinel.detect.base import rnd
from sentinel.detect.episode import Episodes
from sentinel.detect.settings import BacklogSettings
from sentinel.detect.windows import CounterRate, RollingWindow
from sentinel.vocabulary.findings import Judgement, Severity, Subject
from sentinel.vocabulary.samples import Sample, TritonHealth

KIND = "backlog"


@dataclass(slots=True)
class _Model:
    pending: RollingWindow
    queue_us: CounterRate
    request_us: CounterRate


class BacklogDetector:
    name = "backlog"
    accepts: tuple[type, ...] = (TritonHealth,)

    def __init__(self, settings: BacklogSettings | None = None) -> None:
        self.settings = settings or BacklogSettings()
        self._models: dict[str, _Model] = {}
        self._episodes = Episodes(self.name)

    def observe(self, sample: Sample) -> list[Judgement]:
        if not isinstance(sample, TritonHealth) or sample.model is None:
            return []
        s = self.settings
        m = self._models.get(sample.model)
        if m is None:
            m = _Model(RollingWindow(s.window_s), CounterRate(s.window_s), CounterRate(s.window_s))
            self._models[sample.model] = m
        if sample.pending_requests is not None and math.isfinite(sample.pending_requests):
            m.pending.add(sample.ts, sample.pending_requests)
        else:
            m.pending.expire(sample.ts)
        if sample.queue_duration_us_total is not None and sample.request_duration_us_total:
            m.queue_us.add(sample.ts, sample.queue_duration_us_total)
            m.request_us.add(sample.ts, sample.request_duration_us_total)
        if len(m.pending) < s.min_samples:
            return []
        pending = m.pending.median()
        request = m.request_us.delta()
        share = m.queue_us.delta() / request if request > 0 else 0.0
        deep = pending >= s.max_pending
        queued = share >= s.max_queue_share and pending >= s.min_pending_for_share
        calm = pending < s.max_pending / 2 and share < s.max_queue_share / 2
        facts = {
            "pending_median": rnd(pending, 3),
            "pending_latest": m.pending.newest,
            "queue_share": rnd(share, 4),
            "samples": len(m.pending),
            "window_s": s.window_s,
        }
        ep = self._episodes.get(
            KIND,
            Subject(model=sample.model),
            min_duration_s=s.min_duration_s,
            clear_duration_s=s.clear_duration_s,
        )
        j = ep.update(
            sample.ts,
            breached=deep or queued,
            recovered=calm,
            fire=lambda started, ts: self._fire(
                sample.model or "", deep, queued, facts, started, ts
            ),
            clear_evidence=lambda: facts,
        )
        return [j] if j is not None else []

    def suspects(self, model: str) -> bool:
        return False  # reads no canaries

    def tick(self, now: float) -> list[Judgement]:
        return []

    def _fire(
        self,
        model: str,
        deep: bool,
        queued: bool,
        facts: dict[str, Any],
        started: float,
        ts: float,
    ) -> tuple[Severity, str, dict[str, Any]]:
        s = self.settings
        rules = [r for r, on in (("pending", deep), ("queue_share", queued)) if on]
        summary = (
            f"{model}: {facts['pending_median']:g} requests pending (median), "
            f"queue {facts['queue_share']:.0%} of request time, for {ts - started:.0f} s"
        )
        evidence = {
            "rules": rules,
            "max_pending": s.max_pending,
            "max_queue_share": s.max_queue_share,
            "min_duration_s": s.min_duration_s,
            "sustained_s": rnd(ts - started, 3),
            **facts,
        }
        return Severity.WARNING, summary, evidence

"""Errors and health: ``error_burst``, ``server_unhealthy``, ``model_not_ready``,
``gpu_lost``, ``xid_hardware``.

Severity: ``server_unhealthy``, ``gpu_lost`` and ``xid_hardware`` are critical (nothing is
served, or the hardware needs a human); ``error_burst`` is critical when most canaries
fail (users get errors), a warning when only Triton's failure counters show it (some
clients send bad requests); ``model_not_ready`` is critical (the model serves nothing).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sentinel.detect.base import rnd
from sentinel.detect.episode import Episodes
from sentinel.detect.settings import ErrorSettings
from sentinel.detect.windows import CounterRate, Cusum, RollingWindow, binomial_llr
from sentinel.vocabulary.findings import Judgement, Severity, Subject
from sentinel.vocabulary.samples import CanaryResult, GpuEvent, GpuSample, Sample, TritonHealth

ERROR_BURST = "error_burst"
SERVER_UNHEALTHY = "server_unhealthy"
MODEL_NOT_READY = "model_not_ready"
GPU_LOST = "gpu_lost"
XID_HARDWARE = "xid_hardware"

_CANARY_ERRORS = frozenset({"timeout", "unreachable", "server_error", "bad_response"})
"""Outcomes that count as canary errors (model_not_ready has its own finding)."""


@dataclass(slots=True)
class _Counters:
    success: CounterRate
    failure: CounterRate


class ErrorDetector:
    name = "errors"
    accepts: tuple[type, ...] = (CanaryResult, TritonHealth, GpuEvent, GpuSample)

    def __init__(self, settings: ErrorSettings | None = None) -> None:
        self.settings = settings or ErrorSettings()
        self._episodes = Episodes(self.name)
        self._canary: dict[str, RollingWindow] = {}
        self._counters: dict[str, _Counters] = {}
        self._last_xid: dict[str, float] = {}
        self._rates: dict[str, dict[str, dict[str, Any]]] = {}
        """Latest error measures per model: 'canary' and 'triton' (counters)."""
        self._not_ready: dict[str, dict[str, bool]] = {}
        """Latest not-ready verdict per model and source ('canary', 'triton')."""
        self._failed: dict[str, bool] = {}
        """Whether each model's latest canary failed."""
        self._evidence: dict[str, Cusum] = {}
        """Sequential evidence of a burst per model (see ``ErrorSettings.evidence_log_odds``)."""

    def observe(self, sample: Sample) -> list[Judgement]:
        if isinstance(sample, CanaryResult) and sample.target == "triton":
            return self._canary_result(sample)
        if isinstance(sample, TritonHealth):
            return self._health(sample)
        if isinstance(sample, GpuEvent):
            return self._gpu_event(sample)
        if isinstance(sample, GpuSample):
            return self._gpu_back(sample)
        return []

    def suspects(self, model: str) -> bool:
        evidence = self._evidence.get(model)
        gathering = evidence is not None and evidence.suspicious
        if not (self._failed.get(model, False) or gathering):
            return False
        burst = self._episodes.find(ERROR_BURST, Subject(model=model))
        return burst is None or not burst.is_open

    def tick(self, now: float) -> list[Judgement]:
        out: list[Judgement] = []
        for ep in self._episodes.open():
            if ep.kind != XID_HARDWARE or ep.subject.gpu_uuid is None:
                continue
            last = self._last_xid.get(ep.subject.gpu_uuid, now)
            if now - last >= self.settings.xid_clear_after_s:
                c = ep.close(now, {"quiet_s": rnd(now - last, 3)})
                if c is not None:
                    out.append(c)
        return out

    # -- canary error rate ---------------------------------------------------------------

    def _canary_result(self, sample: CanaryResult) -> list[Judgement]:
        s = self.settings
        out: list[Judgement] = []
        self._failed[sample.model] = sample.outcome != "ok"
        if sample.outcome in ("ok", "model_not_ready"):
            state = self._not_ready.setdefault(sample.model, {})
            state["canary"] = sample.outcome == "model_not_ready"
            detail = {"source": "canary", "error": sample.error}
            out.extend(self._judge_not_ready(sample.ts, sample.model, detail))
        window = self._canary.get(sample.model)
        if window is None:
            window = self._canary[sample.model] = RollingWindow(s.window_s, ordered=False)
        failed = sample.outcome in _CANARY_ERRORS
        window.add(sample.ts, 1.0 if failed else 0.0)
        evidence = self._gather(sample.ts, sample.model, failed, sample.outcome)
        if len(window) >= s.min_samples or self._sequential(sample.model):
            rates = self._rates.setdefault(sample.model, {})
            rates["canary"] = {
                "source": "canary",
                "error_rate": rnd(window.mean(), 4),
                "threshold": s.max_error_rate,
                "samples": len(window),
                "errors": round(window.mean() * len(window)),
                "window_s": s.window_s,
                "last_outcome": sample.outcome,
                "last_error": (sample.error or "")[:500] or None,
            }
            if evidence is not None:
                rates["canary"]["sequential"] = {
                    "log_odds": rnd(evidence.value, 2),
                    "threshold": evidence.threshold,
                    "normal_error_rate": s.normal_error_rate,
                    "since": evidence.since,
                    "canaries_since": int(evidence.trials),
                    "errors_since": int(evidence.hits),
                    "burst": self._sequential(sample.model),
                }
            out.extend(self._judge_burst(sample.ts, sample.model, sample.version))
        return out

    def _gather(self, ts: float, model: str, failed: bool, outcome: str) -> Cusum | None:
        """Add one canary to the model's sequential evidence (None when the rule is off)."""
        s = self.settings
        if s.evidence_log_odds is None or outcome == "model_not_ready":
            return self._evidence.get(model)
        evidence = self._evidence.get(model)
        if evidence is None:
            evidence = self._evidence[model] = Cusum(s.evidence_log_odds)
        burst = self._episodes.find(ERROR_BURST, Subject(model=model))
        if burst is not None and burst.is_open:
            evidence.reset()  # spent on the open burst; the window rates clear it
            return evidence
        errors = 1.0 if failed else 0.0
        llr = binomial_llr(errors, 1.0, s.normal_error_rate, s.max_error_rate)
        evidence.add(ts, llr, hits=errors, trials=1.0)
        return evidence

    def _sequential(self, model: str) -> bool:
        """The evidence is enough, and the canaries since the errors began fail at the
        burst rate (a steady low error rate also gathers evidence, slowly; it is no burst)."""
        evidence = self._evidence.get(model)
        return (
            evidence is not None
            and evidence.alarmed
            and evidence.rate >= self.settings.max_error_rate
        )

    def _judge_burst(self, ts: float, model: str, version: str | None) -> list[Judgement]:
        """One error_burst per model, open while canaries or Triton's counters breach."""
        s = self.settings
        rates = self._rates.get(model, {})
        canary = rates.get("canary")
        triton = rates.get("triton")
        canary_rate = canary["error_rate"] if canary else 0.0
        ratio = triton["failure_ratio"] if triton else 0.0
        sequential = self._sequential(model)
        ep = self._episodes.get(
            ERROR_BURST,
            Subject(model=model),
            min_duration_s=s.min_duration_s,
            clear_duration_s=s.clear_duration_s,
        )
        if not ep.is_active and version is not None:
            ep.subject = Subject(model=model, version=version)
        j = ep.update(
            ts,
            breached=canary_rate >= s.max_error_rate or ratio >= s.max_failure_ratio or sequential,
            recovered=canary_rate < s.max_error_rate / 2
            and ratio < s.max_failure_ratio / 2
            and not sequential,
            fire=lambda started, now: self._fire_burst(model, canary, triton, started, now),
            clear_evidence=lambda: {"canary": canary, "triton": triton},
        )
        return [j] if j is not None else []

    def _fire_burst(
        self,
        model: str,
        canary: dict[str, Any] | None,
        triton: dict[str, Any] | None,
        started: float,
        ts: float,
    ) -> tuple[Severity, str, dict[str, Any]]:
        s = self.settings
        parts = []
        rules = []
        severity = Severity.WARNING
        if canary and canary["error_rate"] >= s.max_error_rate:
            rules.append("error_rate")
            parts.append(
                f"{canary['error_rate']:.0%} of canaries to {model} failed over "
                f"{s.window_s:.0f} s (last: {canary['last_outcome']})"
            )
            severity = Severity.CRITICAL
        elif canary and canary.get("sequential", {}).get("burst"):
            seq = canary["sequential"]
            rules.append("sequential")
            parts.append(
                f"{seq['errors_since']} of {seq['canaries_since']} canaries to {model} "
                f"failed since the errors began, odds of e^{seq['log_odds']:.0f} against "
                f"the normal {s.normal_error_rate:.0%} (last: {canary['last_outcome']})"
            )
            severity = Severity.CRITICAL
        if triton and triton["failure_ratio"] >= s.max_failure_ratio:
            rules.append("failure_ratio")
            parts.append(
                f"{triton['failure_ratio']:.1%} of {model} requests failed "
                f"over {triton['window_s']:.0f} s"
            )
        evidence = {
            "rules": rules,
            "sources": [x["source"] for x in (canary, triton) if x is not None],
            "canary": canary,
            "triton": triton,
            "sustained_s": rnd(ts - started, 3),
        }
        return severity, "; ".join(parts), evidence

    # -- server and model health, Triton failure counters ---------------------------------

    def _health(self, h: TritonHealth) -> list[Judgement]:
        s = self.settings
        out: list[Judgement] = []
        up = h.live and h.ready and h.error is None
        ep = self._episodes.get(
            SERVER_UNHEALTHY,
            Subject(),
            min_samples=s.unhealthy_samples,
            clear_samples=s.healthy_samples,
        )
        j = ep.update(
            h.ts,
            breached=not up,
            recovered=up,
            fire=lambda started, ts: (
                Severity.CRITICAL,
                "Triton server "
                + ("unreachable" if h.error else "not live" if not h.live else "not ready")
                + f" for {s.unhealthy_samples} checks"
                + (f": {h.error}" if h.error else ""),
                {
                    "live": h.live,
                    "ready": h.ready,
                    "error": h.error,
                    "samples": s.unhealthy_samples,
                    "down_s": rnd(ts - started, 3),
                },
            ),
        )
        if j is not None:
            out.append(j)
        if h.model is None:
            return out
        if h.model_ready is not None and up:
            self._not_ready.setdefault(h.model, {})["triton"] = not h.model_ready
            detail = {"source": "triton", "ready_versions": list(h.model_versions)}
            out.extend(self._judge_not_ready(h.ts, h.model, detail))
        out.extend(self._failures(h))
        return out

    def _judge_not_ready(self, ts: float, model: str, detail: dict[str, Any]) -> list[Judgement]:
        """One model_not_ready per model, while canaries or Triton say it is not ready."""
        s = self.settings
        state = self._not_ready.get(model, {})
        ep = self._episodes.get(
            MODEL_NOT_READY,
            Subject(model=model),
            min_samples=s.unhealthy_samples,
            clear_samples=s.healthy_samples,
        )
        j = ep.update(
            ts,
            breached=any(state.values()),
            recovered=not any(state.values()),
            fire=lambda started, now: (
                Severity.CRITICAL,
                f"model {model} not ready (seen by {', '.join(k for k, v in state.items() if v)})",
                {
                    "not_ready_by": sorted(k for k, v in state.items() if v),
                    "last": detail,
                    "samples": s.unhealthy_samples,
                    "down_s": rnd(now - started, 3),
                },
            ),
        )
        return [j] if j is not None else []

    def _failures(self, h: TritonHealth) -> list[Judgement]:
        s = self.settings
        if h.model is None or h.success_total is None or h.failure_total is None:
            return []
        c = self._counters.get(h.model)
        if c is None:
            c = self._counters[h.model] = _Counters(
                CounterRate(s.window_s), CounterRate(s.window_s)
            )
        c.success.add(h.ts, h.success_total)
        c.failure.add(h.ts, h.failure_total)
        fails = c.failure.delta()
        total = fails + c.success.delta()
        ratio = 0.0 if total < s.min_requests else fails / total
        self._rates.setdefault(h.model, {})["triton"] = {
            "source": "triton_counters",
            "failure_ratio": rnd(ratio, 4),
            "threshold": s.max_failure_ratio,
            "failures": fails,
            "requests": total,
            "window_s": rnd(c.failure.covered_s(), 3),
            "failures_by_reason": dict(h.failures_by_reason),
        }
        return self._judge_burst(h.ts, h.model, None)

    # -- GPU events ------------------------------------------------------------------------

    def _gpu_event(self, e: GpuEvent) -> list[Judgement]:
        subject = Subject(gpu_uuid=e.uuid)
        if e.kind == "gpu_lost":
            ep = self._episodes.get(GPU_LOST, subject)
            ep.extra["back"] = 0
            j = ep.open_now(
                e.ts,
                Severity.CRITICAL,
                f"GPU {e.uuid} lost ({e.detail or 'NVML reports it gone'})",
                {"event": "gpu_lost", "xid": e.xid, "detail": e.detail},
            )
            return [j] if j is not None else []
        if e.kind == "xid" and e.cause == "hardware":
            self._last_xid[e.uuid] = e.ts
            ep = self._episodes.get(XID_HARDWARE, subject)
            j = ep.open_now(
                e.ts,
                Severity.CRITICAL,
                f"hardware Xid {e.xid} on GPU {e.uuid}" + (f": {e.detail}" if e.detail else ""),
                {"xid": e.xid, "cause": e.cause, "detail": e.detail},
            )
            return [j] if j is not None else []
        return []

    def _gpu_back(self, sample: GpuSample) -> list[Judgement]:
        ep = self._episodes.get(GPU_LOST, Subject(gpu_uuid=sample.uuid))
        if not ep.is_open:
            return []
        back = int(ep.extra.get("back", 0)) + 1
        ep.extra["back"] = back
        if back < self.settings.gpu_back_samples:
            return []
        c = ep.close(sample.ts, {"samples_since_back": back})
        return [c] if c is not None else []

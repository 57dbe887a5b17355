"""``gpu_oom`` and ``gpu_oom_predicted``: GPU memory high, growing, or already failing.

Per GPU: used/total held high (``gpu_oom``, critical: allocations are about to fail) and
a least-squares growth line reaching 100 % within the horizon (``gpu_oom_predicted``,
warning: there is still time). Per model: OOM text in canary or Triton errors
(``gpu_oom``, critical). Every finding names the cause when NVML shows memory held by a
process other than the server: a restart of the server cannot fix that one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sentinel.detect.base import rnd
from sentinel.detect.episode import Episodes
from sentinel.detect.settings import MemorySettings
from sentinel.detect.windows import Fit, LinearTrend
from sentinel.vocabulary.findings import Judgement, Severity, Subject
from sentinel.vocabulary.processes import Ownership, ownership
from sentinel.vocabulary.samples import CanaryResult, GpuSample, Sample, TritonHealth

HIGH = "gpu_oom"
PREDICTED = "gpu_oom_predicted"


@dataclass(slots=True)
class _Gpu:
    trends: list[LinearTrend]
    last: GpuSample | None = None
    fraction: float = 0.0
    best: tuple[Fit, float] | None = None
    """The fit that predicts the earliest exhaustion, with its seconds to exhaustion."""
    fits: list[dict[str, Any]] = field(default_factory=list)


class MemoryDetector:
    name = "memory"
    accepts: tuple[type, ...] = (GpuSample, CanaryResult, TritonHealth)

    def __init__(
        self, settings: MemorySettings | None = None, server_pids: set[int] | None = None
    ) -> None:
        self.settings = settings or MemorySettings()
        self.server_pids: set[int] = set(self.settings.server_pids) | (server_pids or set())
        """PIDs of the Triton server; the daemon may update this set at any time."""
        self._gpus: dict[str, _Gpu] = {}
        self._episodes = Episodes(self.name)

    def observe(self, sample: Sample) -> list[Judgement]:
        if isinstance(sample, GpuSample):
            return self._observe_gpu(sample)
        # one OOM episode per model, whichever source sees it (the version goes in evidence)
        if isinstance(sample, CanaryResult):
            subject = Subject(model=sample.model)
            return self._observe_error(sample.ts, subject, sample.error, "canary", sample.version)
        if isinstance(sample, TritonHealth) and sample.model is not None:
            return self._observe_error(
                sample.ts, Subject(model=sample.model), sample.error, "triton"
            )
        return []

    def suspects(self, model: str) -> bool:
        return False  # reads no canaries

    def tick(self, now: float) -> list[Judgement]:
        return []

    # -- memory level and trend, per GPU -------------------------------------------------

    def _observe_gpu(self, sample: GpuSample) -> list[Judgement]:
        total, used = sample.memory_total_bytes, sample.memory_used_bytes
        if not total or used is None:
            return []
        s = self.settings
        gpu = self._gpus.get(sample.uuid)
        if gpu is None:
            gpu = _Gpu(trends=[LinearTrend(w) for w in s.trend_windows_s])
            self._gpus[sample.uuid] = gpu
        gpu.last = sample
        frac = used / total
        gpu.fraction = frac
        for t in gpu.trends:
            t.add(sample.ts, frac)
        subject = Subject(gpu_uuid=sample.uuid)
        out: list[Judgement] = []
        high = self._episodes.get(
            HIGH,
            subject,
            min_duration_s=s.high_min_duration_s,
            clear_duration_s=s.clear_duration_s,
        )
        # a full GPU needs a shorter hold than a merely high one
        if not high.is_active or frac < s.full_fraction:
            full = frac >= s.full_fraction
            high.min_duration_s = s.full_min_duration_s if full else s.high_min_duration_s
        j = high.update(
            sample.ts,
            breached=frac >= s.high_fraction,
            recovered=frac < s.clear_fraction,
            fire=lambda started, ts: self._fire_high(gpu, started, ts, high.breach_count),
            clear_evidence=lambda: {"used_fraction": rnd(frac, 4)},
        )
        if j is not None:
            out.append(j)
        gpu.best = self._predict(gpu, sample.ts)
        predicted = self._episodes.get(
            PREDICTED,
            subject,
            min_duration_s=s.predict_min_duration_s,
            clear_duration_s=s.clear_duration_s,
        )
        soon = gpu.best is not None and gpu.best[1] <= s.horizon_s
        j = predicted.update(
            sample.ts,
            breached=soon and not high.is_open,
            recovered=gpu.best is None or gpu.best[1] > 2 * s.horizon_s,
            fire=lambda started, ts: self._fire_predicted(gpu, started, ts),
            clear_evidence=lambda: {"used_fraction": rnd(frac, 4), "fits": gpu.fits},
        )
        if j is not None:
            out.append(j)
        return out

    def _predict(self, gpu: _Gpu, ts: float) -> tuple[Fit, float] | None:
        """The qualifying fit with the earliest exhaustion, if any."""
        s = self.settings
        best: tuple[Fit, float] | None = None
        gpu.fits = []
        for trend in gpu.trends:
            fit = trend.fit()
            if fit is None or fit.n < s.trend_min_samples or fit.span_s < trend.span_s / 2:
                continue
            slope_h = fit.slope * 3600
            ok = slope_h >= s.min_slope_per_h and fit.r2 >= s.min_r2
            eta = _eta(fit, ts, s.eta_confidence_z)
            line_eta = _eta(fit, ts, 0.0)
            gpu.fits.append(
                {
                    "window_s": trend.span_s,
                    "slope_per_h": rnd(slope_h, 5),
                    "r2": rnd(fit.r2, 4),
                    "samples": fit.n,
                    "eta_s": rnd(eta, 1) if eta != float("inf") else None,
                    "line_eta_s": rnd(line_eta, 1) if line_eta != float("inf") else None,
                    "qualifies": ok,
                }
            )
            if ok and (best is None or eta < best[1]):
                best = (fit, max(0.0, eta))
        return best

    def _fire_high(
        self, gpu: _Gpu, started: float, ts: float, samples: int
    ) -> tuple[Severity, str, dict[str, Any]]:
        s = self.settings
        assert gpu.last is not None
        full = gpu.fraction >= s.full_fraction
        evidence: dict[str, Any] = {
            "trigger": "full_memory" if full else "high_memory",
            "used_fraction": rnd(gpu.fraction, 4),
            "used_bytes": gpu.last.memory_used_bytes,
            "total_bytes": gpu.last.memory_total_bytes,
            "threshold": s.full_fraction if full else s.high_fraction,
            "min_duration_s": s.full_min_duration_s if full else s.high_min_duration_s,
            "sustained_s": rnd(ts - started, 3),
            "samples": samples,
        }
        evidence.update(self.attribute(gpu.last))
        summary = (
            f"GPU memory {gpu.fraction:.1%} used >= {evidence['threshold']:.0%} "
            f"for {ts - started:.0f} s" + _cause_text(evidence)
        )
        return Severity.CRITICAL, summary, evidence

    def _fire_predicted(
        self, gpu: _Gpu, started: float, ts: float
    ) -> tuple[Severity, str, dict[str, Any]]:
        s = self.settings
        assert gpu.best is not None
        assert gpu.last is not None
        fit, eta = gpu.best
        evidence: dict[str, Any] = {
            "trigger": "growth_slope",
            "used_fraction": rnd(gpu.fraction, 4),
            "slope_per_h": rnd(fit.slope * 3600, 5),
            "r2": rnd(fit.r2, 4),
            "eta_s": rnd(eta, 1),
            "eta_confidence_z": s.eta_confidence_z,
            "horizon_s": s.horizon_s,
            "window_s": rnd(fit.span_s, 1),
            "samples": fit.n,
            "fits": gpu.fits,
            "min_r2": s.min_r2,
            "min_slope_per_h": s.min_slope_per_h,
        }
        evidence.update(self.attribute(gpu.last))
        summary = (
            f"GPU memory {gpu.fraction:.1%} used, growing {fit.slope * 3600:.1%}/h: "
            f"full in ~{eta / 60:.0f} min" + _cause_text(evidence)
        )
        return Severity.WARNING, summary, evidence

    # -- OOM error text, per model ---------------------------------------------------------

    def _observe_error(
        self, ts: float, subject: Subject, error: str | None, source: str, version: str = ""
    ) -> list[Judgement]:
        s = self.settings
        ep = self._episodes.get(HIGH, subject, clear_duration_s=s.clear_duration_s)
        hit = self._oom_pattern(error)
        if hit is not None:
            ep.extra["last_oom"] = ts
            if ep.is_open:
                return []
            evidence: dict[str, Any] = {
                "trigger": "oom_error",
                "source": source,
                "pattern": hit,
                "error": (error or "")[:500],
                "version": version or None,
            }
            evidence.update(self._attribute_any())
            summary = f"GPU out of memory in {source} errors of {subject.model}" + _cause_text(
                evidence
            )
            j = ep.open_now(ts, Severity.CRITICAL, summary, evidence)
            return [j] if j is not None else []
        if source == "canary" and ep.is_open:
            # only a canary that got an answer shows the error has gone
            last = float(ep.extra.get("last_oom", ts))
            if error is None and ts - last >= s.clear_duration_s:
                c = ep.close(ts, {"quiet_s": rnd(ts - last, 3)})
                return [c] if c is not None else []
        return []

    def _oom_pattern(self, error: str | None) -> str | None:
        if not error:
            return None
        text = error.lower()
        for pattern in self.settings.oom_patterns:
            if pattern.lower() in text:
                return pattern
        return None

    # -- attribution -----------------------------------------------------------------------

    def attribute(self, sample: GpuSample) -> dict[str, Any]:
        """Who holds this GPU's memory: the server, another process, or unknown
        (whose a process is: :func:`sentinel.vocabulary.processes.ownership`)."""
        s = self.settings
        if not sample.processes:
            return {"cause": "unknown"}
        owners = ownership(sample.processes, s.server_process_names, self.server_pids)
        server_bytes = sum(p.used_bytes or 0 for p, o in owners if o is Ownership.SERVER)
        others: list[dict[str, Any]] = [
            {"pid": p.pid, "name": p.name, "used_bytes": p.used_bytes}
            for p, o in owners
            if o is Ownership.FOREIGN
        ]
        unknown_bytes = sum(p.used_bytes or 0 for p, o in owners if o is Ownership.UNKNOWN)
        total = sample.memory_total_bytes or 0
        other_bytes = sum(o["used_bytes"] or 0 for o in others)
        big = total > 0 and other_bytes >= s.other_process_min_share * total
        # without knowing which process is the server, nobody can be blamed
        known = any(o is Ownership.SERVER for _, o in owners) or bool(self.server_pids)
        cause = ("other_process" if big else "server") if known else "unknown"
        return {
            "cause": cause,
            "server_bytes": server_bytes,
            "other_bytes": other_bytes,
            "unknown_bytes": unknown_bytes,
            "other_processes": others,
            "server_pids": sorted(self.server_pids),
        }

    def _attribute_any(self) -> dict[str, Any]:
        """Attribution for an OOM seen in errors: the GPU with the most foreign memory."""
        best: dict[str, Any] = {"cause": "unknown"}
        for uuid, gpu in self._gpus.items():
            if gpu.last is None:
                continue
            a = self.attribute(gpu.last)
            if a["cause"] == "other_process" or best["cause"] == "unknown":
                best = {**a, "gpu_uuid": uuid, "used_fraction": rnd(gpu.fraction, 4)}
            if a["cause"] == "other_process":
                break
        return best


def _cause_text(evidence: dict[str, Any]) -> str:
    if evidence.get("cause") != "other_process":
        return ""
    others = ", ".join(
        f"{o['name'] or '?'} (pid {o['pid']})" for o in evidence.get("other_processes", [])
    )
    return f"; memory held by another process: {others}"


def _eta(fit: Fit, ts: float, z: float) -> float:
    """Seconds until the line reaches 100 %, read from the fit's upper confidence band
    (``z`` standard errors on the value now and on the slope): the earliest exhaustion
    the samples allow, so noise in the fit makes the warning earlier, never later."""
    value = fit.value_at(ts) + z * fit.value_se_at(ts)
    slope = fit.slope + z * fit.slope_se
    if value >= 1.0:
        return 0.0
    return (1.0 - value) / slope if slope > 0 else float("inf")

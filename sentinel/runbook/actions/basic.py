"""Actions that only read or wait: wait, canary.check, diagnostics.capture."""

from __future__ import annotations

import dataclasses
from typing import Any

from pydantic import Field

from sentinel.runbook.actions.base import (
    ActionContext,
    ActionParams,
    ActionSpec,
    NoUndo,
    classify,
    param,
)
from sentinel.runbook.errors import ActionError
from sentinel.vocabulary.processes import foreign_processes
from sentinel.vocabulary.samples import CanaryResult, ClockEventReason, GpuSample


class WaitParams(ActionParams):
    seconds: float = Field(ge=0)
    """How long to wait, in seconds."""


class Wait(NoUndo):
    """Sleep on the injected clock (let a change settle)."""

    spec = ActionSpec("wait", side_effects=False, summary="wait a while", params=WaitParams)

    async def run(self, ctx: ActionContext, params: dict[str, Any]) -> dict[str, Any]:
        seconds = param(params, "seconds", float)
        await ctx.clock.sleep(seconds)
        return {"waited_s": seconds}


def summarize_canaries(results: list[CanaryResult]) -> dict[str, Any]:
    """Outcomes, worst agreement and worst latency of one or more canary rounds."""
    ok = [r for r in results if r.outcome == "ok"]
    agreements = [r.agreement.top1 for r in ok if r.agreement is not None]
    latencies = sorted(r.latency_s for r in ok if r.latency_s is not None)
    return {
        "count": len(results),
        "ok": len(ok),
        "outcomes": sorted({r.outcome for r in results}),
        "agreement_min": min(agreements) if agreements else None,
        "latency_max_s": latencies[-1] if latencies else None,
        "errors": sorted({r.error for r in results if r.error})[:5],
    }


class CanaryCheckParams(ActionParams):
    model: str = Field(min_length=1)
    """The model whose canaries run."""
    version: str = ""
    """A model version (default: the one Triton serves)."""
    min_agreement: float = Field(0.0, ge=0, le=1)
    """The round passes only if every canary's top-1 agreement reaches this."""
    require: bool = False
    """Fail the step when the round does not pass (else the output just says so)."""


class CanaryCheck(NoUndo):
    """One canary round now; output says how it went (fails only with require: true)."""

    spec = ActionSpec(
        "canary.check",
        side_effects=False,
        summary="run the golden set once",
        params=CanaryCheckParams,
    )

    async def run(self, ctx: ActionContext, params: dict[str, Any]) -> dict[str, Any]:
        if ctx.canary is None:
            raise ActionError("no canary runner configured")
        model = param(params, "model", str)
        min_agreement = param(params, "min_agreement", float, 0.0)
        try:
            results = await ctx.canary.check(model, param(params, "version", str, ""))
        except Exception as exc:
            raise classify(exc) from exc
        out = summarize_canaries(results)
        agreement = out["agreement_min"]
        out["passed"] = (
            bool(results)
            and out["ok"] == out["count"]
            and (agreement is None or agreement >= min_agreement)
        )
        if param(params, "require", bool, False) and not out["passed"]:
            raise ActionError(f"canary check failed: {out}")
        return out


def gpu_facts(sample: GpuSample, server_names: list[str]) -> dict[str, Any]:
    """A GPU sample as template data, with the derived facts guards ask about."""
    facts = dataclasses.asdict(sample)
    reasons = sample.clock_event_reasons or 0
    # no server pids here: a process with no name and no parent link is unknown, not foreign
    foreign = foreign_processes(sample.processes, server_names)
    facts.update(
        hw_slowdown=bool(reasons & ClockEventReason.HwSlowdown),
        hw_thermal_slowdown=bool(reasons & ClockEventReason.HwThermalSlowdown),
        hw_power_brake=bool(reasons & ClockEventReason.HwPowerBrakeSlowdown),
        sw_thermal_slowdown=bool(reasons & ClockEventReason.SwThermalSlowdown),
        sw_power_cap=bool(reasons & ClockEventReason.SwPowerCap),
        foreign_processes=[dataclasses.asdict(p) for p in foreign],
        foreign_memory_bytes=sum(p.used_bytes or 0 for p in foreign),
    )
    return facts


class DiagnosticsParams(ActionParams):
    model: str = ""
    """The model whose statistics and canaries are captured (default: the incident's;
    empty: GPUs and the server only)."""
    canaries: int = Field(20, ge=0)
    """How many recent canary results to include."""


class DiagnosticsCapture(NoUndo):
    """GPU processes, memory, clocks and reasons, Triton statistics, recent canaries."""

    spec = ActionSpec(
        "diagnostics.capture",
        side_effects=False,
        summary="capture evidence into the run record",
        params=DiagnosticsParams,
    )

    async def run(self, ctx: ActionContext, params: dict[str, Any]) -> dict[str, Any]:
        model = param(params, "model", str, ctx.incident.subject.model or "")
        last = param(params, "canaries", int, 20)
        out: dict[str, Any] = {"model": model, "gpus": [], "canaries": [], "triton": None}
        names = ctx.settings.server_process_names
        if ctx.facts is not None:
            out["gpus"] = [gpu_facts(g, names) for g in ctx.facts.gpus()]
            health = ctx.facts.triton()
            out["triton"] = dataclasses.asdict(health) if health is not None else None
            if model:
                out["canaries"] = [dataclasses.asdict(c) for c in ctx.facts.canaries(model)[-last:]]
        health = ctx.facts.triton() if ctx.facts is not None else None
        if health is not None and not health.live:
            out["statistics_error"] = f"skipped: the server is not live ({health.error})"
        elif ctx.triton is not None:
            try:
                out["statistics"] = await ctx.triton.statistics(model)
            except Exception as exc:  # diagnostics record failures, never raise
                out["statistics_error"] = str(exc)
        return out

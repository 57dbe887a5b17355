"""The data playbook templates see: incident, subject, evidence, GPU and
Triton facts, the model's live config, parameters and earlier steps."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from sentinel.runbook.actions.basic import gpu_facts
from sentinel.runbook.causes import active_causes
from sentinel.runbook.status import StepStatus
from sentinel.vocabulary.incidents import Incident
from sentinel.vocabulary.ports import Facts
from sentinel.vocabulary.samples import GpuSample, TritonHealth

_NO_GPU = gpu_facts(GpuSample(ts=0.0, index=-1, uuid=""), [])
_NO_TRITON = dataclasses.asdict(TritonHealth(ts=0.0, live=False, ready=False))


def incident_data(incident: Incident) -> dict[str, Any]:
    return {
        "id": incident.id,
        "key": incident.key,
        "kind": incident.kind,
        "severity": str(incident.severity),
        "status": str(incident.status),
        "summary": incident.summary,
        "started_at": incident.started_at,
        "detected_at": incident.detected_at,
        "updated_at": incident.updated_at,
        "evidence": incident.evidence,
    }


def subject_data(incident: Incident) -> dict[str, Any]:
    return dataclasses.asdict(incident.subject)


def build_context(
    *,
    incident: Incident,
    target: dict[str, str],
    params: dict[str, str],
    facts: Facts | None,
    server_names: list[str],
    config: dict[str, Any],
    now: float,
    dry_run: bool,
) -> dict[str, Any]:
    """Template context at the start of a run (``steps`` fills in as it goes; a run
    keeps it in a :class:`RunContext`)."""
    gpus: list[dict[str, Any]] = []
    triton = dict(_NO_TRITON)
    if facts is not None:
        gpus = [gpu_facts(g, server_names) for g in facts.gpus()]
        health = facts.triton()
        if health is not None:
            triton = dataclasses.asdict(health)
    wanted = incident.subject.gpu_uuid
    gpu = next((g for g in gpus if g["uuid"] == wanted), gpus[0] if gpus else dict(_NO_GPU))
    return {
        "cause": cause_facts(incident, gpu),
        "incident": incident_data(incident),
        "subject": subject_data(incident),
        "evidence": incident.evidence,
        # defined fallback: a server- or GPU-wide incident may name no model
        "target": {"model": "", **target},
        "params": params,
        "gpus": gpus,
        "gpu": gpu,
        "triton": triton,
        "config": config,
        "steps": {},
        "now": now,
        "dry_run": dry_run,
    }


def cause_facts(incident: Incident, gpu: dict[str, Any]) -> dict[str, Any]:
    """What the evidence says caused the incident, for cause-aware guards.

    The detector saw the GPU when it fired; by the time a playbook runs the
    condition may have eased (an OOM frees memory, a brake releases). Each fact
    is true when the finding's evidence or the GPU's current state says so.
    """
    ev = incident.evidence
    foreign_now = int(gpu.get("foreign_memory_bytes") or 0)
    foreign_then = int(ev.get("other_bytes") or 0) if ev.get("cause") == "other_process" else 0
    thermal_now = bool(gpu.get("hw_slowdown") or gpu.get("hw_thermal_slowdown"))
    thermal_then = incident.kind == "thermal_throttle" and bool(ev.get("hardware"))
    power_now = bool(gpu.get("hw_power_brake"))
    power_then = incident.kind == "power_brake"
    hardware_then = bool(ev.get("hardware")) or power_then
    return {
        "foreign_memory": foreign_now > 0 or foreign_then > 0,
        "foreign_memory_bytes": max(foreign_now, foreign_then),
        "foreign_processes": ev.get("other_processes") or gpu.get("foreign_processes") or [],
        "hardware_throttle": thermal_now or power_now or hardware_then,
        "hardware_thermal": thermal_now or thermal_then,
        "hardware_power": power_now or power_then,
        "reasons": ev.get("reasons") or gpu.get("clock_event_names") or [],
    }


def incident_causes(incident: Incident) -> tuple[str, ...]:
    """The refused causes the incident's own evidence shows (``causes.Cause`` values),
    for pages and notes: notifiers may route them to another team."""
    found = active_causes(incident.kind, incident.evidence, cause_facts(incident, {}))
    return tuple(str(c) for c in found)


def synthetic_incident(pod: str, target: dict[str, str], kind: str, now: float) -> Incident:
    """An incident-shaped record for runs and pages not tied to a detected incident."""
    from sentinel.vocabulary.findings import Severity, Subject
    from sentinel.vocabulary.incidents import IncidentStatus

    model = target.get("model")
    subject = Subject(model=model, version=target.get("version") or None)
    return Incident(
        id=f"{kind}:{pod}/{model or '*'}",
        key=f"{pod}/{subject.key()}/{kind}",
        kind=kind,
        severity=Severity.WARNING,
        subject=subject,
        status=IncidentStatus.FIRING,
        summary=f"{kind} on {model or pod}",
        started_at=now,
        detected_at=now,
        updated_at=now,
    )


@dataclass(slots=True)
class StepState:
    """What a run knows of one of its steps (``steps.NAME`` in templates)."""

    status: StepStatus = StepStatus.PENDING
    output: dict[str, Any] = field(default_factory=dict)
    verified: bool | None = None
    """None: not verified (no ``verify:``, or not reached); else the canary's answer."""
    verification: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    blocked: str = ""
    """Why a guard refused the step."""
    paged: bool = False
    """The step paged a person (``pagerduty.trigger`` succeeded)."""


@dataclass(slots=True)
class RunContext:
    """One run's data: the facts fixed at its start, and its steps as they go."""

    facts: dict[str, Any]
    """``build_context``'s mapping (incident, cause, gpu, config, params, ...)."""
    steps: dict[str, StepState] = field(default_factory=dict)

    def template(self, **extra: Any) -> dict[str, Any]:
        """What templates and conditions see: the facts, ``steps``, and ``extra``."""
        return {**self.facts, "steps": self.steps, **extra}

    def step(self, name: str) -> StepState:
        """A fresh state for the step about to run (a step runs once per run)."""
        state = StepState()
        self.steps[name] = state
        return state

"""Stand-ins for the runbook's unit tests (named as such): Triton model control
kept in memory, a canary whose answers follow that config, a recording teller,
fixed facts. The real Triton and canary are exercised in test_real_triton.py."""

from __future__ import annotations

import asyncio
import copy
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry

from sentinel.base.clock import FakeClock
from sentinel.runbook.engine import Engine
from sentinel.runbook.schema import LoadedPlaybook
from sentinel.runbook.settings import RunbookSettings
from sentinel.vocabulary.findings import Severity, Subject
from sentinel.vocabulary.incidents import Incident, IncidentStatus
from sentinel.vocabulary.notices import IncidentChanged, Notice
from sentinel.vocabulary.samples import Agreement, CanaryResult, GpuSample, TritonHealth

T = TypeVar("T")

DIGITS_CONFIG: dict[str, Any] = {
    "name": "digits",
    "backend": "python",
    "max_batch_size": 32,
    "instance_group": [{"kind": "KIND_CPU", "count": 1}],
    "dynamic_batching": {},
    "parameters": {"precision": {"string_value": "int8"}},
}


class StandInTriton:
    """Stand-in for TritonControl: configs in a dict, every call recorded."""

    def __init__(self, configs: dict[str, dict[str, Any]] | None = None) -> None:
        self.configs = copy.deepcopy(configs or {"digits": DIGITS_CONFIG})
        self.calls: list[tuple[Any, ...]] = []
        self.transient_failures = 0
        self.refuse: Callable[[dict[str, Any]], str | None] | None = None
        self.ready = True
        self.load_delay = 0.0
        self.clock: FakeClock | None = None

    def mutations(self) -> list[tuple[Any, ...]]:
        return [c for c in self.calls if c[0] in ("load_model", "unload_model")]

    async def server_live(self) -> bool:
        return True

    async def server_ready(self) -> bool:
        return self.ready

    async def model_ready(self, model: str, version: str = "") -> bool:
        self.calls.append(("model_ready", model))
        return self.ready and model in self.configs

    async def model_config(self, model: str, version: str = "") -> dict[str, Any]:
        self.calls.append(("model_config", model))
        return copy.deepcopy(self.configs[model])

    async def load_model(self, model: str, config: dict[str, Any] | None = None) -> None:
        self.calls.append(("load_model", model, copy.deepcopy(config)))
        if self.load_delay and self.clock is not None:
            await self.clock.sleep(self.load_delay)
        if self.transient_failures > 0:
            self.transient_failures -= 1
            raise ConnectionRefusedError("connection refused")
        if self.refuse is not None and config is not None:
            why = self.refuse(config)
            if why:
                raise RuntimeError(f"load failed for model '{model}': {why}")
        if config is not None:
            self.configs[model] = copy.deepcopy(config)

    async def unload_model(self, model: str) -> None:
        self.calls.append(("unload_model", model))

    async def statistics(self, model: str = "") -> dict[str, Any]:
        return {"model_stats": [{"name": model, "inference_count": 7}]}


def precision_of(config: dict[str, Any]) -> str:
    return str(config.get("parameters", {}).get("precision", {}).get("string_value", "fp32"))


class StandInCanary:
    """Stand-in for CanaryRunner: agreement and latency computed from the live config."""

    def __init__(
        self,
        triton: StandInTriton,
        clock: FakeClock,
        agreement: Callable[[dict[str, Any]], float] | None = None,
        latency: Callable[[dict[str, Any]], float] | None = None,
    ) -> None:
        self.triton = triton
        self.clock = clock
        self.agreement = agreement or (lambda c: 0.80 if precision_of(c) == "int8" else 1.0)
        self.latency = latency or (lambda c: 0.010)
        self.rounds = 0

    async def check(self, model: str, version: str = "") -> list[CanaryResult]:
        self.rounds += 1
        config = self.triton.configs[model]
        top1 = self.agreement(config)
        return [
            CanaryResult(
                ts=self.clock.now(),
                model=model,
                version="1",
                batch_size=b,
                outcome="ok",
                latency_s=self.latency(config),
                agreement=Agreement(max_abs_error=0.0, cosine=top1, top1=top1),
            )
            for b in (1, 8)
        ]


class RecordingTeller:
    """Stand-in for the notify stage's Teller: keeps every notice."""

    def __init__(self) -> None:
        self.notices: list[Notice] = []

    async def tell(self, notice: Notice) -> None:
        self.notices.append(notice)

    def of(self, kind: type) -> list[Any]:
        return [n for n in self.notices if isinstance(n, kind)]


class FixedFacts:
    """Stand-in for ports.Facts with values a test sets."""

    def __init__(self) -> None:
        self.gpu_samples: list[GpuSample] = []
        self.health: TritonHealth | None = None
        self.canary_results: list[CanaryResult] = []

    def gpus(self) -> list[GpuSample]:
        return list(self.gpu_samples)

    def triton(self) -> TritonHealth | None:
        return self.health

    def canaries(self, model: str) -> list[CanaryResult]:
        return [c for c in self.canary_results if c.model == model]


class RecordingMarker:
    """Stand-in for the incident manager's mark_mitigating/mark_firing."""

    def __init__(self) -> None:
        self.marked: list[tuple[str, str]] = []
        self.refired: list[str] = []

    def mark_mitigating(
        self, incident_id: str, playbook: str = "", run_id: str = ""
    ) -> list[IncidentChanged]:
        self.marked.append((incident_id, run_id))
        return []

    def mark_firing(self, incident_id: str) -> None:
        self.refired.append(incident_id)


def incident(
    kind: str,
    now: float,
    model: str = "digits",
    status: IncidentStatus = IncidentStatus.FIRING,
    severity: Severity = Severity.CRITICAL,
    age: float = 0.0,
    evidence: dict[str, Any] | None = None,
) -> Incident:
    subject = Subject(model=model, version="1")
    return Incident(
        id=f"inc-{kind}-{model}",
        key=f"pod-a/{subject.key()}/{kind}",
        kind=kind,
        severity=severity,
        subject=subject,
        status=status,
        summary=f"{kind} on {model}",
        started_at=now - age,
        detected_at=now - age,
        updated_at=now - age,
        evidence=evidence or {},
    )


async def drive(
    clock: FakeClock,
    work: Awaitable[T],
    step: float = 1.0,
    limit: int = 100_000,
    real_pause: float = 0.0,
) -> T:
    """Await ``work`` while moving the fake clock forward ``step`` at a time
    (pausing ``real_pause`` real seconds between steps when real I/O is involved)."""
    task = asyncio.ensure_future(work)
    for _ in range(limit):
        if task.done():
            return task.result()
        await asyncio.sleep(real_pause)
        await clock.advance(step)
    task.cancel()
    raise AssertionError("work did not finish on the fake clock")


class Bed:
    """One engine and the stand-ins around it."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.clock = FakeClock()
        self.triton = StandInTriton()
        self.triton.clock = self.clock
        self.canary = StandInCanary(self.triton, self.clock)
        self.teller = RecordingTeller()
        self.facts = FixedFacts()
        self.marker = RecordingMarker()

    def engine(
        self,
        playbooks: list[LoadedPlaybook],
        dry_run: bool = False,
        registry: CollectorRegistry | None = None,
        **settings: Any,
    ) -> Engine:
        defaults: dict[str, Any] = {"dirs": [], "canary_interval_s": 5.0}
        return Engine(
            settings=RunbookSettings(**{**defaults, **settings}),
            conn=self.conn,
            clock=self.clock,
            playbooks={lp.playbook.name: lp for lp in playbooks},
            triton=self.triton,
            canary=self.canary,
            facts=self.facts,
            teller=self.teller,
            incidents=self.marker,
            pod="pod-a",
            dry_run=dry_run,
            registry=registry,
        )

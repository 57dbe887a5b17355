"""The flow in one place: a sample goes observe -> judge -> remember -> act -> tell.

The pipeline owns no I/O: it is handed each stage (as a protocol) and routes
every sample through them in order, keeping the latest observations as
:class:`LatestFacts` for playbook templates and cause-aware guards.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable, Sequence
from typing import Protocol

import structlog

from sentinel.vocabulary.findings import Judgement
from sentinel.vocabulary.notices import IncidentChanged, Teller
from sentinel.vocabulary.samples import CanaryResult, GpuEvent, GpuSample, Sample, TritonHealth

log = structlog.get_logger(__name__)


class Judge(Protocol):
    def observe(self, sample: Sample) -> list[Judgement]: ...

    def tick(self, now: float) -> list[Judgement]: ...


class Memory(Protocol):
    def ingest(self, judgement: Judgement) -> list[IncidentChanged]: ...

    def tick(self, now: float) -> list[IncidentChanged]: ...


class Actor(Protocol):
    async def handle(self, change: IncidentChanged) -> None: ...


class LatestFacts:
    """The latest GPU samples, Triton health and recent canaries (implements ports.Facts)."""

    def __init__(self, canary_history: int = 200) -> None:
        self._gpus: dict[str, GpuSample] = {}
        self._triton: TritonHealth | None = None
        self._canaries: dict[str, deque[CanaryResult]] = {}
        self._history = canary_history
        self.gpu_events: deque[GpuEvent] = deque(maxlen=100)

    def update(self, sample: Sample) -> None:
        if isinstance(sample, GpuSample):
            self._gpus[sample.uuid] = sample
        elif isinstance(sample, TritonHealth):
            self._triton = sample
        elif isinstance(sample, CanaryResult):
            q = self._canaries.setdefault(sample.model, deque(maxlen=self._history))
            q.append(sample)
        elif isinstance(sample, GpuEvent):
            self.gpu_events.append(sample)

    def gpus(self) -> list[GpuSample]:
        return list(self._gpus.values())

    def triton(self) -> TritonHealth | None:
        return self._triton

    def canaries(self, model: str) -> list[CanaryResult]:
        return list(self._canaries.get(model, ()))


Observer = Callable[[Sample], None]
UnitOfWork = Callable[[], contextlib.AbstractContextManager[object]]
"""A transaction around one judgement's incident change and the notices it tells."""

PENDING_LIMIT = 1000
"""Judgements kept for a retry while the state cannot be written (oldest dropped first)."""


class Pipeline:
    """Routes samples through the stages; exceptions in one stage never stop the flow."""

    def __init__(
        self,
        *,
        facts: LatestFacts,
        judge: Judge,
        memory: Memory,
        teller: Teller,
        actor: Actor | None = None,
        observers: Sequence[Observer] = (),
        on_judgement: Callable[[Judgement], None] | None = None,
        unit_of_work: UnitOfWork = contextlib.nullcontext,
        retry_on: Callable[[BaseException], bool] = lambda exc: False,
    ) -> None:
        self.facts = facts
        self._judge = judge
        self._memory = memory
        self._teller = teller
        self._actor = actor
        self._observers = list(observers)
        self._on_judgement = on_judgement
        self._unit = unit_of_work
        self._retry_on = retry_on
        self.pending: deque[Judgement] = deque(maxlen=PENDING_LIMIT)
        """Judgements whose incident change could not be stored, retried every tick."""

    async def accept(self, sample: Sample) -> None:
        """One sample through the whole flow."""
        self.facts.update(sample)
        for observe in self._observers:
            try:
                observe(sample)
            except Exception:
                log.exception("observer_failed", observer=repr(observe))
        try:
            judgements = self._judge.observe(sample)
        except Exception:
            log.exception("detector_failed", sample_type=sample.TYPE)
            return
        await self._remember(judgements)

    async def ingest_judgement(self, judgement: Judgement) -> None:
        """A judgement from outside the detectors (e.g. an Alertmanager webhook alert)."""
        await self._remember([judgement])

    async def tick(self, now: float) -> None:
        """Time passing with no sample: staleness, hysteresis, silences, re-notify."""
        try:
            judgements = self._judge.tick(now)
        except Exception:
            log.exception("detector_tick_failed")
            judgements = []
        await self._retry_pending()
        await self._remember(judgements)
        try:
            # an incident change is stored together with its notices, or not at all:
            # what a failed write rolled back, the next tick works out again
            with self._unit():
                changes = self._memory.tick(now)
                await self._tell(changes)
        except Exception:
            log.exception("incident_tick_failed")
            return
        await self._act(changes)

    async def _retry_pending(self) -> None:
        for _ in range(len(self.pending)):
            if not await self._ingest(self.pending.popleft()):
                break  # still failing: the rest wait for the next tick, in order

    async def _remember(self, judgements: list[Judgement]) -> None:
        for judgement in judgements:
            if self._on_judgement is not None:
                self._on_judgement(judgement)
            if self.pending:  # keep the order: this one waits behind the earlier ones
                self._keep(judgement)
                continue
            await self._ingest(judgement)

    async def _ingest(self, judgement: Judgement) -> bool:
        """One judgement remembered and told in one unit of work; False if kept for later."""
        try:
            with self._unit():
                changes = self._memory.ingest(judgement)
                await self._tell(changes)
        except Exception as exc:
            if not self._retry_on(exc):
                log.exception("incident_ingest_failed", kind=judgement.kind)
                return True
            log.error("incident_not_stored", kind=judgement.kind, error=str(exc))
            self.pending.appendleft(judgement)
            return False
        await self._act(changes)
        return True

    def _keep(self, judgement: Judgement) -> None:
        if len(self.pending) == self.pending.maxlen:
            log.error("incident_judgement_dropped", kind=self.pending[0].kind)
        self.pending.append(judgement)

    async def _tell(self, changes: list[IncidentChanged]) -> None:
        for change in changes:
            await self._teller.tell(change)

    async def _act(self, changes: list[IncidentChanged]) -> None:
        for change in changes:
            log.info(
                "incident_" + change.change,
                incident=change.incident.key,
                severity=str(change.incident.severity),
                summary=change.incident.summary,
            )
            if self._actor is not None:
                try:
                    await self._actor.handle(change)
                except Exception:
                    log.exception("playbook_engine_failed", incident=change.incident.key)

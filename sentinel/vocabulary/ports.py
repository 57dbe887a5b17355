"""The seams between stages: what one stage needs of another's adapters.

Stages depend on these protocols, never on each other's I/O classes, so tests
can hand in a real server's adapter or a recording stand-in alike.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from sentinel.vocabulary.incidents import Incident
from sentinel.vocabulary.samples import CanaryResult, GpuSample, Sample, TritonHealth

SampleSink = Callable[[Sample], Awaitable[None]]
"""Where probes put what they observe (the daemon's pipeline, or a recorder)."""

OpenIncidents = Callable[[], Sequence[Incident]]
"""The incidents open now (firing or mitigating), read from the incident store."""


class TritonControl(Protocol):
    """Model control and health of one Triton server (implemented in probes/triton.py)."""

    async def server_live(self) -> bool: ...

    async def server_ready(self) -> bool: ...

    async def model_ready(self, model: str, version: str = "") -> bool: ...

    async def model_config(self, model: str, version: str = "") -> dict[str, Any]:
        """The config Triton is serving now, as KServe v2 JSON (a dict)."""
        ...

    async def load_model(self, model: str, config: dict[str, Any] | None = None) -> None:
        """(Re)load a model, optionally with a full config override (JSON form)."""
        ...

    async def unload_model(self, model: str) -> None: ...

    async def statistics(self, model: str = "") -> dict[str, Any]: ...


class CanaryRunner(Protocol):
    """Runs the configured golden set on demand (verification after a step)."""

    async def check(self, model: str, version: str = "") -> list[CanaryResult]:
        """One round at every configured batch size, now."""
        ...


class Facts(Protocol):
    """The latest observations, for playbook templates and cause-aware guards."""

    def gpus(self) -> list[GpuSample]:
        """Latest sample of each watched GPU."""
        ...

    def triton(self) -> TritonHealth | None: ...

    def canaries(self, model: str) -> list[CanaryResult]:
        """Recent canary results for a model, oldest first."""
        ...


class PlaybookService(Protocol):
    """What the control API and the CLI need of the runbook stage: manual runs, run
    history, the breaker and the playbook list (``runbook/service.py`` implements it)."""

    async def run(
        self,
        name: str,
        target: dict[str, str],
        params: dict[str, str],
        dry_run: bool,
        actor: str,
    ) -> dict[str, Any]:
        """Run (or dry-run) a playbook now; KeyError for an unknown name, ValueError for bad
        target/params; returns the run's record (id, status, steps...)."""
        ...

    def runs(self, limit: int) -> list[dict[str, Any]]:
        """Recent runs, newest first, each with its steps."""
        ...

    def reset_breaker(self, actor: str) -> None:
        """Close the circuit breaker that stopped automation."""
        ...

    def run_record(self, run_id: str) -> dict[str, Any] | None:
        """One run with every step, its output and evidence (None: no such run).

        The default (for services without history) knows no run."""
        return None

    def cancel(self, run_id: str, actor: str) -> bool:
        """Cancel a run under way (its applied steps are rolled back); False when no run by
        that id is under way here. The default (no engine) has none."""
        return False

    def decide(self, run_id: str, approve: bool, actor: str) -> bool:
        """Approve or reject a run waiting for approval (``mode: approve``); False when no
        run by that id waits here. The default (no engine) has none."""
        return False

    def list(self) -> list[dict[str, Any]]:
        """The loaded playbooks (name, description, mode, triggers, steps, file and hash)."""
        ...

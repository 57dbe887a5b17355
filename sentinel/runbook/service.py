"""The runbook as the control API and the CLI see it: the PlaybookService port."""

from __future__ import annotations

from typing import Any

from sentinel.runbook.engine import Engine
from sentinel.runbook.errors import UnknownPlaybook
from sentinel.runbook.schema import LoadedPlaybook
from sentinel.vocabulary.ports import PlaybookService


class EnginePlaybookService(PlaybookService):
    """Manual runs, history, the breaker and the playbook list, over one engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def run(
        self,
        name: str,
        target: dict[str, str],
        params: dict[str, str],
        dry_run: bool,
        actor: str,
    ) -> dict[str, Any]:
        """Run a playbook now; KeyError (UnknownPlaybook) for an unknown name, ValueError
        for a target without a model."""
        if name not in self.engine.playbooks:
            raise UnknownPlaybook(name)
        if not target.get("model"):
            raise ValueError("target: needs model=NAME (the model on this server to act on)")
        result = await self.engine.run_manual(name, target, params, dry_run, actor)
        return result.as_dict()

    def runs(self, limit: int) -> list[dict[str, Any]]:
        """Latest runs first, each with its steps."""
        return self.engine.history.runs(limit)

    def run_record(self, run_id: str) -> dict[str, Any] | None:
        """One run with every step (params, output, reason) and its evidence."""
        return self.engine.history.run(run_id)

    def cancel(self, run_id: str, actor: str) -> bool:
        return self.engine.cancel(run_id, actor)

    def decide(self, run_id: str, approve: bool, actor: str) -> bool:
        return self.engine.decide(run_id, approve, actor)

    def reset_breaker(self, actor: str) -> None:
        self.engine.reset_breaker(actor)

    def breaker(self) -> dict[str, Any]:
        return self.engine.history.breaker()

    def list(self) -> list[dict[str, Any]]:
        """Loaded playbooks: name, description, mode, triggers, file and hash."""
        return [
            describe(name, self.engine.playbooks[name]) for name in sorted(self.engine.playbooks)
        ]


def describe(name: str, lp: LoadedPlaybook) -> dict[str, Any]:
    """One playbook as `sentinel playbook list` and ``GET /v1/playbooks`` show it."""
    pb = lp.playbook
    return {
        "name": name,
        "description": pb.description,
        "mode": pb.mode,
        "triggers": sorted({k for t in pb.triggers for k in t.kinds}),
        "steps": [s.name for s in pb.steps],
        "path": lp.path,
        "sha256": lp.sha256,
    }

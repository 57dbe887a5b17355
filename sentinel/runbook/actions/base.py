"""What every action adapter is: a declared spec, ``run``, and maybe ``undo``.

The spec's flags are what make dry-run structural: the executor reads
``side_effects`` and never calls such an action in a dry run, whatever the
action's own code would do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from sentinel.base.clock import Clock
from sentinel.base.errors import is_retryable
from sentinel.runbook.errors import ActionError, TransientError
from sentinel.runbook.settings import RunbookSettings
from sentinel.vocabulary.incidents import Incident
from sentinel.vocabulary.notices import Teller
from sentinel.vocabulary.ports import CanaryRunner, Facts, TritonControl


@dataclass(frozen=True, slots=True)
class ActionSpec:
    """What an action is allowed to be, declared once."""

    name: str
    side_effects: bool
    """Changes or tells something outside sentinel: never called in a dry run."""
    mutating: bool = False
    """Changes the serving system (needs a way back: undo or an explicit rollback)."""
    disruptive: bool = False
    """Interrupts serving (restart, eviction): asks the fleet guard first."""
    undoable: bool = False
    """Snapshots what it changes and can put it back (``undo``)."""
    summary: str = ""


@dataclass(frozen=True, slots=True)
class ActionContext:
    """What an action may use; ports are None where the daemon has none."""

    clock: Clock
    settings: RunbookSettings
    incident: Incident
    playbook: str
    run_id: str
    step: str = ""
    pod: str = ""
    triton: TritonControl | None = None
    canary: CanaryRunner | None = None
    facts: Facts | None = None
    teller: Teller | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def need_triton(self) -> TritonControl:
        if self.triton is None:
            raise ActionError("no Triton connection configured")
        return self.triton

    def need_teller(self) -> Teller:
        if self.teller is None:
            raise ActionError("no notifier configured")
        return self.teller


class Action(Protocol):
    spec: ActionSpec

    async def run(self, ctx: ActionContext, params: dict[str, Any]) -> dict[str, Any]:
        """Do it; returns a JSON-ready output (later steps see it as steps.NAME.output)."""
        ...

    async def undo(
        self, ctx: ActionContext, params: dict[str, Any], output: dict[str, Any]
    ) -> None:
        """Put back what ``run`` changed (only called when spec.undoable)."""
        ...


class NoUndo:
    """Mixin for actions with nothing to put back."""

    async def undo(
        self, ctx: ActionContext, params: dict[str, Any], output: dict[str, Any]
    ) -> None:
        raise ActionError("this action cannot be undone")


def classify(exc: BaseException) -> ActionError:
    """An adapter's exception as an action error, keeping its text: transient when its
    type says it may pass (``is_retryable``: Retryable, timeouts, refused connections)."""
    if isinstance(exc, ActionError):
        return exc
    text = f"{type(exc).__name__}: {exc}"
    return TransientError(text) if is_retryable(exc) else ActionError(text)


def param(params: dict[str, Any], name: str, kind: type, default: Any = ...) -> Any:
    """A typed parameter, or an ActionError naming it."""
    if name not in params:
        if default is ...:
            raise ActionError(f"with.{name}: required")
        return default
    value = params[name]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if kind is int and isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ActionError(f"with.{name}: expected {kind.__name__}, got {value!r}")
    return value

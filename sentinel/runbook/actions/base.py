"""What every action adapter is: a declared spec, ``run``, and maybe ``undo``.

The spec's flags are what make dry-run structural: the executor reads
``side_effects`` and never calls such an action in a dry run, whatever the
action's own code would do.
"""

from __future__ import annotations

import difflib
import typing
from dataclasses import dataclass, field
from typing import Any, Protocol

import pydantic
from pydantic import BaseModel, ConfigDict

from sentinel.base.clock import Clock
from sentinel.base.errors import is_retryable
from sentinel.runbook.errors import ActionError, TransientError
from sentinel.runbook.settings import RunbookSettings
from sentinel.vocabulary.incidents import Incident
from sentinel.vocabulary.notices import Teller
from sentinel.vocabulary.ports import CanaryRunner, Facts, TritonControl


class ActionParams(BaseModel):
    """An action's ``with:`` parameters; each action declares its own subclass.

    Field docstrings are the reference in docs/playbooks.md. Unknown keys are refused.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class NoParams(ActionParams):
    """This action takes no parameters."""


def is_template(value: Any) -> bool:
    """A string the executor renders at run time (its type is only known then)."""
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def param_problems(
    params_model: type[ActionParams], given: dict[str, Any]
) -> list[tuple[tuple[int | str, ...], str]]:
    """Where ``given`` breaks the action's declared parameters: (path, message) pairs.

    A value that is a template is checked only once rendered (at run time), so errors
    about one are dropped here; unknown and missing keys are always reported.
    """
    try:
        params_model.model_validate(given)
    except pydantic.ValidationError as exc:
        out: list[tuple[tuple[int | str, ...], str]] = []
        for err in exc.errors():
            kind = err["type"]
            if kind not in ("missing", "extra_forbidden") and is_template(err["input"]):
                continue
            loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p))
            message = err["msg"].removeprefix("Value error, ")
            if kind == "extra_forbidden":
                message = "unknown parameter" + _suggest(params_model, loc)
            elif kind == "missing":
                message = "required parameter is missing"
            if (loc, message) not in out:
                out.append((loc, message))
        return out
    return []


def _suggest(params_model: type[ActionParams], loc: tuple[int | str, ...]) -> str:
    """'did you mean' among the fields of the (possibly nested) model that owns loc[-1]."""
    model: Any = params_model
    for part in loc[:-1]:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        inner = [a for a in typing.get_args(field.annotation) if _is_params(a)] if field else []
        model = field.annotation if field and _is_params(field.annotation) else None
        model = model or (inner[0] if inner else None)
        if model is None:
            return ""
    fields = list(model.model_fields)
    close = difflib.get_close_matches(str(loc[-1]), fields, n=1)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return f" (known: {', '.join(fields) or 'none'})"


def _is_params(ann: Any) -> bool:
    return isinstance(ann, type) and issubclass(ann, ActionParams)


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
    params: type[ActionParams] = NoParams
    """What ``with:`` may hold, checked when the playbook is validated."""


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
    if default is ... and isinstance(value, str) and not value.strip():
        # e.g. target.model rendered '' for an incident that names no model
        raise ActionError(f"with.{name}: required, but empty")
    return value

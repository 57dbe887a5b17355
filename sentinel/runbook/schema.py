"""The playbook file format: a typed schema, checked before anything runs.

Besides types, validation checks what would otherwise fail mid-incident:
unknown actions, template syntax, step names referenced twice, and a
side-effecting step without a way back (``rollback`` or an action that
snapshots and undoes itself, or an explicit ``rollback: none``).
"""

from __future__ import annotations

import difflib
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from sentinel.base.duration import Duration
from sentinel.base.yamlsource import (
    InvalidFile,
    Problem,
    line_of,
    load_yaml,
    plain,
    read_text,
    validate,
)
from sentinel.runbook.actions import ACTIONS
from sentinel.runbook.authoring import authoring_problems
from sentinel.runbook.causes import Cause
from sentinel.runbook.param_schemas import conditionals, with_schemas
from sentinel.runbook.templating import check_expression, check_templates
from sentinel.vocabulary.findings import FINDING_KINDS, Severity

SCHEMA_ID = "playbooks/playbook.schema.json"
"""Where the emitted schema is shipped (a test checks it is up to date)."""


def _known_kind(kind: str) -> str:
    if kind not in FINDING_KINDS:
        close = difflib.get_close_matches(kind, list(FINDING_KINDS), n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(FINDING_KINDS)}"
        raise ValueError(f"no detector raises {kind!r} ({hint})")
    return kind


FindingKindName = Annotated[
    str,
    AfterValidator(_known_kind),
    WithJsonSchema({"type": "string", "enum": list(FINDING_KINDS)}),
]
"""A finding kind some detector raises (vocabulary.findings.FINDING_KINDS)."""

ActionName = Annotated[str, WithJsonSchema({"type": "string", "enum": sorted(ACTIONS)})]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Trigger(_Strict):
    """Which incidents start the playbook."""

    kinds: list[FindingKindName] = Field(min_length=1)
    """Finding kinds, e.g. [latency_spike, gpu_oom_predicted]."""
    min_severity: Severity = Severity.WARNING
    """Ignore incidents below this severity."""
    subject: dict[str, str] = Field(default_factory=dict)
    """Glob matchers on the subject, e.g. {model: 'resnet*'}."""
    for_: Duration = Field(0.0, alias="for")
    """The incident must have been firing this long (since onset) before acting."""
    max_age: Duration | None = None
    """Never act on an incident whose latest detection is older (default: settings)."""


class Retry(_Strict):
    """Retries of a step whose action failed with a transient error (never others)."""

    count: int = Field(2, ge=0, le=10)
    backoff: Duration = 1.0
    """Delay before the first retry; doubles each time."""
    factor: float = Field(2.0, ge=1.0)


class Verify(_Strict):
    """Canary-based check that a step fixed the problem."""

    within: Duration = 120.0
    """Deadline: the check fails if no canary round passes by then."""
    min_agreement: float | None = Field(0.99, ge=0, le=1)
    """Every canary's top-1 agreement with the reference must reach this."""
    max_p99_ratio: float | None = Field(None, gt=0)
    """Canary latency must be within this multiple of the baseline p99."""
    baseline_p99_s: str | float | None = None
    """Baseline p99 latency in seconds (a template, e.g. '{{ evidence.baseline_p99_s }}');
    default: canary results from before the incident started."""
    rounds: int = Field(1, ge=1, le=20)
    """Consecutive passing canary rounds needed."""


class Rollback(_Strict):
    """What undoes a step (rendered with the step's own output as ``output``)."""

    action: str
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")


class Gate(_Strict):
    """A cause-aware block: if ``when`` is true, skip, record ``reason`` and page."""

    when: str
    reason: str

    @field_validator("when")
    @classmethod
    def _expr(cls, v: str) -> str:
        return _valid_expression(v)


class Step(_Strict):
    """One action of a playbook."""

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    """Unique in the playbook; later steps see it as ``steps.<name>``."""
    action: ActionName
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")
    """Parameters, rendered by the sandboxed template engine."""
    if_: str | None = Field(None, alias="if")
    """Run only if this expression is true (e.g. ``not steps.reduce_batch.verified``)."""
    blocked_if: list[Gate] = Field(default_factory=list)
    timeout: Duration = 60.0
    retry: Retry | None = None
    verify: Verify | None = None
    rollback: Rollback | Literal["auto", "none"] = "auto"
    """'auto': the action undoes itself from its snapshot; 'none': cannot be undone."""
    restore_after: Duration | None = None
    """Treat the change as a lease: restore the original after this long healthy."""
    continue_on_failure: bool = False
    """Go on with the next step when this one fails (the ladder continues)."""
    allow_causes: list[Cause] = Field(default_factory=list)
    """Causes this changing step may act on although the executor refuses them by
    default (hardware_thermal, hardware_power, xid_hardware, gpu_lost, foreign_memory)."""
    because: str = ""
    """Why acting on ``allow_causes`` is safe here (required with them; kept in the record)."""

    @field_validator("action")
    @classmethod
    def _known_action(cls, v: str) -> str:
        if v not in ACTIONS:
            raise ValueError(f"unknown action {v!r} (known: {_known()})")
        return v

    @field_validator("with_")
    @classmethod
    def _templates(cls, v: dict[str, Any]) -> dict[str, Any]:
        problems = check_templates(v)
        if problems:
            raise ValueError("; ".join(problems))
        return v

    @field_validator("if_")
    @classmethod
    def _condition(cls, v: str | None) -> str | None:
        return None if v is None else _valid_expression(v)

    @model_validator(mode="after")
    def _way_back(self) -> Step:
        spec = ACTIONS[self.action]
        if spec.mutating and self.rollback == "auto" and not spec.undoable:
            raise ValueError(
                f"{self.action} changes something and cannot undo itself; "
                "give a rollback: step or say rollback: none"
            )
        if self.restore_after is not None and not spec.undoable:
            raise ValueError("restore_after needs an action that snapshots what it changes")
        if isinstance(self.rollback, Rollback):
            if self.rollback.action not in ACTIONS:
                raise ValueError(f"unknown rollback action {self.rollback.action!r}")
            problems = check_templates(self.rollback.with_)
            if problems:
                raise ValueError("rollback: " + "; ".join(problems))
        if bool(self.allow_causes) != bool(self.because.strip()):
            raise ValueError(
                "allow_causes and because go together: name the causes and say why "
                "acting on them is safe"
            )
        if self.verify is not None and isinstance(self.verify.baseline_p99_s, str):
            problems = check_templates({"baseline_p99_s": self.verify.baseline_p99_s})
            if problems:
                raise ValueError("verify: " + "; ".join(problems))
        return self


class Budget(_Strict):
    runs: int = Field(3, ge=1)
    per: Duration = 86400.0


class Guards(_Strict):
    """Per-playbook guards; the executor enforces them (and the global ones)."""

    cooldown: Duration | None = None
    """Quiet time after a run on the same target (default: settings)."""
    budget: Budget | None = None
    """Runs per window on the same target, then page instead (default: settings)."""
    blocked_if: list[Gate] = Field(default_factory=list)


class Playbook(_Strict):
    """A playbook file."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    description: str = ""
    mode: Literal["execute", "shadow", "disabled", "approve"] = "execute"
    """shadow: record decisions and the plan only, like a dry run; approve: an automatic
    run pages its plan and waits for a person to approve or reject it."""
    approve_within: Duration = 900.0
    """mode approve: how long a run waits for a decision before it gives up (and pages)."""
    triggers: list[Trigger] = Field(default_factory=list)
    """Empty: manual runs only."""
    when: str | None = None
    """Extra condition over the incident and facts."""
    params: dict[str, str] = Field(default_factory=dict)
    """Defaults of manual parameters (``params.<name>`` in templates)."""
    guards: Guards = Guards()
    steps: list[Step] = Field(min_length=1)
    on_failure: list[Step] = Field(default_factory=list)
    """Run when the playbook fails (a step error, or no verified fix)."""

    @field_validator("when")
    @classmethod
    def _condition(cls, v: str | None) -> str | None:
        return None if v is None else _valid_expression(v)

    @model_validator(mode="after")
    def _unique_names(self) -> Playbook:
        seen: set[str] = set()
        for step in [*self.steps, *self.on_failure]:
            if step.name in seen:
                raise ValueError(f"step name {step.name!r} is used twice")
            seen.add(step.name)
        return self


def _valid_expression(expr: str) -> str:
    err = check_expression(expr)
    if err:
        raise ValueError(err)
    return expr


def _known() -> str:
    return ", ".join(sorted(ACTIONS))


class LoadedPlaybook(BaseModel):
    """A validated playbook and where it came from (the hash goes into every run record)."""

    model_config = ConfigDict(frozen=True)

    playbook: Playbook
    path: str
    sha256: str


def apply_override(data: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge a site's override over a playbook's YAML (plain data).

    Mappings merge key by key; other values (lists included) replace. ``steps``
    (and ``on_failure``) take a mapping keyed by step name, merged into the step
    of that name, so one step's ``restore_after`` can change without restating the
    ladder. An override naming a step that does not exist is an error.
    """
    merged = dict(data)
    for key, value in override.items():
        if key in ("steps", "on_failure") and isinstance(value, dict):
            found = merged.get(key) or []
            steps = [dict(s) if isinstance(s, dict) else s for s in found]
            names = [s.get("name") if isinstance(s, dict) else None for s in steps]
            for name, patch in value.items():
                if not isinstance(found, list) or name not in names:
                    raise ValueError(f"{key}.{name}: no step of that name to override")
                if not isinstance(patch, dict):
                    raise ValueError(f"{key}.{name}: expected a mapping of the step's fields")
                i = names.index(name)
                steps[i] = apply_override(steps[i], patch)
            merged[key] = steps
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = apply_override(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_playbook(path: str | Path, override: dict[str, Any] | None = None) -> LoadedPlaybook:
    """Read and validate one playbook file; :class:`InvalidFile` names file, line and field.

    ``override`` is the site's patch for this playbook (``playbooks.overrides``).
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise InvalidFile([Problem(str(p), 0, "", f"cannot read: {exc.strerror or exc}")]) from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidFile([Problem(str(p), 1, "", "not UTF-8 text")]) from exc
    data = load_yaml(text, str(p))
    if not isinstance(data, dict):
        raise InvalidFile([Problem(str(p), 1, "", "a playbook must be a mapping")])
    digest = hashlib.sha256(raw)
    if override:
        try:
            data = apply_override(plain(data), override)
        except ValueError as exc:
            raise InvalidFile([Problem(str(p), 1, "overrides", str(exc))]) from exc
        digest.update(json.dumps(override, sort_keys=True, default=str).encode())
    pb = validate(Playbook, data, str(p))
    found = authoring_problems(pb)
    if found:
        raise InvalidFile(
            [Problem(str(p), line_of(data, loc), _dotted(loc), msg) for loc, msg in found]
        )
    return LoadedPlaybook(playbook=pb, path=str(p), sha256=digest.hexdigest())


def _dotted(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc)


@dataclass(frozen=True, slots=True)
class MissingFolder(Problem):
    """A configured playbook folder that does not exist (no file in it is invalid)."""


def invalid_files(problems: list[Problem]) -> list[Problem]:
    """The problems that are about a playbook file or an override, not a missing folder:
    these fail readiness and count in ``sentinel_playbooks_invalid``."""
    return [p for p in problems if not isinstance(p, MissingFolder)]


def load_dirs(
    dirs: list[Path], overrides: dict[str, dict[str, Any]] | None = None
) -> tuple[dict[str, LoadedPlaybook], list[Problem]]:
    """Every `*.yaml`/`*.yml` in the folders; bad files are reported, good ones kept.

    ``overrides`` maps a playbook's name to its site patch (see :func:`apply_override`).
    """
    overrides = overrides or {}
    named: set[str] = set()
    found: dict[str, LoadedPlaybook] = {}
    problems: list[Problem] = []
    for d in dirs:
        if not d.is_dir():
            problems.append(MissingFolder(str(d), 0, "", "playbook folder not found"))
            continue
        for f in sorted([*d.glob("*.yaml"), *d.glob("*.yml")]):
            name = _name_in(f) or ""
            named.add(name)
            try:
                lp = load_playbook(f, overrides.get(name))
            except InvalidFile as exc:
                problems.extend(exc.problems)
                continue
            if lp.playbook.name in found:
                other = found[lp.playbook.name].path
                problems.append(Problem(str(f), 1, "name", f"also defined in {other}"))
                continue
            found[lp.playbook.name] = lp
    for name in sorted(set(overrides) - named):
        problems.append(Problem("config", 0, f"playbooks.overrides.{name}", "no such playbook"))
    return found, problems


def _name_in(path: Path) -> str | None:
    """The playbook's `name:` read without validation (overrides are keyed by it)."""
    try:
        data = load_yaml(read_text(path), str(path))  # bounded: depth, size, aliases
    except InvalidFile:
        return None
    name = data.get("name") if isinstance(data, dict) else None
    return name if isinstance(name, str) else None


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a playbook file (for editors and CI; shipped as SCHEMA_ID)."""
    schema = Playbook.model_json_schema(by_alias=True)
    by_action, defs = with_schemas()
    for name in ("Step", "Rollback"):
        schema["$defs"][name]["allOf"] = conditionals(by_action)
    schema["$defs"].update(defs)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}

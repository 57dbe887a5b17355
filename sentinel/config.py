"""sentinel's one typed config: a YAML file, validated, with env overrides.

Each stage owns its own section model (``sentinel/<stage>/settings.py``); this
module composes them and knows how to load a file. Problems are reported as
``FILE:LINE: dotted.field: message``.

Environment overrides: ``SENTINEL_<SECTION>__<FIELD>=value`` (double underscore
between levels, value parsed as YAML), e.g. ``SENTINEL_TRITON__URL=10.0.0.5:8001``
or ``SENTINEL_API__TOKEN=...``.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

import pydantic
from pydantic import Field, SecretStr, model_validator

from sentinel.base.db_settings import StateSettings
from sentinel.base.settings import RelPath, Section, read_secret
from sentinel.base.yamlsource import (
    InvalidFile,
    Problem,
    load_yaml,
    plain,
    problems_from,
    read_text,
)
from sentinel.detect.settings import DetectorSettings
from sentinel.incidents.settings import IncidentSettings
from sentinel.notify.settings import NotifySettings
from sentinel.probes.settings import (
    CanarySettings,
    GpuSettings,
    ModelFilesSettings,
    StreamCanarySettings,
    TritonSettings,
)
from sentinel.runbook.settings import FleetSettings, RunbookSettings
from sentinel.vocabulary.processes import DEFAULT_SERVER_PROCESSES

ENV_PREFIX = "SENTINEL_"
_VERBATIM_SUFFIXES = ("token", "key", "password", "url", "secret")


class ApiSettings(Section):
    """The control API (health, status, manual runs, Alertmanager webhook)."""

    bind: str = "127.0.0.1"
    """Address to listen on; localhost unless you put it behind auth you trust."""
    port: int = Field(9309, ge=0, le=65535)
    token: SecretStr | None = None
    """Bearer token for acting endpoints (set via SENTINEL_API__TOKEN)."""
    token_file: RelPath | None = None
    """File holding the bearer token (e.g. a mounted Kubernetes Secret)."""

    def bearer_token(self) -> str | None:
        return read_secret(self.token, self.token_file)


class MetricsSettings(Section):
    """sentinel's own Prometheus endpoint."""

    bind: str = "0.0.0.0"  # noqa: S104 -- scraped from outside the pod; exposes no control
    port: int = Field(9308, ge=0, le=65535)


class LoggingSettings(Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"
    """auto: pretty when stdout is a terminal, JSON lines otherwise."""


class Config(Section):
    """The whole sentinel config."""

    pod: str = Field(default_factory=lambda: os.environ.get("POD_NAME") or socket.gethostname())
    """Name of this pod/host, first part of every incident's dedup key."""
    state_dir: RelPath = Path("state")
    """Where the SQLite store lives (incidents, runs, outbox, audit)."""
    state: StateSettings = StateSettings()
    """The state database: what to do when it is damaged, and the audit trail's bounds."""
    dry_run: bool = False
    """Global dry-run: playbooks are planned and logged, nothing with a side effect runs."""
    triton: TritonSettings = TritonSettings()
    canaries: list[CanarySettings] = Field(default_factory=list)
    stream_canaries: list[StreamCanarySettings] = Field(default_factory=list)
    """Golden prompts streamed through decoupled (generative) models."""
    gpu: GpuSettings = GpuSettings()
    model_files: ModelFilesSettings = ModelFilesSettings()
    detectors: DetectorSettings = DetectorSettings()
    incidents: IncidentSettings = IncidentSettings()
    playbooks: RunbookSettings = RunbookSettings()
    notifiers: NotifySettings = NotifySettings()
    fleet: FleetSettings = FleetSettings()
    api: ApiSettings = ApiSettings()
    metrics: MetricsSettings = MetricsSettings()
    logging: LoggingSettings = LoggingSettings()
    server_processes: list[str] = Field(
        default_factory=lambda: list(DEFAULT_SERVER_PROCESSES), min_length=1
    )
    """The server's processes, by name or shell pattern (``python*``), matched on the
    executable's base name: memory they hold is the server's, the rest on its GPUs is
    foreign. The first is the server's main process (the one ``process.signal`` signals).
    Replaces ``detectors.memory.server_process_names`` and
    ``playbooks.server_process_names`` (still read, as deprecated aliases)."""

    @model_validator(mode="before")
    @classmethod
    def _repository_once(cls, data: Any) -> Any:
        """The runbook's model_repo actions default to model_files' folders."""
        return unify_server_processes(default_repo_folders(data))

    REMOVED_KEYS: ClassVar[dict[str, str]] = {
        "tensorrt_canaries": "TensorRT models are canaried through Triton: list each under "
        "canaries (model, golden_set) like any other model",
    }
    """Keys that once meant something: a config still using one is told what to do instead."""

    @model_validator(mode="after")
    def _unique_canaries(self) -> Config:
        seen = set()
        for c in self.canaries:
            if (c.model, c.version) in seen:
                raise ValueError(f"two canaries for model {c.model!r} version {c.version!r}")
            seen.add((c.model, c.version))
        return self


def default_repo_folders(data: Any) -> Any:
    files = data.get("model_files") if isinstance(data, dict) else None
    if not isinstance(files, dict) or not isinstance(data.get("playbooks", {}), dict):
        return data
    playbooks = dict(data.get("playbooks") or {})
    for mine, theirs in (("model_repository", "repository"), ("backup_dir", "backup_dir")):
        if playbooks.get(mine) is None and files.get(theirs) is not None:
            playbooks[mine] = files[theirs]
    return {**data, "playbooks": playbooks}


_PROCESS_ALIASES = (("detectors", "memory"), ("playbooks",))
"""Where ``server_processes`` was once set, each section as ``server_process_names``."""


def _section(data: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        data = data.get(key) if isinstance(data, dict) else getattr(data, key, None)
    return data


def _alias_value(section: Any) -> list[str] | None:
    if isinstance(section, dict):
        value = section.get("server_process_names")
        return list(value) if isinstance(value, list | tuple) else None
    if isinstance(section, pydantic.BaseModel) and "server_process_names" in (
        section.model_fields_set
    ):
        return list(section.model_dump(include={"server_process_names"})["server_process_names"])
    return None


def _with_names(data: Any, path: tuple[str, ...], names: list[str]) -> Any:
    """``data`` with ``server_process_names`` set in the section at ``path``."""
    if not path:
        if isinstance(data, pydantic.BaseModel):
            return data.model_copy(update={"server_process_names": names})
        return {**(data if isinstance(data, dict) else {}), "server_process_names": names}
    head, rest = path[0], path[1:]
    if isinstance(data, pydantic.BaseModel):
        return data.model_copy(update={head: _with_names(getattr(data, head), rest, names)})
    inner = data.get(head) if isinstance(data, dict) else None
    return {**(data if isinstance(data, dict) else {}), head: _with_names(inner, rest, names)}


def unify_server_processes(data: Any) -> Any:
    """One list of the server's processes, ``server_processes``, given to both stages.

    The old per-stage keys still work as aliases (with a deprecation warning); two
    places naming different lists are refused, naming the key to use instead.
    """
    if not isinstance(data, dict):
        return data
    given = {
        ".".join(path) + ".server_process_names": value
        for path in _PROCESS_ALIASES
        if (value := _alias_value(_section(data, path))) is not None
    }
    names = data.get("server_processes")
    if names is None and given:
        distinct = {tuple(v) for v in given.values()}
        if len(distinct) > 1:
            raise ValueError(
                f"{' and '.join(given)} name different server processes: list them once, "
                "as server_processes (those keys are deprecated)"
            )
        names = next(iter(given.values()))
    elif names is not None and any(v != list(names) for v in given.values()):
        raise ValueError(
            f"server_processes and {' and '.join(given)} disagree: keep only server_processes "
            "(the others are deprecated)"
        )
    if given:
        # imported here: structlog's imports cost `config check` about 0.1 s otherwise
        import structlog

        log = structlog.get_logger(__name__)
        for key in given:
            log.warning("config_key_deprecated", key=key, use="server_processes")
    if names is None:
        names = list(DEFAULT_SERVER_PROCESSES)
    if not isinstance(names, list | tuple):
        return data  # not a list: let validation say so
    if names and any(c in str(names[0]) for c in "*?["):
        raise ValueError(
            "server_processes: the first entry is the server's main process (the one "
            f"process.signal signals), a plain name, not the pattern {names[0]!r}"
        )
    out = {**data, "server_processes": names}
    for path in _PROCESS_ALIASES:
        out = _with_names(out, path, list(names))
    return out


def env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """Nested overrides from ``SENTINEL_A__B=value`` variables (values parsed as YAML)."""
    out: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or name == "SENTINEL_CONFIG":
            continue
        path = [p.lower() for p in name[len(ENV_PREFIX) :].split("__") if p]
        if not path:
            continue
        try:
            # the config file's own YAML rules (a bare `off` stays a string)
            value = plain(load_yaml(raw, name))
        except InvalidFile:
            value = raw
        if value is None:
            value = raw
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        # secrets stay verbatim strings even when they look like numbers
        node[path[-1]] = raw if path[-1].endswith(_VERBATIM_SUFFIXES) else value
    return out


def _merge(base: Any, over: Mapping[str, Any]) -> Any:
    if not isinstance(base, dict):
        return dict(over)
    merged = dict(base)
    for k, v in over.items():
        merged[k] = _merge(merged.get(k), v) if isinstance(v, Mapping) else v
    return merged


def load_config(path: str | Path | None, environ: Mapping[str, str] | None = None) -> Config:
    """Load and validate a config file (None: the embedded defaults), then env overrides."""
    environ = os.environ if environ is None else environ
    if path is None:
        data: Any = {}
        filename = "<defaults>"
        base_dir = Path.cwd()
    else:
        p = Path(path)
        filename = str(p)
        base_dir = p.resolve().parent
        data = load_yaml(read_text(p), filename) or {}
        if not isinstance(data, dict):
            raise InvalidFile([Problem(filename, 1, "", "the config must be a mapping")])
    overrides = env_overrides(environ)
    merged = _merge(plain(data), overrides) if overrides else plain(data)
    try:
        return Config.model_validate(merged, context={"base_dir": base_dir})
    except pydantic.ValidationError as exc:
        problems = problems_from(exc, data, filename, Config)
        for pr in problems:
            if pr.field.split(".")[0] in overrides and _in_overrides(pr.field, overrides):
                problems[problems.index(pr)] = Problem("env", 0, pr.field, pr.message)
        raise InvalidFile(problems) from exc


def _in_overrides(dotted: str, overrides: Mapping[str, Any]) -> bool:
    node: Any = overrides
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True

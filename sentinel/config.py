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

from sentinel.base.db import StateSettings
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

    @model_validator(mode="before")
    @classmethod
    def _repository_once(cls, data: Any) -> Any:
        """The runbook's model_repo actions default to model_files' folders."""
        return default_repo_folders(data)

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

"""The observe stage's settings: how to reach Triton, the canaries, GPU sampling."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pydantic
from pydantic import Field

from sentinel.base.settings import RelPath, Section, resolve_path


class TritonSettings(Section):
    """How to reach the Triton server."""

    url: str = "localhost:8001"
    """host:port of the gRPC endpoint, or of the HTTP endpoint when protocol is http."""
    protocol: Literal["grpc", "http"] = "grpc"
    """KServe v2 protocol used for canaries, health and model control."""
    metrics_url: str | None = "http://localhost:8002/metrics"
    """Triton's Prometheus endpoint (failure counters, pending requests); None to skip."""
    timeout_s: float = Field(5.0, gt=0)
    """Deadline of health, statistics and model-control calls."""
    load_timeout_s: float = Field(120.0, gt=0)
    """Deadline of model load/unload calls (a TensorRT engine can take a while to load)."""
    health_interval_s: float = Field(2.0, gt=0)
    """How often the health probe runs."""


class CanarySettings(Section):
    """One golden set sent through one model on a schedule."""

    model: str
    """Model name as Triton serves it."""
    version: str = ""
    """Model version to ask for; '' lets Triton pick by its version policy."""
    golden_set: RelPath
    """`.npz` with the model's inputs, `reference__<OUTPUT>` outputs and optional `labels`."""
    interval_s: float = Field(5.0, gt=0)
    """Time between canary rounds."""
    recheck_interval_s: float | None = Field(1.0, gt=0)
    """After a round a detector finds suspicious (an error, a slow or disagreeing answer,
    with no finding open yet), the next round comes this soon (at most ``interval_s``):
    the suspicion is confirmed or dispelled in seconds, not in several intervals.
    None turns rechecks off."""
    max_rechecks: int = Field(5, ge=0)
    """Rechecks in a row at most; then rounds go back to ``interval_s`` (the window
    decides a persistent fault, and a sick server is not hammered)."""
    batch_sizes: list[int] = Field(default_factory=lambda: [1])
    """Each round sends one request per batch size (rows taken from the golden set)."""
    timeout_s: float = Field(2.0, gt=0)
    """A canary without an answer by then counts as a timeout."""
    output: str | None = None
    """Output tensor to compare; default: the model's first output."""

    @pydantic.field_validator("batch_sizes")
    @classmethod
    def _positive(cls, v: list[int]) -> list[int]:
        if not v or any(b < 1 for b in v):
            raise ValueError("batch sizes must be a non-empty list of integers >= 1")
        return v


class GpuSettings(Section):
    """NVML sampling."""

    source: str = "nvml"
    """'nvml' (live), 'replay:FILE.jsonl' (a recording, e.g. a real incident), or 'off'."""
    devices: list[int | str] = Field(default_factory=list)
    """GPUs to watch, by index or UUID; empty means all."""
    interval_s: float = Field(1.0, gt=0)
    """Time between samples of each GPU."""
    xid_events: bool = True
    """Watch for Xid events (critical errors) on a thread of their own."""
    replay_speed: float = Field(1.0, gt=0)
    """Replay at this multiple of recorded speed (replay source only)."""

    @pydantic.field_validator("source")
    @classmethod
    def _source(cls, v: str, info: pydantic.ValidationInfo) -> str:
        if v in ("nvml", "off"):
            return v
        if not v.startswith("replay:") or v == "replay:":
            raise ValueError("expected 'nvml', 'off' or 'replay:FILE.jsonl'")
        # a relative recording path is relative to the config file, like every path
        return "replay:" + str(resolve_path(Path(v[len("replay:") :]), info))

"""The observe stage's settings: how to reach Triton, the canaries, GPU sampling."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pydantic
from pydantic import Field

from sentinel.base.duration import Duration
from sentinel.base.settings import RelPath, Section, resolve_path


class TritonSettings(Section):
    """How to reach the Triton server."""

    url: str = "localhost:8001"
    """host:port of the gRPC endpoint, or of the HTTP endpoint when protocol is http."""
    protocol: Literal["grpc", "http"] = "grpc"
    """KServe v2 protocol used for canaries, health and model control. ``http`` costs the
    sidecar 2 threads where gRPC's event engine starts one per core (4-16) and ~20 MB
    less, but Triton's HTTP ``ready`` was seen stalling past the 1 s deadline while a
    model reloaded (docs/benchmarks.md), so gRPC stays the default."""
    metrics_url: str | None = "http://localhost:8002/metrics"
    """Triton's Prometheus endpoint (failure counters, pending requests); None to skip."""
    timeout_s: Duration = Field(1.0, gt=0)
    """Deadline of health, statistics and model-control calls (a local server answers in
    milliseconds; as a Kubernetes probe's default, a second without an answer is a failed
    check)."""
    load_timeout_s: Duration = Field(120.0, gt=0)
    """Deadline of model load/unload calls (a TensorRT engine can take a while to load)."""
    health_interval_s: Duration = Field(1.0, gt=0)
    """How often the health probe runs."""
    metrics_interval_s: Duration = Field(2.0, ge=0)
    """How often a health round also scrapes ``metrics_url`` (traffic counters, latency
    summaries); 0 = every round. The traffic detectors judge 10 s windows, so every
    round at 1 s would double the scrapes (and their parsing) for no earlier finding."""


class CanarySettings(Section):
    """One golden set sent through one model on a schedule."""

    model: str
    """Model name as Triton serves it."""
    version: str = ""
    """Model version to ask for; '' lets Triton pick by its version policy."""
    golden_set: RelPath
    """`.npz` with the model's inputs, `reference__<OUTPUT>` outputs and optional `labels`."""
    interval_s: Duration = Field(2.0, gt=0)
    """Time between canary rounds."""
    recheck_interval_s: Duration | None = Field(0.5, gt=0)
    """After a round a detector finds suspicious (an error, a slow or disagreeing answer,
    with no finding open yet), the next round comes this soon (at most ``interval_s``):
    the suspicion is confirmed or dispelled in seconds, not in several intervals.
    None turns rechecks off."""
    max_rechecks: int = Field(5, ge=0)
    """Rechecks in a row at most; then rounds go back to ``interval_s`` (the window
    decides a persistent fault, and a sick server is not hammered)."""
    batch_sizes: list[int] = Field(default_factory=lambda: [1])
    """Each round sends one request per batch size (rows taken from the golden set)."""
    timeout_s: Duration = Field(2.0, gt=0)
    """A canary without an answer by then counts as a timeout."""
    output: str | None = None
    """Output tensor to compare; default: the model's first output."""

    @pydantic.field_validator("batch_sizes")
    @classmethod
    def _positive(cls, v: list[int]) -> list[int]:
        if not v or any(b < 1 for b in v):
            raise ValueError("batch sizes must be a non-empty list of integers >= 1")
        return v


class StreamCanarySettings(Section):
    """Golden prompts streamed through a decoupled (generative) model over gRPC."""

    model: str
    """Model name as Triton serves it (``model_transaction_policy { decoupled: true }``)."""
    version: str = ""
    """Model version to ask for; '' lets Triton pick by its version policy."""
    golden_set: RelPath
    """`.npz` from `sentinel golden capture`: the inputs, `reference__<OUTPUT>` (the whole
    generated text per prompt) and `tokens__<OUTPUT>` (how many tokens it came in)."""
    url: str | None = None
    """gRPC host:port for the stream; default: `triton.url` (streaming needs gRPC)."""
    output: str | None = None
    """Output tensor that carries the tokens; default: the model's first output."""
    interval_s: Duration = Field(10.0, gt=0)
    """Time between rounds."""
    prompts_per_round: int = Field(1, ge=1)
    """Prompts streamed each round, taken in turn from the golden set."""
    recheck_interval_s: Duration | None = Field(2.0, gt=0)
    """After a round a detector finds suspicious, the next comes this soon (None: off)."""
    max_rechecks: int = Field(3, ge=0)
    """Rechecks in a row at most."""
    first_token_timeout_s: Duration = Field(10.0, gt=0)
    """No first token by then: the stream counts as a timeout."""
    stall_timeout_s: Duration = Field(2.0, gt=0)
    """A later token that takes longer than this: the stream stalled, and is cancelled."""
    timeout_s: Duration = Field(60.0, gt=0)
    """Deadline of the whole stream."""


class GpuSettings(Section):
    """Where GPU samples come from: NVML, another exporter's metrics, or a recording."""

    source: str = "nvml"
    """'nvml' (live, through the driver), 'triton' (Triton's own nv_gpu_* metrics at
    triton.metrics_url), 'dcgm' (a dcgm-exporter at gpu.metrics_url), 'replay:FILE.jsonl'
    (a recording, e.g. a real incident), or 'off'. What 'triton' and 'dcgm' cannot see:
    docs/operations.md, "GPU sources"."""
    devices: list[int | str] = Field(default_factory=list)
    """GPUs to watch, by index or UUID; empty means all."""
    interval_s: Duration = Field(1.0, gt=0)
    """Time between samples of each GPU."""
    slow_interval_s: Duration = Field(10.0, gt=0)
    """How often the fields that change rarely are read: uncorrected ECC errors, remapped
    rows, the PCIe replay counter, the power limit and the GPU's processes; samples in
    between carry the last values read (a failed read is retried on the next sample).
    On an H200 the PCIe replay counter alone cost ~190 us of CPU a read, eight times the
    fast fields together. At most ``interval_s``: every field on every sample."""
    processes_on_memory_change: float = Field(0.01, ge=0, le=1)
    """The processes are also read at once when memory used moved by more than this share
    of the total since they were last read, so memory that fills is attributed to the
    process that filled it, not to an older list. 0 reads them on every sample."""
    xid_events: bool = True
    """Watch for Xid events (critical errors) on a thread of their own."""
    replay_speed: float = Field(1.0, gt=0)
    """Replay at this multiple of recorded speed (replay source only)."""
    metrics_url: str | None = None
    """The dcgm-exporter endpoint (source 'dcgm'), e.g. http://NODE_IP:9400/metrics."""
    dcgm_pod: str | None = None
    """Source 'dcgm': keep only the GPUs dcgm-exporter attributes to this pod (its `pod`
    label, with the exporter's Kubernetes mapping on); None keeps every GPU of the node
    (narrow with devices). In a pod: SENTINEL_GPU__DCGM_POD from the downward API."""
    scrape_timeout_s: Duration = Field(5.0, gt=0)
    """Deadline of one scrape (sources 'triton' and 'dcgm')."""

    @pydantic.field_validator("source")
    @classmethod
    def _source(cls, v: str, info: pydantic.ValidationInfo) -> str:
        if v in ("nvml", "off", "triton", "dcgm"):
            return v
        if not v.startswith("replay:") or v == "replay:":
            raise ValueError("expected 'nvml', 'triton', 'dcgm', 'off' or 'replay:FILE.jsonl'")
        # a relative recording path is relative to the config file, like every path
        return "replay:" + str(resolve_path(Path(v[len("replay:") :]), info))

    @pydantic.model_validator(mode="after")
    def _dcgm_needs_url(self) -> GpuSettings:
        if self.source == "dcgm" and not self.metrics_url:
            raise ValueError("gpu.source 'dcgm' needs gpu.metrics_url (the exporter's /metrics)")
        return self


class ModelFilesSettings(Section):
    """``model_files:``: watch the model repository's files, keep known-good manifests."""

    repository: RelPath | None = None
    """Triton's model repository as mounted in this container; None turns the probe off."""
    backup_dir: RelPath | None = None
    """Where each version recorded as known-good is copied with its manifest (the
    restore-known-good playbook restores from here); None keeps manifests only."""
    models: list[str] = Field(default_factory=list)
    """Models to watch (default: the canaries' models)."""
    interval_s: Duration = Field(10.0, gt=0)
    """How often the files are looked at (size and mtime; a file is hashed only when
    they changed)."""
    full_rehash_s: Duration = Field(3600.0, gt=0)
    """Every file is hashed again at least this often (catches a change that kept size
    and mtime, e.g. bit rot or a careful overwrite)."""
    known_good_after: int = Field(3, ge=1)
    """Healthy canaries in a row that prove a version good (its manifest is recorded)."""
    min_agreement: float = Field(0.99, ge=0, le=1)
    """A canary is healthy when it answered and its top-1 agreement is at least this."""

"""What detectors say: a finding opens, a cleared event closes it.

Both carry their evidence (the numbers that made the decision) so that every
later stage -- incidents, playbooks, Slack, PagerDuty -- can explain itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return ("info", "warning", "critical").index(self.value)


@dataclass(frozen=True, slots=True)
class Subject:
    """What a finding is about. Unset parts are None."""

    model: str | None = None
    version: str | None = None
    batch_size: int | None = None
    gpu_uuid: str | None = None

    def key(self) -> str:
        """Stable text form, e.g. ``digits:1/bs8/GPU-abc``."""
        parts = []
        if self.model is not None:
            parts.append(f"{self.model}:{self.version or '*'}")
        if self.batch_size is not None:
            parts.append(f"bs{self.batch_size}")
        if self.gpu_uuid is not None:
            parts.append(self.gpu_uuid)
        return "/".join(parts) or "-"


@dataclass(frozen=True, slots=True)
class Finding:
    """A detector's judgement that something is wrong, with why."""

    kind: str
    """e.g. latency_spike, gpu_oom, gpu_oom_predicted, thermal_throttle, power_brake,
    accuracy_drift, error_burst, server_unhealthy, model_not_ready, gpu_lost, xid_hardware,
    backlog, traffic_latency_spike, queue_buildup, throughput_collapse, error_rate_rise."""
    severity: Severity
    subject: Subject
    started_at: float
    """Onset of the condition (first sample that met it), epoch seconds."""
    detected_at: float
    """The sample at which the detector fired, epoch seconds."""
    summary: str
    """One human sentence, e.g. 'p99 latency 412 ms > SLO 250 ms for 30 s'."""
    evidence: dict[str, Any] = field(default_factory=dict)
    """Values, baseline, threshold, sample count, window -- JSON-ready."""
    detector: str = ""


@dataclass(frozen=True, slots=True)
class Cleared:
    """The condition behind an earlier finding has gone (after hysteresis)."""

    kind: str
    subject: Subject
    cleared_at: float
    evidence: dict[str, Any] = field(default_factory=dict)
    detector: str = ""


Judgement = Finding | Cleared


@dataclass(frozen=True, slots=True)
class FindingKind:
    """A kind of finding some detector raises, and what its subject names."""

    name: str
    subject: str
    """'model' (always names a model), 'gpu', 'server' (names nothing), or
    'model or gpu' (either, depending on the evidence)."""
    summary: str

    @property
    def always_names_a_model(self) -> bool:
        return self.subject == "model"


FINDING_KINDS: dict[str, FindingKind] = {
    k.name: k
    for k in (
        FindingKind("latency_spike", "model", "p99 latency over its SLO or baseline"),
        FindingKind("accuracy_drift", "model", "canary agreement with the golden set fell"),
        FindingKind("metric_anomaly", "model", "a watched series left its usual range"),
        FindingKind("backlog", "model", "requests queue faster than they are served"),
        FindingKind(
            "traffic_latency_spike", "model", "users' requests slower than their baseline or SLO"
        ),
        FindingKind("queue_buildup", "model", "queue wait per request rising over its baseline"),
        FindingKind("throughput_collapse", "model", "request rate fell far below its usual rate"),
        FindingKind("error_rate_rise", "model", "users' requests fail more than they usually do"),
        FindingKind("error_burst", "model", "requests to a model fail in a burst"),
        FindingKind("server_unhealthy", "server", "the server is not live or not ready"),
        FindingKind("model_not_ready", "model", "a model the server should serve is not ready"),
        FindingKind("gpu_lost", "gpu", "a GPU fell off the bus or stopped answering"),
        FindingKind("xid_hardware", "gpu", "an Xid error of the hardware class"),
        FindingKind("ttft_spike", "model", "time to first token over its baseline"),
        FindingKind("stream_stalled", "model", "streams stop before their last token"),
        FindingKind("generation_drift", "model", "generated text drifts from the golden text"),
        FindingKind("thermal_throttle", "gpu", "clocks held down by heat"),
        FindingKind("power_brake", "gpu", "clocks held down by the power brake"),
        FindingKind("gpu_oom", "model or gpu", "out of memory (a request failed, or memory full)"),
        FindingKind("gpu_oom_predicted", "gpu", "memory growth will fill the GPU soon"),
        FindingKind("model_files_changed", "model", "a model's files differ from known-good"),
        FindingKind("model_repo_unreachable", "model", "the model repository cannot be read"),
        FindingKind("model_unverified", "model", "a served version has no known-good manifest"),
        FindingKind("model_gpu_mismatch", "model", "an engine built for another GPU is served"),
    )
}
"""Every kind a detector can raise (playbook triggers are checked against these; a test
checks the detectors raise no other)."""

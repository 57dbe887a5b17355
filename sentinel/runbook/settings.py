"""The `playbooks:` and `fleet:` config sections. Owned by the runbook stage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from sentinel.base.duration import Duration
from sentinel.base.settings import RelPath, Section
from sentinel.vocabulary.processes import DEFAULT_SERVER_PROCESSES

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
"""Where Kubernetes mounts a pod's service-account token, CA and namespace."""


class RunbookSettings(Section):
    """Where playbooks live and the executor's global guards."""

    overrides: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Site patches by playbook name, deep-merged over the shipped file before validation
    (tune a shipped playbook without forking it). Mappings merge, lists replace, and
    ``steps`` takes a mapping by step name, e.g.
    ``{reduce-batch-size: {guards: {cooldown: 5m}, steps: {halve_batch: {restore_after: 2h}}}}``."""
    enabled: bool = True
    """Run playbooks automatically on incidents; False still allows manual runs."""
    dirs: list[RelPath] = Field(default_factory=lambda: [Path("playbooks")])
    """Folders whose `*.yaml` files are the playbooks (read at start and on reload)."""
    reload_interval_s: Duration | None = Field(10.0, gt=0)
    """How often the folders are checked for changed files, which are then reloaded all or
    nothing (SIGHUP reloads at once); None: only on SIGHUP."""
    dry_run: bool = False
    """Plan and log every run, call nothing with a side effect (ORed with the global dry_run)."""
    paused: bool = False
    """Opt this pod out of automation: every automatic run is refused as paused (and says
    so in its page) while this is set; manual runs still go."""
    pause_annotations_file: RelPath | None = None
    """A downward-API file of the pod's annotations (``/etc/podinfo/annotations``); the
    annotation ``sentinel.dev/paused: "true"`` pauses the pod like ``paused``."""
    max_event_age_s: Duration = Field(300.0, gt=0)
    """Never act on a finding detected longer ago than this (a playbook may set less)."""
    cooldown_s: Duration = Field(900.0, ge=0)
    """Default quiet time after a run of a playbook on a target before it may run again."""
    budget_runs: int = Field(3, ge=1)
    """Default number of runs of one playbook on one target per budget window; then page."""
    budget_window_s: Duration = Field(86400.0, gt=0)
    """The budget window (default 24 h)."""
    breaker_max_actions: int = Field(10, ge=1)
    """Open the circuit breaker when this many side-effecting actions ran in the window."""
    breaker_window_s: Duration = Field(3600.0, gt=0)
    """The circuit breaker's window."""
    lease_check_interval_s: Duration = Field(30.0, gt=0)
    """How often degradation leases are checked for restore."""
    canary_interval_s: Duration = Field(1.0, gt=0)
    """Pause between canary rounds while verifying a step."""
    server_pid_file: RelPath | None = None
    """File holding tritonserver's pid (process.signal); else found by name in /proc."""
    server_process_names: list[str] = Field(
        default_factory=lambda: list(DEFAULT_SERVER_PROCESSES), exclude=True
    )
    """The server's processes (names or patterns; the first is the one process.signal
    signals). Set once, at the top level, as ``server_processes`` (this key is a
    deprecated alias the config fills from it)."""
    allowed_signals: list[str] = Field(
        default_factory=lambda: ["SIGTERM", "SIGINT", "SIGHUP", "SIGKILL"]
    )
    """Signals process.signal may send (SIGKILL also allows `kill_after_s` escalation)."""
    commands: dict[str, list[str]] = Field(default_factory=dict)
    """Allowlist for process.exec: a name -> an argv list (never run through a shell)."""
    k8s_api_url: str | None = None
    """Kubernetes API server for k8s.* actions (default: the in-cluster service address, else
    the kubeconfig's); it replaces the server only: credentials still come from the service
    account, else the kubeconfig ($KUBECONFIG or ~/.kube/config)."""
    k8s_service_account_dir: Path = SERVICE_ACCOUNT_DIR
    """Where the pod's service-account token, CA and namespace are mounted."""
    k8s_namespace: str | None = None
    """Namespace of this pod for k8s.* actions (default: the in-cluster service account's)."""
    k8s_pod: str | None = None
    """This pod's name for k8s.evict_pod (default: the config's `pod`)."""
    model_repository: RelPath | None = None
    """Triton's model repository (model_repo.* actions); default ``model_files.repository``."""
    backup_dir: RelPath | None = None
    """Known-good backups to restore from; default ``model_files.backup_dir``."""


class FleetSettings(Section):
    """The `fleet:` config section: a budget of disruptive actions shared by all replicas."""

    enabled: bool = False
    """Off: a single sentinel, every action allowed (outside Kubernetes)."""
    namespace: str | None = None
    """Namespace of the Lease and Deployment; default: $POD_NAMESPACE, else the pod's own."""
    lease: str = "sentinel-fleet-budget"
    """Name of the coordination.k8s.io Lease holding the budget (RBAC names it too)."""
    deployment: str | None = None
    """Deployment whose spec.replicas the budget is a share of (needs `get` on it)."""
    replicas: int | None = Field(None, ge=1)
    """Fixed replica count, used when `deployment` is not set."""
    max_fraction: float = Field(0.1, gt=0, le=1)
    """Share of replicas that may be disrupted per window."""
    min_slots: int = Field(1, ge=0)
    """Disruptive actions allowed per window however few replicas there are."""
    window_s: Duration = Field(600.0, gt=0)
    """Sliding window of the budget, seconds."""
    degraded_fraction: float = Field(0.5, gt=0, le=1)
    """Halt automation fleet-wide when more than this share of replicas is degraded."""
    max_attempts: int = Field(5, ge=1)
    """Read-decide-write rounds on a contended Lease before refusing."""
    api_url: str | None = None
    """Kubernetes API base URL; default: the in-cluster service (KUBERNETES_SERVICE_HOST), else
    the kubeconfig's server. Credentials: the service account, else the kubeconfig."""
    service_account_dir: Path = SERVICE_ACCOUNT_DIR
    """Where the pod's token, CA and namespace are mounted."""

    @model_validator(mode="after")
    def _size_known(self) -> FleetSettings:
        if self.enabled and self.deployment is None and self.replicas is None:
            raise ValueError("fleet: set `deployment` (read its replicas) or `replicas`")
        return self

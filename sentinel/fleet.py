"""Fleet guard: a fleet-wide budget for disruptive actions, kept in a Kubernetes Lease.

Every Triton pod runs its own sentinel, so per-pod cooldowns do not bound what the
fleet does: a bad model push could make every sidecar restart its server at once.
Before a disruptive action (restart, eviction) the playbook helper calls
:meth:`FleetGuard.acquire`; :class:`LeaseFleetGuard` takes a slot from a budget
shared by all replicas (at most ``max_fraction`` of the deployment's replicas, at
least ``min_slots``, per ``window_s``), recorded as JSON in an annotation of one
``coordination.k8s.io/v1`` Lease. Writes use optimistic concurrency: a PUT carries
the ``metadata.resourceVersion`` it read, a stale one gets 409 Conflict, and the
guard re-reads and decides again (a bounded number of times).

When more than ``degraded_fraction`` of the replicas are degraded together the cause
is shared (model version, upstream, node pool): restarting pods will not fix it, so
the guard halts automation fleet-wide. Exactly one sentinel wins the write that
records the halt, and only that one pages (``on_halt``), so the fleet pages once.

Anything unexpected (API unreachable, unreadable state, contention) denies: when the
fleet cannot be coordinated, no pod acts alone.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import httpx
from pydantic import Field, model_validator

from sentinel.base.clock import Clock
from sentinel.base.settings import Section

log = logging.getLogger(__name__)

STATE_ANNOTATION = "sentinel.dev/fleet-budget"
"""Annotation of the Lease that holds the budget's JSON state."""

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class FleetGuard(Protocol):
    """Asked before every disruptive action; False means: do not act (page instead)."""

    async def acquire(self, action: str, target: str) -> bool: ...


class AllowAllGuard:
    """The guard for runs outside Kubernetes: a single sentinel, nothing to coordinate."""

    async def acquire(self, action: str, target: str) -> bool:
        return True

    async def report(self, degraded: bool) -> None:
        """Nothing to share."""

    async def aclose(self) -> None:
        """Nothing to close."""


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
    window_s: float = Field(600.0, gt=0)
    """Sliding window of the budget, seconds."""
    degraded_fraction: float = Field(0.5, gt=0, le=1)
    """Halt automation fleet-wide when more than this share of replicas is degraded."""
    max_attempts: int = Field(5, ge=1)
    """Read-decide-write rounds on a contended Lease before refusing."""
    api_url: str | None = None
    """Kubernetes API base URL; default: the in-cluster service (KUBERNETES_SERVICE_HOST)."""
    service_account_dir: Path = SERVICE_ACCOUNT_DIR
    """Where the pod's token, CA and namespace are mounted."""

    @model_validator(mode="after")
    def _size_known(self) -> FleetSettings:
        if self.enabled and self.deployment is None and self.replicas is None:
            raise ValueError("fleet: set `deployment` (read its replicas) or `replicas`")
        return self

    def budget(self) -> FleetBudget:
        return FleetBudget(
            self.max_fraction,
            self.min_slots,
            self.window_s,
            self.degraded_fraction,
            self.max_attempts,
        )

    def resolved_namespace(self) -> str:
        """The configured namespace, $POD_NAMESPACE, or the service account's namespace."""
        if self.namespace:
            return self.namespace
        if os.environ.get("POD_NAMESPACE"):
            return os.environ["POD_NAMESPACE"]
        try:
            return (self.service_account_dir / "namespace").read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ApiError(0, "fleet: no namespace configured and none mounted") from exc


@dataclass(frozen=True, slots=True)
class FleetBudget:
    """How much disruption the fleet tolerates."""

    max_fraction: float = 0.1
    """Share of the deployment's replicas that may be disrupted per window."""
    min_slots: int = 1
    """Slots per window however few replicas there are."""
    window_s: float = 600.0
    """Length of the sliding window, seconds."""
    degraded_fraction: float = 0.5
    """Halt automation when more than this share of replicas is degraded together."""
    max_attempts: int = 5
    """Read-decide-write rounds before giving up on a contended Lease."""

    def slots(self, replicas: int) -> int:
        """Disruptive actions allowed per window for this many replicas."""
        return max(self.min_slots, math.floor(self.max_fraction * replicas))


@dataclass(frozen=True, slots=True)
class Decision:
    """What the guard decided and why (for the log, the audit trail and the page)."""

    granted: bool
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FleetHalt:
    """Automation stopped fleet-wide: most replicas degraded together."""

    lease: str
    degraded: list[str]
    replicas: int
    since: float


class ApiError(Exception):
    """The Kubernetes API answered with an error (or not at all)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


class Conflict(ApiError):
    """409: a stale resourceVersion, or the object already exists."""


class KubeApi:
    """The few Kubernetes API calls the guard makes, over HTTP with httpx.

    The bearer token is re-read for every request: projected service-account
    tokens rotate while the pod runs.
    """

    def __init__(
        self,
        base_url: str,
        token: Callable[[], str | None] = lambda: None,
        verify: str | bool = True,
        timeout_s: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._token = token
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), verify=verify, timeout=timeout_s, transport=transport
        )

    @classmethod
    def in_cluster(cls, sa_dir: Path = SERVICE_ACCOUNT_DIR, base_url: str | None = None) -> KubeApi:
        """The API server as seen from a pod: service env vars, mounted token and CA."""
        if base_url is None:
            host = os.environ.get("KUBERNETES_SERVICE_HOST")
            port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
            if not host:
                raise ApiError(0, "not in a cluster: KUBERNETES_SERVICE_HOST is not set")
            base_url = f"https://{host}:{port}"
        token_file = sa_dir / "token"
        ca = sa_dir / "ca.crt"
        return cls(
            base_url,
            token=lambda: token_file.read_text(encoding="utf-8").strip(),
            verify=str(ca) if ca.exists() else True,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _call(
        self, method: str, path: str, body: Mapping[str, Any] | None = None
    ) -> httpx.Response:
        headers = {"Accept": "application/json"}
        try:
            token = self._token()
        except OSError as exc:
            raise ApiError(0, f"cannot read the service-account token: {exc}") from exc
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            return await self._client.request(method, path, json=body, headers=headers)
        except httpx.HTTPError as exc:
            raise ApiError(0, f"{method} {path}: {type(exc).__name__}: {exc}") from exc

    @staticmethod
    def _json(resp: httpx.Response, what: str) -> dict[str, Any]:
        try:
            data = resp.json()
        except ValueError as exc:
            raise ApiError(resp.status_code, f"{what}: response is not JSON") from exc
        if not isinstance(data, dict):
            raise ApiError(resp.status_code, f"{what}: response is not a JSON object")
        return data

    def _raise_for(self, resp: httpx.Response, what: str) -> None:
        if resp.status_code < 300:
            return
        try:
            message = str(resp.json().get("message", resp.text[:200]))
        except (ValueError, AttributeError):
            message = resp.text[:200]
        cls = Conflict if resp.status_code == 409 else ApiError
        raise cls(resp.status_code, f"{what}: {message}")

    @staticmethod
    def _lease_path(namespace: str, name: str = "") -> str:
        base = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
        return f"{base}/{name}" if name else base

    async def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The Lease, or None when it does not exist yet."""
        resp = await self._call("GET", self._lease_path(namespace, name))
        if resp.status_code == 404:
            return None
        self._raise_for(resp, f"get lease {namespace}/{name}")
        return self._json(resp, "get lease")

    async def create_lease(self, namespace: str, lease: Mapping[str, Any]) -> dict[str, Any]:
        resp = await self._call("POST", self._lease_path(namespace), lease)
        self._raise_for(resp, f"create lease {namespace}")
        return self._json(resp, "create lease")

    async def replace_lease(
        self, namespace: str, name: str, lease: Mapping[str, Any]
    ) -> dict[str, Any]:
        """PUT; raises Conflict when the lease's resourceVersion is stale."""
        resp = await self._call("PUT", self._lease_path(namespace, name), lease)
        self._raise_for(resp, f"replace lease {namespace}/{name}")
        return self._json(resp, "replace lease")

    async def deployment_replicas(self, namespace: str, name: str) -> int:
        """``spec.replicas`` of a Deployment (the size the fleet budget is a share of)."""
        resp = await self._call("GET", f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}")
        self._raise_for(resp, f"get deployment {namespace}/{name}")
        replicas = self._json(resp, "get deployment").get("spec", {}).get("replicas", 1)
        if not isinstance(replicas, int) or replicas < 0:
            raise ApiError(resp.status_code, f"deployment {name}: bad spec.replicas {replicas!r}")
        return replicas


@dataclass(slots=True)
class _State:
    """The budget's state as stored in the Lease annotation."""

    actions: list[dict[str, Any]] = field(default_factory=list)
    degraded: dict[str, float] = field(default_factory=dict)
    halted: dict[str, Any] | None = None

    @classmethod
    def parse(cls, raw: str | None) -> _State:
        if not raw:
            return cls()
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("state is not a JSON object")
        actions = data.get("actions", [])
        degraded = data.get("degraded", {})
        halted = data.get("halted")
        if not isinstance(actions, list) or not all(
            isinstance(a, dict) and isinstance(a.get("at"), int | float) for a in actions
        ):
            raise ValueError("actions must be a list of objects with a numeric 'at'")
        if not isinstance(degraded, dict) or not all(
            isinstance(v, int | float) for v in degraded.values()
        ):
            raise ValueError("degraded must map holders to numeric timestamps")
        if halted is not None and not isinstance(halted, dict):
            raise ValueError("halted must be an object or null")
        return cls(actions, {str(k): float(v) for k, v in degraded.items()}, halted)

    def dump(self) -> str:
        return json.dumps(
            {"actions": self.actions, "degraded": self.degraded, "halted": self.halted},
            sort_keys=True,
        )

    def prune(self, now: float, window_s: float) -> None:
        """Forget what happened before the window."""
        self.actions = [a for a in self.actions if now - float(a["at"]) < window_s]
        self.degraded = {h: t for h, t in self.degraded.items() if now - t < window_s}


def _micro_time(ts: float) -> str:
    """Kubernetes MicroTime (RFC 3339 with microseconds, UTC)."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


ReplicaCount = Callable[[], Awaitable[int]]
OnHalt = Callable[[FleetHalt], Awaitable[None]]


class LeaseFleetGuard:
    """A fleet-wide budget of disruptive actions, shared through one Kubernetes Lease."""

    def __init__(
        self,
        api: KubeApi,
        *,
        namespace: str,
        lease: str,
        holder: str,
        replicas: ReplicaCount,
        clock: Clock,
        budget: FleetBudget | None = None,
        on_halt: OnHalt | None = None,
    ) -> None:
        self._api = api
        self._ns = namespace
        self._lease = lease
        self._holder = holder
        self._replicas = replicas
        self._clock = clock
        self._budget = budget or FleetBudget()
        self._on_halt = on_halt
        self.last_decision: Decision | None = None
        """The latest decision, for callers that explain a refusal."""

    async def acquire(self, action: str, target: str) -> bool:
        decision = await self.decide(action, target)
        return decision.granted

    async def aclose(self) -> None:
        await self._api.aclose()

    async def report(self, degraded: bool) -> Decision:
        """Record whether this replica is degraded now (the daemon calls it on changes).

        Also trips the fleet-wide halt when most replicas are degraded together.
        """
        return await self._transact(None, degraded)

    async def decide(self, action: str, target: str) -> Decision:
        """Take a slot for ``action`` on ``target``, or say why not."""
        decision = await self._transact((action, target), True)
        self.last_decision = decision
        log.info(
            "fleet guard %s %s on %s: %s",
            "granted" if decision.granted else "denied",
            action,
            target,
            decision.reason,
        )
        return decision

    async def _transact(self, request: tuple[str, str] | None, degraded: bool) -> Decision:
        try:
            replicas = await self._replicas()
        except (ApiError, OSError) as exc:
            return Decision(False, f"cannot read the replica count: {exc}")
        for attempt in range(self._budget.max_attempts):
            try:
                lease = await self._api.get_lease(self._ns, self._lease)
                state = self._read_state(lease)
                decision, halt, changed = self._apply(state, request, degraded, replicas)
                if not changed:
                    return decision
                written = await self._write(lease, state)
            except Conflict:
                # someone else wrote first: re-read at once, then back off with jitter
                # so that many racers spread out instead of colliding again
                if attempt:
                    await self._clock.sleep(0.05 * attempt * (1 + random.random()))  # noqa: S311
                continue
            except (ApiError, ValueError) as exc:
                return Decision(False, f"fleet lease {self._ns}/{self._lease} unusable: {exc}")
            if halt is not None and self._on_halt is not None:
                try:
                    await self._on_halt(halt)
                except Exception:  # the halt is recorded; a failed page must not crash us
                    log.exception("fleet guard: paging the fleet halt failed")
            log.debug("fleet lease now at resourceVersion %s", _rv(written))
            return decision
        return Decision(
            False,
            f"fleet lease {self._ns}/{self._lease} contended: "
            f"no write succeeded in {self._budget.max_attempts} attempts",
        )

    def _read_state(self, lease: Mapping[str, Any] | None) -> _State:
        if lease is None:
            return _State()
        annotations = lease.get("metadata", {}).get("annotations") or {}
        try:
            return _State.parse(annotations.get(STATE_ANNOTATION))
        except (ValueError, TypeError) as exc:
            raise ValueError(f"annotation {STATE_ANNOTATION}: {exc}") from exc

    def _apply(
        self,
        state: _State,
        request: tuple[str, str] | None,
        degraded: bool,
        replicas: int,
    ) -> tuple[Decision, FleetHalt | None, bool]:
        """Decide on the state as read, mutating it.

        Returns the decision, the halt when this call trips it, and whether the state
        changed (and so must be written back).
        """
        now = self._clock.now()
        b = self._budget
        state.prune(now, b.window_s)
        was_halted = state.halted is not None
        seen = state.degraded.get(self._holder)
        if not degraded:
            state.degraded.pop(self._holder, None)
        elif seen is None or now - seen > b.window_s / 2:
            # refresh before it expires, so a replica that stays degraded keeps counting
            state.degraded[self._holder] = now
        changed = state.degraded.get(self._holder) != seen
        sick = sorted(state.degraded)
        evidence: dict[str, Any] = {
            "lease": f"{self._ns}/{self._lease}",
            "replicas": replicas,
            "degraded": sick,
            "window_s": b.window_s,
        }
        new_halt = None
        if replicas >= 2 and len(sick) > b.degraded_fraction * replicas:
            if state.halted is None:
                state.halted = {"since": now, "by": self._holder, "degraded": len(sick)}
                new_halt = FleetHalt(f"{self._ns}/{self._lease}", sick, replicas, now)
            reason = (
                f"automation halted fleet-wide: {len(sick)} of {replicas} replicas degraded "
                f"together (a shared cause; paged by {state.halted.get('by')})"
            )
            return Decision(False, reason, evidence), new_halt, changed or new_halt is not None
        state.halted = None
        changed = changed or was_halted
        if request is None:
            return Decision(True, "health recorded", evidence), None, changed
        slots = b.slots(replicas)
        used = len(state.actions)
        evidence.update(slots=slots, used=used, recent=list(state.actions))
        if used >= slots:
            oldest = min(float(a["at"]) for a in state.actions)
            reason = (
                f"fleet budget spent: {used} of {slots} disruptive actions in the last "
                f"{b.window_s:g}s; next slot in {b.window_s - (now - oldest):.0f}s"
            )
            return Decision(False, reason, evidence), None, changed
        action, target = request
        state.actions.append(
            {"holder": self._holder, "action": action, "target": target, "at": now}
        )
        reason = f"fleet slot {used + 1} of {slots} taken for {action} on {target}"
        return Decision(True, reason, evidence), None, True

    async def _write(self, lease: Mapping[str, Any] | None, state: _State) -> dict[str, Any]:
        now = self._clock.now()
        spec = {
            "holderIdentity": self._holder,
            "leaseDurationSeconds": max(1, math.ceil(self._budget.window_s)),
            "renewTime": _micro_time(now),
        }
        if lease is None:
            body: dict[str, Any] = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {
                    "name": self._lease,
                    "namespace": self._ns,
                    "annotations": {STATE_ANNOTATION: state.dump()},
                },
                "spec": {**spec, "acquireTime": _micro_time(now)},
            }
            return await self._api.create_lease(self._ns, body)
        meta = dict(lease.get("metadata", {}))
        meta["annotations"] = {**(meta.get("annotations") or {}), STATE_ANNOTATION: state.dump()}
        body = {**lease, "metadata": meta, "spec": {**(lease.get("spec") or {}), **spec}}
        return await self._api.replace_lease(self._ns, self._lease, body)


def _rv(obj: Mapping[str, Any]) -> str:
    return str(obj.get("metadata", {}).get("resourceVersion", "?"))


def static_replicas(n: int) -> ReplicaCount:
    """A fixed replica count (when the deployment cannot be read)."""

    async def count() -> int:
        return n

    return count


def deployment_replicas(api: KubeApi, namespace: str, name: str) -> ReplicaCount:
    """The replica count read from the Deployment at each decision."""

    async def count() -> int:
        return await api.deployment_replicas(namespace, name)

    return count


def build_fleet_guard(
    settings: FleetSettings, *, holder: str, clock: Clock, on_halt: OnHalt | None = None
) -> LeaseFleetGuard | AllowAllGuard:
    """The guard the config asks for (raises ApiError when a Lease guard cannot be set up)."""
    if not settings.enabled:
        return AllowAllGuard()
    namespace = settings.resolved_namespace()
    api = KubeApi.in_cluster(settings.service_account_dir, base_url=settings.api_url)
    if settings.deployment is not None:
        replicas = deployment_replicas(api, namespace, settings.deployment)
    else:
        assert settings.replicas is not None  # the validator guarantees one of them
        replicas = static_replicas(settings.replicas)
    return LeaseFleetGuard(
        api,
        namespace=namespace,
        lease=settings.lease,
        holder=holder,
        replicas=replicas,
        clock=clock,
        budget=settings.budget(),
        on_halt=on_halt,
    )

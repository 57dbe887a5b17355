"""Fleet guard: a fleet-wide budget for disruptive actions, kept in a Kubernetes Lease.

Every Triton pod runs its own sentinel, so per-pod cooldowns do not bound what the
fleet does: a bad model push could make every sidecar restart its server at once.
Before a disruptive action (restart, eviction) the executor calls ``acquire`` of
its :class:`~sentinel.runbook.guards.FleetGuard`; :class:`LeaseFleetGuard` takes a
slot from a budget shared by all replicas (at most ``max_fraction`` of the deployment's
replicas, at least ``min_slots``, per ``window_s``), recorded as JSON in an annotation
of one ``coordination.k8s.io/v1`` Lease. Writes use optimistic concurrency: a PUT carries
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
import math
import os
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog

from sentinel.base.clock import Clock
from sentinel.runbook.guards import AllowAllGuard
from sentinel.runbook.kube import ApiError, Conflict, KubeApi
from sentinel.runbook.settings import FleetSettings

log = structlog.get_logger(__name__)

STATE_ANNOTATION = "sentinel.dev/fleet-budget"
"""Annotation of the Lease that holds the budget's JSON state."""


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

    @classmethod
    def of(cls, settings: FleetSettings) -> FleetBudget:
        """The budget a `fleet:` config section describes."""
        return cls(
            settings.max_fraction,
            settings.min_slots,
            settings.window_s,
            settings.degraded_fraction,
            settings.max_attempts,
        )

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
            "fleet_guard_decided",
            granted=decision.granted,
            action=action,
            target=target,
            reason=decision.reason,
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
                    log.exception("fleet_halt_page_failed", lease=f"{self._ns}/{self._lease}")
            log.debug("fleet_lease_written", resource_version=_rv(written))
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
    api = KubeApi.connect(settings.service_account_dir, base_url=settings.api_url)
    namespace = fleet_namespace(settings, api)
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
        budget=FleetBudget.of(settings),
        on_halt=on_halt,
    )


def fleet_namespace(settings: FleetSettings, api: KubeApi) -> str:
    """The configured namespace, $POD_NAMESPACE, or the credentials' (the service
    account's, or the kubeconfig context's)."""
    if settings.namespace:
        return settings.namespace
    if os.environ.get("POD_NAMESPACE"):
        return os.environ["POD_NAMESPACE"]
    if api.namespace:
        return api.namespace
    raise ApiError(0, "fleet: no namespace configured and none mounted")

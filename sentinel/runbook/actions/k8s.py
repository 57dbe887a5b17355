"""Kubernetes actions over the API server's REST interface (httpx; no extra package).

Eviction goes through the Eviction API, so PodDisruptionBudgets apply: a 429
from a PDB is a transient error (retried with backoff), not a failure. The
service-account token is re-read for every call (projected tokens rotate).
"""

from __future__ import annotations

import datetime
import os
from typing import Any

import httpx

from sentinel.runbook.actions.base import (
    ActionContext,
    ActionError,
    ActionSpec,
    NoUndo,
    TransientError,
    param,
)

_TRANSIENT_STATUS = {429, 500, 502, 503, 504}


class _Kube:
    """The three calls the actions make, with errors classed transient or not."""

    def __init__(self, ctx: ActionContext) -> None:
        s = ctx.settings
        self.sa_dir = s.k8s_service_account_dir
        base = s.k8s_api_url
        if base is None:
            host = os.environ.get("KUBERNETES_SERVICE_HOST")
            if not host:
                raise ActionError(
                    "not in a cluster (KUBERNETES_SERVICE_HOST unset) and no k8s_api_url"
                )
            base = f"https://{host}:{os.environ.get('KUBERNETES_SERVICE_PORT', '443')}"
        ca = self.sa_dir / "ca.crt"
        self.client = httpx.AsyncClient(
            base_url=base.rstrip("/"), verify=str(ca) if ca.exists() else True, timeout=10.0
        )

    def namespace(self, ctx: ActionContext, params: dict[str, Any]) -> str:
        ns: str = param(params, "namespace", str, ctx.settings.k8s_namespace or "")
        if ns:
            return ns
        try:
            return (self.sa_dir / "namespace").read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ActionError("with.namespace: not given and no service-account namespace") from exc

    async def call(
        self, method: str, path: str, body: dict[str, Any] | None = None, patch: str = ""
    ) -> dict[str, Any]:
        headers = {"Accept": "application/json"}
        if patch:
            headers["Content-Type"] = f"application/{patch}-patch+json"
        try:
            token = (self.sa_dir / "token").read_text(encoding="utf-8").strip()
        except OSError:
            token = ""
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            resp = await self.client.request(method, path, json=body, headers=headers)
        except httpx.HTTPError as exc:
            raise TransientError(f"Kubernetes API {method} {path}: {exc}") from exc
        if resp.status_code >= 300:
            try:
                message = str(resp.json().get("message", resp.text[:200]))
            except (ValueError, AttributeError):
                message = resp.text[:200]
            cls = TransientError if resp.status_code in _TRANSIENT_STATUS else ActionError
            raise cls(f"Kubernetes API {resp.status_code} on {method} {path}: {message}")
        try:
            data = resp.json()
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    async def close(self) -> None:
        await self.client.aclose()


def _deployment(ns: str, name: str, scale: bool = False) -> str:
    path = f"/apis/apps/v1/namespaces/{ns}/deployments/{name}"
    return f"{path}/scale" if scale else path


class EvictPod(NoUndo):
    """Evict this pod (or a named one) through the Eviction API (PDBs respected)."""

    spec = ActionSpec(
        "k8s.evict_pod", side_effects=True, mutating=True, disruptive=True, summary="evict a pod"
    )

    async def run(self, ctx: ActionContext, params: dict[str, Any]) -> dict[str, Any]:
        default_pod = ctx.settings.k8s_pod or ctx.pod or os.environ.get("POD_NAME", "")
        pod = param(params, "pod", str, default_pod)
        if not pod:
            raise ActionError("with.pod: not given and POD_NAME unknown")
        kube = _Kube(ctx)
        try:
            ns = kube.namespace(ctx, params)
            body = {
                "apiVersion": "policy/v1",
                "kind": "Eviction",
                "metadata": {"name": pod, "namespace": ns},
            }
            await kube.call("POST", f"/api/v1/namespaces/{ns}/pods/{pod}/eviction", body)
        finally:
            await kube.close()
        return {"namespace": ns, "pod": pod}


class RolloutRestart(NoUndo):
    """Restart a Deployment's pods the way `kubectl rollout restart` does."""

    spec = ActionSpec(
        "k8s.rollout_restart",
        side_effects=True,
        mutating=True,
        disruptive=True,
        summary="rollout restart a deployment",
    )

    async def run(self, ctx: ActionContext, params: dict[str, Any]) -> dict[str, Any]:
        name = param(params, "deployment", str)
        stamp = datetime.datetime.fromtimestamp(ctx.clock.now(), datetime.UTC).isoformat()
        annotations = {"kubectl.kubernetes.io/restartedAt": stamp}
        body = {"spec": {"template": {"metadata": {"annotations": annotations}}}}
        kube = _Kube(ctx)
        try:
            ns = kube.namespace(ctx, params)
            await kube.call("PATCH", _deployment(ns, name), body, patch="strategic-merge")
        finally:
            await kube.close()
        return {"namespace": ns, "deployment": name, "restarted_at": stamp}


class Scale:
    """Set a Deployment's replicas; undo sets the previous count back."""

    spec = ActionSpec(
        "k8s.scale", side_effects=True, mutating=True, undoable=True, summary="scale a deployment"
    )

    async def run(self, ctx: ActionContext, params: dict[str, Any]) -> dict[str, Any]:
        name = param(params, "deployment", str)
        replicas = param(params, "replicas", int)
        if replicas < 0:
            raise ActionError("with.replicas: must be >= 0")
        kube = _Kube(ctx)
        try:
            ns = kube.namespace(ctx, params)
            current = await kube.call("GET", _deployment(ns, name, scale=True))
            previous = int((current.get("spec") or {}).get("replicas") or 0)
            body = {"spec": {"replicas": replicas}}
            await kube.call("PATCH", _deployment(ns, name, scale=True), body, patch="merge")
        finally:
            await kube.close()
        return {"namespace": ns, "deployment": name, "previous": previous, "replicas": replicas}

    async def undo(
        self, ctx: ActionContext, params: dict[str, Any], output: dict[str, Any]
    ) -> None:
        kube = _Kube(ctx)
        try:
            path = _deployment(str(output["namespace"]), str(output["deployment"]), scale=True)
            body = {"spec": {"replicas": int(output["previous"])}}
            await kube.call("PATCH", path, body, patch="merge")
        finally:
            await kube.close()

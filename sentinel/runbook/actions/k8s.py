"""Kubernetes actions through the stage's one API client (``runbook/kube.py``).

Eviction goes through the Eviction API, so PodDisruptionBudgets apply: a 429
from a PDB is a transient error (retried with backoff), not a failure.
"""

from __future__ import annotations

import datetime
import os
from typing import Any

from pydantic import Field

from sentinel.runbook.actions.base import ActionContext, ActionParams, ActionSpec, NoUndo, param
from sentinel.runbook.errors import ActionError
from sentinel.runbook.kube import KubeApi, deployment_path

_TIMEOUT_S = 10.0


def _kube(ctx: ActionContext) -> KubeApi:
    """The API server these settings name, with the standard credentials (ApiError, not
    transient, when there are none: outside a cluster without a kubeconfig)."""
    s = ctx.settings
    return KubeApi.connect(s.k8s_service_account_dir, s.k8s_api_url, timeout_s=_TIMEOUT_S)


def _namespace(ctx: ActionContext, params: dict[str, Any], kube: KubeApi) -> str:
    ns: str = param(params, "namespace", str, ctx.settings.k8s_namespace or "")
    if ns:
        return ns
    if kube.namespace:  # the service account's, or the kubeconfig context's
        return kube.namespace
    raise ActionError("with.namespace: not given and no service-account namespace")


class EvictPodParams(ActionParams):
    pod: str = ""
    """The pod to evict (default: this one, playbooks.k8s_pod or POD_NAME)."""
    namespace: str = ""
    """Its namespace (default: playbooks.k8s_namespace, else the service account's)."""


class DeploymentParams(ActionParams):
    deployment: str = Field(min_length=1)
    """The Deployment's name."""
    namespace: str = ""
    """Its namespace (default: playbooks.k8s_namespace, else the service account's)."""


class ScaleParams(DeploymentParams):
    replicas: int = Field(ge=0)
    """The replica count to set."""


class EvictPod(NoUndo):
    """Evict this pod (or a named one) through the Eviction API (PDBs respected)."""

    spec = ActionSpec(
        "k8s.evict_pod",
        side_effects=True,
        mutating=True,
        disruptive=True,
        summary="evict a pod through the Eviction API (PodDisruptionBudgets apply)",
        params=EvictPodParams,
    )

    async def run(self, ctx: ActionContext, params: dict[str, Any]) -> dict[str, Any]:
        default_pod = ctx.settings.k8s_pod or ctx.pod or os.environ.get("POD_NAME", "")
        pod = param(params, "pod", str, default_pod)
        if not pod:
            raise ActionError("with.pod: not given and POD_NAME unknown")
        async with _kube(ctx) as kube:
            ns = _namespace(ctx, params, kube)
            body = {
                "apiVersion": "policy/v1",
                "kind": "Eviction",
                "metadata": {"name": pod, "namespace": ns},
            }
            await kube.request("POST", f"/api/v1/namespaces/{ns}/pods/{pod}/eviction", body)
        return {"namespace": ns, "pod": pod}


class RolloutRestart(NoUndo):
    """Restart a Deployment's pods the way `kubectl rollout restart` does."""

    spec = ActionSpec(
        "k8s.rollout_restart",
        side_effects=True,
        mutating=True,
        disruptive=True,
        summary="rollout restart a deployment",
        params=DeploymentParams,
    )

    async def run(self, ctx: ActionContext, params: dict[str, Any]) -> dict[str, Any]:
        name = param(params, "deployment", str)
        stamp = datetime.datetime.fromtimestamp(ctx.clock.now(), datetime.UTC).isoformat()
        annotations = {"kubectl.kubernetes.io/restartedAt": stamp}
        body = {"spec": {"template": {"metadata": {"annotations": annotations}}}}
        async with _kube(ctx) as kube:
            ns = _namespace(ctx, params, kube)
            await kube.request("PATCH", deployment_path(ns, name), body, patch="strategic-merge")
        return {"namespace": ns, "deployment": name, "restarted_at": stamp}


class Scale:
    """Set a Deployment's replicas; undo sets the previous count back."""

    spec = ActionSpec(
        "k8s.scale",
        side_effects=True,
        mutating=True,
        undoable=True,
        summary="scale a deployment; undo sets the previous replica count back",
        params=ScaleParams,
    )

    async def run(self, ctx: ActionContext, params: dict[str, Any]) -> dict[str, Any]:
        name = param(params, "deployment", str)
        replicas = param(params, "replicas", int)
        if replicas < 0:
            raise ActionError("with.replicas: must be >= 0")
        async with _kube(ctx) as kube:
            ns = _namespace(ctx, params, kube)
            path = deployment_path(ns, name, scale=True)
            current = await kube.request("GET", path)
            previous = int((current.get("spec") or {}).get("replicas") or 0)
            await kube.request("PATCH", path, {"spec": {"replicas": replicas}}, patch="merge")
        return {"namespace": ns, "deployment": name, "previous": previous, "replicas": replicas}

    async def undo(
        self, ctx: ActionContext, params: dict[str, Any], output: dict[str, Any]
    ) -> None:
        path = deployment_path(str(output["namespace"]), str(output["deployment"]), scale=True)
        body = {"spec": {"replicas": int(output["previous"])}}
        async with _kube(ctx) as kube:
            await kube.request("PATCH", path, body, patch="merge")

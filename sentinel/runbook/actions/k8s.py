"""Kubernetes actions (the optional `k8s` extra, imported only when used).

Eviction goes through the Eviction API, so PodDisruptionBudgets apply: a
429 from a PDB is a transient error (retried with backoff), not a failure.
"""

from __future__ import annotations

import asyncio
import datetime
import os
from pathlib import Path
from typing import Any

from sentinel.runbook.actions.base import (
    ActionContext,
    ActionError,
    ActionSpec,
    NoUndo,
    TransientError,
    param,
)

_SA_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def _client() -> Any:
    try:
        from kubernetes import client, config
    except ImportError as exc:
        raise ActionError("k8s actions need the kubernetes package (pip install '.[k8s]')") from exc
    try:
        config.load_incluster_config()
    except config.ConfigException:
        try:
            config.load_kube_config()
        except Exception as exc:  # any config failure is one clear error
            raise ActionError(f"no Kubernetes credentials: {exc}") from exc
    return client


def _namespace(ctx: ActionContext, params: dict[str, Any]) -> str:
    ns: str = param(params, "namespace", str, ctx.settings.k8s_namespace or "")
    if not ns:
        try:
            ns = _SA_NAMESPACE.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ActionError("with.namespace: not given and not running in a cluster") from exc
    return ns


async def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a blocking kubernetes client call off the event loop, classifying errors."""
    try:
        return await asyncio.to_thread(fn, *args, **kwargs)
    except Exception as exc:
        status = getattr(exc, "status", None)
        if status in (429, 500, 502, 503, 504):
            raise TransientError(f"Kubernetes API {status}: {getattr(exc, 'reason', exc)}") from exc
        if status is not None:
            raise ActionError(f"Kubernetes API {status}: {getattr(exc, 'reason', exc)}") from exc
        raise TransientError(f"Kubernetes API: {exc}") from exc


class EvictPod(NoUndo):
    """Evict this pod (or a named one) through the Eviction API (PDBs respected)."""

    spec = ActionSpec(
        "k8s.evict_pod", side_effects=True, mutating=True, disruptive=True, summary="evict a pod"
    )

    async def run(self, ctx: ActionContext, params: dict[str, Any]) -> dict[str, Any]:
        client = _client()
        ns = _namespace(ctx, params)
        pod = param(
            params, "pod", str, ctx.settings.k8s_pod or ctx.pod or os.environ.get("POD_NAME", "")
        )
        if not pod:
            raise ActionError("with.pod: not given and POD_NAME unknown")
        body = client.V1Eviction(metadata=client.V1ObjectMeta(name=pod, namespace=ns))
        await _call(client.CoreV1Api().create_namespaced_pod_eviction, pod, ns, body)
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
        client = _client()
        ns = _namespace(ctx, params)
        name = param(params, "deployment", str)
        stamp = datetime.datetime.fromtimestamp(ctx.clock.now(), datetime.UTC).isoformat()
        patch = {
            "spec": {
                "template": {
                    "metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": stamp}}
                }
            }
        }
        await _call(client.AppsV1Api().patch_namespaced_deployment, name, ns, patch)
        return {"namespace": ns, "deployment": name, "restarted_at": stamp}


class Scale:
    """Set a Deployment's replicas; undo sets the previous count back."""

    spec = ActionSpec(
        "k8s.scale", side_effects=True, mutating=True, undoable=True, summary="scale a deployment"
    )

    async def run(self, ctx: ActionContext, params: dict[str, Any]) -> dict[str, Any]:
        client = _client()
        ns = _namespace(ctx, params)
        name = param(params, "deployment", str)
        replicas = param(params, "replicas", int)
        if replicas < 0:
            raise ActionError("with.replicas: must be >= 0")
        api = client.AppsV1Api()
        current = await _call(api.read_namespaced_deployment_scale, name, ns)
        previous = int(current.spec.replicas or 0)
        body = {"spec": {"replicas": replicas}}
        await _call(api.patch_namespaced_deployment_scale, name, ns, body)
        return {"namespace": ns, "deployment": name, "previous": previous, "replicas": replicas}

    async def undo(
        self, ctx: ActionContext, params: dict[str, Any], output: dict[str, Any]
    ) -> None:
        client = _client()
        body = {"spec": {"replicas": int(output["previous"])}}
        api = client.AppsV1Api()
        await _call(
            api.patch_namespaced_deployment_scale, output["deployment"], output["namespace"], body
        )

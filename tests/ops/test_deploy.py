"""Kubernetes manifests: schema-valid, least privilege, and consistent with sentinel.

The manifests are rendered by the real kustomize (`kubectl kustomize`; tests skip without
kubectl). Core kinds are validated against the Kubernetes OpenAPI schemas shipped offline by
`kubernetes-validate`. PodMonitor and PrometheusRule are prometheus-operator CRDs
with no schema there; they are validated against the subset schemas in
tests/ops/schemas/ (hand-written from the operator's API reference, named as such).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from sentinel.config import load_config
from sentinel.runbook.settings import FleetSettings

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
BASE = DEPLOY / "base"
OVERLAY = DEPLOY / "overlays" / "example"
SCHEMAS = Path(__file__).parent / "schemas"
K8S_VERSIONS = ["1.29.0", "1.33.0"]
CRD_SCHEMAS = {
    "PodMonitor": SCHEMAS / "podmonitor.schema.json",
    "PrometheusRule": SCHEMAS / "prometheusrule.schema.json",
}
# every folder kustomize can build (components are built through the ones using them)
KUSTOMIZATIONS = sorted(
    p.parent for p in DEPLOY.rglob("kustomization.yaml") if "kind: Component" not in p.read_text()
)


def render(folder: Path) -> list[dict[str, Any]]:
    """A kustomization rendered by the real kustomize inside kubectl (skip without kubectl)."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed: kustomize rendering not checked")
    proc = subprocess.run(
        [kubectl, "kustomize", str(folder)], capture_output=True, text=True, timeout=60
    )
    assert 0 == proc.returncode, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


_RENDERED: dict[Path, list[dict[str, Any]]] = {}


def base_docs() -> list[dict[str, Any]]:
    """The base (an example Triton Deployment with the sidecar component) as rendered."""
    if BASE not in _RENDERED:
        _RENDERED[BASE] = render(BASE)
    return json.loads(json.dumps(_RENDERED[BASE]))  # a copy the test may change


@pytest.fixture(scope="module")
def rendered() -> list[dict[str, Any]]:
    """The example overlay rendered by the real kustomize inside kubectl."""
    return render(OVERLAY)


def _one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    assert 1 == len(found), f"expected one {kind} {name or ''}"
    return found[0]


def _container(docs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    pod = _one(docs, "Deployment", "triton")["spec"]["template"]["spec"]
    found: dict[str, Any] = next(c for c in pod["containers"] if c["name"] == name)
    return found


def validate(doc: dict[str, Any], version: str) -> None:
    """Raise when a manifest does not match its schema."""
    if doc["kind"] in CRD_SCHEMAS:
        schema = json.loads(CRD_SCHEMAS[doc["kind"]].read_text(encoding="utf-8"))
        jsonschema.validate(doc, schema)
    else:
        kubernetes_validate.validate(doc, version, strict=True)


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_base_manifests_validate(version: str) -> None:
    """Every base manifest validates (strict: unknown fields fail) for this Kubernetes version."""
    problems = []
    for doc in base_docs():
        try:
            validate(doc, version)
        except (kubernetes_validate.ValidationError, jsonschema.ValidationError) as exc:
            problems.append(f"{doc['kind']}/{doc['metadata']['name']}: {str(exc)[:300]}")
    assert [] == problems


def test_rendered_overlay_validates(rendered: list[dict[str, Any]]) -> None:
    """kustomize renders the example overlay, and every rendered manifest validates."""
    for doc in rendered:
        validate(doc, K8S_VERSIONS[-1])
    kinds = sorted({d["kind"] for d in rendered})
    assert [
        "ConfigMap", "Deployment", "Namespace", "NetworkPolicy", "PodDisruptionBudget",
        "PodMonitor", "PrometheusRule", "Role", "RoleBinding", "Secret", "ServiceAccount",
    ] == kinds  # fmt: skip
    namespaced = {d["metadata"].get("namespace") for d in rendered if d["kind"] != "Namespace"}
    assert {"inference"} == namespaced


def test_validation_catches_a_misspelt_field() -> None:
    """The validator can fail: a typo in the Deployment's pod spec is rejected."""
    deployment = _one(base_docs(), "Deployment")
    broken = json.loads(json.dumps(deployment))
    broken["spec"]["template"]["spec"]["shareProcessNamspace"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(broken, K8S_VERSIONS[-1])


def test_crd_schema_catches_a_misspelt_field() -> None:
    """The hand-written PodMonitor schema rejects an unknown endpoint field."""
    monitor = _one(base_docs(), "PodMonitor", "sentinel")
    broken = json.loads(json.dumps(monitor))
    broken["spec"]["podMetricsEndpoints"][0]["intervall"] = "30s"
    with pytest.raises(jsonschema.ValidationError):
        validate(broken, K8S_VERSIONS[-1])


def test_sidecar_can_signal_triton_and_is_probed_on_its_health_endpoints() -> None:
    """shareProcessNamespace is on; both of sentinel's probes hit /healthz on port 9309
    (/readyz reports sentinel's own trouble, which must not take Triton out of service)."""
    docs = base_docs()
    pod = _one(docs, "Deployment", "triton")["spec"]["template"]["spec"]
    sentinel = _container(docs, "sentinel")
    ports = {p["name"]: p["containerPort"] for p in sentinel["ports"]}
    probes = (
        sentinel["livenessProbe"]["httpGet"]["path"],
        ports[sentinel["livenessProbe"]["httpGet"]["port"]],
        sentinel["readinessProbe"]["httpGet"]["path"],
        ports[sentinel["readinessProbe"]["httpGet"]["port"]],
    )
    assert (True, "sentinel") == (pod["shareProcessNamespace"], pod["serviceAccountName"])
    assert ["triton", "sentinel"] == [c["name"] for c in pod["containers"]]  # triton's default
    assert ("/healthz", 9309, "/healthz", 9309) == probes
    assert {"metrics": 9308, "api": 9309} == ports


def test_pod_monitors_scrape_ports_the_pod_has() -> None:
    """Each PodMonitor selects the Triton pods and names a port one of its containers opens."""
    docs = base_docs()
    template = _one(docs, "Deployment", "triton")["spec"]["template"]
    ports = {p["name"] for c in template["spec"]["containers"] for p in c.get("ports", [])}
    monitors = [d for d in docs if d["kind"] == "PodMonitor"]
    scraped = sorted(e["port"] for m in monitors for e in m["spec"]["podMetricsEndpoints"])
    selects = [
        m["spec"]["selector"]["matchLabels"].items() <= template["metadata"]["labels"].items()
        for m in monitors
    ]
    assert (["metrics", "triton-metrics"], [True, True]) == (scraped, selects)
    assert set(scraped) <= ports


def test_rbac_is_the_least_sentinel_needs() -> None:
    """The Role grants exactly: pods get, pods/eviction create, its Lease, the Deployment get."""
    docs = base_docs()
    role = _one(docs, "Role", "sentinel")
    grants = sorted(
        (
            g,
            r,
            tuple(sorted(rule["verbs"])),
            tuple(rule.get("resourceNames", [])),
        )
        for rule in role["rules"]
        for g in rule["apiGroups"]
        for r in rule["resources"]
    )
    lease = FleetSettings().lease
    assert [
        ("", "pods", ("get",), ()),
        ("", "pods/eviction", ("create",), ()),
        ("apps", "deployments", ("get",), ("triton",)),
        ("coordination.k8s.io", "leases", ("create",), ()),
        ("coordination.k8s.io", "leases", ("get", "update"), (lease,)),
    ] == grants
    binding = _one(docs, "RoleBinding", "sentinel")
    assert [{"kind": "ServiceAccount", "name": "sentinel"}] == binding["subjects"]
    assert not any(d["kind"].startswith("Cluster") for d in docs)


def test_disruption_budget_covers_the_triton_pods() -> None:
    """The PodDisruptionBudget selects the Deployment's pods, so evictions respect it."""
    docs = base_docs()
    pdb = _one(docs, "PodDisruptionBudget")
    labels = _one(docs, "Deployment", "triton")["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert 1 == pdb["spec"]["maxUnavailable"]


def test_config_in_the_configmap_is_a_valid_sentinel_config(tmp_path: Path) -> None:
    """sentinel's own loader accepts the shipped config; its files are where the pod mounts them."""
    docs = base_docs()
    text = _one(docs, "ConfigMap", "sentinel-config")["data"]["sentinel.yaml"]
    path = tmp_path / "sentinel.yaml"
    path.write_text(text, encoding="utf-8")
    config = load_config(path, environ={})
    mounts = {m["name"]: m["mountPath"] for m in _container(docs, "sentinel")["volumeMounts"]}
    secret_keys = set(_one(docs, "Secret", "sentinel-secrets")["stringData"])
    secret_files = [
        config.api.token_file,
        config.notifiers.slack.token_file,
        config.notifiers.pagerduty.routing_key_file,
    ]
    placed = [
        (str(f.parent) == mounts["sentinel-secrets"], f.name in secret_keys)
        for f in secret_files
        if f is not None
    ]
    assert [(True, True)] * 3 == placed
    assert [Path(mounts["sentinel-playbooks"])] == config.playbooks.dirs
    role = _one(docs, "Role", "sentinel")
    lease_names = {
        n for r in role["rules"] if "leases" in r["resources"] for n in r.get("resourceNames", [])
    }
    deployment = _one(docs, "Deployment")["metadata"]["name"]
    fleet = (config.fleet.enabled, config.fleet.deployment, {config.fleet.lease})
    assert (True, deployment, lease_names) == fleet
    assert (9308, 9309) == (config.metrics.port, config.api.port)


def test_generated_manifests_are_in_sync_with_playbooks_and_alerts() -> None:
    """deploy/sync.py --check passes: the playbooks ConfigMap and PrometheusRule are current."""
    proc = subprocess.run(
        [sys.executable, str(REPO / "deploy" / "sync.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert 0 == proc.returncode, proc.stderr

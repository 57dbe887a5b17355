"""The sidecar components: every kustomization renders and validates, and the pods they
make keep sentinel's credentials to sentinel (token, secrets, UID) with bounded resources.

Checked on the rendered example of each way in: deploy/base (the Deployment component)
and deploy/overlays/kserve-example (the KServe component). KServe's CRDs have no offline
schema, so the pod they describe (the ServingRuntime's containers and volumes, the
InferenceService predictor's pod fields) is validated as a core Pod.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from test_deploy import DEPLOY, K8S_VERSIONS, KUSTOMIZATIONS, render, validate

SENTINEL_UID = int(
    next(
        shlex.split(line.partition("=")[2])[0]
        for line in (DEPLOY / "image" / "image.env").read_text(encoding="utf-8").splitlines()
        if line.startswith("SENTINEL_UID=")
    )
)
EXAMPLES = [
    DEPLOY / "base",
    DEPLOY / "overlays" / "example",
    DEPLOY / "overlays" / "kserve-example",
]
KSERVE_KINDS = {"ServingRuntime", "InferenceService"}


def pods(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any], dict[str, str]]]:
    """(name, pod spec, pod labels) of each workload: Deployments, and KServe's runtime pods."""
    found = []
    for doc in docs:
        if doc["kind"] == "Deployment":
            template = doc["spec"]["template"]
            found.append(
                (doc["metadata"]["name"], template["spec"], template["metadata"]["labels"])
            )
    for runtime in (d for d in docs if d["kind"] == "ServingRuntime"):
        for isvc in (d for d in docs if d["kind"] == "InferenceService"):
            if isvc["spec"]["predictor"]["model"].get("runtime") != runtime["metadata"]["name"]:
                continue
            predictor = {k: v for k, v in isvc["spec"]["predictor"].items() if k != "model"}
            spec = {
                **predictor,
                "containers": runtime["spec"]["containers"],
                "volumes": runtime["spec"].get("volumes", []),
            }
            found.append((isvc["metadata"]["name"], spec, runtime["spec"].get("labels", {})))
    return found


def container(pod: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in pod["containers"] if c["name"] == name)
    return found


@pytest.mark.parametrize("folder", KUSTOMIZATIONS, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_kustomization_renders_and_validates(folder: Path) -> None:
    """Each kustomization under deploy/ renders; its manifests (and KServe pods) validate."""
    docs = render(folder)
    assert docs
    for doc in docs:
        if doc["kind"] not in KSERVE_KINDS:
            validate(doc, K8S_VERSIONS[-1])
    for name, spec, labels in pods(docs):
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels}}
        kubernetes_validate.validate({**pod, "spec": spec}, K8S_VERSIONS[-1], strict=True)


@pytest.fixture(scope="module", params=EXAMPLES, ids=lambda p: str(p.relative_to(DEPLOY)))
def example(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    """One rendered example with the sidecar."""
    folder: Path = request.param
    return render(folder)


def sidecar_pods(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any], dict[str, str]]]:
    found = [p for p in pods(docs) if any(c["name"] == "sentinel" for c in p[1]["containers"])]
    assert found, "no pod with the sentinel sidecar"
    return found


def test_token_and_secrets_reach_only_sentinels_container(example: list[dict[str, Any]]) -> None:
    """No automatic token; the projected token and the secrets are mounted into sentinel only."""
    (account,) = [d for d in example if d["kind"] == "ServiceAccount"]
    assert account["automountServiceAccountToken"] is False
    for _, pod, _ in sidecar_pods(example):
        assert (False, "sentinel") == (
            pod["automountServiceAccountToken"],
            pod["serviceAccountName"],
        )
        volumes = {v["name"]: v for v in pod["volumes"]}
        sources = volumes["sentinel-token"]["projected"]["sources"]
        assert any("serviceAccountToken" in s for s in sources)
        mounted_in = {
            (m["name"], c["name"]) for c in pod["containers"] for m in c.get("volumeMounts", [])
        }
        for private in ["sentinel-token", "sentinel-secrets", "sentinel-config", "sentinel-state"]:
            assert {(private, "sentinel")} == {m for m in mounted_in if m[0] == private}
        token_mount = next(
            m for m in container(pod, "sentinel")["volumeMounts"] if m["name"] == "sentinel-token"
        )
        assert "/var/run/secrets/kubernetes.io/serviceaccount" == token_mount["mountPath"]


def test_sentinel_and_the_serving_container_run_as_different_users(
    example: list[dict[str, Any]],
) -> None:
    """sentinel runs as the image's UID; every other container as another non-root UID."""
    for _, pod, _ in sidecar_pods(example):
        assert pod["shareProcessNamespace"] is True
        pod_uid = pod.get("securityContext", {}).get("runAsUser")
        uids = {
            c["name"]: c.get("securityContext", {}).get("runAsUser", pod_uid)
            for c in pod["containers"]
        }
        assert SENTINEL_UID == uids.pop("sentinel")
        assert all(uid not in (None, 0, SENTINEL_UID) for uid in uids.values()), uids
        caps = container(pod, "sentinel")["securityContext"]["capabilities"]
        assert (["ALL"], ["KILL"]) == (caps["drop"], caps["add"])


def test_every_container_has_requests_and_a_memory_limit(example: list[dict[str, Any]]) -> None:
    """Both containers request CPU and memory and have a memory limit."""
    for _, pod, _ in sidecar_pods(example):
        for c in pod["containers"]:
            resources = c.get("resources", {})
            if c["name"] != "sentinel" and "requests" not in resources:
                continue  # KServe puts the serving container's resources on the predictor
            assert {"cpu", "memory"} <= set(resources["requests"]), c["name"]
            assert "memory" in resources["limits"], c["name"]


def test_sentinel_finds_its_config_from_the_environment_and_its_arguments(
    example: list[dict[str, Any]],
) -> None:
    """SENTINEL_CONFIG and `run --config` name the file where the config is mounted."""
    for _, pod, _ in sidecar_pods(example):
        sentinel = container(pod, "sentinel")
        env = {e["name"]: e.get("value") for e in sentinel["env"]}
        mount = next(m for m in sentinel["volumeMounts"] if m["name"] == "sentinel-config")
        assert mount["mountPath"] == env["SENTINEL_CONFIG"]
        assert ["run", "--config", mount["mountPath"]] == sentinel["args"]


def test_network_policy_limits_sentinels_ports_and_keeps_the_rest_open(
    example: list[dict[str, Any]],
) -> None:
    """The policy selects the sidecar pods; 9308 from monitoring, 9309 from API clients only."""
    (policy,) = [d for d in example if d["kind"] == "NetworkPolicy"]
    rules = policy["spec"]["ingress"]
    for _, pod, labels in sidecar_pods(example):
        assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
        serving = [
            p["containerPort"]
            for c in pod["containers"]
            if c["name"] != "sentinel"
            for p in c.get("ports", [])
        ]
        open_to_all = [r for r in rules if "from" not in r]
        ranges = [(p["port"], p.get("endPort", p["port"])) for r in open_to_all for p in r["ports"]]
        assert all(any(lo <= port <= hi for lo, hi in ranges) for port in serving)
        assert not any(lo <= port <= hi for lo, hi in ranges for port in (9308, 9309))
    sources = {
        p["port"]: next(iter(r["from"][0])) for r in rules if "from" in r for p in r["ports"]
    }
    assert {9308: "namespaceSelector", 9309: "podSelector"} == sources


def test_both_components_add_the_same_sentinel_container() -> None:
    """The Deployment and KServe components differ only in the Triton endpoints they set."""
    sidecar, kserve = (
        yaml.safe_load((DEPLOY / "components" / name / "sentinel-container.yaml").read_text())
        for name in ["sidecar", "kserve"]
    )
    (deployment_op,), (kserve_op,) = sidecar, kserve
    kserve_env = kserve_op["value"].pop("env")
    assert [e["name"] for e in kserve_env if e["name"].startswith("SENTINEL_TRITON__")] == [
        "SENTINEL_TRITON__URL",
        "SENTINEL_TRITON__METRICS_URL",
    ]
    kserve_env = [e for e in kserve_env if not e["name"].startswith("SENTINEL_TRITON__")]
    assert deployment_op["value"].pop("env") == kserve_env
    assert deployment_op["value"] == kserve_op["value"]

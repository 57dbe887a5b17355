"""k8s.* actions against a loopback stand-in of the Kubernetes API server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from runbook_standins import Bed, drive

from sentinel.runbook.schema import LoadedPlaybook
from sentinel.testing.kubernetes import KubernetesApiStandIn

Loader = Callable[[str], LoadedPlaybook]
TOKEN = "sa-token-0123456789"
NS = "inference"


@pytest.fixture
async def kube(tmp_path: Path) -> AsyncIterator[tuple[KubernetesApiStandIn, dict[str, object]]]:
    """The API stand-in with a 4-replica Deployment, and settings pointing at it."""
    sa = tmp_path / "sa"
    sa.mkdir()
    (sa / "token").write_text(TOKEN)
    (sa / "namespace").write_text(NS + "\n")
    async with KubernetesApiStandIn(TOKEN) as server:
        server.deployments[(NS, "triton")] = 4
        yield server, {"k8s_api_url": server.url, "k8s_service_account_dir": sa}


async def test_eviction_waits_out_the_pdb(bed: Bed, write_playbook: Loader, kube: tuple) -> None:
    """A PDB's 429 is retried with backoff; the eviction then goes through."""
    server, settings = kube
    server.pdb_refusals = 2
    lp = write_playbook(
        "name: evict\nsteps:\n  - name: evict\n    action: k8s.evict_pod\n"
        "    with: {pod: triton-0}\n    rollback: none\n    retry: {count: 3, backoff: 5s}\n"
    )
    engine = bed.engine([lp], **settings)
    result = await drive(
        bed.clock, engine.run_manual("evict", {"model": "digits"}), step=1.0, real_pause=0.01
    )
    assert "succeeded" == result.status
    assert 3 == result.steps[0]["attempts"]
    assert ["inference/triton-0"] == server.evicted


async def test_eviction_refused_for_good_is_a_failure(
    bed: Bed, write_playbook: Loader, kube: tuple
) -> None:
    """A PDB that keeps refusing fails the step after the retries, naming the budget."""
    server, settings = kube
    server.pdb_refusals = 10
    lp = write_playbook(
        "name: evict\nsteps:\n  - name: evict\n    action: k8s.evict_pod\n"
        "    with: {pod: triton-0}\n    rollback: none\n    retry: {count: 1, backoff: 1s}\n"
    )
    engine = bed.engine([lp], **settings)
    result = await drive(
        bed.clock, engine.run_manual("evict", {"model": "digits"}), step=1.0, real_pause=0.01
    )
    assert "failed" == result.status
    assert "disruption budget" in result.steps[0]["reason"]
    assert [] == server.evicted


async def test_rollout_restart_stamps_the_template(
    bed: Bed, write_playbook: Loader, kube: tuple
) -> None:
    """rollout_restart sets restartedAt with a strategic merge patch; a missing one fails."""
    server, settings = kube
    lp = write_playbook(
        "name: rr\nsteps:\n  - name: rr\n    action: k8s.rollout_restart\n"
        "    with: {deployment: '{{ params.deployment }}'}\n    rollback: none\n"
        "params: {deployment: triton}\n"
    )
    engine = bed.engine([lp], **settings)
    ok = await engine.run_manual("rr", {"model": "digits"})
    missing = await engine.run_manual("rr", {"model": "other"}, {"deployment": "nope"})
    assert "succeeded" == ok.status
    stamp = server.annotations[(NS, "triton")]["kubectl.kubernetes.io/restartedAt"]
    assert stamp == ok.steps[0]["output"]["restarted_at"]
    assert "application/strategic-merge-patch+json" == server.content_types[0]
    assert "failed" == missing.status
    assert "404" in missing.steps[0]["reason"]


async def test_scale_is_undone_when_verification_fails(
    bed: Bed, write_playbook: Loader, kube: tuple
) -> None:
    """k8s.scale snapshots the replica count; a failed check scales back."""
    server, settings = kube
    bed.canary.agreement = lambda c: 0.0
    lp = write_playbook(
        "name: scale\nsteps:\n  - name: scale\n    action: k8s.scale\n"
        "    with: {deployment: triton, replicas: 6}\n    verify: {within: 10s}\n"
    )
    engine = bed.engine([lp], **settings)
    before = server.deployments[(NS, "triton")]
    result = await drive(
        bed.clock, engine.run_manual("scale", {"model": "digits"}), step=1.0, real_pause=0.01
    )
    assert before == result.steps[0]["output"]["previous"]
    assert ("rollback", "rolled_back") in [(s["phase"], s["status"]) for s in result.steps]
    assert before == server.deployments[(NS, "triton")]


async def test_outside_a_cluster_the_action_says_so(
    bed: Bed, write_playbook: Loader, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a service account or a kubeconfig, k8s.* fail with a clear reason."""
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", "/nonexistent/kubeconfig")
    lp = write_playbook(
        "name: evict\nsteps:\n  - name: evict\n    action: k8s.evict_pod\n"
        "    with: {pod: p, namespace: n}\n    rollback: none\n"
    )
    engine = bed.engine([lp])
    result = await engine.run_manual("evict", {"model": "digits"})
    assert "failed" == result.status
    assert "not in a cluster" in result.steps[0]["reason"]

"""Kubernetes credentials the standard ways (in-cluster, kubeconfig), against the loopback
stand-in of the API server with generated kubeconfig files and certificates."""

from __future__ import annotations

import base64
import ssl
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from runbook_standins import Bed, drive

from sentinel.runbook.kube import ApiError, KubeApi
from sentinel.runbook.schema import LoadedPlaybook
from sentinel.testing.kubernetes import KubernetesApiStandIn
from sentinel.testing.notifiers import make_certificate

Loader = Callable[[str], LoadedPlaybook]
TOKEN = "kubeconfig-token-0123456789"
NS = "inference"


def kubeconfig(
    path: Path,
    server: str,
    user: dict[str, Any],
    cluster: dict[str, Any] | None = None,
    namespace: str = NS,
) -> Path:
    """A kubeconfig whose current context (``work``) names this server, user and namespace;
    a second context (``other``) points elsewhere, so picking the current one matters."""
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "work",
        "clusters": [
            {"name": "work", "cluster": {"server": server, **(cluster or {})}},
            {"name": "other", "cluster": {"server": "https://192.0.2.1:6443"}},
        ],
        "contexts": [
            {"name": "other", "context": {"cluster": "other", "user": "other"}},
            {"name": "work", "context": {"cluster": "work", "user": "me", "namespace": namespace}},
        ],
        "users": [{"name": "me", "user": user}, {"name": "other", "user": {"token": "nope"}}],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


@pytest.fixture
def use_kubeconfig(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path], None]:
    """``use_kubeconfig(path)`` points $KUBECONFIG at one file."""
    return lambda path: monkeypatch.setenv("KUBECONFIG", str(path))


@pytest.fixture
def off_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No service account mounted and no cluster env: returns the (empty) account folder."""
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_PORT", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    sa = tmp_path / "no-sa"
    sa.mkdir()
    return sa


@pytest.fixture
async def api_server() -> AsyncIterator[KubernetesApiStandIn]:
    """The stand-in over plain HTTP with a 4-replica Deployment."""
    async with KubernetesApiStandIn(TOKEN) as server:
        server.deployments[(NS, "triton")] = 4
        yield server


async def test_kubeconfig_token_from_home_reaches_the_server(
    off_cluster: Path, tmp_path: Path, api_server: KubernetesApiStandIn
) -> None:
    """Off-cluster, ~/.kube/config's current context gives the server, token and namespace."""
    kubeconfig(tmp_path / "home" / ".kube" / "config", api_server.url, {"token": TOKEN})
    async with KubeApi.connect(off_cluster) as api:
        replicas = await api.deployment_replicas(NS, "triton")
        assert (4, NS) == (replicas, api.namespace)
    assert ["token"] == api_server.authenticated


async def test_kubeconfig_list_merges_first_file_wins(
    off_cluster: Path, tmp_path: Path, api_server: KubernetesApiStandIn, monkeypatch: Any
) -> None:
    """$KUBECONFIG's files merge as kubectl's do: the first to name a user wins; a relative
    tokenFile is read next to the file that names it, at every request."""
    token_file = tmp_path / "a" / "token"
    token_file.parent.mkdir()
    token_file.write_text("rotated-away\n", encoding="utf-8")
    first = kubeconfig(tmp_path / "a" / "config", api_server.url, {"tokenFile": "token"})
    second = kubeconfig(tmp_path / "b" / "config", "https://192.0.2.9", {"token": "stale"})
    monkeypatch.setenv("KUBECONFIG", f"{first}:{tmp_path / 'missing'}:{second}")
    async with KubeApi.connect(off_cluster) as api:
        with pytest.raises(ApiError) as refused:
            await api.deployment_replicas(NS, "triton")
        token_file.write_text(TOKEN + "\n", encoding="utf-8")  # the token rotates
        assert 4 == await api.deployment_replicas(NS, "triton")
    assert 401 == refused.value.status


async def test_off_cluster_api_url_sends_the_kubeconfig_credentials(
    bed: Bed,
    write_playbook: Loader,
    off_cluster: Path,
    tmp_path: Path,
    api_server: KubernetesApiStandIn,
    monkeypatch: Any,
) -> None:
    """A configured k8s_api_url off-cluster authenticates with the kubeconfig's user
    (it used to send no credentials) and takes the context's namespace."""
    path = kubeconfig(tmp_path / "kc", "https://192.0.2.1:6443", {"token": TOKEN})
    monkeypatch.setenv("KUBECONFIG", str(path))
    lp = write_playbook(
        "name: evict\nsteps:\n  - name: evict\n    action: k8s.evict_pod\n"
        "    with: {pod: triton-0}\n    rollback: none\n"
    )
    engine = bed.engine([lp], k8s_api_url=api_server.url, k8s_service_account_dir=off_cluster)
    result = await drive(
        bed.clock, engine.run_manual("evict", {"model": "digits"}), step=1.0, real_pause=0.01
    )
    assert ("succeeded", [f"{NS}/triton-0"]) == (result.status, api_server.evicted)
    assert ["token"] == api_server.authenticated


@pytest.fixture
async def tls_server(tmp_path: Path) -> AsyncIterator[tuple[KubernetesApiStandIn, Path, Path]]:
    """The stand-in over HTTPS, trusting one client certificate: (server, its CA, client dir)."""
    server_dir, client_dir = tmp_path / "server-pki", tmp_path / "client-pki"
    server_dir.mkdir()
    client_dir.mkdir()
    server_cert, server_key = make_certificate(server_dir)
    client_cert, _ = make_certificate(client_dir)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(server_cert, server_key)
    ctx.load_verify_locations(client_cert)
    ctx.verify_mode = ssl.CERT_OPTIONAL  # a token or a client certificate
    async with KubernetesApiStandIn(TOKEN, tls=ctx) as server:
        server.deployments[(NS, "triton")] = 3
        yield server, server_cert, client_dir


async def test_kubeconfig_client_certificate_data_over_tls(
    off_cluster: Path,
    tmp_path: Path,
    tls_server: tuple[KubernetesApiStandIn, Path, Path],
    use_kubeconfig: Callable[[Path], None],
) -> None:
    """Inline certificate-authority-data and client-certificate/key-data authenticate
    over TLS without a token."""
    server, ca, client_dir = tls_server

    def b64(path: Path) -> str:
        return base64.b64encode(path.read_bytes()).decode()

    user = {
        "client-certificate-data": b64(client_dir / "cert.pem"),
        "client-key-data": b64(client_dir / "key.pem"),
    }
    path = kubeconfig(tmp_path / "kc", server.url, user, {"certificate-authority-data": b64(ca)})
    use_kubeconfig(path)
    async with KubeApi.connect(off_cluster) as api:
        assert 3 == await api.deployment_replicas(NS, "triton")
    assert ["certificate"] == server.authenticated


async def test_kubeconfig_certificate_files_relative_to_the_kubeconfig(
    off_cluster: Path,
    tmp_path: Path,
    tls_server: tuple[KubernetesApiStandIn, Path, Path],
    use_kubeconfig: Callable[[Path], None],
) -> None:
    """certificate-authority, client-certificate and client-key as paths beside the file."""
    server, ca, client_dir = tls_server
    user = {"client-certificate": "client-pki/cert.pem", "client-key": "client-pki/key.pem"}
    cluster = {"certificate-authority": str(ca)}
    path = kubeconfig(client_dir.parent / "kubeconfig", server.url, user, cluster)
    use_kubeconfig(path)
    async with KubeApi.connect(off_cluster) as api:
        assert 3 == await api.deployment_replicas(NS, "triton")
    assert ["certificate"] == server.authenticated


async def test_in_cluster_uses_service_env_token_and_ca(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    tls_server: tuple[KubernetesApiStandIn, Path, Path],
) -> None:
    """In a pod: KUBERNETES_SERVICE_HOST/PORT, the mounted token, CA and namespace."""
    server, ca, _ = tls_server
    sa = tmp_path / "sa"
    sa.mkdir()
    (sa / "token").write_text(TOKEN, encoding="utf-8")
    (sa / "ca.crt").write_bytes(ca.read_bytes())
    (sa / "namespace").write_text(NS + "\n", encoding="utf-8")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", server.url.rsplit(":", 1)[1])
    async with KubeApi.connect(sa) as api:
        assert (3, NS) == (await api.deployment_replicas(NS, "triton"), api.namespace)
    assert ["token"] == server.authenticated


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        ({"exec": {"command": "gke-gcloud-auth-plugin"}}, "exec plugin (gke-gcloud-auth-plugin)"),
        ({"auth-provider": {"name": "oidc"}}, "auth-provider plugin (oidc)"),
        ({"username": "admin", "password": "pw"}, "basic auth"),
        ({}, "no token, tokenFile or client certificate"),
    ],
    ids=["exec", "auth-provider", "basic", "nothing"],
)
def test_unsupported_kubeconfig_users_fail_clearly(
    off_cluster: Path,
    tmp_path: Path,
    use_kubeconfig: Callable[[Path], None],
    user: dict[str, Any],
    expected: str,
) -> None:
    """A user sentinel cannot log in as is an ApiError that names what it uses."""
    use_kubeconfig(kubeconfig(tmp_path / "kc", "https://192.0.2.1:6443", user))
    with pytest.raises(ApiError) as info:
        KubeApi.connect(off_cluster)
    assert (0, True) == (info.value.status, expected in str(info.value))


def test_no_credentials_anywhere_says_where_it_looked(off_cluster: Path, tmp_path: Path) -> None:
    """Neither a service account nor a kubeconfig: the error names both places."""
    with pytest.raises(ApiError) as info:
        KubeApi.connect(off_cluster)
    message = str(info.value)
    assert (True, True, True) == (
        "not in a cluster" in message,
        str(off_cluster) in message,
        str(tmp_path / "home" / ".kube" / "config") in message,
    )

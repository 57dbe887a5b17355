"""The one Kubernetes API client of the act stage: the few REST calls that the k8s.*
actions and the fleet guard make, over aiohttp's client. Credentials are found the standard ways
(in-cluster service account, else kubeconfig: :mod:`sentinel.runbook.kubeconfig`).

Errors are typed: :class:`ApiUnavailable` (no answer, 429, 5xx) may pass and is
retried by the executor; :class:`Conflict` (409) is the fleet guard's cue to re-read;
any other status is an :class:`ApiError`, and so is having no usable credentials.
The bearer token is re-read for every request: projected service-account tokens
rotate while the pod runs. Answers are read up to :data:`MAX_BODY_BYTES`.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp

from sentinel.base.http_body import read_up_to
from sentinel.runbook import kubeconfig
from sentinel.runbook.errors import ActionError, TransientError
from sentinel.runbook.kubeconfig import Credentials, KubeconfigError
from sentinel.runbook.settings import SERVICE_ACCOUNT_DIR

__all__ = ["ApiError", "ApiUnavailable", "Conflict", "KubeApi"]

_UNAVAILABLE_STATUS = frozenset({429, 500, 502, 503, 504})
"""Answers that may pass: throttled (a PodDisruptionBudget refusing an eviction) or down."""

MAX_BODY_BYTES = 4 * 1024 * 1024
"""The most of an answer read: one object (a Lease, a Deployment, a Status); the API
server's own object limit is 1.5 MiB, so more is not an answer to these calls."""


class ApiError(ActionError):
    """The Kubernetes API answered with an error, or cannot be used (no cluster, no token)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        """The HTTP status; 0 when there was no answer."""


class ApiUnavailable(ApiError, TransientError):
    """No answer, 429 or 5xx: trying again later may succeed."""


class Conflict(ApiError):
    """409: a stale resourceVersion, or the object already exists."""


def _error_for(status: int, message: str) -> ApiError:
    if status == 409:
        return Conflict(status, message)
    if status in _UNAVAILABLE_STATUS:
        return ApiUnavailable(status, message)
    return ApiError(status, message)


class KubeApi:
    """A Kubernetes API server: JSON over HTTP with a bearer token; also an async context."""

    def __init__(
        self,
        base_url: str,
        token: Callable[[], str | None] = lambda: None,
        verify: ssl.SSLContext | str | bool = True,
        timeout_s: float = 5.0,
        namespace: str | None = None,
    ) -> None:
        self._token = token
        self.namespace = namespace
        """The namespace the credentials default to (the pod's, or the kubeconfig context's)."""
        if isinstance(verify, str):  # a CA bundle file
            verify = ssl.create_default_context(cafile=verify)
        self._base_url = base_url.rstrip("/")
        self._ssl = verify
        # per phase, as before: connecting and each read may take timeout_s
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=timeout_s, sock_connect=timeout_s, sock_read=timeout_s
        )
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def of(cls, creds: Credentials, timeout_s: float = 5.0) -> KubeApi:
        return cls(creds.server, creds.token, creds.tls, timeout_s, namespace=creds.namespace)

    @classmethod
    def connect(
        cls,
        sa_dir: Path = SERVICE_ACCOUNT_DIR,
        base_url: str | None = None,
        timeout_s: float = 5.0,
    ) -> KubeApi:
        """The API server with the standard credentials: the mounted service account,
        else the kubeconfig ($KUBECONFIG or ~/.kube/config). ``base_url`` (from the
        config) replaces the server, never the credentials. ApiError when there are none."""
        try:
            return cls.of(kubeconfig.find(sa_dir, base_url), timeout_s)
        except KubeconfigError as exc:
            raise ApiError(0, str(exc)) from exc

    @classmethod
    def in_cluster(
        cls,
        sa_dir: Path = SERVICE_ACCOUNT_DIR,
        base_url: str | None = None,
        timeout_s: float = 5.0,
    ) -> KubeApi:
        """The API server as seen from a pod: service env vars, mounted token and CA.

        ``base_url`` (from the config) overrides the in-cluster service address.
        """
        try:
            return cls.of(kubeconfig.in_cluster(sa_dir, base_url), timeout_s)
        except KubeconfigError as exc:
            raise ApiError(0, str(exc)) from exc

    def _client(self) -> aiohttp.ClientSession:
        """The session, made on first use: aiohttp wants a running event loop for it."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._ssl),
                timeout=self._timeout,
                trust_env=True,  # proxy settings from the environment, as client-go
            )
        return self._session

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def __aenter__(self) -> KubeApi:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _call(
        self, method: str, path: str, body: Mapping[str, Any] | None = None, patch: str = ""
    ) -> tuple[int, bytes]:
        """The answer's status and body (at most MAX_BODY_BYTES + 1 bytes of it)."""
        headers = {"Accept": "application/json"}
        try:
            token = self._token()
        except OSError as exc:
            raise ApiError(0, f"cannot read the bearer token: {exc}") from exc
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = None
        if body is not None:
            # a patch names its kind in the content type
            kind = f"application/{patch}-patch+json" if patch else "application/json"
            headers["Content-Type"] = kind
            data = json.dumps(body).encode()
        try:
            async with self._client().request(
                method,
                self._base_url + path,
                data=data,
                headers=headers,
                allow_redirects=False,  # a redirect would carry the token elsewhere
            ) as resp:
                return resp.status, await read_up_to(resp, MAX_BODY_BYTES)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise ApiUnavailable(
                0, f"Kubernetes API {method} {path}: {type(exc).__name__}: {exc}"
            ) from exc

    async def request(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        patch: str = "",
        strict: bool = False,
    ) -> dict[str, Any]:
        """One call; the answer's JSON object, or a typed ApiError.

        ``patch`` is the patch kind for PATCH: ``merge``, ``strategic-merge`` or ``json``.
        An answer that is not a JSON object reads as {}, or is an ApiError when ``strict``
        (the fleet guard must not decide on what it could not read).
        """
        status, raw = await self._call(method, path, body, patch)
        text = raw.decode("utf-8", errors="replace")
        if status >= 300:
            try:
                message = str(json.loads(raw).get("message", text[:200]))
            except (ValueError, AttributeError):
                message = text[:200]
            raise _error_for(status, f"Kubernetes API {status} on {method} {path}: {message}")
        try:
            # past the bound is not an answer to these calls: read as unreadable
            data = json.loads(raw) if len(raw) <= MAX_BODY_BYTES else None
        except ValueError:
            data = None
        if isinstance(data, dict):
            return data
        if strict:
            raise ApiError(status, f"{method} {path}: response is not a JSON object")
        return {}

    # -- the calls the fleet guard makes -------------------------------------
    @staticmethod
    def _lease_path(namespace: str, name: str = "") -> str:
        base = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
        return f"{base}/{name}" if name else base

    async def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The Lease, or None when it does not exist yet."""
        try:
            return await self.request("GET", self._lease_path(namespace, name), strict=True)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    async def create_lease(self, namespace: str, lease: Mapping[str, Any]) -> dict[str, Any]:
        """POST; raises Conflict when a Lease of that name already exists."""
        return await self.request("POST", self._lease_path(namespace), lease, strict=True)

    async def replace_lease(
        self, namespace: str, name: str, lease: Mapping[str, Any]
    ) -> dict[str, Any]:
        """PUT; raises Conflict when the lease's resourceVersion is stale."""
        path = self._lease_path(namespace, name)
        return await self.request("PUT", path, lease, strict=True)

    async def deployment_replicas(self, namespace: str, name: str) -> int:
        """``spec.replicas`` of a Deployment (the size the fleet budget is a share of)."""
        found = await self.request("GET", deployment_path(namespace, name), strict=True)
        replicas = found.get("spec", {}).get("replicas", 1)
        if not isinstance(replicas, int) or replicas < 0:
            raise ApiError(200, f"deployment {name}: bad spec.replicas {replicas!r}")
        return replicas


def deployment_path(namespace: str, name: str, scale: bool = False) -> str:
    """A Deployment's path, or its ``scale`` subresource's."""
    path = f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}"
    return f"{path}/scale" if scale else path

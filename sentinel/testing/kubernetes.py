"""STAND-IN for the Kubernetes API server: the subset sentinel calls, in memory, on loopback.

No real API server can run where sentinel's tests run, so this small aiohttp server
implements the documented semantics the k8s.* actions and the fleet guard rely on:

- ``GET/POST/PUT /apis/coordination.k8s.io/v1/namespaces/{ns}/leases[/{name}]``:
  every write bumps ``metadata.resourceVersion`` (an opaque string); POST of an
  existing name answers 409 ``AlreadyExists``; PUT with a stale ``resourceVersion``
  answers 409 ``Conflict``, without one 422 (Leases allow no unconditional update);
- ``GET/PATCH /apis/apps/v1/namespaces/{ns}/deployments/{name}`` (replica count;
  a patch of the pod template's annotations, as ``kubectl rollout restart`` sends),
  and ``GET/PATCH .../deployments/{name}/scale``;
- ``POST /api/v1/namespaces/{ns}/pods/{pod}/eviction``, which a PodDisruptionBudget
  may refuse with 429 (``pdb_refusals``);
- a bearer token is required (401 otherwise), or, when served over TLS (``tls``), a
  client certificate that the TLS context verified; errors are ``Status`` objects.

``hold_gets`` makes the next N lease reads wait for each other, so a test can force
racers to read the same resourceVersion before either writes; ``interfere`` makes
the next N lease updates lose to a simulated other writer.

Use it as an async context manager::

    async with KubernetesApiStandIn(token="t") as kube:
        kube.deployments[("inference", "triton")] = 4
        ...  # point KubeApi / the settings' API URL at kube.url
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import ssl
from types import TracebackType
from typing import Any

from aiohttp import web

__all__ = ["KubernetesApiStandIn"]

_LEASES = "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases"
_DEPLOYMENT = "/apis/apps/v1/namespaces/{ns}/deployments/{name}"


def _status(code: int, reason: str, message: str) -> web.Response:
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    return web.json_response(body, status=code)


class KubernetesApiStandIn:
    """A loopback stand-in of the Kubernetes API server's Lease, Deployment and Eviction calls."""

    def __init__(
        self,
        token: str = "test-token",  # noqa: S107 -- a stand-in's
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.token = token
        self.tls = tls
        """Serve HTTPS with this server context (its verify mode decides client certificates)."""
        self.authenticated: list[str] = []
        """How each accepted request proved itself: ``token`` or ``certificate``."""
        self.leases: dict[tuple[str, str], dict[str, Any]] = {}
        self.deployments: dict[tuple[str, str], int] = {}
        """Replica count by (namespace, name); a Deployment exists when it is here."""
        self.annotations: dict[tuple[str, str], dict[str, str]] = {}
        """Pod-template annotations patched onto each Deployment, by (namespace, name)."""
        self.evicted: list[str] = []
        """``namespace/pod`` of every eviction granted, in order."""
        self.pdb_refusals = 0
        """The next N evictions are refused with 429, as a PodDisruptionBudget does."""
        self.interfere = 0
        """Before each of the next N lease PUTs, another writer bumps the lease (a lost race)."""
        self.requests: list[tuple[str, str, int]] = []
        """(method, path, status) of every request, in order."""
        self.content_types: list[str] = []
        """Content type of every PATCH, in order (the patch kind)."""
        self._rv = itertools.count(1000)
        self._hold: tuple[int, asyncio.Barrier] | None = None
        self._runner: web.AppRunner | None = None
        self.url = ""
        """``http://127.0.0.1:PORT`` once started."""

    def hold_gets(self, n: int) -> None:
        """Make the next ``n`` lease GETs wait until all ``n`` have arrived."""
        self._hold = (n, asyncio.Barrier(n))

    async def start(self) -> str:
        """Serve on a free loopback port; returns the base URL."""
        app = web.Application(middlewares=[self._auth])
        app.router.add_get(_LEASES + "/{name}", self._get_lease)
        app.router.add_post(_LEASES, self._post_lease)
        app.router.add_put(_LEASES + "/{name}", self._put_lease)
        app.router.add_get(_DEPLOYMENT, self._get_deployment)
        app.router.add_patch(_DEPLOYMENT, self._patch_deployment)
        app.router.add_get(_DEPLOYMENT + "/scale", self._get_scale)
        app.router.add_patch(_DEPLOYMENT + "/scale", self._patch_scale)
        app.router.add_post("/api/v1/namespaces/{ns}/pods/{pod}/eviction", self._evict)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.tls)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"{'https' if self.tls else 'http'}://127.0.0.1:{port}"
        return self.url

    async def close(self) -> None:
        """Stop serving (a client then sees the API server unreachable)."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> KubernetesApiStandIn:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        how = None
        if request.headers.get("Authorization") == f"Bearer {self.token}":
            how = "token"
        elif request.transport is not None and request.transport.get_extra_info("peercert"):
            how = "certificate"  # the TLS handshake verified it against the client CA
        if how is None:
            resp: web.StreamResponse = _status(401, "Unauthorized", "Unauthorized")
        else:
            self.authenticated.append(how)
            resp = await handler(request)
        self.requests.append((request.method, request.path, resp.status))
        return resp

    def _next_rv(self) -> str:
        return str(next(self._rv))

    # -- leases -------------------------------------------------------------
    async def _get_lease(self, request: web.Request) -> web.Response:
        if self._hold is not None:
            n, barrier = self._hold
            self._hold = (n - 1, barrier) if n > 1 else None
            await barrier.wait()
        key = (request.match_info["ns"], request.match_info["name"])
        lease = self.leases.get(key)
        if lease is None:
            return _status(404, "NotFound", f'leases.coordination.k8s.io "{key[1]}" not found')
        return web.json_response(lease)

    async def _post_lease(self, request: web.Request) -> web.Response:
        ns = request.match_info["ns"]
        body = await request.json()
        name = body.get("metadata", {}).get("name")
        if not name:
            return _status(422, "Invalid", "metadata.name: Required value")
        if (ns, name) in self.leases:
            return _status(409, "AlreadyExists", f'leases.coordination.k8s.io "{name}" exists')
        stored = copy.deepcopy(body)
        stored["metadata"].update(namespace=ns, resourceVersion=self._next_rv())
        self.leases[(ns, name)] = stored
        return web.json_response(stored, status=201)

    async def _put_lease(self, request: web.Request) -> web.Response:
        key = (request.match_info["ns"], request.match_info["name"])
        body = await request.json()
        current = self.leases.get(key)
        if current is None:
            return _status(404, "NotFound", f'leases.coordination.k8s.io "{key[1]}" not found')
        if self.interfere > 0:
            self.interfere -= 1
            current["metadata"]["resourceVersion"] = self._next_rv()
        rv = body.get("metadata", {}).get("resourceVersion")
        if not rv:
            return _status(422, "Invalid", "metadata.resourceVersion: must be specified")
        if rv != current["metadata"]["resourceVersion"]:
            message = (
                f'Operation cannot be fulfilled on leases.coordination.k8s.io "{key[1]}": '
                "the object has been modified; please apply your changes to the latest "
                "version and try again"
            )
            return _status(409, "Conflict", message)
        stored = copy.deepcopy(body)
        stored["metadata"]["resourceVersion"] = self._next_rv()
        self.leases[key] = stored
        return web.json_response(stored)

    # -- deployments --------------------------------------------------------
    def _deployment_key(self, request: web.Request) -> tuple[str, str] | None:
        key = (request.match_info["ns"], request.match_info["name"])
        return key if key in self.deployments else None

    @staticmethod
    def _not_found(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        return _status(404, "NotFound", f'deployments.apps "{name}" not found')

    async def _get_deployment(self, request: web.Request) -> web.Response:
        key = self._deployment_key(request)
        if key is None:
            return self._not_found(request)
        body = {
            "kind": "Deployment",
            "metadata": {"name": key[1], "namespace": key[0]},
            "spec": {"replicas": self.deployments[key]},
        }
        return web.json_response(body)

    async def _patch_deployment(self, request: web.Request) -> web.Response:
        self.content_types.append(request.content_type)
        key = self._deployment_key(request)
        if key is None:
            return self._not_found(request)
        body = await request.json()
        patched = body["spec"]["template"]["metadata"]["annotations"]
        self.annotations.setdefault(key, {}).update(patched)
        return web.json_response({"metadata": {"name": key[1], "namespace": key[0]}})

    async def _get_scale(self, request: web.Request) -> web.Response:
        key = self._deployment_key(request)
        if key is None:
            return self._not_found(request)
        return web.json_response({"kind": "Scale", "spec": {"replicas": self.deployments[key]}})

    async def _patch_scale(self, request: web.Request) -> web.Response:
        self.content_types.append(request.content_type)
        key = self._deployment_key(request)
        if key is None:
            return self._not_found(request)
        body = await request.json()
        self.deployments[key] = int(body["spec"]["replicas"])
        return web.json_response({"kind": "Scale", "spec": {"replicas": self.deployments[key]}})

    # -- pods ---------------------------------------------------------------
    async def _evict(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("kind") != "Eviction":
            return _status(400, "BadRequest", "not an Eviction")
        if self.pdb_refusals > 0:
            self.pdb_refusals -= 1
            return _status(
                429,
                "TooManyRequests",
                "Cannot evict pod as it would violate the pod's disruption budget.",
            )
        self.evicted.append(f"{request.match_info['ns']}/{request.match_info['pod']}")
        return web.json_response({"kind": "Status", "status": "Success"}, status=201)

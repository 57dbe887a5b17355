"""STAND-IN for the Kubernetes API server: Lease and Deployment endpoints on loopback.

No Kubernetes API server can run on these machines, so this small aiohttp server
implements the documented semantics the fleet guard relies on:

- ``GET/POST/PUT /apis/coordination.k8s.io/v1/namespaces/{ns}/leases[/{name}]``;
- every write bumps ``metadata.resourceVersion`` (an opaque string);
- POST of an existing name answers 409 ``AlreadyExists``;
- PUT with a stale ``resourceVersion`` answers 409 ``Conflict``; without one, 422
  (Leases do not allow unconditional updates);
- ``GET /apis/apps/v1/namespaces/{ns}/deployments/{name}`` for the replica count;
- a bearer token is required (401 otherwise); errors are ``Status`` objects.

``hold_gets`` makes the first N lease reads wait for each other, so a test can force
racers to read the same resourceVersion before either writes; ``interfere`` makes
the next N updates lose to a simulated other writer.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
from typing import Any

from aiohttp import web


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


class LeaseApiStandIn:
    """The Lease endpoints of a Kubernetes API server, in memory, on loopback."""

    def __init__(self, token: str = "test-token") -> None:
        self.token = token
        self.leases: dict[tuple[str, str], dict[str, Any]] = {}
        self.deployments: dict[tuple[str, str], int] = {}
        self.requests: list[tuple[str, str, int]] = []
        self.interfere = 0
        """Before each of the next N lease PUTs, another writer bumps the lease (a lost race)."""
        self._rv = itertools.count(1000)
        self._hold: tuple[int, asyncio.Barrier] | None = None
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    def hold_gets(self, n: int) -> None:
        """Make the next ``n`` lease GETs wait until all ``n`` have arrived."""
        self._hold = (n, asyncio.Barrier(n))

    async def start(self) -> str:
        app = web.Application(middlewares=[self._auth])
        leases = "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases"
        app.router.add_get(leases + "/{name}", self._get)
        app.router.add_post(leases, self._post)
        app.router.add_put(leases + "/{name}", self._put)
        app.router.add_get("/apis/apps/v1/namespaces/{ns}/deployments/{name}", self._deployment)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}"
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            resp = _status(401, "Unauthorized", "Unauthorized")
        else:
            resp = await handler(request)
        self.requests.append((request.method, request.path, resp.status))
        return resp

    def _next_rv(self) -> str:
        return str(next(self._rv))

    async def _get(self, request: web.Request) -> web.Response:
        if self._hold is not None:
            n, barrier = self._hold
            self._hold = (n - 1, barrier) if n > 1 else None
            await barrier.wait()
        key = (request.match_info["ns"], request.match_info["name"])
        lease = self.leases.get(key)
        if lease is None:
            return _status(404, "NotFound", f'leases.coordination.k8s.io "{key[1]}" not found')
        return web.json_response(lease)

    async def _post(self, request: web.Request) -> web.Response:
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

    async def _put(self, request: web.Request) -> web.Response:
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

    async def _deployment(self, request: web.Request) -> web.Response:
        key = (request.match_info["ns"], request.match_info["name"])
        if key not in self.deployments:
            return _status(404, "NotFound", f'deployments.apps "{key[1]}" not found')
        name = key[1]
        body = {
            "kind": "Deployment",
            "metadata": {"name": name},
            "spec": {"replicas": self.deployments[key]},
        }
        return web.json_response(body)

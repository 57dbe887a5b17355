"""STAND-IN for the Kubernetes API server (no real one can run here): the pod
eviction, deployment patch and scale endpoints, in memory, on loopback, with
bearer-token checks and a PodDisruptionBudget that can refuse evictions (429)."""

from __future__ import annotations

from typing import Any

from aiohttp import web


class KubeStandIn:
    def __init__(self, token: str) -> None:
        self.token = token
        self.replicas: dict[str, int] = {"triton": 4}
        self.annotations: dict[str, dict[str, str]] = {}
        self.evicted: list[str] = []
        self.pdb_refusals = 0
        self.content_types: list[str] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> str:
        app = web.Application(middlewares=[self._auth])
        app.router.add_post("/api/v1/namespaces/{ns}/pods/{pod}/eviction", self._evict)
        app.router.add_patch("/apis/apps/v1/namespaces/{ns}/deployments/{name}", self._patch)
        app.router.add_get(
            "/apis/apps/v1/namespaces/{ns}/deployments/{name}/scale", self._get_scale
        )
        app.router.add_patch(
            "/apis/apps/v1/namespaces/{ns}/deployments/{name}/scale", self._patch_scale
        )
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return _status(401, "Unauthorized", "bad token")
        return await handler(request)

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

    async def _patch(self, request: web.Request) -> web.Response:
        self.content_types.append(request.content_type)
        name = request.match_info["name"]
        if name not in self.replicas:
            return _status(404, "NotFound", f'deployments.apps "{name}" not found')
        body = await request.json()
        ann = body["spec"]["template"]["metadata"]["annotations"]
        self.annotations.setdefault(name, {}).update(ann)
        return web.json_response({"metadata": {"name": name}})

    async def _get_scale(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in self.replicas:
            return _status(404, "NotFound", f'deployments.apps "{name}" not found')
        return web.json_response({"kind": "Scale", "spec": {"replicas": self.replicas[name]}})

    async def _patch_scale(self, request: web.Request) -> web.Response:
        self.content_types.append(request.content_type)
        name = request.match_info["name"]
        body = await request.json()
        self.replicas[name] = int(body["spec"]["replicas"])
        return web.json_response({"kind": "Scale", "spec": {"replicas": self.replicas[name]}})


def _status(code: int, reason: str, message: str) -> web.Response:
    body = {
        "kind": "Status",
        "status": "Failure",
        "reason": reason,
        "message": message,
        "code": code,
    }
    return web.json_response(body, status=code)

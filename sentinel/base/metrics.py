"""sentinel's own Prometheus endpoint.

Every stage's metrics register on one injected ``CollectorRegistry`` (never
the global one); this module holds the process-level metrics and serves the
registry over HTTP on its own port.
"""

from __future__ import annotations

import platform

from aiohttp import web
from prometheus_client import CollectorRegistry, Info, disable_created_metrics
from prometheus_client.exposition import choose_encoder

from sentinel import __version__

# `_created` series double every counter's exposition and no rule or dashboard uses them.
disable_created_metrics()  # type: ignore[no-untyped-call]


def new_registry() -> CollectorRegistry:
    """A fresh registry with ``sentinel_build_info``."""
    registry = CollectorRegistry(auto_describe=True)
    info = Info("sentinel_build", "sentinel version and runtime.", registry=registry)
    info.info({"version": __version__, "python": platform.python_version()})
    return registry


class MetricsServer:
    """Serves a registry at ``/metrics`` on the event loop.

    No thread of its own: nothing wakes between scrapes (prometheus_client's server
    thread polled twice a second), and collectors read the stages' state on the
    thread that changes it.
    """

    def __init__(self, registry: CollectorRegistry, bind: str, port: int) -> None:
        self._registry = registry
        self._bind = bind
        self._port = port
        self._runner: web.AppRunner | None = None
        self._bound: int | None = None

    @property
    def port(self) -> int:
        """The bound port (useful when configured as 0)."""
        return self._bound if self._bound is not None else self._port

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._scrape)
        app.router.add_get("/", self._scrape)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self._bind, self._port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        sockets = getattr(site._server, "sockets", None) or []
        self._bound = int(sockets[0].getsockname()[1]) if sockets else self._port

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _scrape(self, request: web.Request) -> web.Response:
        """The exposition format the scraper asks for (text or OpenMetrics), gzipped if
        it accepts that, as prometheus_client's own server answers."""
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        response = web.Response(
            body=encoder(self._registry), headers={"Content-Type": content_type}
        )
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            response.enable_compression()
        return response

"""sentinel's own Prometheus endpoint.

Every stage's metrics register on one injected ``CollectorRegistry`` (never
the global one); this module holds the process-level metrics and serves the
registry over HTTP on its own port.
"""

from __future__ import annotations

import platform
import threading
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Info,
    disable_created_metrics,
    start_http_server,
)

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
    """Serves a registry at ``/metrics`` on a background thread."""

    def __init__(self, registry: CollectorRegistry, bind: str, port: int) -> None:
        self._registry = registry
        self._bind = bind
        self._port = port
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (useful when configured as 0)."""
        return self._server.server_port if self._server else self._port

    def start(self) -> None:
        self._server, self._thread = start_http_server(
            self._port, addr=self._bind, registry=self._registry
        )

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

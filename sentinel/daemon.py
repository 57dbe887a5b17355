"""The daemon: builds every stage from the config, runs the probes on their
schedules in one asyncio process, and stops cleanly on SIGTERM/SIGINT.

Blocking work (NVML, SQLite, Slack/PagerDuty clients) happens in threads off
the event loop; the loop only routes samples through the pipeline.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

import structlog
from prometheus_client import CollectorRegistry

from sentinel.clock import Clock, SystemClock
from sentinel.config import Config
from sentinel.metrics import MetricsServer, new_registry
from sentinel.ports import SampleSink
from sentinel.probes.samples import Sample

log = structlog.get_logger(__name__)


class Probe(Protocol):
    """Something that observes on a schedule."""

    name: str

    async def run(self, sink: SampleSink, clock: Clock) -> None:
        """Observe forever (until cancelled), handing every sample to ``sink``."""
        ...

    async def once(self) -> list[Sample]:
        """One round, now."""
        ...


@dataclass
class Wiring:
    """Everything the daemon runs, built by :func:`sentinel.wiring.build`."""

    sink: SampleSink
    probes: list[Probe]
    tick: Callable[[float], Awaitable[None]]
    """Called every tick_interval_s with the wall time (staleness, hysteresis, leases)."""
    services: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    """Long-running coroutines besides the probes (outbox dispatcher, API server...)."""
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    """Run in reverse order on shutdown."""
    tick_interval_s: float = 1.0


class Daemon:
    """One sentinel process."""

    def __init__(
        self,
        config: Config,
        wiring: Wiring,
        *,
        clock: Clock | None = None,
        registry: CollectorRegistry | None = None,
        serve_metrics: bool = True,
    ) -> None:
        self.config = config
        self.wiring = wiring
        self.clock = clock or SystemClock()
        self.registry = registry or new_registry()
        self.metrics_server = (
            MetricsServer(self.registry, config.metrics.bind, config.metrics.port)
            if serve_metrics
            else None
        )
        self._stop = asyncio.Event()
        self.started = asyncio.Event()
        """Set once the metrics endpoint listens and every probe task is running."""

    def request_stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """Run until :meth:`request_stop` (or SIGTERM/SIGINT when installed)."""
        if self.metrics_server is not None:
            self.metrics_server.start()
            log.info("metrics_listening", port=self.metrics_server.port)
        tasks = [
            asyncio.create_task(self._guarded(p.name, self._runner(p))) for p in self.wiring.probes
        ]
        tasks += [
            asyncio.create_task(self._guarded(getattr(s, "__name__", "service"), s))
            for s in self.wiring.services
        ]
        tasks.append(asyncio.create_task(self._ticker()))
        log.info("sentinel_started", probes=[p.name for p in self.wiring.probes])
        self.started.set()
        try:
            await self._stop.wait()
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for close in reversed(self.wiring.closers):
                with contextlib.suppress(Exception):
                    await close()
            if self.metrics_server is not None:
                self.metrics_server.stop()
            log.info("sentinel_stopped")

    async def once(self) -> list[Sample]:
        """One round of every probe, each sample through the pipeline; returns them."""
        seen: list[Sample] = []
        for probe in self.wiring.probes:
            try:
                samples = await probe.once()
            except Exception as exc:
                log.error("probe_failed", probe=probe.name, error=str(exc))
                continue
            for sample in samples:
                seen.append(sample)
                await self.wiring.sink(sample)
        await self.wiring.tick(self.clock.now())
        return seen

    def _runner(self, probe: Probe) -> Callable[[], Awaitable[None]]:
        return lambda: probe.run(self.wiring.sink, self.clock)

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal, sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        log.info("signal_received", signal=sig.name)
        self._stop.set()

    async def _ticker(self) -> None:
        while True:
            await self.clock.sleep(self.wiring.tick_interval_s)
            try:
                await self.wiring.tick(self.clock.now())
            except Exception:
                log.exception("tick_failed")

    async def _guarded(self, name: str, start: Callable[[], Awaitable[None]]) -> None:
        """A probe or service that dies is logged and restarted with backoff, never silently."""
        backoff = 1.0
        while True:
            try:
                await start()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("task_crashed", task=name, restart_in_s=backoff)
            await self.clock.sleep(backoff)
            backoff = min(backoff * 2, 30.0)

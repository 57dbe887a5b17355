"""The daemon: runs what :func:`sentinel.wiring.build` assembled, in one asyncio process.

Every probe and service is a task, logged and restarted with backoff when it
crashes; a ticker calls ``Wiring.tick`` every second (staleness, hysteresis,
leases); ``/metrics`` is served on the event loop. SIGHUP reloads the playbooks (all or
nothing). SIGTERM/SIGINT stop it:
tasks are cancelled, then the closers run in reverse, each bounded by
``stop_timeout_s``, so the process always ends.

Calls that block (NVML, the Xid wait) run in worker
threads; SQLite is used from the event loop (short, indexed queries).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog
from prometheus_client import CollectorRegistry

from sentinel.base.clock import Clock, SystemClock
from sentinel.base.metrics import MetricsServer, new_registry
from sentinel.config import Config
from sentinel.vocabulary.ports import SampleSink
from sentinel.vocabulary.samples import Sample

log = structlog.get_logger(__name__)

STOP_TIMEOUT_S = 10.0
"""Default bound on each shutdown step (see ``Daemon.stop_timeout_s``)."""


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
    reload: Callable[[], None] | None = None
    """What SIGHUP does: re-read the playbooks, all or nothing."""


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
        stop_timeout_s: float = STOP_TIMEOUT_S,
    ) -> None:
        self.config = config
        self.stop_timeout_s = stop_timeout_s
        """On shutdown, how long each of the task group and every closer may take; what
        overruns is logged by name and left behind, so SIGTERM always ends the process
        (a pod's grace period is 30 s by default)."""
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
            await self.metrics_server.start()
            log.info("metrics_listening", port=self.metrics_server.port)
        tasks = [
            asyncio.create_task(self._guarded(p.name, self._runner(p)), name=p.name)
            for p in self.wiring.probes
        ]
        for service in self.wiring.services:
            name = getattr(service, "__name__", "service")
            tasks.append(asyncio.create_task(self._guarded(name, service), name=name))
        tasks.append(asyncio.create_task(self._ticker(), name="ticker"))
        log.info("sentinel_started", probes=[p.name for p in self.wiring.probes])
        self.started.set()
        try:
            await self._stop.wait()
        finally:
            await self._shut_down(tasks)

    async def _shut_down(self, tasks: list[asyncio.Task[None]]) -> None:
        for t in tasks:
            t.cancel()
        _, stuck = await asyncio.wait(tasks, timeout=self.stop_timeout_s)
        for t in stuck:
            log.error("task_did_not_stop", task=t.get_name(), waited_s=self.stop_timeout_s)
        await close_in_turn(reversed(self.wiring.closers), self.stop_timeout_s)
        if self.metrics_server is not None:
            await self.metrics_server.stop()
        log.info("sentinel_stopped", left_behind=sorted(t.get_name() for t in stuck))

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
        if self.wiring.reload is not None:
            loop.add_signal_handler(signal.SIGHUP, self._on_reload)

    def _on_reload(self) -> None:
        log.info("signal_received", signal="SIGHUP")
        if self.wiring.reload is not None:
            try:
                self.wiring.reload()
            except Exception:  # a reload must never take the daemon down
                log.exception("playbook_reload_failed")

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


async def close_in_turn(closers: Iterable[Callable[[], Awaitable[Any]]], timeout_s: float) -> None:
    """Run each closer, each within ``timeout_s``; one that fails or overruns is logged by
    name and the rest still run."""
    for close in closers:
        name = getattr(close, "__qualname__", repr(close))
        try:
            await asyncio.wait_for(close(), timeout_s)
        except TimeoutError:
            log.error("close_timed_out", closer=name, waited_s=timeout_s)
        except Exception:
            log.exception("close_failed", closer=name)

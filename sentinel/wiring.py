"""Builds a whole sentinel from its config: every adapter, stage and service.

This is the only place that knows every stage; each stage only knows the
contracts (``sentinel/vocabulary/ports.py`` and friends). Tests and the demo build the
same way, swapping in a clock, a registry or an NVML stand-in.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import structlog
from prometheus_client import CollectorRegistry

from sentinel.api import build_app, start_api
from sentinel.base import audit, db
from sentinel.base.clock import Clock, SystemClock
from sentinel.base.errors import InputError
from sentinel.base.logging import redactor
from sentinel.base.metrics import new_registry
from sentinel.config import Config
from sentinel.daemon import STOP_TIMEOUT_S, Daemon, Probe, Wiring, close_in_turn
from sentinel.detect.metrics import FindingMetrics
from sentinel.detect.suite import DetectorSuite
from sentinel.incidents.manager import IncidentManager
from sentinel.incidents.store import IncidentStore
from sentinel.notify.alertmanager import ExternalAlert, alert_to_judgement
from sentinel.notify.dispatcher import Dispatcher
from sentinel.notify.teller import NotifyStack, TappedTeller, build_notify
from sentinel.pipeline import LatestFacts, Observer, Pipeline
from sentinel.probes import triton as triton_adapter
from sentinel.probes.canary import CanaryGroup, CanaryProbe, GoldenSetError
from sentinel.probes.gpu import GpuSampler, GpuSelectionError, parse_source
from sentinel.probes.gpu_metrics import GpuCollector, GpuTelemetry
from sentinel.probes.gpu_probe import GpuProbe
from sentinel.probes.gpu_scrape import ScrapedGpuSource
from sentinel.probes.metrics import ProbeMetrics
from sentinel.probes.model_files import ManifestStore, ModelFilesProbe
from sentinel.probes.nvml import NvmlUnavailable
from sentinel.probes.replay import ReplayProbe
from sentinel.probes.triton_health import TritonHealthProbe
from sentinel.runbook.actions.process import find_server_pid
from sentinel.runbook.context import synthetic_incident
from sentinel.runbook.engine import Engine
from sentinel.runbook.fleet import FleetHalt, OnHalt, build_fleet_guard
from sentinel.runbook.reload import PlaybookWatcher
from sentinel.runbook.schema import invalid_files
from sentinel.runbook.service import EnginePlaybookService
from sentinel.vocabulary.findings import Judgement
from sentinel.vocabulary.notices import Notice, PageRequest, Teller

if TYPE_CHECKING:
    from sentinel.probes.stream_canary import StreamCanaryProbe, StreamVerification

log = structlog.get_logger(__name__)


@dataclass
class Sentinel:
    """A built sentinel: the daemon to run, and its stages for those who look inside."""

    daemon: Daemon
    pipeline: Pipeline
    engine: Engine
    incidents: IncidentManager
    notify: NotifyStack
    facts: LatestFacts
    triton: triton_adapter.TritonAdapter
    canaries: list[CanaryProbe]


class ConfigError(InputError, ValueError):
    """The config names something that cannot be built (e.g. a missing golden set)."""


class ServerPids:
    """Triton's pid(s) for attributing GPU memory; looked up lazily, refreshed on demand.

    Refreshed every tick, so it stays cheap: while the known server still runs under
    its name, one small read; a full /proc scan only when it is gone (a restart) or
    not known, and at most every ``RESCAN_S`` while none is found (a sidecar that
    does not share the pod's process namespace never sees one).
    """

    RESCAN_S = 5.0

    def __init__(self, config: Config, proc: Path = Path("/proc")) -> None:
        self._config = config
        self._proc = proc
        self.pids: set[int] = set()
        self._missed_at: float | None = None

    def refresh(self, now: float | None = None) -> bool:
        """Look the server up again; True when its pid changed (e.g. after a restart)."""
        settings = self._config.playbooks
        if settings.server_pid_file is None:
            if self._still_running():
                return False
            missed = self._missed_at
            if now is not None and missed is not None and now - missed < self.RESCAN_S:
                return False
        try:
            pid = find_server_pid(
                settings.server_pid_file, self._config.server_processes, self._proc
            )
        except Exception:  # no server process visible from here: keep what we knew
            self._missed_at = now
            return False
        self._missed_at = None
        changed = self.pids != {pid}
        self.pids = {pid}
        return changed

    def _still_running(self) -> bool:
        """The known server's pid still names the server (a restart gives a new pid)."""
        if len(self.pids) != 1:
            return False
        names = self._config.server_processes
        wanted = (names[0] if names else "tritonserver")[:15]  # as find_server_pid reads it
        try:
            comm = (self._proc / str(next(iter(self.pids))) / "comm").read_text(encoding="utf-8")
        except OSError:
            return False
        return comm.strip() == wanted

    def __call__(self) -> set[int]:
        return self.pids


def build_probes(
    config: Config,
    clock: Clock,
    triton: triton_adapter.TritonAdapter,
    nvml: Any = None,
) -> tuple[list[Probe], list[CanaryProbe]]:
    """Every probe the config asks for (canaries, Triton health, GPUs)."""
    canaries = []
    for c in config.canaries:
        try:
            canaries.append(CanaryProbe(triton, c, clock=clock))
        except (GoldenSetError, OSError) as exc:
            raise ConfigError(f"canaries[{c.model}].golden_set: {exc}") from exc
    try:
        streams = _stream_canaries(config, triton, clock)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    probes: list[Probe] = [
        TritonHealthProbe(
            triton,
            [c.model for c in config.canaries] + [c.model for c in config.stream_canaries],
            metrics_url=config.triton.metrics_url,
            interval_s=config.triton.health_interval_s,
            metrics_interval_s=config.triton.metrics_interval_s,
            clock=clock,
        ),
        *canaries,
        *streams,
    ]
    kind, path = parse_source(config.gpu.source)
    if kind == "nvml":
        if nvml is None:
            import pynvml

            nvml = pynvml
        sampler = GpuSampler(nvml, config.gpu, clock)
        try:
            sampler.open()
        except NvmlUnavailable:
            pass  # the probe reports it once and the daemon runs without GPU probes
        except GpuSelectionError as exc:
            raise ConfigError(f"gpu.devices: {exc}") from exc
        probes.append(GpuProbe(nvml, sampler, config.gpu.xid_events))
    elif kind == "triton":
        if not config.triton.metrics_url:
            raise ConfigError("gpu.source 'triton' needs triton.metrics_url (Triton's /metrics)")
        probes.append(ScrapedGpuSource("triton", config.triton.metrics_url, config.gpu, clock))
    elif kind == "dcgm":
        probes.append(ScrapedGpuSource("dcgm", config.gpu.metrics_url or "", config.gpu, clock))
    elif kind == "replay" and path is not None:
        probes.append(ReplayProbe(path, config.gpu.replay_speed, clock))
    return probes, canaries


def _degraded(dispatcher: Dispatcher, engine: Engine | None = None) -> dict[str, Any]:
    """What /readyz reports as sentinel's own trouble: notifiers whose pages are stuck, and
    playbook files that did not load (``sentinel_playbooks_invalid`` counts them too)."""
    out: dict[str, Any] = {}
    if stuck := dispatcher.stuck():
        out["pages_stuck_s"] = {n: round(age, 1) for n, age in stuck.items()}
    if engine is not None and invalid_files(engine.problems):
        out["playbook_problems"] = [str(p) for p in engine.problems]
    return out


@contextlib.asynccontextmanager
async def build(
    config: Config,
    *,
    clock: Clock | None = None,
    registry: CollectorRegistry | None = None,
    serve_api: bool = True,
    serve_metrics: bool = True,
    nvml: Any = None,
    console: TextIO | None = None,
    observers: Sequence[Observer] = (),
    on_judgement: Callable[[Judgement], None] | None = None,
    on_notice: Callable[[Notice], None] | None = None,
    extra_probes: Sequence[Probe] = (),
) -> AsyncIterator[Sentinel]:
    """A ready sentinel for ``config``; everything it opened is closed on exit."""
    clock = clock or SystemClock()
    registry = registry or new_registry()
    token = config.api.bearer_token()
    redactor.add(token)
    for secret in _notifier_secrets(config):
        redactor.add(secret)

    conn = db.open_db(db.path_in(config.state_dir), on_corrupt=config.state.on_corrupt)
    db.register_metrics(conn, registry)
    audit.configure(conn, config.state.audit, registry)
    triton = triton_adapter.connect(config.triton)
    closers: list[Callable[[], Any]] = [_aclose(conn.close), triton.close]
    try:
        probes, canaries = build_probes(config, clock, triton, nvml)
        probes += list(extra_probes)
        files_probe = _model_files_probe(config, conn, clock)
        if files_probe is not None:
            probes.append(files_probe)
        facts = LatestFacts()
        server_pids = ServerPids(config)
        server_pids.refresh()
        suite = DetectorSuite(config.detectors, server_pids=server_pids.pids)
        for canary in canaries:
            canary.suspects = suite.suspects  # judge -> observe: recheck a suspect model soon
        streams = _stream_verifications(probes)
        for stream in streams:
            stream.probe.suspects = suite.suspects

        probe_metrics = ProbeMetrics(registry)
        telemetry = GpuTelemetry(clock)
        GpuCollector(
            telemetry, registry, server_pids=server_pids, server_names=config.server_processes
        )

        api_url = f"http://{config.api.bind}:{config.api.port}"
        notify = build_notify(
            conn,
            config.notifiers,
            config.pod,
            clock,
            api_url=api_url,
            stream=console,
            registry=registry,
            open_incidents=IncidentStore(conn).open,
        )
        teller: Teller = notify.teller
        if on_notice is not None:
            teller = TappedTeller(notify.teller, on_notice)
        incidents = IncidentManager(conn, config.incidents, config.pod, clock)
        incidents.recover()
        on_halt = _page_fleet_halt(config, clock, teller)
        fleet = build_fleet_guard(config.fleet, holder=config.pod, clock=clock, on_halt=on_halt)
        engine = Engine(
            settings=config.playbooks,
            conn=conn,
            clock=clock,
            triton=triton,
            canary=CanaryGroup([*canaries, *streams]),
            facts=facts,
            teller=teller,
            incidents=incidents,
            fleet=fleet,
            pod=config.pod,
            dry_run=config.dry_run,
            registry=registry,
            models=[c.model for c in config.canaries],
        )
        pipeline = Pipeline(
            facts=facts,
            judge=suite,
            memory=incidents,
            teller=teller,
            actor=engine,
            observers=[probe_metrics.observe, telemetry.observe, *observers]
            + ([files_probe.observe] if files_probe is not None else []),
            on_judgement=_both(FindingMetrics(registry).observe, on_judgement),
            unit_of_work=lambda: db.unit_of_work(conn),
            retry_on=db.is_write_failure,
        )

        async def on_alerts(alerts: list[ExternalAlert]) -> None:
            for alert in alerts:
                judgement = alert_to_judgement(alert, clock.now())
                if judgement is not None:
                    await pipeline.ingest_judgement(judgement)

        async def tick(now: float) -> None:
            if server_pids.refresh(now):
                suite.set_server_pids(server_pids.pids)
            db.recheck(conn)  # after a failed write: readiness comes back once space does
            await pipeline.tick(now)

        services: list[Callable[[], Any]] = [notify.dispatcher.run]

        def reload_playbooks() -> None:
            engine.reload(all_or_nothing=True)

        if config.playbooks.reload_interval_s is not None:
            watcher = PlaybookWatcher(
                list(config.playbooks.dirs),
                reload_playbooks,
                clock,
                config.playbooks.reload_interval_s,
            )
            services.append(watcher.run)
        if notify.alertmanager is not None:
            am = notify.alertmanager
            services.append(lambda: am.run_resender(IncidentStore(conn).open, clock))

        await engine.start()
        closers.append(engine.stop)
        closers.append(notify.dispatcher.stop)
        if hasattr(fleet, "aclose"):
            closers.append(fleet.aclose)

        if serve_api:
            app = build_app(
                conn=conn,
                token=token,
                clock=clock,
                playbooks=EnginePlaybookService(engine),
                on_alerts=on_alerts,
                status=lambda: _status(config, facts, engine),
                ready=lambda: ready(facts, engine),
                degraded=lambda: _degraded(notify.dispatcher, engine),
            )
            runner, port = await start_api(app, config.api.bind, config.api.port)
            log.info("api_listening", bind=config.api.bind, port=port)
            closers.append(runner.cleanup)

        wiring = Wiring(
            sink=pipeline.accept,
            probes=probes,
            tick=tick,
            services=services,
            closers=[],
            reload=reload_playbooks,
        )
        daemon = Daemon(config, wiring, clock=clock, registry=registry, serve_metrics=serve_metrics)
        yield Sentinel(daemon, pipeline, engine, incidents, notify, facts, triton, canaries)
    finally:
        await close_in_turn(reversed(closers), STOP_TIMEOUT_S)


def _stream_canaries(
    config: Config, triton: triton_adapter.TritonAdapter, clock: Clock
) -> list[StreamCanaryProbe]:
    """The streaming canaries; their module (gRPC and tritonclient's, ~10 MB resident) is
    imported only when some are configured."""
    if not config.stream_canaries:
        return []
    from sentinel.probes.stream_canary import build_stream_canaries

    return build_stream_canaries(config.stream_canaries, triton, config.triton, clock)


def _stream_verifications(probes: Sequence[Probe]) -> list[StreamVerification]:
    module = sys.modules.get("sentinel.probes.stream_canary")
    if module is None:  # never imported: no probe can be a streaming canary
        return []
    verify, kind = module.StreamVerification, module.StreamCanaryProbe
    return [verify(p) for p in probes if isinstance(p, kind)]


def _model_files_probe(config: Config, conn: Any, clock: Clock) -> ModelFilesProbe | None:
    """The repository's files and known-good manifests, when a repository is configured."""
    if config.model_files.repository is None:
        return None
    models = [c.model for c in config.canaries]
    return ModelFilesProbe(config.model_files, models, ManifestStore(conn), clock)


def _page_fleet_halt(config: Config, clock: Clock, teller: Teller) -> OnHalt:
    """Most replicas degraded together: automation stops fleet-wide, and one page says so."""

    async def on_halt(halt: FleetHalt) -> None:
        incident = synthetic_incident(config.pod, {}, "fleet_halt", clock.now())
        reason = (
            f"{len(halt.degraded)} of {halt.replicas} replicas degraded together: sentinel "
            "stopped automation fleet-wide (a bad push or a shared cause; a human must look)"
        )
        await teller.tell(
            PageRequest(incident, reason, {"lease": halt.lease, "degraded": halt.degraded})
        )

    return on_halt


def _both(
    first: Callable[[Judgement], None], second: Callable[[Judgement], None] | None
) -> Callable[[Judgement], None]:
    if second is None:
        return first

    def both(judgement: Judgement) -> None:
        first(judgement)
        second(judgement)

    return both


def _aclose(fn: Callable[[], None]) -> Callable[[], Any]:
    async def close() -> None:
        fn()

    return close


def _notifier_secrets(config: Config) -> list[str]:
    n = config.notifiers
    out = [n.slack.bot_token(), n.slack.webhook(), n.pagerduty.key()]
    return [s for s in out if s]


def ready(facts: LatestFacts, engine: Engine) -> bool:
    """/readyz: Triton has been seen, and every playbook file loaded (a bad one is not
    running: ``sentinel_playbooks_invalid`` says how many problems, the log says which)."""
    return facts.triton() is not None and not invalid_files(engine.problems)


def _status(config: Config, facts: LatestFacts, engine: Engine) -> dict[str, Any]:
    health = facts.triton()
    return {
        "pod": config.pod,
        "dry_run": config.dry_run,
        "triton": {"live": health.live, "ready": health.ready} if health else None,
        "gpus": [g.uuid for g in facts.gpus()],
        "playbooks": sorted(engine.playbooks),
        "playbook_problems": [str(p) for p in engine.problems],
        "automation_paused": [p.describe() for p in engine.pauses.active()],
    }

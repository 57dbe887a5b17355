"""Sentinel's side of the time-to-mitigate benchmark: repeated real Triton faults.

One sentinel (built in this process with ``sentinel.wiring.build``) watches one real
tritonserver; each fault class is injected, timed from the moment it takes effect to the
first finding of its kind and to the playbook's ``verified`` update, then cleared before
the next. Profile ``defaults`` (the default) runs the shipped probes, detectors, incident
timing and playbooks, with only the guards that forbid back-to-back repetitions opened;
profile ``demo`` runs the demo's tuned settings (``sentinel.demo.scenario.demo_config``).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sentinel.config import Config
from sentinel.demo.scenario import EXAMPLES, MODEL, PLAYBOOKS, demo_config
from sentinel.probes.triton import TritonAdapter
from sentinel.testing.triton_local import LocalTriton
from sentinel.vocabulary.findings import Finding, Judgement
from sentinel.vocabulary.notices import ActionUpdate, IncidentChanged, Notice
from sentinel.wiring import Sentinel, build

PROFILES = ("defaults", "demo")
QUIET_S = 3.0
"""Seconds without any finding (and nothing open or running) before the next fault."""
CLASSES = ("accuracy", "latency", "hang")
KIND = {"accuracy": "accuracy_drift", "latency": "latency_spike", "hang": "server_unhealthy"}
PLAYBOOK = {"accuracy": "int8-to-fp16", "latency": "reduce-batch-size", "hang": "restart-server"}
FAULT_PARAMS = {
    "accuracy": {"precision": "int8", "int8_calibration": "bad"},
    "latency": {"delay_ms": "300", "slow_above_batch": "16"},
}
# Repetitions run back to back: no cooldown or budget, no minimum server age (the last
# rep restarted it seconds ago), and leases that do not come due inside the run (the
# bench restores the clean config itself after each rep). Nothing else is changed.
NO_LIMITS = {"cooldown": "0s", "budget": {"runs": 1000, "per": "24h"}}
DEFAULTS_OVERRIDES: dict[str, Any] = {
    "int8-to-fp16": {"guards": NO_LIMITS},
    "reduce-batch-size": {"guards": NO_LIMITS, "steps": {"halve_batch": {"restore_after": "6h"}}},
    "restart-server": {"guards": NO_LIMITS, "params": {"min_uptime_s": "5"}},
}
# The demo profile: the same guards opened, and the demo's tuned triggers.
BENCH_OVERRIDES: dict[str, Any] = {
    "int8-to-fp16": {"guards": NO_LIMITS},
    "reduce-batch-size": {
        "guards": NO_LIMITS,
        "triggers": [{"kinds": ["latency_spike", "gpu_oom_predicted"], "for": "1s"}],
        "steps": {"halve_batch": {"restore_after": "6h"}},
    },
    "restart-server": {
        "guards": NO_LIMITS,
        "triggers": [{"kinds": ["server_unhealthy"], "for": "0s", "min_severity": "critical"}],
        "params": {"min_uptime_s": "5"},
        "steps": {"restart": {"with": {"kill_after_s": 1}}},  # as the demo: a frozen server
    },
}


def defaults_config(server: LocalTriton, workdir: Path) -> Config:
    """The shipped defaults watching ``server``: only where to find things is set (and the
    guards against back-to-back repetitions opened, see DEFAULTS_OVERRIDES)."""
    return Config.model_validate(
        {
            "pod": "bench-pod",
            "state_dir": str(workdir / "state"),
            "triton": {"url": server.grpc_url, "metrics_url": server.metrics_url},
            "canaries": [
                {
                    "model": MODEL,
                    "golden_set": str(EXAMPLES / "golden" / "digits.npz"),
                    "batch_sizes": [1, 8],
                }
            ],
            "gpu": {"source": "off"},
            "playbooks": {
                "dirs": [str(PLAYBOOKS)],
                "server_pid_file": str(workdir / "tritonserver.pid"),
                "overrides": DEFAULTS_OVERRIDES,
                "breaker_max_actions": 10_000,
            },
            "notifiers": {"console": {"enabled": False}},
            "api": {"port": 0},
            "metrics": {"bind": "127.0.0.1", "port": 0},
            "logging": {"level": "info", "format": "json"},
        }
    )


def warmup_s(config: Config) -> float:
    """Seconds of healthy canaries the detectors need before their baselines judge: the
    latency and accuracy baselines' minimum samples, at the configured interval."""
    canary = config.canaries[0]
    d = config.detectors
    rounds = max(
        d.latency.baseline_min_samples,
        math.ceil(d.accuracy.baseline_min_samples / len(canary.batch_sizes)),
    )
    return rounds * canary.interval_s + 2 * canary.interval_s


def profile_config(profile: str, server: LocalTriton, workdir: Path) -> Config:
    """The repetitions' config for a profile (see PROFILES)."""
    if profile == "defaults":
        return defaults_config(server, workdir)
    if profile == "demo":
        return bench_config(server, workdir)
    raise ValueError(f"unknown profile {profile!r}; one of {', '.join(PROFILES)}")


def bench_config(server: LocalTriton, workdir: Path) -> Config:
    """The demo's embedded config, with guards opened up for back-to-back repetitions."""
    base = demo_config(server, workdir)
    base = base.model_copy(update={"stream_canaries": []})  # the bench serves no charlm
    playbooks = base.playbooks.model_copy(
        update={"overrides": BENCH_OVERRIDES, "breaker_max_actions": 10_000}
    )
    return Config.model_validate({**base.model_dump(), "playbooks": playbooks.model_dump()})


@dataclass
class Rep:
    """One injected fault and what sentinel did about it (seconds from onset)."""

    fault: str
    onset: float
    detect_s: float | None = None
    """Onset to the first finding of any kind (e.g. failing canaries before the hang's own)."""
    first_kind: str = ""
    trigger_s: float | None = None
    """Onset to the first finding of the kind the playbook acts on."""
    verified_s: float | None = None
    note: str = ""


@dataclass
class Recorder:
    """The daemon's taps: remembers when findings and updates arrived."""

    findings: list[tuple[float, str]] = field(default_factory=list)
    verified: list[tuple[float, str]] = field(default_factory=list)
    open_incidents: dict[str, str] = field(default_factory=dict)

    def judgement(self, j: Judgement) -> None:
        if isinstance(j, Finding):
            self.findings.append((time.time(), j.kind))

    def notice(self, n: Notice) -> None:
        if isinstance(n, ActionUpdate) and n.status == "verified":
            self.verified.append((time.time(), n.playbook))
        elif isinstance(n, IncidentChanged):
            if n.change == "resolved":
                self.open_incidents.pop(n.incident.id, None)
            else:
                self.open_incidents[n.incident.id] = n.incident.kind

    def first_finding(self, kind: str | None, since: float) -> tuple[float, str] | None:
        return next(
            ((t, k) for t, k in self.findings if (kind is None or k == kind) and t >= since),
            None,
        )

    def first_verified(self, playbook: str, since: float) -> float | None:
        return next((t for t, p in self.verified if p == playbook and t >= since), None)


async def reconfigure(triton: TritonAdapter, **params: str) -> dict[str, Any]:
    """Reload the model with some parameters changed; returns the config before."""
    config = await triton.model_config(MODEL)
    merged = dict(config.get("parameters", {}))
    merged.update({k: {"string_value": v} for k, v in params.items()})
    await triton.load_model(MODEL, {**config, "parameters": merged})
    return config


async def until(predicate: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


class Repetitions:
    """Runs ``reps`` rounds of the three fault classes against one served model."""

    def __init__(
        self,
        server: LocalTriton,
        workdir: Path,
        reps: int,
        say: Callable[[str], None],
        profile: str = "defaults",
    ):
        self.server = server
        self.profile = profile
        self.workdir = workdir
        self.reps = reps
        self.say = say
        self.rec = Recorder()
        self.results: list[Rep] = []
        self.clean: dict[str, Any] = {}

    async def run(self) -> list[Rep]:
        config = profile_config(self.profile, self.server, self.workdir)
        async with build(config, on_judgement=self.rec.judgement, on_notice=self.rec.notice) as s:
            for _ in range(3):  # the model's first inferences are slow
                await s.canaries[0].check()
            daemon = asyncio.create_task(s.daemon.run())
            try:
                await s.daemon.started.wait()
                self.clean = await s.triton.model_config(MODEL)
                # the detectors learn the healthy baseline (a deployed sentinel has one)
                await asyncio.sleep(6.0 if self.profile == "demo" else warmup_s(config))
                for i in range(self.reps):
                    for fault in CLASSES:
                        rep = await self.one(s, fault)
                        self.results.append(rep)
                        self.say(
                            f"sentinel rep {i + 1}/{self.reps} {fault:8s} "
                            f"detect {_fmt(rep.detect_s)} ({rep.first_kind}) "
                            f"{KIND[fault]} {_fmt(rep.trigger_s)}  verified {_fmt(rep.verified_s)} "
                            f"{rep.note}"
                        )
            finally:
                s.daemon.request_stop()
                await daemon
        return self.results

    async def one(self, s: Sentinel, fault: str) -> Rep:
        if fault == "hang":
            pid = self.server.pid
            onset = time.time()
            if pid is not None:
                os.kill(pid, signal.SIGSTOP)
        else:
            await reconfigure(s.triton, **FAULT_PARAMS[fault])
            onset = time.time()  # the faulty model's reload has completed
        rep = Rep(fault, onset)
        ok = await until(lambda: self.rec.first_verified(PLAYBOOK[fault], onset) is not None, 90)
        detected = self.rec.first_finding(None, onset)
        trigger = self.rec.first_finding(KIND[fault], onset)
        verified = self.rec.first_verified(PLAYBOOK[fault], onset)
        if detected is not None:
            rep.detect_s, rep.first_kind = detected[0] - onset, detected[1]
        rep.trigger_s = None if trigger is None else trigger[0] - onset
        rep.verified_s = None if verified is None else verified - onset
        if not ok:
            rep.note = "no verified mitigation within 90 s"
        await self.restore(s, fault)
        return rep

    async def restore(self, s: Sentinel, fault: str) -> None:
        """Put the clean config back, then wait for a quiet sentinel before the next fault."""
        if fault == "hang":
            if self.server.pid is not None:
                os.kill(self.server.pid, signal.SIGCONT)  # if the playbook did not restart it
            await until(self.server.is_running, 30)
        try:
            await s.triton.load_model(MODEL, self.clean)
        except Exception as exc:  # a restarting server: its on-disk config is the clean one
            self.say(f"restore after {fault}: {exc}")
        for _ in range(3):  # warm the (re)loaded model: its first inferences are slow
            await s.canaries[0].check()
        await self.quiet(s, QUIET_S)

    async def quiet(self, s: Sentinel, quiet_s: float, timeout_s: float = 150.0) -> None:
        """Until no incident is open, no playbook runs and no finding came for ``quiet_s``.

        Injecting the next fault while a leftover run acts on the model would time
        that run, not the fault's own.
        """
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            await until(lambda: not self.rec.open_incidents, max(deadline - time.monotonic(), 0))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(s.engine.idle(), max(deadline - time.monotonic(), 0.1))
            last = self.rec.findings[-1][0] if self.rec.findings else 0.0
            if not self.rec.open_incidents and time.time() - last >= quiet_s:
                return
            await asyncio.sleep(0.5)
        self.say(f"sentinel not quiet after {timeout_s:.0f} s; going on")


def _fmt(v: float | None) -> str:
    return "  -  " if v is None else f"{v:5.1f}s"

"""The scripted demo: a real local Triton, sentinel with the shipped playbooks,
and five faults, each detected, acted on and verified (or refused and paged).

Faults 1-3 are real: they are injected into the running tritonserver through
its model-control API (the digits model's fault knobs) or by freezing its
process. Fault 4 is a replay of GPU traces recorded on a real H200 (this
machine has no GPU), fed into the same pipeline as live samples. Fault 5 is real
again: a streaming language model redeployed with a plan that drifts
(``sentinel/demo/generative.py``).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from sentinel.base import logging as sentinel_logging
from sentinel.base.assets import shipped
from sentinel.base.clock import SystemClock
from sentinel.config import Config
from sentinel.demo import generative
from sentinel.demo.report import table, write_report
from sentinel.demo.timeline import FaultWindow, Timeline
from sentinel.probes.replay import ReplaySource
from sentinel.testing.triton_local import LocalTriton
from sentinel.vocabulary.findings import Cleared, Finding, Judgement
from sentinel.vocabulary.notices import ActionUpdate, IncidentChanged, Notice, PageRequest
from sentinel.wiring import Sentinel, build

# From the installed package (sentinel/defaults/), or the checkout's top level.
EXAMPLES = shipped("examples")
PLAYBOOKS = shipped("playbooks")
GPU_TRACES = shipped("gpu-traces")
MODEL = "digits"


def demo_config(server: LocalTriton, workdir: Path) -> Config:
    """The demo profile: probes and detectors tuned faster than the shipped defaults, so
    that five faults, their clearing and their leases fit in a few minutes.

    The shipped defaults detect the same real faults within seconds too
    (``bench/time_to_mitigate.py`` runs them), but they learn their baselines for a
    minute, clear a latency finding only after its 100 s window, and restore a lease
    after 30 min; the demo's GPU replay needs its shortened memory trends.
    """
    return Config.model_validate(
        {
            "pod": "demo-pod",
            "state_dir": str(workdir / "state"),
            "triton": {
                "url": server.grpc_url,
                "metrics_url": server.metrics_url,
                "health_interval_s": 0.5,
                "timeout_s": 1.0,
            },
            "canaries": [
                {
                    "model": MODEL,
                    "golden_set": str(EXAMPLES / "golden" / "digits.npz"),
                    "interval_s": 0.5,
                    "recheck_interval_s": 0.1,  # a suspect answer is rechecked at once
                    "max_rechecks": 10,
                    "batch_sizes": [1, 8],
                    "timeout_s": 1.0,
                }
            ],
            "stream_canaries": generative.stream_canaries(server.grpc_url),
            "gpu": {"source": "off"},
            "detectors": DEMO_DETECTORS,
            "incidents": DEMO_INCIDENTS,
            "playbooks": {
                "dirs": [str(PLAYBOOKS)],
                "canary_interval_s": 0.5,
                "lease_check_interval_s": 1.0,
                "server_pid_file": str(workdir / "tritonserver.pid"),
                "allowed_signals": ["SIGTERM", "SIGKILL"],
                "overrides": DEMO_PLAYBOOK_OVERRIDES,
            },
            "notifiers": {"console": {"enabled": False}},
            "api": {"port": 0},
            "metrics": {"bind": "127.0.0.1", "port": 0},
            "logging": {"level": "info", "format": "json"},
        }
    )


DEMO_DETECTORS: dict[str, Any] = {
    "latency": {
        "quantile": 0.5,  # the median of a short window: a reload's one slow call is no spike
        "short_window_s": 2.5,
        "min_samples": 3,
        "baseline_min_samples": 8,
        "min_duration_s": 1,
        "clear_duration_s": 3,
        "min_increase_s": 0.05,  # a model reload's brief blip is not a spike
        "slo_s": 0.25,
    },
    "accuracy": {
        "window_s": 3,
        "min_samples": 3,
        "baseline_min_samples": 8,
        "min_duration_s": 1.5,
        "clear_duration_s": 3,
    },
    "errors": {"window_s": 3, "unhealthy_samples": 2, "healthy_samples": 2, "clear_duration_s": 3},
    "memory": {
        "high_min_duration_s": 3,
        "full_min_duration_s": 1,
        "clear_duration_s": 5,
        "trend_windows_s": [20, 60],
        "trend_min_samples": 8,
        "predict_min_duration_s": 3,
    },
    "thermal": {"min_samples": 3, "clear_samples": 3},
    "generation": generative.DEMO_GENERATION,
    # the demo sends no users' traffic: its canaries (2 a second) would be judged as if
    # they were (bench/traffic_detect.py runs the traffic path with a load generator)
    "traffic": {"enabled": False},
}
DEMO_INCIDENTS: dict[str, Any] = {"resolve_hold_s": 2, "refire_window_s": 10}
DEMO_PLAYBOOK_OVERRIDES: dict[str, Any] = {
    # act within seconds of the detector (it already waited its min_duration)
    "reduce-batch-size": {
        "triggers": [{"kinds": ["latency_spike", "gpu_oom_predicted"], "for": "1s"}],
        "steps": {"halve_batch": {"restore_after": "10s"}},  # the lease restores in the demo
    },
    "restart-server": {
        "triggers": [{"kinds": ["server_unhealthy"], "for": "0s", "min_severity": "critical"}],
        "params": {"min_uptime_s": "5"},  # the demo's server is only seconds old
        "steps": {"restart": {"with": {"kill_after_s": 1}}},  # a frozen server: kill soon
    },
}


@dataclass
class Tap:
    """Feeds judgements and notices into the timeline and the current fault's window."""

    timeline: Timeline
    clock: SystemClock
    pages: list[PageRequest] = field(default_factory=list)
    updates: list[ActionUpdate] = field(default_factory=list)
    changes: list[IncidentChanged] = field(default_factory=list)

    def judgement(self, j: Judgement) -> None:
        now = self.clock.now()
        fault = self.timeline.current
        if isinstance(j, Finding):
            self.timeline.add(now, "finding", f"{j.kind} on {j.subject.key()}: {j.summary}")
            if fault is not None and fault.detected_at is None:
                fault.detected_at = now - self.timeline.start
        elif isinstance(j, Cleared):
            self.timeline.add(now, "info", f"{j.kind} cleared on {j.subject.key()}")

    def notice(self, n: Notice) -> None:
        now = self.clock.now()
        fault = self.timeline.current
        if isinstance(n, IncidentChanged):
            self.changes.append(n)
            stage = "resolved" if n.change == "resolved" else "incident"
            self.timeline.add(now, stage, f"{n.change}: {n.incident.key}")
        elif isinstance(n, ActionUpdate):
            self.updates.append(n)
            where = f"{n.playbook}/{n.step}" if n.step else n.playbook
            stage = {"verified": "verify", "blocked": "skip", "skipped": "skip"}.get(
                n.status, "step"
            )
            self.timeline.add(now, stage, f"{where}: {n.status} — {n.text}")
            if fault is not None and n.status == "succeeded" and n.step:
                fault.actions.append(where)
        elif isinstance(n, PageRequest):
            self.pages.append(n)
            self.timeline.add(now, "page", f"PAGE {n.incident.key}: {n.reason}")
            if fault is not None:
                fault.pages.append(n.reason)


class Demo:
    """Runs the scripted faults; ``run()`` returns the exit code."""

    def __init__(self, out: Path, stream: TextIO | None = None, keep: bool = False) -> None:
        self.out = out
        self.stream = stream
        self.keep = keep
        self.clock = SystemClock()
        self.timeline = Timeline(self.clock.now(), stream)
        self.tap = Tap(self.timeline, self.clock)
        self.faults: list[FaultWindow] = []
        self.interrupted = False

    # -- helpers --------------------------------------------------------------

    def say(self, text: str) -> None:
        self.timeline.add(self.clock.now(), "info", text)

    async def until(self, what: str, predicate: Callable[[], bool], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while not predicate():
            if time.monotonic() > deadline:
                self.say(f"timed out waiting for {what}")
                return False
            await asyncio.sleep(0.1)
        return True

    def begin(self, name: str, description: str, expected: str) -> FaultWindow:
        fault = FaultWindow(name, description, expected)
        self.faults.append(fault)
        self.timeline.current = fault
        fault.injected_at = self.clock.now() - self.timeline.start
        self.timeline.add(self.clock.now(), "fault", description)
        return fault

    def serving(self, fault: FaultWindow) -> None:
        """The faulty model serves now: its times count from here, as in the benchmark
        (the reload that deploys it takes about 1.5 s and is nothing to detect yet)."""
        fault.injected_at = self.clock.now() - self.timeline.start
        self.timeline.add(self.clock.now(), "fault", "the faulty model is serving")

    def mark_mitigated(self, fault: FaultWindow) -> None:
        fault.mitigated_at = self.clock.now() - self.timeline.start

    def verified(self, playbook: str, since: int) -> bool:
        return any(
            u.playbook == playbook and u.status == "verified" for u in self.tap.updates[since:]
        )

    def resolved(self, kind: str, since: int) -> bool:
        return any(
            c.change == "resolved" and c.incident.kind == kind for c in self.tap.changes[since:]
        )

    async def reconfigure(self, s: Sentinel, **params: str) -> dict[str, Any]:
        """Reload the model with some parameters changed (what a deployment would do)."""
        config = await s.triton.model_config(MODEL)
        merged = dict(config.get("parameters", {}))
        merged.update({k: {"string_value": v} for k, v in params.items()})
        await s.triton.load_model(MODEL, {**config, "parameters": merged})
        return config

    # -- the faults -----------------------------------------------------------

    async def accuracy_drift(self, s: Sentinel) -> None:
        fault = self.begin(
            "int8-drift",
            "a badly calibrated INT8 build is deployed (int8_calibration=bad)",
            "accuracy_drift -> int8-to-fp16 -> verified -> resolved",
        )
        u0, c0 = len(self.tap.updates), len(self.tap.changes)
        await self.reconfigure(s, precision="int8", int8_calibration="bad")
        self.serving(fault)
        if await self.until(
            "verified FP16 fallback", lambda: self.verified("int8-to-fp16", u0), 60
        ):
            self.mark_mitigated(fault)
        served = await s.triton.model_config(MODEL)
        precision = served.get("parameters", {}).get("precision", {}).get("string_value")
        await self.until("incident resolved", lambda: self.resolved("accuracy_drift", c0), 30)
        fault.ok = fault.mitigated_at is not None and precision == "fp16"
        fault.note = "" if fault.ok else f"precision is {precision!r}, not fp16"

    async def latency_spike(self, s: Sentinel) -> None:
        fault = self.begin(
            "latency",
            "every execution slows by 300 ms while max_batch_size > 16",
            "latency_spike -> reduce-batch-size -> verified; lease restores the batch size",
        )
        u0 = len(self.tap.updates)
        before = await self.reconfigure(s, delay_ms="300", slow_above_batch="16")
        self.serving(fault)
        original = int(before.get("max_batch_size", 0))
        if await self.until(
            "verified batch reduction", lambda: self.verified("reduce-batch-size", u0), 60
        ):
            self.mark_mitigated(fault)
        reduced = int((await s.triton.model_config(MODEL)).get("max_batch_size", 0))
        self.say(f"max_batch_size read back from Triton: {original} -> {reduced}")
        # the cause goes away (e.g. the noisy batch traffic ends): the lease may restore
        await self.reconfigure(s, delay_ms="0", slow_above_batch="0")
        self.say("fault cleared; waiting for the lease to restore the original batch size")
        restored = await self.until(
            "lease restore",
            lambda: any(
                u.status == "restored" and u.playbook == "reduce-batch-size"
                for u in self.tap.updates[u0:]
            ),
            45,
        )
        final = int((await s.triton.model_config(MODEL)).get("max_batch_size", 0))
        fault.ok = fault.mitigated_at is not None and reduced < original and final == original
        fault.note = (
            "" if fault.ok else f"batch {original}->{reduced}->{final}, restored={restored}"
        )

    async def server_hang(self, s: Sentinel, server: LocalTriton) -> None:
        fault = self.begin(
            "hang",
            "tritonserver freezes (SIGSTOP): health checks and canaries time out",
            "server_unhealthy -> restart-server (process restart) -> ready -> verified",
        )
        u0 = len(self.tap.updates)
        restarts = server.restarts
        pid = server.pid
        if pid is not None:
            os.kill(pid, signal.SIGSTOP)
        if await self.until("verified restart", lambda: self.verified("restart-server", u0), 90):
            self.mark_mitigated(fault)
        fault.ok = fault.mitigated_at is not None and server.restarts > restarts
        fault.note = "" if fault.ok else "no verified restart"

    async def gpu_replay(self, s: Sentinel) -> None:
        fault = self.begin(
            "gpu-oom+thermal",
            "REPLAY of GPU traces recorded on a real H200: memory filled to a CUDA OOM by "
            "another process, then a thermal episode",
            "gpu_oom -> gpu-oom diagnoses a foreign process and pages; thermal_throttle -> "
            "no restart for a hardware cause, page says why",
        )
        p0 = len(self.tap.pages)
        for trace in ("h200-oom.jsonl", "h200-thermal-synth.jsonl"):
            path = GPU_TRACES / trace
            if not path.exists():
                self.say(f"trace {path.name} is missing; skipped")
                continue
            source = ReplaySource(
                path, self.clock, speed=3.0, retime=True, types={"gpu", "gpu_event"}
            )
            await source.run(s.pipeline.accept)
        await self.until("pages from the GPU playbooks", lambda: len(self.tap.pages) >= p0 + 2, 20)
        reasons = [p.reason for p in self.tap.pages[p0:]]
        foreign = any("other processes" in r or "foreign" in r for r in reasons)
        hardware = any("hardware" in r for r in reasons)
        if foreign and hardware:
            self.mark_mitigated(fault)
        fault.ok = foreign and hardware
        fault.note = "" if fault.ok else f"pages: {reasons}"

    # -- the whole run --------------------------------------------------------

    async def faults_in_turn(self, s: Sentinel, server: LocalTriton) -> None:
        await s.daemon.started.wait()
        metrics = s.daemon.metrics_server
        port = metrics.port if metrics is not None else 0
        self.say(
            f"sentinel is watching (metrics: http://127.0.0.1:{port}/metrics); "
            "learning the healthy baseline"
        )
        await asyncio.sleep(6)
        await self.accuracy_drift(s)
        await self.latency_spike(s)
        await self.server_hang(s, server)
        await self.gpu_replay(s)
        await generative.generation_drift(self, s)

    async def run(self) -> int:
        workdir = Path(tempfile.mkdtemp(prefix="sentinel-demo-"))
        repo = workdir / "models"
        shutil.copytree(EXAMPLES / "model_repository", repo)
        deploy_int8(repo / MODEL / "config.pbtxt")
        generative.add_streaming_model(repo)
        self.out.mkdir(parents=True, exist_ok=True)
        log_file = (self.out / "sentinel.log").open("w", encoding="utf-8")
        sentinel_logging.configure("info", "json", stream=log_file)
        server = LocalTriton(
            repo, workdir=workdir / "triton", pid_file=workdir / "tritonserver.pid"
        )
        try:
            self.say("starting a real tritonserver with the digits model at INT8")
            await asyncio.to_thread(server.start)
            server.supervise(backoff_s=0.5)
            config = demo_config(server, workdir)
            async with build(
                config,
                clock=self.clock,
                on_judgement=self.tap.judgement,
                on_notice=self.tap.notice,
            ) as s:
                for _ in range(3):  # warm the model up: its first inferences are slow
                    await s.canaries[0].check()
                daemon = asyncio.create_task(s.daemon.run())
                faults = asyncio.create_task(self.faults_in_turn(s, server))
                stop = _on_signals(faults)
                try:
                    await faults
                except asyncio.CancelledError:
                    if not stop.is_set():
                        raise
                    self.interrupted = True
                finally:
                    _restore_signals()
                    self.timeline.current = None
                    s.daemon.request_stop()
                    await daemon
        finally:
            await asyncio.to_thread(server.close)
            log_file.close()
            if not self.keep:
                shutil.rmtree(workdir, ignore_errors=True)
        if self.interrupted:
            print(
                "\nsentinel demo: interrupted; every process it started was stopped",
                file=self.stream,
                flush=True,
            )
            return 130
        report = write_report(self.out, self.timeline.events, self.faults)
        print("\n" + table(self.faults), file=self.stream, flush=True)
        print(f"\nreport: {report}", file=self.stream, flush=True)
        return 0 if self.faults and all(f.ok for f in self.faults) else 1


def deploy_int8(config_path: Path) -> None:
    """The demo deploys the model at INT8 (well calibrated) by editing its config."""
    text = config_path.read_text(encoding="utf-8")
    text = text.replace(
        'key: "precision" value { string_value: "fp32" }',
        'key: "precision" value { string_value: "int8" }',
    )
    config_path.write_text(text, encoding="utf-8")


_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _on_signals(task: asyncio.Task[None]) -> asyncio.Event:
    """Ctrl-C or SIGTERM cancels the faults (again on every signal), then cleanup runs.

    Installed on the loop explicitly, so it works even where SIGINT was ignored
    (a background job) or a library swallowed one cancellation.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def interrupt() -> None:
        stop.set()
        task.cancel()

    for sig in _SIGNALS:
        loop.add_signal_handler(sig, interrupt)
    return stop


def _restore_signals() -> None:
    loop = asyncio.get_running_loop()
    for sig in _SIGNALS:
        loop.remove_signal_handler(sig)

"""Time to detect and to verified mitigation of real Triton faults, against the anchor.

Sentinel: each fault class (INT8 accuracy drift, latency spike, server hang) is
injected ``--reps`` times into a real tritonserver watched by a sentinel built in this
process (``--profile defaults``, the default: the shipped probes, detectors and
playbooks, with only the guards against back-to-back repetitions opened; ``--profile
demo``: the demo's tuned settings, reported as such); per class the median and worst
time from the fault taking effect to the first finding and to the playbook's
``verified`` update.

Anchor, in the same run and concurrently: three more tritonservers, each with one
fault class that persists, each watched by a ``sentinel run`` subprocess in dry-run
(it canaries and exports metrics, acts on nothing); a real Prometheus scrapes them
and evaluates ``alerts/*.rules.yaml`` (15 s / 15 s), a real Alertmanager (default
group_wait 30 s; none is shipped) delivers to a loopback webhook: the time from
onset until the class's alert reaches the receiver.

    python bench/time_to_mitigate.py [--reps 5] [--profile defaults|demo] [--skip-anchor]
        [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from ttm_anchor import GROUP_WAIT_S, Monitoring, Target, Webhook, proc_usage, stop_process
from ttm_reps import CLASSES, FAULT_PARAMS, PROFILES, Repetitions, reconfigure

from sentinel.base import logging as sentinel_logging
from sentinel.demo.scenario import EXAMPLES, MODEL, PLAYBOOKS, deploy_int8
from sentinel.probes import triton as triton_adapter
from sentinel.probes.settings import TritonSettings
from sentinel.testing.triton_local import LocalTriton, free_port

# the alert each class raises in alerts/*.rules.yaml, and its own `for:`
ANCHOR_ALERT = {
    "accuracy": ("SentinelCanaryAccuracyDrift", 600.0),
    "latency": ("SentinelCanaryLatencyBudgetBurnFast", 120.0),
    "hang": ("SentinelTritonUnreachable", 120.0),
}
TARGET_DETECT_S = 5.0
TARGET_MITIGATE_S = 15.0
TARGET_RATIO = 20.0


@dataclass
class Anchor:
    """One fault class seen through Prometheus and Alertmanager."""

    fault: str
    alertname: str
    for_s: float
    onset: float | None = None
    active_s: float | None = None
    """Onset to the rule's expression being true (Prometheus ``activeAt``)."""
    alert_s: float | None = None
    """Onset to the alert reaching the webhook receiver."""

    def lower_bound_s(self) -> float | None:
        """Arrival can be no sooner than active + for + group_wait (when not observed)."""
        if self.active_s is None:
            return None
        return self.active_s + self.for_s + GROUP_WAIT_S


def anchor_sentinel_config(server: LocalTriton, workdir: Path, pod: str, port: int) -> Path:
    """A production-default sentinel config in dry-run, for one anchor pod."""
    cfg = {
        "pod": pod,
        "dry_run": True,
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
        "playbooks": {"dirs": [str(PLAYBOOKS)]},
        "notifiers": {"console": {"enabled": False}},
        "api": {"port": 0},
        "metrics": {"bind": "127.0.0.1", "port": port},
        "logging": {"level": "info", "format": "json"},
    }
    path = workdir / "sentinel.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


class Bench:
    def __init__(
        self, reps: int, skip_anchor: bool, anchor_timeout_s: float, profile: str = "defaults"
    ) -> None:
        self.reps = reps
        self.profile = profile
        self.skip_anchor = skip_anchor
        self.anchor_timeout_s = anchor_timeout_s
        self.workdir = Path(tempfile.mkdtemp(prefix="ttm-"))
        self.t0 = time.time()
        self.servers: dict[str, LocalTriton] = {}
        self.sentinels: dict[str, subprocess.Popen[bytes]] = {}
        self.sentinel_usage: dict[str, tuple[float, int, float]] = {}
        """Per anchor `sentinel run`: CPU seconds, VmHWM bytes, seconds it ran."""
        self.sentinel_started: dict[str, float] = {}
        self.anchors = {f: Anchor(f, *ANCHOR_ALERT[f]) for f in CLASSES}
        self.webhook: Webhook | None = None
        self.monitoring: Monitoring | None = None

    def say(self, text: str) -> None:
        print(f"[{time.time() - self.t0:6.1f}s] {text}", flush=True)

    def server(self, name: str) -> LocalTriton:
        repo = self.workdir / name / "models"
        shutil.copytree(EXAMPLES / "model_repository", repo)
        deploy_int8(repo / MODEL / "config.pbtxt")
        pid_file = self.workdir / name / "tritonserver.pid"
        server = LocalTriton(repo, workdir=self.workdir / name / "triton", pid_file=pid_file)
        self.servers[name] = server
        return server

    async def run(self) -> dict[str, Any]:
        names = ["reps"] + ([] if self.skip_anchor else [f"anchor-{f}" for f in CLASSES])
        for n in names:
            self.server(n)
        self.say(f"starting {len(names)} tritonservers (digits model at INT8)")
        await asyncio.gather(*(asyncio.to_thread(s.start) for s in self.servers.values()))
        self.servers["reps"].supervise(backoff_s=0.5)
        if not self.skip_anchor:
            self.start_anchor()
        reps = Repetitions(
            self.servers["reps"], self.workdir / "reps", self.reps, self.say, self.profile
        )
        harness: dict[str, float] = {}

        async def repetitions() -> None:
            # CPU of this whole process while the repetitions run (sentinel, the harness
            # and its anchor polling), and its peak RSS over the run
            cpu0, wall0 = resource.getrusage(resource.RUSAGE_SELF), time.time()
            await reps.run()
            cpu1 = resource.getrusage(resource.RUSAGE_SELF)
            harness["cpu_s"] = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
            harness["wall_s"] = time.time() - wall0
            harness["peak_rss_bytes"] = cpu1.ru_maxrss * 1024

        jobs: list[Any] = [repetitions()]
        if not self.skip_anchor:
            jobs.append(self.measure_anchor())
        await asyncio.gather(*jobs)
        return self.results(reps, harness)

    # -- the anchor -----------------------------------------------------------

    def start_anchor(self) -> None:
        self.webhook = Webhook()
        self.webhook.start()
        targets = []
        exe = Path(sys.executable).with_name("sentinel")
        for fault in CLASSES:
            pod = f"anchor-{fault}"
            port = free_port()
            server = self.servers[pod]
            config = anchor_sentinel_config(server, self.workdir / pod, pod, port)
            log = (self.workdir / pod / "sentinel.log").open("wb")
            self.sentinels[fault] = subprocess.Popen(
                [str(exe), "run", "--config", str(config)], stdout=log, stderr=subprocess.STDOUT
            )
            log.close()
            self.sentinel_started[fault] = time.time()
            targets.append(Target(pod, server.metrics_url, f"http://127.0.0.1:{port}/metrics"))
        self.monitoring = Monitoring(targets, self.webhook)
        self.monitoring.start()
        self.say("anchor: 3 dry-run `sentinel run`, Prometheus and Alertmanager started")

    async def measure_anchor(self) -> None:
        mon, hook = self.monitoring, self.webhook
        if mon is None or hook is None:
            return
        if not await wait_for(mon.targets_up, 90):
            self.say("anchor: Prometheus never scraped every target; anchor skipped")
            return
        self.say("anchor: every target scraped once; injecting the three faults (they persist)")
        for fault in CLASSES:
            await self.inject_anchor(fault)
        deadline = time.time() + self.anchor_timeout_s
        while time.time() < deadline:
            pending = False
            for a in self.anchors.values():
                pod = f"anchor-{a.fault}"
                if a.onset is None:
                    continue
                if a.active_s is None:
                    active = await asyncio.to_thread(mon.active_since, a.alertname, pod)
                    if active is not None:
                        a.active_s = active - a.onset
                        self.say(f"anchor: {a.alertname} pending after {a.active_s:.1f}s")
                if a.alert_s is None:
                    got = hook.first(a.alertname, pod)
                    if got is not None:
                        a.alert_s = got - a.onset
                        self.say(f"anchor: {a.alertname} reached the receiver: {a.alert_s:.1f}s")
                pending = pending or a.alert_s is None
            if not pending:
                break
            await asyncio.sleep(1.0)
        for fault, proc in self.sentinels.items():
            usage = proc_usage(proc.pid)
            if usage is not None:
                lifetime = time.time() - self.sentinel_started[fault]
                self.sentinel_usage[fault] = (*usage, lifetime)
        await asyncio.to_thread(self.stop_anchor)  # blocking waits: off the daemon's loop

    async def inject_anchor(self, fault: str) -> None:
        server = self.servers[f"anchor-{fault}"]
        a = self.anchors[fault]
        if fault == "hang":
            if server.pid is not None:
                os.kill(server.pid, signal.SIGSTOP)
            a.onset = time.time()
            return
        adapter = triton_adapter.connect(TritonSettings(url=server.grpc_url))
        try:
            await reconfigure(adapter, **FAULT_PARAMS[fault])
            a.onset = time.time()
        finally:
            await adapter.close()

    def stop_anchor(self) -> None:
        """Stop the anchor's processes now, so they stop competing for the CPU."""
        for proc in self.sentinels.values():
            stop_process(proc)
        if self.monitoring is not None:
            self.monitoring.close()
            self.monitoring = None
        if self.webhook is not None:
            self.webhook.close()
            self.webhook = None
        for fault in CLASSES:
            server = self.servers.pop(f"anchor-{fault}", None)
            if server is not None:
                if server.pid is not None:
                    os.kill(server.pid, signal.SIGCONT)
                server.close()

    def close(self) -> None:
        self.stop_anchor()
        for server in self.servers.values():
            server.close()
        shutil.rmtree(self.workdir, ignore_errors=True)

    # -- results --------------------------------------------------------------

    def results(self, reps: Repetitions, harness: dict[str, float]) -> dict[str, Any]:
        classes: dict[str, Any] = {}
        for fault in CLASSES:
            rs = [r for r in reps.results if r.fault == fault]
            detect = [r.detect_s for r in rs if r.detect_s is not None]
            verified = [r.verified_s for r in rs if r.verified_s is not None]
            trigger = [r.trigger_s for r in rs if r.trigger_s is not None]
            a = self.anchors[fault]
            med_v = statistics.median(verified) if verified else None
            med_d = statistics.median(detect) if detect else None
            anchor_s = a.alert_s
            classes[fault] = {
                "reps": len(rs),
                "detected": len(detect),
                "verified": len(verified),
                "detect_s": {"median": med_d, "worst": max(detect) if detect else None},
                "verified_s": {"median": med_v, "worst": max(verified) if verified else None},
                "trigger_kind_s": {
                    "median": statistics.median(trigger) if trigger else None,
                    "worst": max(trigger) if trigger else None,
                },
                "detect_all_s": [r.detect_s for r in rs],
                "first_finding_kinds": [r.first_kind for r in rs],
                "trigger_kind_all_s": [r.trigger_s for r in rs],
                "verified_all_s": [r.verified_s for r in rs],
                "anchor": {
                    "alertname": a.alertname,
                    "for_s": a.for_s,
                    "active_s": a.active_s,
                    "alert_s": a.alert_s,
                    "alert_lower_bound_s": None if a.alert_s is not None else a.lower_bound_s(),
                },
                "ratio_vs_verified": _ratio(anchor_s or a.lower_bound_s(), med_v),
                "ratio_vs_detect": _ratio(anchor_s or a.lower_bound_s(), med_d),
            }
        anchors_cpu = {
            f: {"cpu_s": cpu, "peak_rss_bytes": hwm, "wall_s": wall}
            for f, (cpu, hwm, wall) in self.sentinel_usage.items()
        }
        return {
            "reps": self.reps,
            "profile": self.profile,
            "classes": classes,
            "sentinel_in_process": harness,
            "anchor_sentinel_processes": anchors_cpu,
            "anchor_timeout_s": None if self.skip_anchor else self.anchor_timeout_s,
            "total_wall_s": time.time() - self.t0,
        }


def _ratio(anchor: float | None, ours: float | None) -> float | None:
    return None if anchor is None or not ours else anchor / ours


async def wait_for(predicate: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not await asyncio.to_thread(predicate):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(1.0)
    return True


def _s(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def table(res: dict[str, Any]) -> str:
    """The printed summary."""
    lines = [
        f"sentinel profile: {res.get('profile', 'defaults')}",
        f"{'fault':9s} {'n':>3s} {'detect med':>10s} {'worst':>6s} {'verified med':>12s} "
        f"{'worst':>6s} {'trigger med':>11s}  {'anchor alert (alertname, for:)':44s} "
        f"{'to alert':>9s} {'x verified':>10s} {'x detect':>8s}",
    ]
    for fault, c in res["classes"].items():
        a = c["anchor"]
        if a["alert_s"] is not None:
            alert = _s(a["alert_s"])
        elif a["alert_lower_bound_s"] is not None:
            alert = ">=" + _s(a["alert_lower_bound_s"])
        else:
            alert = "-"
        ok = f"{c['verified']}/{c['reps']}"
        lines.append(
            f"{fault:9s} {ok:>3s} {_s(c['detect_s']['median']):>10s} "
            f"{_s(c['detect_s']['worst']):>6s} {_s(c['verified_s']['median']):>12s} "
            f"{_s(c['verified_s']['worst']):>6s} {_s(c['trigger_kind_s']['median']):>11s}  "
            f"{a['alertname'] + ' (' + str(int(a['for_s'])) + 's)':44s} {alert:>9s} "
            f"{_s(c['ratio_vs_verified']):>10s} {_s(c['ratio_vs_detect']):>8s}"
        )
    h = res["sentinel_in_process"]
    lines.append(
        "\nsentinel (in-process with the harness, over the repetitions): "
        f"{h['cpu_s']:.1f} s CPU over "
        f"{h['wall_s']:.0f} s wall ({100 * h['cpu_s'] / max(h['wall_s'], 1e-9):.1f}% of one core), "
        f"peak RSS {h['peak_rss_bytes'] / 2**20:.0f} MiB"
    )
    for fault, u in res["anchor_sentinel_processes"].items():
        lines.append(
            f"`sentinel run` (dry-run, production intervals, anchor-{fault}): "
            f"{u['cpu_s']:.1f} s CPU over {u['wall_s']:.0f} s "
            f"({100 * u['cpu_s'] / max(u['wall_s'], 1e-9):.1f}% of one core), "
            f"VmHWM {u['peak_rss_bytes'] / 2**20:.0f} MiB"
        )
    lines.append(
        f"targets: detect <= {TARGET_DETECT_S:.0f} s, verified <= "
        f"{TARGET_MITIGATE_S:.0f} s, anchor/sentinel >= {TARGET_RATIO:.0f}x"
    )
    lines.append(f"total wall time: {res['total_wall_s']:.0f} s")
    return "\n".join(lines)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--reps", type=int, default=5, help="repetitions per fault class (default 5)")
    p.add_argument(
        "--profile",
        choices=PROFILES,
        default="defaults",
        help="sentinel's settings: the shipped defaults, or the demo's tuned ones",
    )
    p.add_argument("--skip-anchor", action="store_true", help="no Prometheus/Alertmanager anchor")
    p.add_argument(
        "--anchor-timeout",
        type=float,
        default=330.0,
        help="seconds to wait for anchor alerts after onset (default 330)",
    )
    p.add_argument("--json", type=Path, help="also write the results as JSON to this file")
    args = p.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)  # a kill cleans up like Ctrl-C
    bench = Bench(args.reps, args.skip_anchor, args.anchor_timeout, args.profile)
    log_path = Path(tempfile.gettempdir()) / "ttm-sentinel.log"  # kept: it outlives the run
    log = log_path.open("w", encoding="utf-8")
    sentinel_logging.configure("info", "json", stream=log)
    try:
        res = asyncio.run(bench.run())
    except KeyboardInterrupt:
        print("interrupted; stopping every process", file=sys.stderr)
        return 130
    finally:
        log.close()
        bench.close()
    res["total_wall_s"] = time.time() - bench.t0
    print("\n" + table(res))
    print(f"sentinel's log: {log_path}")
    if args.json is not None:
        args.json.write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

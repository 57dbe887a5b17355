"""Time to detect a latency fault from real traffic, next to the canary path, in one run.

One real tritonserver (latency summaries on) serves ``digits``; a LoadGenerator sends it
``--rate`` requests a second (open loop, up to ``--concurrency`` in flight, as users
who do not wait for each other). sentinel's two latency paths watch it at the same time,
each at its shipped defaults unless told otherwise:

* traffic: TritonHealthProbe every ``--health-interval`` s (``triton.health_interval_s``)
  feeding the ``traffic`` detector (``traffic_latency_spike``, from Triton's p99 and the
  mean request time per request);
* canary: a CanaryProbe at the canary defaults (rechecks on suspicion, as in the daemon) feeding the
  ``latency`` detector (``latency_spike``).

After ``--warmup`` seconds (both baselines need to be learnt: 30 canaries, 30 health
samples) the model is reloaded with ``delay_ms`` added to every execution;
the time from that reload's completion to each path's first finding is reported.

    python bench/traffic_detect.py [--reps 1] [--rate 20] [--delay-ms 300] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from sentinel.base import logging as sentinel_logging
from sentinel.base.clock import SystemClock
from sentinel.detect.latency import LatencyDetector
from sentinel.detect.settings import LatencySettings, TrafficSettings
from sentinel.detect.traffic import TrafficDetector
from sentinel.probes.canary import CanaryProbe
from sentinel.probes.settings import CanarySettings, TritonSettings
from sentinel.probes.triton import TritonAdapter, connect
from sentinel.probes.triton_health import TritonHealthProbe
from sentinel.testing.load import LoadGenerator
from sentinel.testing.triton_local import LocalTriton
from sentinel.vocabulary.findings import Finding
from sentinel.vocabulary.samples import CanaryResult, Sample, TritonHealth

ROOT = Path(__file__).resolve().parents[1]
MODEL = "digits"
PATHS = {"traffic": "traffic_latency_spike", "canary": "latency_spike"}


class Watchers:
    """Both paths' detectors, fed by their probes; first finding time per path."""

    def __init__(self, health_interval_s: float) -> None:
        self.traffic = TrafficDetector(TrafficSettings())
        self.latency = LatencyDetector(LatencySettings())
        self.health_interval_s = health_interval_s
        self.first: dict[str, float] = {}
        self.onset: float | None = None
        self.evidence: dict[str, dict[str, Any]] = {}
        self.before_fault: list[str] = []
        self.both = asyncio.Event()
        """Set once every path has found the fault."""
        """Findings of either path before the fault: false alarms on a clean server."""

    async def sink(self, sample: Sample) -> None:
        if isinstance(sample, TritonHealth):
            judgements = self.traffic.observe(sample)
        elif isinstance(sample, CanaryResult):
            judgements = self.latency.observe(sample)
        else:
            return
        for j in judgements:
            if not isinstance(j, Finding):
                continue
            if self.onset is None:
                self.before_fault.append(j.kind)
                continue
            path = next((p for p, k in PATHS.items() if k == j.kind), None)
            if path is not None and path not in self.first:
                self.first[path] = j.detected_at - self.onset
                self.evidence[path] = j.evidence
                if len(self.first) == len(PATHS):
                    self.both.set()


async def reconfigure(triton: TritonAdapter, **params: str) -> None:
    """Reload the model with some of its parameters changed."""
    config = await triton.model_config(MODEL)
    merged = dict(config.get("parameters", {}))
    merged.update({k: {"string_value": v} for k, v in params.items()})
    await triton.load_model(MODEL, {**config, "parameters": merged})


async def one_rep(args: argparse.Namespace, rep: int) -> dict[str, Any]:
    server = LocalTriton(
        ROOT / "examples" / "model_repository",
        extra_args=["--metrics-config=summary_latencies=true"],
    )
    server.start()
    triton = connect(TritonSettings.model_validate({"url": server.http_url, "protocol": "http"}))
    watch = Watchers(args.health_interval)
    clock = SystemClock()
    health = TritonHealthProbe(
        triton,
        [MODEL],
        metrics_url=server.metrics_url,
        interval_s=args.health_interval,
        metrics_interval_s=TritonSettings().metrics_interval_s,  # the shipped scrape cadence
    )
    canary = CanaryProbe(
        triton,
        CanarySettings.model_validate(
            {"model": MODEL, "golden_set": str(ROOT / "examples" / "golden" / "digits.npz")}
        ),
        suspects=watch.latency.suspects,
    )
    tasks: list[asyncio.Task[None]] = []
    try:
        async with LoadGenerator(
            server.http_url, MODEL, rate_per_s=args.rate, concurrency=args.concurrency
        ) as load:
            tasks = [
                asyncio.create_task(health.run(watch.sink, clock)),
                asyncio.create_task(canary.run(watch.sink, clock)),
            ]
            say(f"rep {rep}: warming up {args.warmup:.0f} s at {args.rate:g} requests/s")
            await asyncio.sleep(args.warmup)
            await reconfigure(triton, delay_ms=str(args.delay_ms))
            watch.onset = time.time()
            say(f"rep {rep}: {args.delay_ms} ms delay injected")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(watch.both.wait(), args.timeout)
            stats = load.stats
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        await triton.close()
        server.kill()
        server.close()
    return {
        "detect_s": {p: watch.first.get(p) for p in PATHS},
        "findings_before_fault": watch.before_fault,
        "requests_ok": stats.ok,
        "requests_failed": stats.failed,
        "requests_skipped": stats.skipped,
        "traffic_evidence": watch.evidence.get("traffic", {}),
    }


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def table(reps: list[dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [
        f"latency fault: +{args.delay_ms} ms per execution, load {args.rate:g} requests/s, "
        f"{len(reps)} rep(s), shipped detector defaults",
        f"{'path':<10}{'finding':<24}{'median s':>10}{'worst s':>10}{'missed':>8}",
    ]
    for path, kind in PATHS.items():
        times = [r["detect_s"][path] for r in reps if r["detect_s"][path] is not None]
        missed = len(reps) - len(times)
        med = f"{statistics.median(times):.1f}" if times else "-"
        worst = f"{max(times):.1f}" if times else "-"
        lines.append(f"{path:<10}{kind:<24}{med:>10}{worst:>10}{missed:>8}")
    before = sorted({k for r in reps for k in r["findings_before_fault"]})
    lines.append(f"findings before the fault (false alarms): {', '.join(before) or 'none'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=1, help="repetitions (a fresh server each)")
    p.add_argument("--rate", type=float, default=20.0, help="load, requests per second")
    p.add_argument(
        "--concurrency", type=int, default=64, help="most requests in flight (users do not wait)"
    )
    p.add_argument("--delay-ms", type=int, default=300, help="latency fault per execution")
    p.add_argument("--warmup", type=float, default=170.0, help="seconds before the fault")
    p.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for both")
    p.add_argument(
        "--health-interval",
        type=float,
        default=TritonSettings.model_fields["health_interval_s"].default,
        help="health probe interval (default: the shipped triton.health_interval_s)",
    )
    p.add_argument("--json", type=Path, help="write the results here too")
    args = p.parse_args(argv)
    sentinel_logging.configure("warning", "console", stream=sys.stderr)  # the table alone on stdout
    reps = [asyncio.run(one_rep(args, i + 1)) for i in range(args.reps)]
    print(table(reps, args))
    if args.json is not None:
        settings = vars(args) | {"json": str(args.json)}
        args.json.write_text(json.dumps({"args": settings, "reps": reps}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

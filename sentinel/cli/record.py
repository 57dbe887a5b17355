"""`sentinel record --out FILE.jsonl [--duration 60s] [--config FILE]`.

Records GPU samples and Xid events (and canary results and Triton health when
the config has canaries / a Triton server and those probes are built) as JSON
lines, the format in docs/recording-format.md. Without NVML it records what
it can and says the GPU is unavailable.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TextIO

from sentinel.base.clock import Clock, SystemClock
from sentinel.cli.config_load import BAD_INPUT, add_config_arg, duration_arg, load_or_report
from sentinel.config import Config
from sentinel.probes.gpu import GpuSampler, GpuSelectionError
from sentinel.probes.nvml import NvmlUnavailable, load_nvml
from sentinel.probes.recording import RecordingWriter
from sentinel.probes.xid import XidWatcher
from sentinel.vocabulary.ports import SampleSink
from sentinel.vocabulary.samples import GpuEvent, Sample

Probe = Coroutine[Any, Any, Any]
Closer = Callable[[], Awaitable[None]]


parse_duration = duration_arg
"""'60s', '2m', '1h30m' or plain seconds, as seconds (> 0); an argparse type."""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("record", help="record GPU samples, Xid events, canaries to JSON lines")
    p.add_argument("--out", required=True, help="the recording to write (JSON lines)")
    p.add_argument(
        "--duration", type=parse_duration, default=60.0, help="e.g. 60s, 5m, 1h30m (60s)"
    )
    add_config_arg(p, "config file: gpu.*, canaries, triton")
    p.add_argument("--interval", type=float, help="seconds between GPU samples (gpu.interval_s)")
    p.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    config = load_or_report(args.config)
    if config is None:
        return BAD_INPUT
    if args.interval is not None:
        if args.interval <= 0:
            print("sentinel record: --interval must be > 0", file=sys.stderr)
            return 2
        config = config.model_copy(
            update={"gpu": config.gpu.model_copy(update={"interval_s": args.interval})}
        )
    try:
        fh = Path(args.out).open("w", encoding="utf-8")  # noqa: SIM115 -- closed below
    except OSError as exc:
        print(f"sentinel record: cannot write {args.out}: {exc.strerror}", file=sys.stderr)
        return 2
    with fh:
        return asyncio.run(record(config, RecordingWriter(fh), args.duration, SystemClock()))


async def record(
    config: Config,
    writer: RecordingWriter,
    duration_s: float,
    clock: Clock,
    *,
    nvml_loader: Callable[[], Any] = load_nvml,
    err: TextIO | None = None,
) -> int:
    """Record for ``duration_s`` (or until SIGINT/SIGTERM); the exit code."""
    err = err or sys.stderr
    counts: Counter[str] = Counter()

    async def sink(sample: Sample) -> None:
        writer.write(sample)
        counts[sample.TYPE] += 1

    probes: list[Probe] = []
    sampler = None
    watcher = None
    if config.gpu.source == "off":
        print("sentinel record: gpu.source is off; not recording GPUs", file=err)
    else:
        try:
            nvml = nvml_loader()
            sampler = GpuSampler(nvml, config.gpu, clock)
            sampler.open()
        except NvmlUnavailable as exc:
            print(f"sentinel record: GPU unavailable: {exc}; recording the rest", file=err)
            await sink(GpuEvent(ts=clock.now(), uuid="", kind="nvml_unavailable", detail=str(exc)))
            sampler = None
        except GpuSelectionError as exc:
            print(f"sentinel record: {exc}", file=err)
            return 2
    if sampler is not None:
        probes.append(sampler.run(sink))
        print(f"sentinel record: sampling GPUs {sampler.gpus}", file=err)
        if config.gpu.xid_events:
            watcher = XidWatcher(nvml, [u for _, u in sampler.gpus if u], clock)
            probes.append(watcher.run(sink))
    closers: list[Closer] = []
    try:
        others = _other_probes(config, clock, sink, closers)
    except ValueError as exc:
        for p in probes:
            p.close()  # never awaited: nothing started
        print(f"sentinel record: {exc}", file=err)
        return 2
    if others:
        print(
            f"sentinel record: recording {len(config.canaries)} canaries and Triton health"
            f" from {config.triton.url}",
            file=err,
        )
    probes.extend(others)
    files = _model_files_probe(config, clock, closers)
    if files is not None:
        probes.append(files.run(sink, clock))
    if not probes:
        print("sentinel record: nothing to record (no GPU, no canaries)", file=err)
        return 3
    try:
        await _run_for(probes, duration_s, clock)
    finally:
        for close in closers:
            await close()
    if watcher is not None:
        print(f"sentinel record: {watcher.status}", file=err)
    summary = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "nothing"
    print(f"sentinel record: wrote {writer.count} records ({summary})", file=err)
    if sampler is not None and sampler.ticks:
        mean_ms = 1000.0 * sampler.tick_seconds_total / sampler.ticks
        print(
            f"sentinel record: {sampler.ticks} GPU ticks, mean {mean_ms:.2f} ms,"
            f" max {1000.0 * sampler.tick_seconds_max:.2f} ms per tick",
            file=err,
        )
    return 0


def _other_probes(
    config: Config, clock: Clock, sink: SampleSink, closers: list[Closer]
) -> list[Probe]:
    """Canary and Triton-health probes when the config has canaries or a triton section.

    Imported here, not at the top: recording GPUs alone must not need the
    Triton client libraries. Raises ValueError naming the canary whose golden
    set cannot be used.
    """
    if not config.canaries and "triton" not in config.model_fields_set:
        return []
    from sentinel.probes.canary import CanaryProbe, GoldenSetError
    from sentinel.probes.triton import connect
    from sentinel.probes.triton_health import TritonHealthProbe

    triton = connect(config.triton)
    closers.append(triton.close)
    probes: list[Probe] = []
    for c in config.canaries:
        try:
            canary = CanaryProbe(triton, c, clock=clock)
        except (GoldenSetError, OSError) as exc:
            raise ValueError(f"canaries[{c.model}].golden_set: {exc}") from exc
        probes.append(canary.run(sink, clock))
    health = TritonHealthProbe(
        triton,
        [c.model for c in config.canaries],
        metrics_url=config.triton.metrics_url,
        interval_s=config.triton.health_interval_s,
        clock=clock,
    )
    probes.append(health.run(sink, clock))
    return probes


def _model_files_probe(config: Config, clock: Clock, closers: list[Closer]) -> Any:
    """The repository's files next to the daemon's known-good manifests (only read here)."""
    if config.model_files.repository is None:
        return None
    from sentinel.base import db
    from sentinel.probes.model_files import ManifestStore, ModelFilesProbe

    conn = db.open_db(db.path_in(config.state_dir))

    async def close() -> None:
        conn.close()

    closers.append(close)
    models = [c.model for c in config.canaries]
    return ModelFilesProbe(config.model_files, models, ManifestStore(conn), clock)


async def _run_for(probes: list[Probe], duration_s: float, clock: Clock) -> None:
    """Run the probes until the duration passes or SIGINT/SIGTERM, then cancel them."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    tasks = [asyncio.create_task(p) for p in probes]
    timer = asyncio.create_task(clock.sleep(duration_s))
    stopper = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait([timer, stopper], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in (*tasks, timer, stopper):
            t.cancel()
        results = await asyncio.gather(*tasks, timer, stopper, return_exceptions=True)
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(sig)
    for r in results:
        if isinstance(r, Exception):
            print(f"sentinel record: a probe failed: {type(r).__name__}: {r}", file=sys.stderr)

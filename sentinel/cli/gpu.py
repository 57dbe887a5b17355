"""`sentinel gpu [--json] [--watch]`: what NVML says about each GPU, reasons decoded."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from sentinel.base.clock import SystemClock
from sentinel.cli.config_load import BAD_INPUT, add_config_arg, load_or_report
from sentinel.probes.gpu import GpuSampler, GpuSelectionError
from sentinel.probes.nvml import NvmlUnavailable, load_nvml
from sentinel.probes.settings import GpuSettings
from sentinel.vocabulary.samples import GpuSample, to_record

EXIT_UNAVAILABLE = 3
GIB = 1024**3


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("gpu", help="show each GPU as NVML sees it (exit 3 without NVML)")
    p.add_argument("--json", action="store_true", help="one JSON record per GPU sample")
    p.add_argument("--watch", action="store_true", help="repeat until Ctrl-C")
    p.add_argument("--interval", type=float, default=2.0, help="seconds between --watch rounds")
    add_config_arg(p, "config file (for gpu.devices)")
    p.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    settings = GpuSettings()
    if args.config:
        config = load_or_report(args.config)
        if config is None:
            return BAD_INPUT
        settings = config.gpu
    if args.interval <= 0:
        print("sentinel gpu: --interval must be > 0", file=sys.stderr)
        return 2
    try:
        sampler = GpuSampler(load_nvml(), settings, SystemClock())
        sampler.open()
    except NvmlUnavailable as exc:
        print(f"sentinel gpu: {exc}. No GPU telemetry on this machine.", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except GpuSelectionError as exc:
        print(f"sentinel gpu: {exc}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_show(sampler, args.json, args.watch, args.interval))
    except KeyboardInterrupt:
        return 0


async def _show(sampler: GpuSampler, as_json: bool, watch: bool, interval: float) -> int:
    while True:
        samples = await sampler.sample_once()
        for event in sampler.take_events():
            print(f"{event.kind}: {event.uuid or '-'} {event.detail}", file=sys.stderr)
        for s in samples:
            print(json.dumps(to_record(s)) if as_json else format_sample(s))
        sys.stdout.flush()
        if not watch:
            return 0 if samples else EXIT_UNAVAILABLE
        await asyncio.sleep(interval)


def _num(value: float | None, fmt: str = "{:.0f}", unit: str = "") -> str:
    return "n/a" if value is None else fmt.format(value) + unit


def format_sample(s: GpuSample) -> str:
    """A compact three-line view of one GPU sample."""
    mem = "n/a"
    if s.memory_used_bytes is not None and s.memory_total_bytes:
        pct = 100.0 * s.memory_used_bytes / s.memory_total_bytes
        mem = f"{s.memory_used_bytes / GIB:.1f}/{s.memory_total_bytes / GIB:.1f} GiB ({pct:.0f}%)"
    margin = (
        s.temperature_slowdown_c - s.temperature_c
        if s.temperature_slowdown_c is not None and s.temperature_c is not None
        else None
    )
    reasons = "n/a"
    if s.clock_event_reasons is not None:
        names = ", ".join(s.clock_event_names) or "none"
        reasons = f"{names} (0x{s.clock_event_reasons:x})"
    procs = " ".join(
        f"{p.pid}:{_num(p.used_bytes / GIB if p.used_bytes is not None else None, '{:.1f}')}GiB"
        for p in s.processes
    )
    lines = [
        f"GPU {s.index} {s.name or '?'} {s.uuid}",
        f"  mem {mem}  util {_num(s.utilization_gpu_pct, unit='%')}"
        f"  temp {_num(s.temperature_c, unit='C')} (slowdown {_num(s.temperature_slowdown_c)}C,"
        f" margin {_num(margin)}C)  power {_num(s.power_w)}/{_num(s.power_limit_w)} W"
        f"  SM {_num(s.sm_clock_mhz)}/{_num(s.sm_clock_max_mhz)} MHz",
        f"  clock events: {reasons}  ecc-uncorr {_num(_f(s.ecc_uncorrected_volatile))}"
        f"  remap pending {_yn(s.remapped_rows_pending)} failure {_yn(s.remapped_rows_failure)}"
        f"  pcie-replays {_num(_f(s.pcie_replay_count))}  procs {procs or 'none'}",
    ]
    return "\n".join(lines)


def _f(value: int | None) -> float | None:
    return float(value) if value is not None else None


def _yn(value: bool | None) -> str:
    return "n/a" if value is None else ("yes" if value else "no")

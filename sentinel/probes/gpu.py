"""The NVML sampler: one :class:`GpuSample` per watched GPU per tick.

Every field is read on its own, so one failing query costs one field, never the
sample. A field that answers NotSupported (or is missing from this driver) is
remembered as absent and not asked again; static facts (thresholds, max SM clock,
name) are read once; fields that change rarely (ECC, remapped rows, PCIe replays,
power limit, processes) every ``slow_interval_s`` (:mod:`.gpu_cadence`). A lost GPU
becomes a ``gpu_lost`` event, a vanished library an ``nvml_unavailable`` event; the
sampler never raises from a tick. NVML calls block (a first utilization query took
~4 ms on an H200), so a tick runs in a worker thread.

Each GPU process carries its name and parent (:mod:`.gpu_processes`).
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from sentinel.base.clock import Clock, SystemClock
from sentinel.base.errors import InputError, ProbeError
from sentinel.probes import nvml as nv
from sentinel.probes.gpu_cadence import PROCESSES, SlowFields
from sentinel.probes.gpu_processes import gpu_processes
from sentinel.probes.settings import GpuSettings
from sentinel.vocabulary.ports import SampleSink
from sentinel.vocabulary.samples import GpuEvent, GpuProcess, GpuSample, Sample

log = structlog.get_logger(__name__)


class GpuSelectionError(InputError, ValueError):
    """``gpu.devices`` names a GPU this machine does not have."""


class _GpuLost(ProbeError):
    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


class _NvmlGone(ProbeError):
    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


@dataclass
class _Gpu:
    """What the sampler knows about one watched GPU between ticks."""

    index: int
    uuid: str
    handle: Any = None
    name: str | None = None
    compute_capability: str | None = None
    driver: str | None = None
    lost: bool = False
    absent: set[str] = field(default_factory=set)
    """Fields this GPU answered NotSupported (or similar) for: never asked again."""
    once: dict[str, Any] = field(default_factory=dict)
    """Static facts read once (thresholds, max SM clock)."""
    slow: SlowFields = field(default_factory=SlowFields)
    """Fields read every ``slow_interval_s``, and their last values."""


def _number(value: Any) -> float | None:
    """A finite, non-negative reading, else None (NVML never means a negative one)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or value < 0:
        return None
    return float(value)


def _count(value: Any) -> int | None:
    number = _number(value)
    return int(number) if number is not None else None


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) else None


class GpuSampler:
    """Samples the selected GPUs through an NVML module (``pynvml`` or a stand-in)."""

    def __init__(
        self,
        nvml: Any,
        settings: GpuSettings | None = None,
        clock: Clock | None = None,
        proc: Path | None = Path("/proc"),
    ) -> None:
        self._nvml = nvml
        self._proc = proc
        """Where process names and parents are read when NVML gives none (None: nowhere)."""
        self._settings = settings or GpuSettings()
        self.interval_s = self._settings.interval_s
        self._clock: Clock = clock or SystemClock()
        self._gpus: list[_Gpu] = []
        self._count: int | None = None
        self._opened = False
        self._nvml_ok = True
        self._gone_reported = False
        self._errors_seen: set[tuple[str, str, str]] = set()
        self._events: list[GpuEvent] = []
        self._pending: list[GpuEvent] = []
        self.ticks = 0
        """Ticks run so far (for the cost figures `sentinel record` prints)."""
        self.tick_seconds_total = 0.0
        self.tick_seconds_max = 0.0

    @property
    def gpus(self) -> list[tuple[int, str]]:
        """(index, uuid) of each watched GPU."""
        return [(g.index, g.uuid) for g in self._gpus]

    def open(self) -> None:
        """Initialise NVML and resolve ``devices``; blocking.

        Raises :class:`~sentinel.probes.nvml.NvmlUnavailable` (no driver/library)
        or :class:`GpuSelectionError` (a device that is not there).
        """
        nv.init_nvml(self._nvml)
        try:
            count = _count(self._nvml.nvmlDeviceGetCount())
        except Exception as exc:
            raise nv.NvmlUnavailable(
                f"NVML is not available: cannot count GPUs ({nv.error_name(exc)})"
            ) from exc
        if count is None:
            raise nv.NvmlUnavailable("NVML is not available: it reported no GPU count")
        self._count = count
        self._gpus = [self._resolve(sel, count) for sel in self._selection(count)]
        self._opened = True

    def _selection(self, count: int) -> list[int | str]:
        if not self._settings.devices:
            return list(range(count))
        return [int(d) if isinstance(d, str) and d.isdigit() else d for d in self._settings.devices]

    def _resolve(self, selector: int | str, count: int) -> _Gpu:
        n = self._nvml
        if isinstance(selector, int):
            if not 0 <= selector < count:
                raise GpuSelectionError(
                    f"gpu.devices: no GPU with index {selector} (this machine has {count})"
                )
            gpu = _Gpu(index=selector, uuid="")
            try:
                gpu.handle = n.nvmlDeviceGetHandleByIndex(selector)
                gpu.uuid = _text(n.nvmlDeviceGetUUID(gpu.handle)) or ""
            except Exception as exc:
                # keep it: a lost GPU is reported on the first tick and retried after
                gpu.lost, gpu.handle = True, None
                self._pending.append(self._lost_event(gpu, f"GPU {selector}: {nv.error_name(exc)}"))
        else:
            try:
                handle = n.nvmlDeviceGetHandleByUUID(selector)
            except Exception as exc:
                raise GpuSelectionError(
                    f"gpu.devices: no GPU with UUID {selector!r} ({nv.error_name(exc)})"
                ) from exc
            index = _count(self._safe(n, "nvmlDeviceGetIndex", handle))
            gpu = _Gpu(index=index if index is not None else -1, uuid=selector, handle=handle)
        if gpu.handle is not None:
            gpu.name = _text(self._safe(n, "nvmlDeviceGetName", gpu.handle))
            cc = self._safe(n, "nvmlDeviceGetCudaComputeCapability", gpu.handle)
            gpu.compute_capability = ".".join(map(str, cc)) if isinstance(cc, tuple) else None
            gpu.driver = _text(self._safe(n, "nvmlSystemGetDriverVersion"))
        return gpu

    @staticmethod
    def _safe(n: Any, fn: str, *args: Any) -> Any:
        try:
            return getattr(n, fn)(*args)
        except Exception:
            return None

    # -- ticking ----------------------------------------------------------

    async def tick(self) -> list[Sample]:
        """Sample every watched GPU once; samples and events, never an exception."""
        return await asyncio.to_thread(self.tick_sync)

    async def sample_once(self) -> list[GpuSample]:
        """One sample per reachable GPU; events raised meanwhile wait in :meth:`take_events`."""
        out = await self.tick()
        self._events.extend(s for s in out if isinstance(s, GpuEvent))
        return [s for s in out if isinstance(s, GpuSample)]

    def take_events(self) -> list[GpuEvent]:
        """Events (lost GPU, vanished NVML) not yet handed out by :meth:`sample_once`."""
        events, self._events = self._events, []
        return events

    def tick_sync(self) -> list[Sample]:
        """The blocking tick (what :meth:`tick` runs in a thread)."""
        started = time.perf_counter()
        try:
            return self._tick()
        finally:
            spent = time.perf_counter() - started  # real cost, whatever the injected clock
            self.ticks += 1
            self.tick_seconds_total += spent
            self.tick_seconds_max = max(self.tick_seconds_max, spent)

    def _tick(self) -> list[Sample]:
        out: list[Sample] = []
        try:
            if not self._opened or not self._nvml_ok:
                self._reopen()
            out.extend(self._take_pending())
            self._check_count(out)
            for gpu in self._gpus:
                self._sample_or_lose(gpu, out)
        except nv.NvmlUnavailable as exc:
            self._report_gone(str(exc), out)
        except _NvmlGone as exc:
            self._nvml_ok = False
            self._report_gone(f"NVML stopped answering ({exc.error})", out)
        except Exception as exc:  # nonsense from the library must not stop the probe
            log.warning("gpu_tick_failed", error=nv.error_name(exc))
        return out

    def _reopen(self) -> None:
        if not self._opened:
            self.open()
            return
        nv.init_nvml(self._nvml)
        self._nvml_ok = True
        for gpu in self._gpus:
            gpu.lost, gpu.handle = True, None  # handles from before are stale

    def _take_pending(self) -> list[Sample]:
        events: list[Sample] = list(self._pending)
        self._pending.clear()
        return events

    def _report_gone(self, why: str, out: list[Sample]) -> None:
        if self._gone_reported:
            return
        self._gone_reported = True
        log.warning("gpu_samples_paused", reason=why, until="NVML answers again")
        out.append(GpuEvent(ts=self._clock.now(), uuid="", kind="nvml_unavailable", detail=why))

    def _check_count(self, out: list[Sample]) -> None:
        """A GPU count below the one at start means a GPU fell off the bus."""
        count = _count(self._call_global("nvmlDeviceGetCount"))
        if count is None or self._count is None or count >= self._count:
            return
        before, self._count = self._count, count
        why = f"GPU count dropped from {before} to {count}"
        hit = False
        for gpu in self._gpus:
            if gpu.lost or not gpu.uuid:
                continue
            try:
                self._nvml.nvmlDeviceGetHandleByUUID(gpu.uuid)
            except Exception:
                hit = True
                gpu.lost, gpu.handle = True, None
                out.append(self._lost_event(gpu, why))
        if not hit:
            out.append(GpuEvent(ts=self._clock.now(), uuid="", kind="gpu_lost", detail=why))

    def _call_global(self, fn: str) -> Any:
        try:
            return getattr(self._nvml, fn)()
        except Exception as exc:
            name = nv.error_name(exc)
            if name in nv.GONE_ERRORS:
                raise _NvmlGone(name) from exc
            return None

    def _sample_or_lose(self, gpu: _Gpu, out: list[Sample]) -> None:
        if gpu.lost and not self._reacquire(gpu):
            return
        try:
            sample = self._sample(gpu)
        except _GpuLost as exc:
            gpu.lost, gpu.handle = True, None
            gpu.slow.forget()
            out.append(self._lost_event(gpu, exc.error))
            return
        gpu.lost = False
        self._gone_reported = False
        out.append(sample)

    def _reacquire(self, gpu: _Gpu) -> bool:
        try:
            if gpu.uuid:
                gpu.handle = self._nvml.nvmlDeviceGetHandleByUUID(gpu.uuid)
            else:
                gpu.handle = self._nvml.nvmlDeviceGetHandleByIndex(gpu.index)
                gpu.uuid = _text(self._nvml.nvmlDeviceGetUUID(gpu.handle)) or ""
        except Exception as exc:
            if nv.error_name(exc) in nv.GONE_ERRORS:
                raise _NvmlGone(nv.error_name(exc)) from exc
            gpu.handle = None
            return False
        return gpu.handle is not None

    def _lost_event(self, gpu: _Gpu, detail: str) -> GpuEvent:
        log.warning("gpu_lost", gpu=gpu.index, uuid=gpu.uuid or "?", detail=detail)
        return GpuEvent(ts=self._clock.now(), uuid=gpu.uuid, kind="gpu_lost", detail=detail)

    # -- one GPU ----------------------------------------------------------

    def _read(self, gpu: _Gpu, key: str, fn_names: tuple[str, ...], *args: Any) -> Any:
        """One NVML query; None when it fails, remembered as absent when unsupported."""
        if key in gpu.absent:
            return None
        fn = next((getattr(self._nvml, f) for f in fn_names if hasattr(self._nvml, f)), None)
        if fn is None:
            gpu.absent.add(key)
            return None
        try:
            return fn(gpu.handle, *args)
        except Exception as exc:
            name = nv.error_name(exc)
            if name in nv.LOST_ERRORS:
                raise _GpuLost(name) from exc
            if name in nv.GONE_ERRORS:
                raise _NvmlGone(name) from exc
            if name in nv.UNSUPPORTED_ERRORS:
                gpu.absent.add(key)
                log.info("gpu_field_unsupported", gpu=gpu.index, field=key, error=name)
            elif (gpu.uuid, key, name) not in self._errors_seen:
                self._errors_seen.add((gpu.uuid, key, name))
                log.warning("gpu_field_read_failed", gpu=gpu.index, field=key, error=name)
            return None

    def _once(self, gpu: _Gpu, key: str, fn_names: tuple[str, ...], *args: Any) -> float | None:
        """A static fact: kept after the first answer (or the first NotSupported)."""
        if key in gpu.once:
            value: float | None = gpu.once[key]
            return value
        raw = self._read(gpu, key, fn_names, *args)
        value = _number(raw)
        if value is not None or key in gpu.absent:
            gpu.once[key] = value
        return value

    def _slow(self, gpu: _Gpu, key: str, fn_names: tuple[str, ...], *args: Any) -> Any:
        """A field that changes rarely: read when due, else its last value."""
        s, now = self._settings, self._clock.monotonic()
        fetch = lambda: self._read(gpu, key, fn_names, *args)  # noqa: E731
        return gpu.slow.read(key, now, s.slow_interval_s, s.interval_s, fetch)

    def _sample(self, gpu: _Gpu) -> GpuSample:
        ts = self._clock.now()
        mem = self._memory(gpu)
        util = self._read(gpu, "utilization", ("nvmlDeviceGetUtilizationRates",))
        reasons = _count(
            self._read(
                gpu,
                "clock_event_reasons",
                (
                    "nvmlDeviceGetCurrentClocksEventReasons",
                    "nvmlDeviceGetCurrentClocksThrottleReasons",
                ),
            )
        )
        rows = self._slow(gpu, "remapped_rows", ("nvmlDeviceGetRemappedRows",))
        rows = rows if isinstance(rows, tuple | list) and len(rows) == 4 else None
        power = _number(self._read(gpu, "power", ("nvmlDeviceGetPowerUsage",)))
        limit = _number(self._slow(gpu, "power_limit", ("nvmlDeviceGetEnforcedPowerLimit",)))
        return GpuSample(
            ts=ts,
            index=gpu.index,
            uuid=gpu.uuid,
            name=gpu.name,
            compute_capability=gpu.compute_capability,
            driver_version=gpu.driver,
            memory_total_bytes=_count(getattr(mem, "total", None)),
            memory_used_bytes=_count(getattr(mem, "used", None)),
            memory_free_bytes=_count(getattr(mem, "free", None)),
            memory_reserved_bytes=_count(getattr(mem, "reserved", None)),
            utilization_gpu_pct=_number(getattr(util, "gpu", None)),
            utilization_memory_pct=_number(getattr(util, "memory", None)),
            temperature_c=_number(
                self._read(
                    gpu, "temperature", ("nvmlDeviceGetTemperature",), nv.NVML_TEMPERATURE_GPU
                )
            ),
            temperature_slowdown_c=self._threshold(gpu, "slowdown", nv.THRESHOLD_SLOWDOWN),
            temperature_shutdown_c=self._threshold(gpu, "shutdown", nv.THRESHOLD_SHUTDOWN),
            temperature_gpu_max_c=self._threshold(gpu, "gpu_max", nv.THRESHOLD_GPU_MAX),
            power_w=power / 1000.0 if power is not None else None,
            power_limit_w=limit / 1000.0 if limit is not None else None,
            sm_clock_mhz=_number(
                self._read(gpu, "sm_clock", ("nvmlDeviceGetClockInfo",), nv.NVML_CLOCK_SM)
            ),
            sm_clock_max_mhz=self._once(
                gpu, "sm_clock_max", ("nvmlDeviceGetMaxClockInfo",), nv.NVML_CLOCK_SM
            ),
            clock_event_reasons=reasons,
            clock_event_names=nv.decode_reasons(reasons) if reasons is not None else (),
            ecc_uncorrected_volatile=_count(
                self._slow(
                    gpu,
                    "ecc_uncorrected",
                    ("nvmlDeviceGetTotalEccErrors",),
                    nv.NVML_MEMORY_ERROR_UNCORRECTED,
                    nv.NVML_VOLATILE_ECC,
                )
            ),
            remapped_rows_pending=bool(rows[2]) if rows is not None else None,
            remapped_rows_failure=bool(rows[3]) if rows is not None else None,
            pcie_replay_count=_count(
                self._slow(gpu, "pcie_replay", ("nvmlDeviceGetPcieReplayCounter",))
            ),
            processes=self._processes_when_due(gpu, mem),
        )

    def _threshold(self, gpu: _Gpu, which: str, kind: int) -> float | None:
        return self._once(gpu, f"threshold_{which}", ("nvmlDeviceGetTemperatureThreshold",), kind)

    def _memory(self, gpu: _Gpu) -> Any:
        """Memory v2 (with ``reserved``), falling back to v1 where v2 is unsupported."""
        if "memory_v2" not in gpu.absent:
            mem = self._read(gpu, "memory_v2", ("nvmlDeviceGetMemoryInfo",), nv.NVML_MEMORY_V2)
            if mem is not None or "memory_v2" not in gpu.absent:
                return mem
        return self._read(gpu, "memory", ("nvmlDeviceGetMemoryInfo",))

    def _processes_when_due(self, gpu: _Gpu, mem: Any) -> tuple[GpuProcess, ...]:
        """The processes, read every ``slow_interval_s`` or at once when memory moved."""
        used, total = _count(getattr(mem, "used", None)), _count(getattr(mem, "total", None))
        s, now = self._settings, self._clock.monotonic()
        if gpu.slow.due(PROCESSES, now, s.slow_interval_s, s.interval_s) or gpu.slow.memory_moved(
            used, total, s.processes_on_memory_change
        ):
            gpu.slow.keep(PROCESSES, self._processes(gpu), now)
            gpu.slow.processes_used = used
        procs: tuple[GpuProcess, ...] = gpu.slow.values.get(PROCESSES) or ()
        return procs

    def _processes(self, gpu: _Gpu) -> tuple[GpuProcess, ...] | None:
        """The GPU's compute processes, named; None when they could not be read."""
        procs = self._read(gpu, "processes", ("nvmlDeviceGetComputeRunningProcesses",))
        ok = isinstance(procs, list | tuple)
        return gpu_processes(procs, self._nvml, self._proc, _count) if ok else None

    # -- the loop ---------------------------------------------------------

    async def run(self, sink: SampleSink, clock: Clock | None = None) -> None:
        """Sample every ``interval_s`` until cancelled, each sample and event into ``sink``.

        Without NVML this sends one ``nvml_unavailable`` event and returns: the
        daemon carries on without GPU probes.
        """
        clock = clock or self._clock
        self._clock = clock
        if not self._opened:
            try:
                await asyncio.to_thread(self.open)
            except nv.NvmlUnavailable as exc:
                log.warning("gpu_probes_off", reason=str(exc))
                await sink(
                    GpuEvent(ts=clock.now(), uuid="", kind="nvml_unavailable", detail=str(exc))
                )
                return
        interval = self._settings.interval_s
        next_at = clock.monotonic()
        while True:
            for sample in await self.tick():
                await sink(sample)
            next_at += interval
            now = clock.monotonic()
            if next_at < now:  # a slow tick: skip the missed slots rather than burst
                next_at = now + interval - ((now - next_at) % interval)
            await clock.sleep(next_at - now)


SourceKind = tuple[str, str | None]


def parse_source(source: str) -> SourceKind:
    """``gpu.source`` as ('nvml'|'triton'|'dcgm'|'off'|'replay', path or None).

    ValueError when malformed.
    """
    if source in ("nvml", "off", "triton", "dcgm"):
        return source, None
    if source.startswith("replay:") and len(source) > len("replay:"):
        return "replay", source[len("replay:") :]
    raise ValueError(
        f"gpu.source: expected 'nvml', 'triton', 'dcgm', 'off' or 'replay:FILE', got {source!r}"
    )

"""NvmlStandIn: a stand-in for the ``pynvml`` module, for machines without a GPU.

It answers the NVML calls sentinel's GPU sampler and Xid watcher make from
scripted per-GPU values (:class:`GpuScript`), raises the real ``pynvml`` error
classes on demand, and records the calls it got. Hand it to
``sentinel.probes.gpu.GpuSampler`` (or patch ``load_nvml``) in place of the module::

    nvml = NvmlStandIn([GpuScript(uuid="GPU-a", temp=91, reasons=0x40)])
    nvml.fail["nvmlDeviceGetPowerUsage"] = pynvml.NVMLError_GpuIsLost

:data:`NVML_FUNCTIONS` is the one list of the NVML calls it offers; sentinel's
tests check that each exists in the real module under that name.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pynvml

INIT_FUNCTIONS = (
    "nvmlInit",
    "nvmlShutdown",
    "nvmlDeviceGetHandleByIndex",
    "nvmlDeviceGetUUID",
    "nvmlDeviceGetName",
    "nvmlDeviceGetIndex",
)
"""Calls made once, when sentinel opens NVML and finds its GPUs."""
SAMPLED_FUNCTIONS = (
    "nvmlDeviceGetMemoryInfo",
    "nvmlDeviceGetUtilizationRates",
    "nvmlDeviceGetTemperature",
    "nvmlDeviceGetTemperatureThreshold",
    "nvmlDeviceGetPowerUsage",
    "nvmlDeviceGetEnforcedPowerLimit",
    "nvmlDeviceGetClockInfo",
    "nvmlDeviceGetMaxClockInfo",
    "nvmlDeviceGetCurrentClocksEventReasons",
    "nvmlDeviceGetTotalEccErrors",
    "nvmlDeviceGetRemappedRows",
    "nvmlDeviceGetPcieReplayCounter",
    "nvmlDeviceGetComputeRunningProcesses",
    "nvmlDeviceGetCount",
    "nvmlDeviceGetHandleByUUID",
)
"""Calls the sampler may make on any tick (each may fail on its own)."""
EVENT_FUNCTIONS = (
    "nvmlEventSetCreate",
    "nvmlDeviceGetSupportedEventTypes",
    "nvmlDeviceRegisterEvents",
    "nvmlEventSetWait_v2",
    "nvmlEventSetFree",
)
"""Calls the Xid watcher makes."""
PROCESS_FUNCTIONS = ("nvmlSystemGetProcessName",)
"""Calls the sampler makes per GPU process (a failure falls back to /proc, then None)."""
NVML_FUNCTIONS = INIT_FUNCTIONS + SAMPLED_FUNCTIONS + EVENT_FUNCTIONS + PROCESS_FUNCTIONS
"""Every NVML call the stand-in answers."""

ERROR_CLASSES: list[type[Exception]] = [
    getattr(pynvml, n) for n in sorted(dir(pynvml)) if n.startswith("NVMLError_")
]
"""Every NVMLError_* class the real module defines (31 in nvidia-ml-py 13.615)."""

GIB = 1 << 30


@dataclass
class GpuScript:
    """What one stand-in GPU answers (mutable: change it between ticks)."""

    uuid: str
    name: str = "Stand-in H100"
    total: int = 80 * GIB
    used: int = 1 * GIB
    reserved: int = GIB // 2
    util_gpu: int = 0
    util_mem: int = 0
    temp: int = 35
    thresholds: dict[int, int] = field(default_factory=lambda: {0: 92, 1: 89, 3: 87})
    power_mw: int = 70_000
    limit_mw: int = 700_000
    sm_clock: int = 345
    sm_max: int = 1980
    reasons: int = 0x1
    ecc: int = 0
    rows: tuple[int, int, int, int] = (0, 0, 0, 0)
    pcie: int = 0
    procs: list[tuple[int, int]] = field(default_factory=list)
    """(pid, used bytes) of each compute process."""
    process_names: dict[int, str] = field(default_factory=dict)
    """What ``nvmlSystemGetProcessName`` answers per pid (others: NVMLError_NotFound)."""
    events: int = 0xFF9F


class NvmlStandIn:
    """Stand-in for the pynvml module: scripted GPUs, injected errors, a call log."""

    def __init__(self, gpus: list[GpuScript] | None = None) -> None:
        self.gpus = gpus if gpus is not None else [GpuScript(uuid="GPU-standin-0")]
        self.calls: list[str] = []
        self.fail: dict[str, Callable[[], Exception]] = {}
        """Function name -> factory of the exception that call raises."""
        self.fail_all: Callable[[], Exception] | None = None
        """When set, every call raises this (the library 'vanishing')."""
        self.events: queue.Queue[Any] = queue.Queue()
        self.lock = threading.Lock()
        for name in dir(pynvml):
            if name.startswith("NVMLError") or name == "NVMLLibraryMismatchError":
                setattr(self, name, getattr(pynvml, name))

    def _enter(self, fn: str) -> None:
        with self.lock:
            self.calls.append(fn)
        if self.fail_all is not None:
            raise self.fail_all()
        if fn in self.fail:
            raise self.fail[fn]()

    def _gpu(self, handle: Any) -> GpuScript:
        if not isinstance(handle, GpuScript):
            raise pynvml.NVMLError_InvalidArgument()
        if handle not in self.gpus:
            raise pynvml.NVMLError_GpuIsLost()
        return handle

    def nvmlInit(self) -> None:
        self._enter("nvmlInit")

    def nvmlShutdown(self) -> None:
        self._enter("nvmlShutdown")

    def nvmlDeviceGetCount(self) -> int:
        self._enter("nvmlDeviceGetCount")
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, i: int) -> GpuScript:
        self._enter("nvmlDeviceGetHandleByIndex")
        if not 0 <= i < len(self.gpus):
            raise pynvml.NVMLError_InvalidArgument()
        return self.gpus[i]

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> GpuScript:
        self._enter("nvmlDeviceGetHandleByUUID")
        for g in self.gpus:
            if g.uuid == uuid:
                return g
        raise pynvml.NVMLError_NotFound()

    def nvmlDeviceGetUUID(self, h: Any) -> str:
        self._enter("nvmlDeviceGetUUID")
        return self._gpu(h).uuid

    def nvmlDeviceGetName(self, h: Any) -> str:
        self._enter("nvmlDeviceGetName")
        return self._gpu(h).name

    def nvmlDeviceGetIndex(self, h: Any) -> int:
        self._enter("nvmlDeviceGetIndex")
        return self.gpus.index(self._gpu(h))

    def nvmlDeviceGetMemoryInfo(self, h: Any, version: int | None = None) -> Any:
        self._enter("nvmlDeviceGetMemoryInfo")
        g = self._gpu(h)
        mem = SimpleNamespace(total=g.total, used=g.used, free=g.total - g.used - g.reserved)
        if version:
            mem.reserved = g.reserved
        return mem

    def nvmlDeviceGetUtilizationRates(self, h: Any) -> Any:
        self._enter("nvmlDeviceGetUtilizationRates")
        g = self._gpu(h)
        return SimpleNamespace(gpu=g.util_gpu, memory=g.util_mem)

    def nvmlDeviceGetTemperature(self, h: Any, sensor: int) -> int:
        self._enter("nvmlDeviceGetTemperature")
        return self._gpu(h).temp

    def nvmlDeviceGetTemperatureThreshold(self, h: Any, kind: int) -> int:
        self._enter("nvmlDeviceGetTemperatureThreshold")
        g = self._gpu(h)
        if kind not in g.thresholds:
            raise pynvml.NVMLError_NotSupported()
        return g.thresholds[kind]

    def nvmlDeviceGetPowerUsage(self, h: Any) -> int:
        self._enter("nvmlDeviceGetPowerUsage")
        return self._gpu(h).power_mw

    def nvmlDeviceGetEnforcedPowerLimit(self, h: Any) -> int:
        self._enter("nvmlDeviceGetEnforcedPowerLimit")
        return self._gpu(h).limit_mw

    def nvmlDeviceGetClockInfo(self, h: Any, kind: int) -> int:
        self._enter("nvmlDeviceGetClockInfo")
        return self._gpu(h).sm_clock

    def nvmlDeviceGetMaxClockInfo(self, h: Any, kind: int) -> int:
        self._enter("nvmlDeviceGetMaxClockInfo")
        return self._gpu(h).sm_max

    def nvmlDeviceGetCurrentClocksEventReasons(self, h: Any) -> int:
        self._enter("nvmlDeviceGetCurrentClocksEventReasons")
        return self._gpu(h).reasons

    def nvmlDeviceGetTotalEccErrors(self, h: Any, kind: int, counter: int) -> int:
        self._enter("nvmlDeviceGetTotalEccErrors")
        return self._gpu(h).ecc

    def nvmlDeviceGetRemappedRows(self, h: Any) -> tuple[int, int, int, int]:
        self._enter("nvmlDeviceGetRemappedRows")
        return self._gpu(h).rows

    def nvmlDeviceGetPcieReplayCounter(self, h: Any) -> int:
        self._enter("nvmlDeviceGetPcieReplayCounter")
        return self._gpu(h).pcie

    def nvmlDeviceGetComputeRunningProcesses(self, h: Any) -> list[Any]:
        self._enter("nvmlDeviceGetComputeRunningProcesses")
        return [SimpleNamespace(pid=p, usedGpuMemory=b) for p, b in self._gpu(h).procs]

    def nvmlSystemGetProcessName(self, pid: int) -> str:
        """Like the real call: the process's executable, by pid, from any GPU's view."""
        self._enter("nvmlSystemGetProcessName")
        for gpu in self.gpus:
            if pid in gpu.process_names:
                return gpu.process_names[pid]
        raise pynvml.NVMLError_NotFound()

    def nvmlEventSetCreate(self) -> object:
        self._enter("nvmlEventSetCreate")
        return object()

    def nvmlDeviceGetSupportedEventTypes(self, h: Any) -> int:
        self._enter("nvmlDeviceGetSupportedEventTypes")
        return self._gpu(h).events

    def nvmlDeviceRegisterEvents(self, h: Any, mask: int, event_set: object) -> None:
        self._enter("nvmlDeviceRegisterEvents")
        self._gpu(h)

    def nvmlEventSetWait_v2(self, event_set: object, timeout_ms: int) -> Any:
        """Next queued event (an object or an exception to raise), else a real Timeout."""
        self._enter("nvmlEventSetWait_v2")
        try:
            item = self.events.get(timeout=timeout_ms / 1000.0)
        except queue.Empty:
            raise pynvml.NVMLError_Timeout() from None
        if isinstance(item, Exception):
            raise item
        return item

    def nvmlEventSetFree(self, event_set: object) -> None:
        self._enter("nvmlEventSetFree")

    def push_xid(self, gpu: GpuScript, xid: int) -> None:
        """Queue an Xid critical-error event, as the driver would."""
        self.events.put(SimpleNamespace(device=gpu, eventType=0x8, eventData=xid))

"""Thin facts about NVML shared by the sampler, the Xid watcher and the commands.

The NVML module (``pynvml`` from ``nvidia-ml-py``) is always passed in, never
imported at module level, so tests hand in a stand-in and a machine without a
driver still imports sentinel. Error handling goes by the *name* of the error
class (``NVMLError_GpuIsLost``...), which works for every NVMLError subclass the
module generates and for stand-ins alike.
"""

from __future__ import annotations

import importlib
from typing import Any, Literal

from sentinel.base.errors import ProbeError
from sentinel.vocabulary.samples import ClockEventReason

XidCause = Literal["application", "hardware", "unknown"]

KNOWN_REASON_NAMES: tuple[str, ...] = tuple(ClockEventReason.__members__)

# Xids a misbehaving program causes (restart the server, not the node); the
# k8s device plugin ignores exactly these by default.
XID_APPLICATION = frozenset({13, 31, 43, 45, 68, 109})
# Xids that point at the GPU, its memory or the driver (page a human, drain).
XID_HARDWARE = frozenset({48, 63, 64, 74, 79, 92, 94, 95, 119, 120})

EVENT_TYPE_XID_CRITICAL = 0x8
NVML_TEMPERATURE_GPU = 0
THRESHOLD_SHUTDOWN = 0
THRESHOLD_SLOWDOWN = 1
THRESHOLD_GPU_MAX = 3
NVML_CLOCK_SM = 1
NVML_MEMORY_V2 = 0x02000028
NVML_MEMORY_ERROR_UNCORRECTED = 1
NVML_VOLATILE_ECC = 0

# The capability of this GPU/driver: ask once, then remember the field as absent.
UNSUPPORTED_ERRORS = frozenset(
    {
        "NVMLError_NotSupported",
        "NVMLError_FunctionNotFound",
        "NVMLError_NoPermission",
        "NVMLError_VgpuEccNotSupported",
        "NVMLError_ArgumentVersionMismatch",
        "NVMLError_Deprecated",
        "NVMLLibraryMismatchError",
    }
)
# The GPU itself is gone (fell off the bus, needs a reset, not found any more).
LOST_ERRORS = frozenset({"NVMLError_GpuIsLost", "NVMLError_ResetRequired", "NVMLError_GpuNotFound"})
# The library or driver is gone: nothing answers until NVML is initialised again.
GONE_ERRORS = frozenset(
    {
        "NVMLError_Uninitialized",
        "NVMLError_LibraryNotFound",
        "NVMLError_DriverNotLoaded",
        "NVMLError_LibRmVersionMismatch",
    }
)


class NvmlUnavailable(ProbeError, RuntimeError):
    """NVML cannot be used here (no library, no driver, no GPU); the message says why."""


def error_name(exc: BaseException) -> str:
    """The NVML error class name, e.g. 'NVMLError_GpuIsLost'.

    Never ``str(exc)``: pynvml's ``__str__`` calls into the library for codes it
    does not know, which fails when the library is the problem.
    """
    return type(exc).__name__


def is_nvml_error(nvml: Any, exc: BaseException) -> bool:
    """Whether ``exc`` came from NVML (an NVMLError or a library mismatch)."""
    bases = tuple(
        b
        for b in (getattr(nvml, "NVMLError", None), getattr(nvml, "NVMLLibraryMismatchError", None))
        if isinstance(b, type)
    )
    return bool(bases) and isinstance(exc, bases)


def decode_reasons(mask: int) -> tuple[str, ...]:
    """Names of the set clock-event bits; bits NVML may add later as 'Unknown0x...'."""
    names = [name for name, bit in ClockEventReason.__members__.items() if mask & bit]
    rest = mask & ~sum(ClockEventReason.__members__.values())
    bit = 1
    while rest:
        if rest & bit:
            names.append(f"Unknown0x{bit:x}")
            rest &= ~bit
        bit <<= 1
    return tuple(names)


def classify_xid(xid: int) -> XidCause:
    """Whether an Xid was caused by a program, by the hardware/driver, or is not known."""
    if xid in XID_APPLICATION:
        return "application"
    if xid in XID_HARDWARE:
        return "hardware"
    return "unknown"


def describe_unavailable(name: str) -> str:
    """A plain sentence for why NVML failed to start."""
    reasons = {
        "NVMLError_LibraryNotFound": "libnvidia-ml.so.1 was not found (no NVIDIA driver here, "
        "or the container lacks NVIDIA_DRIVER_CAPABILITIES=utility)",
        "NVMLError_DriverNotLoaded": "the NVIDIA kernel driver is not loaded",
        "NVMLError_LibRmVersionMismatch": "the NVML library and the kernel driver differ in "
        "version (driver upgraded without reloading the module?)",
        "NVMLError_NoPermission": "no permission to open the NVIDIA devices",
        "NVMLError_Uninitialized": "NVML could not be initialised",
    }
    return reasons.get(name, f"NVML failed to initialise ({name})")


def load_nvml() -> Any:
    """Import ``pynvml`` and initialise NVML; raises :class:`NvmlUnavailable` with why."""
    try:
        nvml = importlib.import_module("pynvml")
    except ImportError as exc:
        raise NvmlUnavailable(
            "NVML is not available: the nvidia-ml-py package (module pynvml) is not installed"
        ) from exc
    init_nvml(nvml)
    return nvml


def init_nvml(nvml: Any) -> None:
    """``nvmlInit`` on a given module; raises :class:`NvmlUnavailable` with why."""
    try:
        nvml.nvmlInit()
    except Exception as exc:
        raise NvmlUnavailable(
            f"NVML is not available: {describe_unavailable(error_name(exc))}"
        ) from exc

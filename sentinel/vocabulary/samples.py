"""The samples probes produce, and their JSON-lines record form.

Every probe emits these frozen dataclasses; detectors, recordings and replay
all speak them. A record is a flat JSON object with a ``type`` field naming the
sample class (``canary``, ``gpu``, ``gpu_event``, ``triton``, ``model_files``); unknown fields are
ignored on read so that old recordings keep loading.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from sentinel.base.errors import InputError
from sentinel.vocabulary.model_files import ModelFilesSample

CanaryOutcome = Literal[
    "ok", "timeout", "unreachable", "model_not_ready", "server_error", "bad_response"
]


class ClockEventReason(enum.IntFlag):
    """NVML clock-event ("throttle") reason bits (``nvmlClocksEventReason*`` in nvml.h;
    DCGM uses the same values). Member names are the ones configs and findings use."""

    GpuIdle = 0x1
    ApplicationsClocksSetting = 0x2
    SwPowerCap = 0x4
    HwSlowdown = 0x8
    SyncBoost = 0x10
    SwThermalSlowdown = 0x20
    HwThermalSlowdown = 0x40
    HwPowerBrakeSlowdown = 0x80
    DisplayClockSetting = 0x100


@dataclass(frozen=True, slots=True)
class Agreement:
    """How a canary's outputs compare with the golden reference."""

    max_abs_error: float
    """Largest absolute difference between output and reference, over all elements."""
    cosine: float
    """Mean cosine similarity of output rows with reference rows."""
    top1: float
    """Share of rows whose arg-max matches the reference's arg-max (0..1)."""
    accuracy: float | None = None
    """Share of rows whose arg-max matches the golden labels, when the set has labels."""


@dataclass(frozen=True, slots=True)
class CanaryResult:
    """One canary inference of a golden batch through Triton."""

    TYPE: ClassVar[str] = "canary"
    ts: float
    """Wall time when the request was sent, epoch seconds."""
    model: str
    version: str
    """Version that served it ('' when unknown)."""
    batch_size: int
    outcome: CanaryOutcome
    latency_s: float | None = None
    """Round-trip latency on the monotonic clock; None when no answer came."""
    error: str | None = None
    """Triton's error text, kept verbatim (e.g. a CUDA out-of-memory message)."""
    agreement: Agreement | None = None
    target: str = "triton"
    """'triton' for canaries through the server, 'tensorrt' for direct engine runs."""
    recheck: bool = False
    """Taken sooner than the interval because a detector suspected the model: not a fair
    sample of normal behaviour, so baselines do not learn from it."""


@dataclass(frozen=True, slots=True)
class GpuProcess:
    """A process holding memory on a GPU."""

    pid: int
    used_bytes: int | None
    name: str | None = None
    """Its executable (``nvmlSystemGetProcessName``, else ``/proc/<pid>/comm``); None when
    neither answered. Whose it is: :mod:`sentinel.vocabulary.processes`."""
    parent_pid: int | None = None
    """``PPid`` from ``/proc/<pid>/status`` when readable (the server's children are its)."""


@dataclass(frozen=True, slots=True)
class GpuSample:
    """One NVML reading of one GPU. A field is None where NVML does not support it."""

    TYPE: ClassVar[str] = "gpu"
    ts: float
    index: int
    uuid: str
    name: str | None = None
    compute_capability: str | None = None
    """e.g. '9.0' (a TensorRT plan runs only on the class it was built for)."""
    driver_version: str | None = None
    memory_total_bytes: int | None = None
    memory_used_bytes: int | None = None
    memory_free_bytes: int | None = None
    memory_reserved_bytes: int | None = None
    utilization_gpu_pct: float | None = None
    utilization_memory_pct: float | None = None
    temperature_c: float | None = None
    temperature_slowdown_c: float | None = None
    temperature_shutdown_c: float | None = None
    temperature_gpu_max_c: float | None = None
    power_w: float | None = None
    power_limit_w: float | None = None
    sm_clock_mhz: float | None = None
    sm_clock_max_mhz: float | None = None
    clock_event_reasons: int | None = None
    """Raw NVML clock-event (throttle) reasons bitmask."""
    clock_event_names: tuple[str, ...] = ()
    """Decoded names of the set bits, e.g. ('SwPowerCap',); unknown bits as 'Unknown0x...'."""
    ecc_uncorrected_volatile: int | None = None
    remapped_rows_pending: bool | None = None
    remapped_rows_failure: bool | None = None
    pcie_replay_count: int | None = None
    processes: tuple[GpuProcess, ...] = ()


@dataclass(frozen=True, slots=True)
class GpuEvent:
    """Something that happened to a GPU rather than a reading of it."""

    TYPE: ClassVar[str] = "gpu_event"
    ts: float
    uuid: str
    kind: Literal["xid", "gpu_lost", "nvml_unavailable"]
    xid: int | None = None
    cause: Literal["application", "hardware", "unknown"] = "unknown"
    detail: str = ""


@dataclass(frozen=True, slots=True)
class TritonHealth:
    """The server's own view of itself: health endpoints plus its metrics."""

    TYPE: ClassVar[str] = "triton"
    ts: float
    live: bool
    ready: bool
    model: str | None = None
    model_ready: bool | None = None
    model_versions: tuple[str, ...] = ()
    """Versions reported ready for ``model``."""
    error: str | None = None
    """Why live/ready could not be read (connection refused, timeout, ...)."""
    success_total: float | None = None
    """Counters from Triton's statistics/metrics for ``model`` (cumulative)."""
    failure_total: float | None = None
    failures_by_reason: dict[str, float] = field(default_factory=dict)
    pending_requests: float | None = None
    request_duration_us_total: float | None = None
    queue_duration_us_total: float | None = None
    uptime_s: float | None = None
    """Seconds since the server process started, when known."""
    inference_count_total: float | None = None
    """Inferences (a batch of n counts n) and model executions (batches) so far: their
    ratio is the mean batch the dynamic batcher built. None in older recordings."""
    exec_count_total: float | None = None
    compute_input_us_total: float | None = None
    """Cumulative backend time spent reading inputs, running the model and writing outputs
    (``nv_inference_compute_{input,infer,output}_duration_us``)."""
    compute_infer_us_total: float | None = None
    compute_output_us_total: float | None = None
    request_quantiles_us: dict[str, float] = field(default_factory=dict)
    """Request time quantiles over Triton's sliding window (60 s in 2.51), keyed by the
    quantile as Triton writes it ('0.5', '0.99'); only when the server runs with
    ``--metrics-config summary_latencies=true``, else empty."""


@dataclass(frozen=True, slots=True)
class StreamResult:
    """One streaming canary: a golden prompt through a decoupled (generative) model."""

    TYPE: ClassVar[str] = "stream"
    ts: float
    """Wall time when the request was sent, epoch seconds."""
    model: str
    version: str
    """Version that served it ('' when unknown)."""
    prompt: int
    """Row of the golden set whose prompt was sent."""
    outcome: CanaryOutcome
    ttft_s: float | None = None
    """Time to first token on the monotonic clock; None when no token came."""
    tokens: int = 0
    """Tokens (non-empty responses) received."""
    duration_s: float | None = None
    """Request sent to stream end (or to giving up)."""
    itl_s: float | None = None
    """Mean inter-token latency; None with fewer than two tokens."""
    max_gap_s: float | None = None
    """Longest wait for a token, the first one included."""
    tokens_per_s: float | None = None
    """Decode rate: tokens after the first over the time from first to last token."""
    completed: bool = False
    """The stream ended on its own (every response sent) before any timeout."""
    stalled: bool = False
    """A token took longer than the stall timeout, so the canary gave up on the stream."""
    exact_match: bool | None = None
    """Generated text and token count equal the golden reference (greedy decoding)."""
    edit_distance: float | None = None
    """Normalised edit distance to the golden text: 0 identical, 1 nothing alike."""
    error: str | None = None
    recheck: bool = False
    """Taken sooner than the interval because a detector suspected the model."""


Sample = CanaryResult | GpuSample | GpuEvent | TritonHealth | ModelFilesSample | StreamResult
SAMPLE_TYPES: dict[str, type[Any]] = {
    c.TYPE: c
    for c in (CanaryResult, GpuSample, GpuEvent, TritonHealth, ModelFilesSample, StreamResult)
}


def to_record(sample: Sample) -> dict[str, Any]:
    """A JSON-ready dict of a sample, with its ``type``."""
    record: dict[str, Any] = {"type": sample.TYPE}
    record.update(dataclasses.asdict(sample))
    return record


class RecordError(InputError, ValueError):
    """A record that is not a valid sample; the message names the field."""


TS_RANGE = (-62135596800.0, 253402300799.0)
"""Epoch seconds of year 1 to 9999 (UTC): a sample's time outside is not a time (an
epoch in milliseconds lands far past it)."""


def from_record(record: dict[str, Any]) -> Sample:
    """Rebuild a sample from :func:`to_record`'s output (ignores unknown fields).

    A field of the wrong type, a null where a value is required, or a ``ts`` that is not
    a finite time in :data:`TS_RANGE` is a :class:`RecordError` naming the field.
    """
    kind = record.get("type")
    cls = SAMPLE_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise RecordError(f"type: unknown sample type {kind!r}")
    sample = typing.cast(Sample, _build(cls, record))
    if not TS_RANGE[0] <= sample.ts <= TS_RANGE[1]:  # False for NaN too
        raise RecordError(
            f"ts: {sample.ts!r} is not epoch seconds between year 1 and 9999 "
            "(milliseconds? divide by 1000)"
        )
    return sample


def _build(cls: type[Any], data: dict[str, Any]) -> Any:
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        try:
            kwargs[f.name] = _coerce(hints[f.name], data[f.name])
        except (TypeError, ValueError, OverflowError) as exc:
            raise RecordError(f"{f.name}: {exc}") from exc
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise RecordError(str(exc)) from exc


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _coerce(hint: Any, value: Any) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value) if len(inner) == 1 else value
    if value is None:
        raise TypeError("required, got null")
    if origin is Literal:
        if value not in args:
            raise TypeError(f"expected one of {', '.join(map(repr, args))}, got {_show(value)}")
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise TypeError(f"expected a list, got {_show(value)}")
        item = args[0]
        return tuple(_coerce(item, v) for v in value)
    if origin is dict:
        if not isinstance(value, dict):
            raise TypeError(f"expected an object, got {_show(value)}")
        return {_coerce(args[0], k): _coerce(args[1], v) for k, v in value.items()}
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise TypeError(f"expected an object, got {_show(value)}")
        return _build(typing.cast(type[Any], hint), value)
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)  # OverflowError for an integer past float's range
    if hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if hint in (float, int):
        raise TypeError(f"expected a number, got {_show(value)}")
    if hint is bool and not isinstance(value, bool):
        raise TypeError(f"expected true/false, got {_show(value)}")
    if hint is str and not isinstance(value, str):
        raise TypeError(f"expected a string, got {_show(value)}")
    return value

"""The Xid watcher thread, against NvmlStandIn (a real Xid 31 is in test_replay_traces)."""

from __future__ import annotations

import asyncio
import threading
from types import SimpleNamespace

import pynvml
import pytest

from sentinel.base.clock import FakeClock
from sentinel.probes.nvml import classify_xid
from sentinel.probes.xid import XidWatcher
from sentinel.testing.nvml import ERROR_CLASSES, GpuScript, NvmlStandIn
from sentinel.testing.sinks import RecordingSink
from sentinel.vocabulary.samples import GpuEvent


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


# The lists (k8s device plugin's application Xids; NVIDIA's hardware/driver ones).
APPLICATION = (13, 31, 43, 45, 68, 109)
HARDWARE = (48, 63, 64, 74, 79, 92, 94, 95, 119, 120)


@pytest.mark.parametrize(
    ("xid", "cause"),
    [
        *((x, "application") for x in APPLICATION),
        *((x, "hardware") for x in HARDWARE),
        (62, "unknown"),
        (154, "unknown"),
    ],
)
def test_xid_classification(xid: int, cause: str) -> None:
    """Program-caused Xids are application, memory/bus/driver ones hardware, others unknown."""
    assert cause == classify_xid(xid)


async def test_xid_event_reaches_the_sink_with_uuid_and_cause() -> None:
    """An Xid from the driver becomes GpuEvent(kind='xid') for that GPU, on the loop."""
    a, b = GpuScript(uuid="GPU-a"), GpuScript(uuid="GPU-b")
    nvml = NvmlStandIn([a, b])
    clock = FakeClock()
    sink = RecordingSink()
    watcher = XidWatcher(nvml, None, clock, wait_ms=20)
    task = asyncio.create_task(watcher.run(sink))
    nvml.push_xid(b, 79)
    nvml.push_xid(a, 13)
    await sink.wait_for(2)
    await _stop(task)
    assert [
        GpuEvent(
            ts=clock.now(),
            uuid="GPU-b",
            kind="xid",
            xid=79,
            cause="hardware",
            detail="Xid 79 (hardware)",
        ),
        GpuEvent(
            ts=clock.now(),
            uuid="GPU-a",
            kind="xid",
            xid=13,
            cause="application",
            detail="Xid 13 (application)",
        ),
    ] == sink.got
    assert {"GPU-a": 0x8, "GPU-b": 0x8} == watcher.registered


async def test_registers_only_the_supported_mask_and_skips_gpus_without_xid() -> None:
    """A GPU whose supported event types lack Xid is skipped; the status says so."""
    old = GpuScript(uuid="GPU-old", events=0x1 | 0x2)
    new = GpuScript(uuid="GPU-new")
    watcher = XidWatcher(NvmlStandIn([old, new]), None, FakeClock(), wait_ms=10)
    task = asyncio.create_task(watcher.run(RecordingSink()))
    await asyncio.to_thread(watcher.ready.wait, 5)
    await _stop(task)
    assert {"GPU-new": 0x8} == watcher.registered
    assert "GPU-old: Xid events not supported" in watcher.status


async def test_nothing_to_register_ends_run_with_a_reason() -> None:
    """With no GPU supporting Xid events, run() returns and status explains."""
    nvml = NvmlStandIn([GpuScript(uuid="GPU-old", events=0x1)])
    watcher = XidWatcher(nvml, None, FakeClock(), wait_ms=10)
    await asyncio.wait_for(watcher.run(RecordingSink()), 5)
    assert "Xid events unavailable: GPU-old: Xid events not supported" == watcher.status


@pytest.mark.parametrize(
    "fn",
    [
        "nvmlEventSetCreate",
        "nvmlDeviceGetSupportedEventTypes",
        "nvmlDeviceRegisterEvents",
        "nvmlDeviceGetCount",
    ],
)
@pytest.mark.parametrize("error", ERROR_CLASSES, ids=lambda c: c.__name__)
async def test_registration_errors_end_quietly(error: type[Exception], fn: str) -> None:
    """Any NVML error while registering ends the watcher with a status, never a crash."""
    nvml = NvmlStandIn()
    nvml.fail[fn] = error
    watcher = XidWatcher(nvml, None, FakeClock(), wait_ms=10)
    await asyncio.wait_for(watcher.run(RecordingSink()), 5)
    assert watcher.status.startswith("Xid events unavailable")
    assert {} == watcher.registered


async def test_failed_wait_registers_again_and_lost_gpu_is_reported() -> None:
    """A GpuIsLost from the wait gives gpu_lost, then the set is made again and Xids flow."""
    gpu = GpuScript(uuid="GPU-a")
    nvml = NvmlStandIn([gpu])
    sink = RecordingSink()
    watcher = XidWatcher(nvml, None, FakeClock(), wait_ms=10, retry_s=0.01)
    nvml.events.put(pynvml.NVMLError_GpuIsLost())
    task = asyncio.create_task(watcher.run(sink))
    await sink.wait_for(1)
    nvml.push_xid(gpu, 48)
    await sink.wait_for(2)
    await _stop(task)
    assert [("gpu_lost", None), ("xid", 48)] == [
        (e.kind, e.xid) for e in sink.got if isinstance(e, GpuEvent)
    ]
    assert 2 == nvml.calls.count("nvmlEventSetCreate")


@pytest.mark.parametrize("error", ERROR_CLASSES, ids=lambda c: c.__name__)
async def test_any_wait_error_keeps_the_watcher_alive(error: type[Exception]) -> None:
    """Every NVML error class from the wait is survived: a later Xid still arrives."""
    gpu = GpuScript(uuid="GPU-a")
    nvml = NvmlStandIn([gpu])
    sink = RecordingSink()
    watcher = XidWatcher(nvml, None, FakeClock(), wait_ms=10, retry_s=0.0)
    nvml.events.put(error())
    nvml.push_xid(gpu, 31)
    task = asyncio.create_task(watcher.run(sink))
    await sink.wait_for(1 if error is not pynvml.NVMLError_GpuIsLost else 2)
    await _stop(task)
    assert [31] == [e.xid for e in sink.got if isinstance(e, GpuEvent) and e.kind == "xid"]


async def test_nonsense_event_data_is_ignored() -> None:
    """Events with a negative or non-integer Xid, or another event type, emit nothing."""
    gpu = GpuScript(uuid="GPU-a")
    nvml = NvmlStandIn([gpu])
    sink = RecordingSink()
    watcher = XidWatcher(nvml, None, FakeClock(), wait_ms=10)
    for data in (
        SimpleNamespace(device=gpu, eventType=0x8, eventData=-1),
        SimpleNamespace(device=gpu, eventType=0x8, eventData="79"),
        SimpleNamespace(device=gpu, eventType=0x4, eventData=79),
        object(),
    ):
        nvml.events.put(data)
    nvml.push_xid(gpu, 94)
    task = asyncio.create_task(watcher.run(sink))
    await sink.wait_for(1)
    await _stop(task)
    assert [94] == [e.xid for e in sink.got if isinstance(e, GpuEvent)]


async def test_cancelling_run_stops_the_thread() -> None:
    """Cancelling run() ends the watcher thread and frees the event set."""
    nvml = NvmlStandIn()
    watcher = XidWatcher(nvml, None, FakeClock(), wait_ms=10)
    task = asyncio.create_task(watcher.run(RecordingSink()))
    await asyncio.to_thread(watcher.ready.wait, 5)
    await _stop(task)
    alive = [t for t in threading.enumerate() if t.name == "xid-watcher"]
    assert ([], "nvmlEventSetFree") == (alive, nvml.calls[-1])


async def test_watch_selected_uuids_only() -> None:
    """Given UUIDs, only those GPUs are registered."""
    nvml = NvmlStandIn([GpuScript(uuid="GPU-a"), GpuScript(uuid="GPU-b")])
    watcher = XidWatcher(nvml, ["GPU-b"], FakeClock(), wait_ms=10)
    task = asyncio.create_task(watcher.run(RecordingSink()))
    await asyncio.to_thread(watcher.ready.wait, 5)
    await _stop(task)
    assert ["GPU-b"] == list(watcher.registered)

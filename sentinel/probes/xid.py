"""The Xid watcher: NVML critical-error events, on a thread of their own.

``nvmlEventSetWait_v2`` blocks, so it runs on a plain thread with a short
timeout (so it can stop) and hands each event to the event loop with
``loop.call_soon_threadsafe``. Registration asks only for what the GPU
supports; a wait that fails for any reason but a timeout drops the event set
and registers again after a pause, as NVIDIA's k8s device plugin does.

Given :class:`Ticks`, the same thread also takes the GPU samples between its waits
(the wait's timeout ends at the next sample), so NVML needs one thread, not two: the
sampler's ticks no longer go through asyncio's default executor, and a sampler with
no Xid watcher behind it keeps that executor's thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from sentinel.base.clock import Clock, SystemClock
from sentinel.probes import nvml as nv
from sentinel.vocabulary.ports import SampleSink
from sentinel.vocabulary.samples import GpuEvent, Sample

log = structlog.get_logger(__name__)

Emit = Callable[[GpuEvent | None], None]
EmitBatch = Callable[[list[Sample]], None]


@dataclass(frozen=True)
class Ticks:
    """Periodic work the watcher's thread does between waits (the GPU sampler's tick)."""

    interval_s: float
    work: Callable[[], list[Sample]]
    """Blocking; returns the samples to hand to the sink (must not raise)."""


class XidWatcher:
    """Turns Xid critical errors of the watched GPUs into ``GpuEvent(kind="xid")``."""

    def __init__(
        self,
        nvml: Any,
        uuids: list[str] | None = None,
        clock: Clock | None = None,
        *,
        wait_ms: int = 1000,
        retry_s: float = 5.0,
        ticks: Ticks | None = None,
    ) -> None:
        self._nvml = nvml
        self._ticks = ticks
        self._next_tick = 0.0
        self._uuids = uuids
        self._clock: Clock = clock or SystemClock()
        self._wait_ms = wait_ms
        self._retry_s = retry_s
        self._stop = threading.Event()
        self.registered: dict[str, int] = {}
        """UUID -> event mask registered, after the thread started."""
        self.status = "not started"
        """One line for people: what was registered, or why nothing was."""
        self.ready = threading.Event()
        """Set once the first registration attempt is over (either way)."""

    async def run(self, sink: SampleSink) -> None:
        """Watch until cancelled, passing every event to ``sink``; the thread stops with it.

        Without ticks it returns early when nothing could be registered (``status`` says
        why); with ticks it keeps ticking.
        """
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[GpuEvent | list[Sample] | None] = asyncio.Queue()

        def emit(event: GpuEvent | list[Sample] | None) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, event)

        def body() -> None:
            try:
                self.watch(emit, emit)
            finally:
                # tells run() the thread is over; a closed loop means nobody waits
                with contextlib.suppress(RuntimeError):
                    emit(None)

        self._stop.clear()
        thread = threading.Thread(target=body, name="xid-watcher", daemon=True)
        thread.start()
        try:
            while (item := await queue.get()) is not None:
                for sample in item if isinstance(item, list) else [item]:
                    await sink(sample)
        finally:
            self._stop.set()
            await asyncio.to_thread(thread.join, self._wait_ms / 1000.0 + 5.0)

    def stop(self) -> None:
        """Ask the thread to end (it notices within ``wait_ms``)."""
        self._stop.set()

    def watch(self, emit: Emit, emit_batch: EmitBatch | None = None) -> None:
        """The thread's body: register, wait, emit (and tick); returns when stopped.

        Without ticks it returns when nothing could be registered; with ticks it goes on
        ticking, Xid-blind.
        """
        event_set: Any = None
        gave_up = False
        register_at = self._next_tick = self._clock.monotonic()
        try:
            while not self._stop.is_set():
                if event_set is None and not gave_up and self._clock.monotonic() >= register_at:
                    event_set = self._register()
                    self.ready.set()
                    if event_set is None:
                        if self._ticks is None:
                            return
                        gave_up = True
                timeout_ms = self._tick(emit_batch)
                if event_set is None:  # waiting to register again, or Xid-blind: just tick
                    self._stop.wait(timeout_ms / 1000.0)
                    continue
                try:
                    data = self._nvml.nvmlEventSetWait_v2(event_set, timeout_ms)
                except Exception as exc:
                    name = nv.error_name(exc)
                    if name == "NVMLError_Timeout":
                        continue
                    self._wait_failed(name, emit)
                    self._free(event_set)
                    event_set = None
                    if self._ticks is None:
                        self._stop.wait(self._retry_s)
                        register_at = self._clock.monotonic()
                    else:  # keep ticking through the pause
                        register_at = self._clock.monotonic() + self._retry_s
                    continue
                self._handle(data, emit)
        except RuntimeError:
            return  # the event loop closed under us: nobody is listening any more
        finally:
            self._free(event_set)
            self.ready.set()

    def _tick(self, emit_batch: EmitBatch | None) -> int:
        """Run the ticks' work when due; the wait's timeout (ms) up to the next one."""
        if self._ticks is None:
            return self._wait_ms
        interval, now = self._ticks.interval_s, self._clock.monotonic()
        if now >= self._next_tick:
            samples = self._ticks.work()
            if samples and emit_batch is not None:
                emit_batch(samples)
            self._next_tick += interval
            now = self._clock.monotonic()
            if self._next_tick < now:  # a slow tick: skip the missed slots, no burst
                self._next_tick = now + interval - ((now - self._next_tick) % interval)
        return max(0, min(self._wait_ms, math.ceil((self._next_tick - now) * 1000)))

    def _register(self) -> Any:
        n = self._nvml
        try:
            event_set = n.nvmlEventSetCreate()
        except Exception as exc:
            self.status = (
                f"Xid events unavailable: cannot create an event set ({nv.error_name(exc)})"
            )
            log.warning("xid_events_unavailable", reason=self.status)
            return None
        notes = []
        for uuid, handle in self._handles():
            try:
                supported = int(n.nvmlDeviceGetSupportedEventTypes(handle))
                mask = supported & nv.EVENT_TYPE_XID_CRITICAL
                if not mask:
                    notes.append(f"{uuid}: Xid events not supported")
                    continue
                n.nvmlDeviceRegisterEvents(handle, mask, event_set)
                self.registered[uuid] = mask
            except Exception as exc:
                notes.append(f"{uuid}: registration failed ({nv.error_name(exc)})")
        if not self.registered:
            self._free(event_set)
            self.status = "Xid events unavailable: " + ("; ".join(notes) or "no GPU to watch")
            log.warning("xid_events_unavailable", reason=self.status)
            return None
        self.status = f"Xid events registered on {len(self.registered)} GPU(s)" + (
            f" ({'; '.join(notes)})" if notes else ""
        )
        log.info("xid_events_registered", status=self.status)
        return event_set

    def _handles(self) -> list[tuple[str, Any]]:
        n = self._nvml
        out: list[tuple[str, Any]] = []
        try:
            if self._uuids is not None:
                return [(u, n.nvmlDeviceGetHandleByUUID(u)) for u in self._uuids]
            for i in range(int(n.nvmlDeviceGetCount())):
                handle = n.nvmlDeviceGetHandleByIndex(i)
                out.append((_uuid(n, handle), handle))
        except Exception as exc:
            log.warning("xid_cannot_list_gpus", error=nv.error_name(exc))
        return out

    def _wait_failed(self, name: str, emit: Emit) -> None:
        log.warning("xid_wait_failed_registering_again", error=name)
        if name in nv.LOST_ERRORS:
            emit(
                GpuEvent(
                    ts=self._clock.now(),
                    uuid="",
                    kind="gpu_lost",
                    detail=f"Xid event wait failed: {name}",
                )
            )

    def _handle(self, data: Any, emit: Emit) -> None:
        event_type = getattr(data, "eventType", None)
        xid = getattr(data, "eventData", None)
        if not isinstance(event_type, int) or not event_type & nv.EVENT_TYPE_XID_CRITICAL:
            return
        if not isinstance(xid, int) or isinstance(xid, bool) or xid < 0:
            log.warning("xid_nonsense_ignored", xid=repr(xid))
            return
        uuid = _uuid(self._nvml, getattr(data, "device", None))
        cause = nv.classify_xid(xid)
        emit(
            GpuEvent(
                ts=self._clock.now(),
                uuid=uuid,
                kind="xid",
                xid=xid,
                cause=cause,
                detail=f"Xid {xid} ({cause})",
            )
        )

    def _free(self, event_set: Any) -> None:
        if event_set is None:
            return
        try:
            self._nvml.nvmlEventSetFree(event_set)
        except Exception as exc:
            log.debug("xid_event_set_free_failed", error=nv.error_name(exc))


def _uuid(nvml: Any, handle: Any) -> str:
    try:
        value = nvml.nvmlDeviceGetUUID(handle)
    except Exception:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) else ""

"""GPU samples read from an exporter that already watches the GPU, for a sidecar without NVML.

On GKE's managed drivers a container that requests no ``nvidia.com/gpu`` gets no
``libnvidia-ml``, so the NVML sampler is blind there. Two endpoints see the GPU anyway:

* ``gpu.source: triton``: Triton's own ``/metrics`` (``triton.metrics_url``), whose
  ``nv_gpu_*`` gauges are labelled ``gpu_uuid``. It gives utilization, memory used and
  total, power and power limit. It cannot see temperature, clocks, clock-event
  (throttle) reasons, ECC or row remapping, per-process memory (so no foreign-memory
  attribution) or Xid events; the GPU index is the order Triton lists the GPUs in.
* ``gpu.source: dcgm``: a dcgm-exporter (``gpu.metrics_url``), labelled ``gpu`` (index)
  and ``UUID``. It gives utilization, framebuffer used/free/reserved, temperature,
  power, SM clock, PCIe replays, row-remap failures, and, when the exporter's counters
  include them, clock-event reasons, power limit, slowdown/shutdown temperatures and
  volatile double-bit ECC errors. It cannot see per-process memory. Xids: the exporter
  keeps the *last* Xid per GPU, so a change becomes a ``GpuEvent``; a repeat of the same
  Xid, or one already there when sentinel starts, is not seen.

Fields a source cannot see stay None, so the detectors that need them stay quiet rather
than guess. A failing scrape (or one without GPU series) is reported once per outage as
an ``nvml_unavailable`` event, which ``sentinel_gpu_source_up`` turns into 0.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import aiohttp
import structlog
from prometheus_client.parser import text_string_to_metric_families

from sentinel.base import aio
from sentinel.base.clock import Clock
from sentinel.base.http_body import read_within
from sentinel.probes.nvml import classify_xid, decode_reasons
from sentinel.probes.settings import GpuSettings
from sentinel.vocabulary.ports import SampleSink
from sentinel.vocabulary.samples import GpuEvent, GpuSample, Sample

log = structlog.get_logger(__name__)

ScrapeKind = Literal["triton", "dcgm"]
Fetch = Callable[[str, float], Awaitable[str]]
MIB = 1 << 20


@dataclass
class _Gpu:
    """One GPU's series of one scrape: its labels and values by metric name."""

    index: int
    uuid: str
    labels: dict[str, str] = field(default_factory=dict)
    values: dict[str, float] = field(default_factory=dict)


def _gpus(text: str, uuid_label: str, index_label: str | None) -> list[_Gpu]:
    """The GPUs of a Prometheus text exposition, in the order they first appear."""
    found: dict[str, _Gpu] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            uuid = s.labels.get(uuid_label)
            if not uuid:
                continue
            gpu = found.get(uuid)
            if gpu is None:
                index = s.labels.get(index_label or "", "")
                position = int(index) if index.isdigit() else len(found)
                gpu = found[uuid] = _Gpu(position, uuid, dict(s.labels))
            # the parser names counter samples NAME_total even where the text does not
            gpu.values[s.name.removesuffix("_total")] = s.value
    return list(found.values())


def _selected(gpus: list[_Gpu], devices: Sequence[int | str]) -> list[_Gpu]:
    if not devices:
        return gpus
    return [g for g in gpus if g.index in devices or g.uuid in devices]


def parse_triton(text: str, ts: float, devices: Sequence[int | str] = ()) -> list[GpuSample]:
    """GpuSamples from Triton's ``nv_gpu_*`` gauges; ValueError when the text is not metrics."""
    samples = []
    for g in _selected(_gpus(text, "gpu_uuid", None), devices):
        v = g.values.get
        util, total = v("nv_gpu_utilization"), v("nv_gpu_memory_total_bytes")
        used = v("nv_gpu_memory_used_bytes")
        samples.append(
            GpuSample(
                ts=ts,
                index=g.index,
                uuid=g.uuid,
                memory_total_bytes=_int(total),
                memory_used_bytes=_int(used),
                memory_free_bytes=_int(total - used)
                if total is not None and used is not None
                else None,
                utilization_gpu_pct=util * 100.0 if util is not None else None,
                power_w=v("nv_gpu_power_usage"),
                power_limit_w=v("nv_gpu_power_limit"),
            )
        )
    return samples


def parse_dcgm(
    text: str, ts: float, devices: Sequence[int | str] = (), pod: str | None = None
) -> list[GpuSample]:
    """GpuSamples from dcgm-exporter's ``DCGM_FI_*`` series (of ``pod``'s GPUs when given)."""
    gpus = _selected(_gpus(text, "UUID", "gpu"), devices)
    if pod is not None:
        gpus = [g for g in gpus if g.labels.get("pod") == pod]
    return [_dcgm_sample(g, ts) for g in gpus]


def _dcgm_sample(g: _Gpu, ts: float) -> GpuSample:
    def v(*names: str) -> float | None:
        return next((g.values[n] for n in names if n in g.values), None)

    used, free = v("DCGM_FI_DEV_FB_USED"), v("DCGM_FI_DEV_FB_FREE")
    reserved = v("DCGM_FI_DEV_FB_RESERVED")
    total = None
    if used is not None and free is not None:
        total = used + free + (reserved or 0.0)
    reasons = v("DCGM_FI_DEV_CLOCKS_EVENT_REASONS", "DCGM_FI_DEV_CLOCK_THROTTLE_REASONS")
    remap_failure = v("DCGM_FI_DEV_ROW_REMAP_FAILURE")
    remap_pending = v("DCGM_FI_DEV_ROW_REMAP_PENDING")
    return GpuSample(
        ts=ts,
        index=g.index,
        uuid=g.uuid,
        name=g.labels.get("modelName"),
        memory_total_bytes=_int(total * MIB) if total is not None else None,
        memory_used_bytes=_int(used * MIB) if used is not None else None,
        memory_free_bytes=_int(free * MIB) if free is not None else None,
        memory_reserved_bytes=_int(reserved * MIB) if reserved is not None else None,
        utilization_gpu_pct=v("DCGM_FI_DEV_GPU_UTIL"),
        utilization_memory_pct=v("DCGM_FI_DEV_MEM_COPY_UTIL"),
        temperature_c=v("DCGM_FI_DEV_GPU_TEMP"),
        temperature_slowdown_c=v("DCGM_FI_DEV_SLOWDOWN_TEMP"),
        temperature_shutdown_c=v("DCGM_FI_DEV_SHUTDOWN_TEMP"),
        power_w=v("DCGM_FI_DEV_POWER_USAGE"),
        power_limit_w=v("DCGM_FI_DEV_POWER_MGMT_LIMIT", "DCGM_FI_DEV_ENFORCED_POWER_LIMIT"),
        sm_clock_mhz=v("DCGM_FI_DEV_SM_CLOCK"),
        clock_event_reasons=_int(reasons),
        clock_event_names=decode_reasons(int(reasons)) if reasons is not None else (),
        ecc_uncorrected_volatile=_int(v("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL")),
        remapped_rows_pending=remap_pending > 0 if remap_pending is not None else None,
        remapped_rows_failure=remap_failure > 0 if remap_failure is not None else None,
        pcie_replay_count=_int(v("DCGM_FI_DEV_PCIE_REPLAY_COUNTER")),
    )


def last_xids(
    text: str, devices: Sequence[int | str] = (), pod: str | None = None
) -> dict[str, int]:
    """dcgm-exporter's last Xid per GPU UUID (0: none since the exporter started)."""
    gpus = _selected(_gpus(text, "UUID", "gpu"), devices)
    return {
        g.uuid: int(g.values["DCGM_FI_DEV_XID_ERRORS"])
        for g in gpus
        if "DCGM_FI_DEV_XID_ERRORS" in g.values and (pod is None or g.labels.get("pod") == pod)
    }


def _int(value: float | None) -> int | None:
    return int(value) if value is not None else None


MAX_PAGE_BYTES = 16 * 1024**2
"""The largest metrics page read (a DCGM exporter on 8 GPUs writes ~100 KB)."""


async def fetch_text(url: str, timeout_s: float) -> str:
    """GET ``url`` and return its body; raises aiohttp errors, TimeoutError or ValueError."""
    async with aiohttp.ClientSession() as session:
        return await aio.wait_for(_read(session, url), timeout_s)


async def _read(session: aiohttp.ClientSession, url: str) -> str:
    async with session.get(url, allow_redirects=False) as response:
        response.raise_for_status()
        body = await read_within(response, MAX_PAGE_BYTES)  # BodyTooLarge: a ValueError
    return body.decode("utf-8", "replace")


class ScrapedGpuSource:
    """The ``triton`` or ``dcgm`` GPU source as a daemon probe: samples every interval."""

    name = "gpu"

    def __init__(
        self,
        kind: ScrapeKind,
        url: str,
        settings: GpuSettings,
        clock: Clock,
        fetch: Fetch = fetch_text,
    ) -> None:
        self.kind = kind
        self.url = url
        self._settings = settings
        self._clock = clock
        self._fetch = fetch
        self._blind = False  # an outage is reported once, not every tick
        self._seen: set[str] = set()
        self._xids: dict[str, int] | None = None  # None until the first scrape

    async def tick(self) -> list[Sample]:
        """One scrape as samples (and events: a blind source, a lost GPU, a new Xid)."""
        ts = self._clock.now()
        try:
            text = await self._fetch(self.url, self._settings.scrape_timeout_s)
            samples, xids = self._parse(text, ts)
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
            why = str(exc) or type(exc).__name__
            return self._blinded(ts, f"{self.kind} metrics at {self.url}: {why}")
        if not samples:
            return self._blinded(ts, f"{self.kind} metrics at {self.url} hold no GPU series")
        out: list[Sample] = []
        current = {s.uuid for s in samples}
        for uuid in sorted(self._seen - current):
            out.append(GpuEvent(ts=ts, uuid=uuid, kind="gpu_lost", detail=f"not in {self.kind}"))
        self._seen, self._blind = current, False
        out.extend(samples)
        out.extend(self._new_xids(ts, xids))
        return out

    def _parse(self, text: str, ts: float) -> tuple[list[GpuSample], dict[str, int]]:
        devices = self._settings.devices
        if self.kind == "triton":
            return parse_triton(text, ts, devices), {}
        pod = self._settings.dcgm_pod
        return parse_dcgm(text, ts, devices, pod), last_xids(text, devices, pod)

    def _new_xids(self, ts: float, xids: dict[str, int]) -> list[GpuEvent]:
        before, self._xids = self._xids, xids
        if before is None:  # Xids already there at start happened at an unknown time
            return []
        return [
            GpuEvent(ts=ts, uuid=uuid, kind="xid", xid=xid, cause=classify_xid(xid),
                     detail=f"last Xid reported by dcgm-exporter changed to {xid}")
            for uuid, xid in sorted(xids.items())
            if xid and before.get(uuid) != xid
        ]  # fmt: skip

    def _blinded(self, ts: float, detail: str) -> list[Sample]:
        if self._blind:
            return []
        self._blind = True
        log.warning("gpu_source_blind", source=self.kind, detail=detail)
        return [GpuEvent(ts=ts, uuid="", kind="nvml_unavailable", detail=detail)]

    async def once(self) -> list[Sample]:
        return await self.tick()

    async def run(self, sink: SampleSink, clock: Clock) -> None:
        """Sample every ``gpu.interval_s`` until cancelled."""
        while True:
            for sample in await self.tick():
                await sink(sample)
            await clock.sleep(self._settings.interval_s)

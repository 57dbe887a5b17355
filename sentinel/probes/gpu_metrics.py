"""Prometheus gauges for what sentinel adds over Triton's and dcgm-exporter's GPU metrics.

Those already export utilization, memory used, power, temperature and clocks.
What they lack and sentinel knows: which clock-event reason is active (by
name), how far the GPU is from its slowdown temperature, how much memory
processes *other than Triton* hold, how full memory is, and Xids by cause.

:class:`GpuTelemetry` keeps the latest state (feed it every sample, live or
replayed); :class:`GpuCollector` turns it into metrics on an injected registry.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from sentinel.base.clock import Clock
from sentinel.probes.nvml import KNOWN_REASON_NAMES
from sentinel.vocabulary.processes import DEFAULT_SERVER_PROCESSES, Ownership, ownership
from sentinel.vocabulary.samples import GpuEvent, GpuSample, Sample

ServerPids = Callable[[], Iterable[int]] | Iterable[int]


class GpuTelemetry:
    """The latest sample of each GPU, lost GPUs and Xid counts, from a sample stream."""

    def __init__(self, clock: Clock, stale_after_s: float = 30.0) -> None:
        self._clock = clock
        self._stale_after_s = stale_after_s
        self._latest: dict[str, GpuSample] = {}
        self._seen_at: dict[str, float] = {}
        self._lost: set[str] = set()
        self.nvml_available: bool | None = None
        """None until the first GPU sample or event says either way."""
        self.xid_counts: Counter[tuple[int, str]] = Counter()
        """(xid, cause) -> events seen."""

    def observe(self, sample: Sample) -> None:
        """Take in one sample; ignores non-GPU samples."""
        if isinstance(sample, GpuSample):
            self._latest[sample.uuid] = sample
            self._seen_at[sample.uuid] = self._clock.monotonic()
            self._lost.discard(sample.uuid)
            self.nvml_available = True
        elif isinstance(sample, GpuEvent):
            if sample.kind == "xid" and sample.xid is not None:
                self.xid_counts[(sample.xid, sample.cause)] += 1
            elif sample.kind == "gpu_lost":
                self._lost.update([sample.uuid] if sample.uuid else self._latest)
            elif sample.kind == "nvml_unavailable":
                self.nvml_available = False

    async def sink(self, sample: Sample) -> None:
        """:meth:`observe` as a :data:`~sentinel.vocabulary.ports.SampleSink`."""
        self.observe(sample)

    def latest(self) -> list[GpuSample]:
        """Latest sample of each GPU ever seen, by index."""
        return sorted(self._latest.values(), key=lambda s: (s.index, s.uuid))

    def is_up(self, uuid: str) -> bool:
        """Answering NVML now: sampled recently, not lost since, NVML available."""
        seen = self._seen_at.get(uuid)
        return (
            self.nvml_available is True
            and uuid not in self._lost
            and seen is not None
            and self._clock.monotonic() - seen <= self._stale_after_s
        )


class GpuCollector(Collector):
    """Exports :class:`GpuTelemetry` as ``sentinel_gpu_*`` metrics.

    ``server_pids`` names Triton's process ids (a collection, or a callable for
    pids that change with restarts) and ``server_names`` its processes by name
    (``server_processes``); memory held by processes that are not the server's
    counts as foreign (:mod:`sentinel.vocabulary.processes`). While the server is
    identified neither way the foreign-memory gauge is left out rather than guessed.
    NVML gives the pids of the PID namespace it is asked from (seen on an H200 with
    driver 580 inside a pod), so a sidecar sharing the pod's process namespace
    sees the server's pids and names.
    """

    def __init__(
        self,
        source: GpuTelemetry,
        registry: CollectorRegistry | None = None,
        server_pids: ServerPids = (),
        server_names: Sequence[str] = DEFAULT_SERVER_PROCESSES,
    ) -> None:
        self._source = source
        self._server_pids = server_pids
        self._server_names = list(server_names)
        if registry is not None:
            registry.register(self)

    def _pids(self) -> set[int]:
        pids = self._server_pids() if callable(self._server_pids) else self._server_pids
        return set(pids)

    def describe(self) -> Iterator[Metric]:
        return iter(self._families())

    def _families(self) -> list[Metric]:
        # gpu = the index (as dcgm-exporter), gpu_uuid = the UUID (as Triton and sentinel's
        # incidents): one label set across the three sources
        gl = ["gpu", "gpu_uuid"]
        return [
            GaugeMetricFamily("sentinel_gpu_up", "1 while NVML answers for this GPU.", labels=gl),
            GaugeMetricFamily(
                "sentinel_gpu_clock_event_reason",
                "1 while this clock-event (throttle) reason is active, by NVML name.",
                labels=[*gl, "reason"],
            ),
            GaugeMetricFamily(
                "sentinel_gpu_temperature_margin_celsius",
                "Degrees below the GPU's slowdown threshold (negative: past it).",
                labels=gl,
            ),
            GaugeMetricFamily(
                "sentinel_gpu_memory_used_ratio",
                "GPU memory used over total (0..1).",
                labels=gl,
            ),
            GaugeMetricFamily(
                "sentinel_gpu_memory_foreign_bytes",
                "GPU memory held by processes other than the Triton server.",
                labels=gl,
            ),
            CounterMetricFamily(
                "sentinel_gpu_xid_events",
                "Xid critical errors seen, by Xid and cause (application/hardware/unknown).",
                labels=["xid", "cause"],
            ),
            GaugeMetricFamily(
                "sentinel_gpu_source_up",
                "1 while the configured GPU source (gpu.source) shows at least one GPU; 0 "
                "while it is blind (no NVML, exporter unreachable, no GPU series).",
            ),
        ]

    def collect(self) -> Iterator[Metric]:
        up, reason, margin, ratio, foreign, xids, source_up = self._families()
        assert isinstance(up, GaugeMetricFamily)  # narrow for add_metric
        assert isinstance(reason, GaugeMetricFamily)
        assert isinstance(margin, GaugeMetricFamily)
        assert isinstance(ratio, GaugeMetricFamily)
        assert isinstance(foreign, GaugeMetricFamily)
        assert isinstance(xids, CounterMetricFamily)
        assert isinstance(source_up, GaugeMetricFamily)
        pids = self._pids()
        for s in self._source.latest():
            labels = [str(s.index), s.uuid]
            alive = self._source.is_up(s.uuid)
            up.add_metric(labels, 1.0 if alive else 0.0)
            if not alive:
                continue  # a stale reading exported as current would mislead
            if s.clock_event_reasons is not None:
                for name in KNOWN_REASON_NAMES:
                    reason.add_metric([*labels, name], 1.0 if name in s.clock_event_names else 0.0)
                for name in s.clock_event_names:
                    if name not in KNOWN_REASON_NAMES:
                        reason.add_metric([*labels, name], 1.0)
            if s.temperature_c is not None and s.temperature_slowdown_c is not None:
                margin.add_metric(labels, s.temperature_slowdown_c - s.temperature_c)
            if s.memory_used_bytes is not None and s.memory_total_bytes:
                ratio.add_metric(labels, s.memory_used_bytes / s.memory_total_bytes)
            owners = ownership(s.processes, self._server_names, pids)
            if pids or any(o is Ownership.SERVER for _, o in owners):
                held = sum(p.used_bytes or 0 for p, o in owners if o is Ownership.FOREIGN)
                foreign.add_metric(labels, float(held))
        for (xid, cause), n in sorted(self._source.xid_counts.items()):
            xids.add_metric([str(xid), cause], float(n))
        # no series before the source said anything (and none with gpu.source: off)
        if self._source.nvml_available is not None:
            seeing = any(self._source.is_up(s.uuid) for s in self._source.latest())
            source_up.add_metric([], 1.0 if seeing else 0.0)
        yield from (up, reason, margin, ratio, foreign, xids, source_up)

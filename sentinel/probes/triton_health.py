"""Triton's own view of itself, as ``TritonHealth`` samples on a schedule.

Each round reads live/ready, each watched model's readiness and ready versions
(from the repository index; model by model only when the index is unreadable),
and the per-model counters of Triton's ``/metrics`` endpoint (success, failures by
reason, pending requests, cumulative request, queue and compute time, inference and
execution counts, and the request-time quantiles of ``nv_inference_request_summary_us``
when the server exports them). Nothing a server sends can crash the probe: an
unreadable part is left None, and what is kept of a scrape is bounded.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field

import aiohttp
import structlog

from sentinel.base import aio
from sentinel.base.clock import Clock, SystemClock
from sentinel.base.http_body import read_within
from sentinel.probes.triton import TritonAdapter, TritonError, TritonTimeout, TritonUnreachable
from sentinel.vocabulary.ports import SampleSink
from sentinel.vocabulary.samples import Sample, TritonHealth

log = structlog.get_logger(__name__)


MAX_MODELS = 1024
"""Models kept from one scrape; a server reporting more is cut there (bounded memory)."""
MAX_QUANTILES = 16
"""Quantiles kept per model from the request-time summary."""
MAX_SCRAPE_BYTES = 8 * 1024**2
"""The largest metrics page read (Triton's is ~20 KB with four models)."""
_COUNTERS = {
    "nv_inference_request_success": "success",
    "nv_inference_request_failure": "failure",
    "nv_inference_pending_request_count": "pending",
    "nv_inference_request_duration_us": "request_duration_us",
    "nv_inference_queue_duration_us": "queue_duration_us",
    "nv_inference_count": "inference_count",
    "nv_inference_exec_count": "exec_count",
    "nv_inference_compute_input_duration_us": "compute_input_us",
    "nv_inference_compute_infer_duration_us": "compute_infer_us",
    "nv_inference_compute_output_duration_us": "compute_output_us",
}
"""Triton's per-model series and the ModelCounters field each one adds to."""
REQUEST_SUMMARY = "nv_inference_request_summary_us"


@dataclass
class ModelCounters:
    """Triton's metrics for one model, summed over its versions (quantiles: the worst
    version's, as the quantiles of two versions cannot be merged)."""

    success: float = 0.0
    failure: float = 0.0
    failures_by_reason: dict[str, float] = field(default_factory=dict)
    pending: float = 0.0
    request_duration_us: float = 0.0
    queue_duration_us: float = 0.0
    inference_count: float | None = None
    exec_count: float | None = None
    compute_input_us: float | None = None
    compute_infer_us: float | None = None
    compute_output_us: float | None = None
    request_quantiles_us: dict[str, float] = field(default_factory=dict)

    def add(self, attr: str, value: float) -> None:
        current = getattr(self, attr)
        setattr(self, attr, value if current is None else current + value)


def parse_triton_metrics(text: str) -> dict[str, ModelCounters]:
    """Per-model counters from Triton's Prometheus text; ValueError when it is not that.

    Every sample line is checked against the exposition grammar, but only the series
    read here have their labels and values parsed: a hand-rolled reader, since
    prometheus_client's parser spent ~4 ms a scrape on the ~200 lines Triton writes.
    """
    counters: dict[str, ModelCounters] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line or line[0] == "#" or line.isspace():
            continue
        m = _SAMPLE.fullmatch(line)
        if m is None:
            raise ValueError(f"line {number}: not a Prometheus sample: {line[:80]!r}")
        name = m[1].removesuffix("_total")
        attr = _COUNTERS.get(name)
        if attr is None and name != REQUEST_SUMMARY:
            continue
        value = float(m[3])
        if not math.isfinite(value):  # a summary with no recent requests says NaN
            continue
        labels = _labels(m[2] or "", number)
        model = labels.get("model")
        if model is None:
            continue
        c = counters.get(model)
        if c is None:
            if len(counters) >= MAX_MODELS:
                continue
            c = counters[model] = ModelCounters()
        if attr is not None:
            c.add(attr, value)
            if attr == "failure":
                reason = labels.get("reason", "OTHER")
                c.failures_by_reason[reason] = c.failures_by_reason.get(reason, 0.0) + value
        else:
            _add_quantile(c.request_quantiles_us, labels.get("quantile"), value)
    return counters


_SAMPLE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?[ \t]+(\S+)(?:[ \t]+-?[0-9]+)?[ \t]*")
"""One sample line: name, optional {labels}, value, optional timestamp."""
_LABEL = re.compile(
    r'[ \t]*([a-zA-Z_][a-zA-Z0-9_]*)[ \t]*=[ \t]*"((?:[^"\\\n]|\\.)*)"[ \t]*(?:,|$)'
)
"""One label pair; the value keeps its escapes (\\, \", \n) until _labels undoes them."""
_ESCAPES = re.compile(r"\\(.)")


def _labels(text: str, number: int) -> dict[str, str]:
    """The labels between a sample's braces; ValueError unless they are all well formed."""
    out: dict[str, str] = {}
    pos = 0
    while pos < len(text) and not text[pos:].isspace():
        m = _LABEL.match(text, pos)
        if m is None:
            raise ValueError(f"line {number}: bad labels: {text[:80]!r}")
        value = m[2]
        if "\\" in value:
            value = _ESCAPES.sub(lambda e: "\n" if e[1] == "n" else e[1], value)
        out[m[1]] = value
        pos = m.end()
    return out


def _add_quantile(quantiles: dict[str, float], label: str | None, value: float) -> None:
    """Keep a quantile label that is a number in (0, 1); the worst value per label."""
    try:
        q = float(label or "")
    except ValueError:
        return
    if not 0.0 < q < 1.0 or (label not in quantiles and len(quantiles) >= MAX_QUANTILES):
        return
    key = f"{q:g}"
    quantiles[key] = max(value, quantiles.get(key, value))


class TritonHealthProbe:
    """Samples server health, model readiness and Triton's metrics on an interval."""

    name = "triton_health"

    def __init__(
        self,
        triton: TritonAdapter,
        models: Sequence[str] = (),
        *,
        metrics_url: str | None = None,
        interval_s: float = 2.0,
        metrics_interval_s: float = 0.0,
        clock: Clock | None = None,
    ) -> None:
        self.triton = triton
        self.models = tuple(dict.fromkeys(models))
        self.metrics_url = metrics_url
        self.interval_s = interval_s
        self.metrics_interval_s = metrics_interval_s
        self._scraped_at: float | None = None  # monotonic time of the last scrape
        self.clock: Clock = clock or SystemClock()
        self._up_since: float | None = None
        self._was_down = False
        self._warned: dict[str, str] = {}
        self._scraper: aiohttp.ClientSession | None = None

    async def run(self, sink: SampleSink, clock: Clock) -> None:
        """Sample every ``interval_s`` on ``clock`` until cancelled."""
        self.clock = clock
        # one session (and kept-alive connection) for the probe's life: a client per
        # scrape built a TLS context each time, half of an idle sentinel's CPU
        async with aiohttp.ClientSession() as scraper:
            self._scraper = scraper
            try:
                while True:
                    for sample in await self.once():
                        await sink(sample)
                    await clock.sleep(self.interval_s)
            finally:
                self._scraper = None

    async def once(self) -> list[Sample]:
        return list(await self.sample())

    async def close(self) -> None:
        """Nothing to release (kept so callers may treat probes alike)."""

    async def sample(self) -> list[TritonHealth]:
        """One round: one sample per watched model (one without a model when none)."""
        ts = self.clock.now()
        live, ready, error = await self._live_and_ready()
        versions: dict[str, tuple[str, ...]] = {}
        models_ready: dict[str, bool] = {}
        counters = None
        try:
            if live:
                index = await self._ready_versions()
                versions = index or {}
                if index is not None:  # a model is ready when a version of it is READY
                    models_ready = {m: m in index for m in self.models}
                else:  # no usable index: ask model by model
                    models_ready = {m: await self._model_ready(m) for m in self.models}
                if self._scrape_due():
                    counters = await self._scrape()
        except (TritonTimeout, TritonUnreachable) as exc:
            # it froze or died after answering: as good as a failed live check,
            # and saying so now saves the rest of a round of deadlines
            live, error = False, f"stopped answering after the health check: {exc}"
        uptime = self._uptime(live, ts)
        if not live:
            return [
                TritonHealth(ts=ts, live=False, ready=False, model=m, error=error, uptime_s=uptime)
                for m in self.models or (None,)
            ]
        samples = []
        for model in self.models or (None,):
            model_ready = None if model is None else models_ready[model]
            c = counters.get(model) if counters is not None and model is not None else None
            if c is None and counters is not None and model is not None:
                c = ModelCounters()  # scraped fine, model has no series (not loaded)
            samples.append(
                TritonHealth(
                    ts=ts,
                    live=True,
                    ready=ready,
                    model=model,
                    model_ready=model_ready,
                    model_versions=versions.get(model, ()) if model else (),
                    error=error,
                    success_total=None if c is None else c.success,
                    failure_total=None if c is None else c.failure,
                    failures_by_reason={} if c is None else dict(c.failures_by_reason),
                    pending_requests=None if c is None else c.pending,
                    request_duration_us_total=None if c is None else c.request_duration_us,
                    queue_duration_us_total=None if c is None else c.queue_duration_us,
                    uptime_s=uptime,
                    inference_count_total=None if c is None else c.inference_count,
                    exec_count_total=None if c is None else c.exec_count,
                    compute_input_us_total=None if c is None else c.compute_input_us,
                    compute_infer_us_total=None if c is None else c.compute_infer_us,
                    compute_output_us_total=None if c is None else c.compute_output_us,
                    request_quantiles_us={} if c is None else dict(c.request_quantiles_us),
                )
            )
        return samples

    def _uptime(self, live: bool, ts: float) -> float | None:
        """Known only after sentinel saw the server come up (it started in between)."""
        if not live:
            self._was_down = True
            self._up_since = None
            return None
        if self._was_down and self._up_since is None:
            self._up_since = ts
        return None if self._up_since is None else ts - self._up_since

    async def _live_and_ready(self) -> tuple[bool, bool, str | None]:
        """(live, ready, error), both asked at once so a hang costs one deadline. Live
        decides liveness: Triton's HTTP ``ready`` can stall while a model loads, and a
        stalled ``ready`` from a live server must not read as a dead one."""
        live_call, ready_call = await asyncio.gather(
            self._answered(self.triton.check_live()),
            self._answered(self.triton.check_ready()),
        )
        if live_call is not None:
            return False, False, live_call
        if ready_call is not None:
            return True, False, ready_call
        return True, True, None

    @staticmethod
    async def _answered(call: Awaitable[None]) -> str | None:
        """None when the call succeeded, else why not."""
        try:
            await call
        except TritonError as exc:
            return str(exc)
        return None

    async def _model_ready(self, model: str) -> bool:
        """Ready or not; a timeout or lost connection is the server's, raised."""
        try:
            await self.triton.check_model_ready(model)
        except (TritonTimeout, TritonUnreachable):
            raise
        except TritonError:
            return False
        return True

    async def _ready_versions(self) -> dict[str, tuple[str, ...]] | None:
        """Model -> its READY versions, from the repository index (None: unreadable)."""
        try:
            index = await self.triton.repository_index()
        except (TritonTimeout, TritonUnreachable):
            raise
        except TritonError as exc:
            self._warn("triton_index_unreadable", str(exc))
            return None
        versions: dict[str, list[str]] = {}
        for entry in index:
            name, version = entry.get("name"), entry.get("version")
            if isinstance(name, str) and entry.get("state") == "READY":
                ready = versions.setdefault(name, [])
                if version is not None:
                    ready.append(str(version))
        return {k: tuple(sorted(v)) for k, v in versions.items()}

    def _scrape_due(self) -> bool:
        """Whether this round scrapes; rounds in between leave the counters None (unknown),
        which every reader skips, rather than repeating the last ones at a new time."""
        now = self.clock.monotonic()
        last = self._scraped_at
        # a round a little early (scheduling jitter) still counts as on time
        if last is not None and now - last < self.metrics_interval_s - 0.25 * self.interval_s:
            return False
        self._scraped_at = now
        return True

    async def _scrape(self) -> dict[str, ModelCounters] | None:
        if self.metrics_url is None:
            return None
        seconds = self.triton.timeout_s
        try:
            if self._scraper is not None:
                text = await aio.wait_for(self._get(self._scraper), seconds)
            else:  # a round outside run(): nothing kept open between rounds
                async with aiohttp.ClientSession() as session:
                    text = await aio.wait_for(self._get(session), seconds)
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
            self._warn("triton_metrics_unreachable", str(exc) or type(exc).__name__)
            return None
        try:
            counters = parse_triton_metrics(text)
        except ValueError as exc:
            self._warn("triton_metrics_unreadable", str(exc))
            return None
        self._warned.clear()  # healthy again: the next problem is news
        return counters

    async def _get(self, session: aiohttp.ClientSession) -> str:
        """The metrics page as text, refused past MAX_SCRAPE_BYTES or on an error status."""
        async with session.get(self.metrics_url or "", allow_redirects=False) as response:
            response.raise_for_status()
            body = await read_within(response, MAX_SCRAPE_BYTES)  # BodyTooLarge: a ValueError
        return body.decode("utf-8", "replace")

    def _warn(self, event: str, error: str) -> None:
        """Log a problem once, not every round while it lasts."""
        if self._warned.get(event) != error:
            self._warned[event] = error
            log.warning(event, url=self.metrics_url, error=error)

"""Prometheus metrics of the canary and of Triton's health, on an injected registry.

The daemon hands every sample to :meth:`ProbeMetrics.observe`; samples of other
kinds are ignored, so it can sit on the same sink as everything else.
"""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from sentinel.vocabulary.samples import CanaryResult, Sample, TritonHealth

LATENCY_BUCKETS: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
"""Seconds; includes the usual latency SLOs (50/100/250/500 ms, 1 s, 2.5 s)."""
AGREEMENT_METRICS = ("max_abs_error", "cosine", "top1", "accuracy")


class ProbeMetrics:
    """``sentinel_canary_*`` and ``sentinel_triton_*`` series, fed from samples."""

    def __init__(
        self, registry: CollectorRegistry, latency_buckets: Sequence[float] = LATENCY_BUCKETS
    ) -> None:
        self.latency = Histogram(
            "sentinel_canary_latency_seconds",
            "Round-trip latency of successful canary inferences.",
            ["model", "version", "batch_size"],
            buckets=tuple(latency_buckets),
            registry=registry,
        )
        self.requests = Counter(
            "sentinel_canary_requests",
            "Canary inferences by outcome (ok, timeout, unreachable, model_not_ready, "
            "server_error, bad_response).",
            ["model", "batch_size", "outcome"],
            registry=registry,
        )
        self.agreement = Gauge(
            "sentinel_canary_agreement",
            "Agreement of the last successful canary with its golden reference "
            "(metric: max_abs_error, cosine, top1, accuracy).",
            ["model", "batch_size", "metric"],
            registry=registry,
        )
        self.triton_up = Gauge(
            "sentinel_triton_up",
            "1 when Triton answered its liveness check in the last health round, else 0.",
            registry=registry,
        )
        self.model_ready = Gauge(
            "sentinel_triton_model_ready",
            "1 when Triton reported the model ready in the last health round, else 0.",
            ["model"],
            registry=registry,
        )

    def observe(self, sample: Sample) -> None:
        """Account for one sample (canary results and Triton health; others ignored)."""
        if isinstance(sample, CanaryResult):
            self._canary(sample)
        elif isinstance(sample, TritonHealth):
            self.triton_up.set(1 if sample.live else 0)
            if sample.model is not None:
                self.model_ready.labels(sample.model).set(1 if sample.model_ready else 0)

    def _canary(self, r: CanaryResult) -> None:
        batch = str(r.batch_size)
        self.requests.labels(r.model, batch, r.outcome).inc()
        if r.outcome != "ok":
            return
        if r.latency_s is not None:
            self.latency.labels(r.model, r.version, batch).observe(r.latency_s)
        if r.agreement is not None:
            a = r.agreement
            values = (a.max_abs_error, a.cosine, a.top1, a.accuracy)
            for name, value in zip(AGREEMENT_METRICS, values, strict=True):
                if value is not None:
                    self.agreement.labels(r.model, batch, name).set(value)

"""The judge stage's own metrics: every finding the detectors raise."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from sentinel.vocabulary.findings import Finding, Judgement


class FindingMetrics:
    """``sentinel_findings_total{kind,severity}``: every finding the detectors raise."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.findings = Counter(
            "sentinel_findings",
            "Findings raised by detectors (or Alertmanager webhooks), by kind and severity.",
            ["kind", "severity"],
            registry=registry,
        )

    def observe(self, judgement: Judgement) -> None:
        if isinstance(judgement, Finding):
            self.findings.labels(judgement.kind, str(judgement.severity)).inc()

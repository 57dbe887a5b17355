"""sentinel's process-level metrics."""

from __future__ import annotations

from sentinel.base.metrics import new_registry
from sentinel.detect.metrics import FindingMetrics
from sentinel.vocabulary.findings import Cleared, Finding, Severity, Subject


def test_findings_are_counted_by_kind_and_severity_and_clears_are_not() -> None:
    """Each finding increments its (kind, severity) counter; a Cleared does not count."""
    registry = new_registry()
    metrics = FindingMetrics(registry)
    subject = Subject(model="digits")
    for severity in (Severity.CRITICAL, Severity.CRITICAL, Severity.WARNING):
        metrics.observe(Finding("latency_spike", severity, subject, 1.0, 2.0, "slow"))
    metrics.observe(Cleared("latency_spike", subject, 3.0))
    value = registry.get_sample_value
    assert (2.0, 1.0) == (
        value("sentinel_findings_total", {"kind": "latency_spike", "severity": "critical"}),
        value("sentinel_findings_total", {"kind": "latency_spike", "severity": "warning"}),
    )


def test_build_info_names_the_version() -> None:
    """sentinel_build_info carries the package version."""
    from sentinel import __version__

    labels = {"version": __version__}
    samples = [
        s
        for m in new_registry().collect()
        for s in m.samples
        if s.name == "sentinel_build_info" and s.labels.get("version") == labels["version"]
    ]
    assert [1.0] == [s.value for s in samples]

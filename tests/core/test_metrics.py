"""sentinel's process-level metrics."""

from __future__ import annotations

import threading

import aiohttp

from sentinel.base.metrics import MetricsServer, new_registry
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


async def test_metrics_are_served_from_the_event_loop_without_a_thread() -> None:
    """/metrics answers in the text format (OpenMetrics when asked) and starting the server
    adds no thread: nothing wakes between scrapes."""
    registry = new_registry()
    server = MetricsServer(registry, "127.0.0.1", 0)
    threads = threading.active_count()
    await server.start()
    try:
        started_threads = threading.active_count()
        url = f"http://127.0.0.1:{server.port}/metrics"
        async with aiohttp.ClientSession() as session:
            async with session.get(url) as plain:
                text = (plain.headers["Content-Type"], await plain.text())
            wanted = {"Accept": "application/openmetrics-text; version=1.0.0"}
            async with session.get(url, headers=wanted) as open_metrics:
                om = (open_metrics.headers["Content-Type"], await open_metrics.text())
    finally:
        await server.stop()
    kinds = (text[0].split(";")[0], om[0].split(";")[0])
    assert (threads, "text/plain", "application/openmetrics-text") == (started_threads, *kinds)
    assert ("sentinel_build_info{" in text[1], om[1].endswith("# EOF\n")) == (True, True)

"""alerts/alertmanager.example.yaml: Alertmanager accepts it and routes as it says."""

from __future__ import annotations

import subprocess

import pytest
import yaml
from promql import ALERTS, rules
from systools import need_tool

EXAMPLE = ALERTS / "alertmanager.example.yaml"
pytestmark = pytest.mark.promtool


def receivers_for(*labels: str) -> list[str]:
    """The receivers `amtool config routes test` picks for an alert with these labels."""
    amtool = need_tool("amtool")
    proc = subprocess.run(
        [amtool, "config", "routes", "test", f"--config.file={EXAMPLE}", *labels],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert 0 == proc.returncode, proc.stdout + proc.stderr
    return sorted(proc.stdout.strip().split(","))


def test_amtool_accepts_the_example() -> None:
    """`amtool check-config` accepts the routing example (receivers, templates, inhibitions)."""
    amtool = need_tool("amtool")
    proc = subprocess.run(
        [amtool, "check-config", str(EXAMPLE)], capture_output=True, text=True, timeout=60
    )
    assert 0 == proc.returncode, proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        (("alertname=SentinelTritonUnreachable", "severity=critical"),
         ["pagerduty-inference", "slack-inference"]),
        (("alertname=SentinelGpuThrottled", "severity=warning"), ["slack-inference"]),
        (("alertname=sentinel_accuracy_drift", "severity=critical", "origin=sentinel"),
         ["slack-inference"]),
        (("alertname=Anything", "severity=info"), ["blackhole"]),
    ],
)  # fmt: skip
def test_alerts_reach_the_receivers_their_severity_names(
    labels: tuple[str, ...], expected: list[str]
) -> None:
    """Critical pages and posts, warnings post, sentinel's own incidents post only."""
    assert expected == receivers_for(*labels)


def test_every_shipped_severity_is_routed_somewhere_on_purpose() -> None:
    """Each severity used by the shipped alerts has a route of its own."""
    routes = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))["route"]["routes"]
    routed = " ".join(m for r in routes for m in r["matchers"])
    severities = {r["labels"]["severity"] for r in rules() if "alert" in r}
    assert [] == [s for s in sorted(severities) if s not in routed]

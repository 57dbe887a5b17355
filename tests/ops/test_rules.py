"""Alert rules: promtool checks them, unit-tests them, and every alert is documented."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from promql import ALERTS, REPO, rule_files, rules
from systools import need_tool

SEVERITIES = {"critical", "warning", "info"}


def _tests() -> list[dict[str, Any]]:
    out = []
    for path in sorted((ALERTS / "tests").glob("*.test.yaml")):
        out.extend(yaml.safe_load(path.read_text(encoding="utf-8"))["tests"])
    return out


@pytest.mark.promtool
def test_promtool_check_rules_accepts_every_rule_file() -> None:
    """`promtool check rules` passes on every rule file and counts every rule."""
    promtool = need_tool("promtool")
    files = [str(p) for p in rule_files()]
    proc = subprocess.run(
        [promtool, "check", "rules", *files], capture_output=True, text=True, timeout=60
    )
    assert 0 == proc.returncode, proc.stdout + proc.stderr
    found = sum(int(n) for n in re.findall(r"SUCCESS: (\d+) rules found", proc.stdout))
    assert len(rules()) == found


@pytest.mark.promtool
def test_promtool_unit_tests_pass() -> None:
    """`promtool test rules` passes on every unit-test file in alerts/tests/."""
    promtool = need_tool("promtool")
    tests = sorted(p.name for p in (ALERTS / "tests").glob("*.test.yaml"))
    proc = subprocess.run(
        [promtool, "test", "rules", *tests],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ALERTS / "tests",
    )
    assert 0 == proc.returncode, proc.stdout + proc.stderr
    assert len(tests) == proc.stdout.count("SUCCESS")


@pytest.mark.promtool
def test_promtool_unit_tests_fail_on_a_wrong_expectation(tmp_path: Path) -> None:
    """A unit test expecting an alert before its `for:` makes promtool fail (tests can fail)."""
    promtool = need_tool("promtool")
    broken = {
        "rule_files": [str(ALERTS / "sentinel.rules.yaml")],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": 'sentinel_breaker_open{pod="p"}', "values": "1x5"}],
                "alert_rule_test": [
                    {
                        "eval_time": "0m",
                        "alertname": "SentinelBreakerOpen",
                        "exp_alerts": [{"exp_labels": {"severity": "critical", "pod": "p"}}],
                    }
                ],
            }
        ],
    }
    path = tmp_path / "broken.test.yaml"
    path.write_text(yaml.safe_dump(broken), encoding="utf-8")
    proc = subprocess.run(
        [promtool, "test", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert 1 == proc.returncode


def test_every_alert_is_tested_before_at_and_after_it_fires() -> None:
    """Each alert has a unit test expecting nothing and one expecting it (fires, resolves)."""
    silent: set[str] = set()
    firing: set[str] = set()
    for test in _tests():
        for case in test.get("alert_rule_test", []):
            (firing if case.get("exp_alerts") else silent).add(case["alertname"])
    alerts = {r["alert"] for r in rules() if "alert" in r}
    assert (set(), set()) == (alerts - firing, alerts - silent)


def test_every_recording_rule_has_an_expression_test() -> None:
    """Each recording rule's output is checked by a promql_expr_test."""
    tested = {case["expr"] for test in _tests() for case in test.get("promql_expr_test", [])}
    recorded = {r["record"] for r in rules() if "record" in r}
    assert set() == recorded - tested


@pytest.mark.parametrize("rule", [r for r in rules() if "alert" in r], ids=lambda r: r["alert"])
def test_alert_has_severity_summary_description_and_runbook(rule: dict[str, Any]) -> None:
    """Every alert carries a known severity, a summary, a description and a runbook_url."""
    ann = rule.get("annotations", {})
    present = (
        rule.get("labels", {}).get("severity") in SEVERITIES,
        bool(ann.get("summary")),
        bool(ann.get("description")),
        bool(ann.get("runbook_url")),
    )
    assert (True, True, True, True) == present


@pytest.mark.parametrize("rule", [r for r in rules() if "alert" in r], ids=lambda r: r["alert"])
def test_runbook_url_points_at_a_file_or_heading_in_this_repo(rule: dict[str, Any]) -> None:
    """runbook_url is the mixin's base URL + a file of this repository (and a heading of it)."""
    base = yaml.safe_load((ALERTS / "mixin.yaml").read_text(encoding="utf-8"))["runbook_base_url"]
    url = rule["annotations"]["runbook_url"]
    assert url.startswith(base), f"{rule['alert']}: {url} is not under {base}"
    path, _, anchor = url.removeprefix(base).partition("#")
    target = REPO / path
    assert target.is_file(), f"{rule['alert']}: {path} does not exist"
    if anchor:
        headings = re.findall(r"^#+\s+(.+)$", target.read_text(encoding="utf-8"), re.M)
        # GitHub's anchor of a heading: lower case, spaces to '-', punctuation dropped
        anchors = {re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-") for h in headings}
        assert anchor in anchors, f"{rule['alert']}: no heading #{anchor} in {path}"

"""alerts/generate.py: the committed rules are current, and site settings reach every series."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from promql import ALERTS
from systools import need_tool

GENERATE = ALERTS / "generate.py"
SERIES = re.compile(r"\b(sentinel_[a-z0-9_]+|nv_[a-z0-9_]+|up)\b(\{[^}]*\})?(?!\s*\()")


def site_rules(tmp_path: Path) -> list[Path]:
    """The rules rendered for a site that narrows every series to cluster "eu-1"."""
    mixin = yaml.safe_load((ALERTS / "mixin.yaml").read_text(encoding="utf-8"))
    mixin["runbook_base_url"] = "https://runbooks.example/sentinel/"
    mixin["selectors"] = {
        "sentinel_job": 'job="monitoring/sentinel", cluster="eu-1"',
        "sentinel": 'cluster="eu-1"',
        "triton": 'cluster="eu-1"',
    }
    config = tmp_path / "site.yaml"
    config.write_text(yaml.safe_dump(mixin), encoding="utf-8")
    out = tmp_path / "rules"
    proc = subprocess.run(
        [sys.executable, str(GENERATE), "--config", str(config), "--out", str(out)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert 0 == proc.returncode, proc.stderr
    return sorted(out.glob("*.rules.yaml"))


def test_committed_rules_match_the_generator() -> None:
    """alerts/generate.py --check passes: the rule files are rendered from alerts/src/."""
    proc = subprocess.run(
        [sys.executable, str(GENERATE), "--check"], capture_output=True, text=True, timeout=60
    )
    assert 0 == proc.returncode, proc.stderr


def test_site_selectors_and_runbook_base_reach_every_rule(tmp_path: Path) -> None:
    """With site settings, every series of every rule carries the matcher; links use the base."""
    unnarrowed, links = [], []
    for path in site_rules(tmp_path):
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            for rule in group["rules"]:
                for metric, selector in SERIES.findall(rule["expr"]):
                    if 'cluster="eu-1"' not in selector:
                        unnarrowed.append(f"{rule.get('alert') or rule['record']}: {metric}")
                if "alert" in rule:
                    links.append(rule["annotations"]["runbook_url"])
    assert [] == unnarrowed
    assert links
    assert all(u.startswith("https://runbooks.example/sentinel/") for u in links)


@pytest.mark.promtool
def test_site_rules_pass_promtool(tmp_path: Path) -> None:
    """The rules rendered with site selectors are still valid (promtool check rules)."""
    promtool = need_tool("promtool")
    files = [str(p) for p in site_rules(tmp_path)]
    proc = subprocess.run(
        [promtool, "check", "rules", *files], capture_output=True, text=True, timeout=60
    )
    assert 0 == proc.returncode, proc.stdout + proc.stderr

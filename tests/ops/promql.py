"""Every PromQL expression in alerts/ and dashboards/, and the metric names they use."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
ALERTS = REPO / "alerts"
DASHBOARDS = REPO / "dashboards"

# Grafana's interval variables become durations; every other variable a label value
_INTERVALS = {"__rate_interval": "5m", "__interval": "1m", "__range": "1h"}
_VAR = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")
_LABEL_VALUES = re.compile(r"^\s*label_values\((?P<selector>.*),\s*(?P<label>\w+)\s*\)\s*$", re.S)

_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool",
    "and", "or", "unless", "atan2", "inf", "nan",
}  # fmt: skip


@dataclass(frozen=True)
class Expr:
    """One expression and where it lives (for messages)."""

    where: str
    promql: str


def rule_files() -> list[Path]:
    return sorted(ALERTS.glob("*.rules.yaml"))


def dashboard_files() -> list[Path]:
    return sorted(DASHBOARDS.glob("*.json"))


def rules() -> list[dict[str, Any]]:
    """Every rule of every group, with ``_file`` and ``_group`` added."""
    out = []
    for path in rule_files():
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            for rule in group["rules"]:
                out.append({**rule, "_file": path.name, "_group": group["name"]})
    return out


def grafana_to_promql(text: str, values: dict[str, str] | None = None) -> str:
    """Replace Grafana template variables so the expression is plain PromQL.

    Interval variables become durations; others take ``values[name]``, else "x".
    """
    chosen = {**_INTERVALS, **(values or {})}

    def sub(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2) or m.group(3)
        return chosen.get(name, "x")

    return _VAR.sub(sub, text)


def panel_queries(path: Path, values: dict[str, str]) -> dict[str, list[str]]:
    """Each panel's queries, with variables set to ``values`` (title -> expressions)."""
    board = json.loads(path.read_text(encoding="utf-8"))
    return {
        p["title"]: [grafana_to_promql(t["expr"], values) for t in p.get("targets", [])]
        for p in _panels(board.get("panels", []))
        if p.get("targets")
    }


def _panels(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for p in panels:
        out.append(p)
        out.extend(_panels(p.get("panels", [])))
    return out


def dashboard_exprs(path: Path) -> list[Expr]:
    board = json.loads(path.read_text(encoding="utf-8"))
    out = []
    for panel in _panels(board.get("panels", [])):
        for target in panel.get("targets", []):
            if target.get("expr"):
                where = f"{path.name}: panel {panel.get('title')!r} {target.get('refId')}"
                out.append(Expr(where, grafana_to_promql(target["expr"])))
    for note in board.get("annotations", {}).get("list", []):
        if note.get("expr"):
            where = f"{path.name}: annotation {note.get('name')!r}"
            out.append(Expr(where, grafana_to_promql(note["expr"])))
    for var in board.get("templating", {}).get("list", []):
        query = var.get("query")
        if var.get("type") != "query":
            continue
        text = query.get("query", "") if isinstance(query, dict) else str(query)
        m = _LABEL_VALUES.match(text)
        # label_values(SELECTOR, label) is Grafana's; its selector is PromQL
        promql = m.group("selector") if m else text
        out.append(Expr(f"{path.name}: variable {var['name']}", grafana_to_promql(promql)))
    return out


def all_exprs() -> list[Expr]:
    out = [Expr(f"{r['_file']}: {r.get('alert') or r.get('record')}", r["expr"]) for r in rules()]
    for path in dashboard_files():
        out.extend(dashboard_exprs(path))
    return out


def metric_names(promql: str) -> set[str]:
    """Metric names an expression selects (a tokenizer, not a full parser).

    Strings, label matchers, ranges and grouping label lists are removed first; what
    is left that looks like an identifier and is not a function call, keyword or
    number is a metric name.
    """
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', promql)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for m in re.finditer(r"(?<![\w.])([A-Za-z_:][\w:]*)(\s*\()?", text):
        name, call = m.group(1), m.group(2)
        if call or name.lower() in _KEYWORDS:
            continue
        names.add(name)
    return names


def recorded_names() -> set[str]:
    """Series names produced by recording rules in alerts/."""
    return {r["record"] for r in rules() if "record" in r}

"""The Grafana dashboard: generated, well-formed, filtered by pod and model, complete."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from typing import Any

import pytest
import yaml
from promql import ALERTS, DASHBOARDS

OVERVIEW = DASHBOARDS / "sentinel-overview.json"


@pytest.fixture(scope="module")
def board() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(OVERVIEW.read_text(encoding="utf-8"))
    return data


def _targets(board: dict[str, Any]) -> list[tuple[str, str]]:
    return [(p["title"], t["expr"]) for p in board["panels"] for t in p.get("targets", [])]


def test_committed_json_matches_the_generator() -> None:
    """dashboards/generate.py --check passes: nobody edited the JSON by hand."""
    proc = subprocess.run(
        [sys.executable, str(DASHBOARDS / "generate.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert 0 == proc.returncode, proc.stderr


def test_templating_offers_datasource_cluster_namespace_pod_model_and_gpu(
    board: dict[str, Any],
) -> None:
    """The overview is templated by data source, cluster, namespace, pod, model and GPU."""
    names = [v["name"] for v in board["templating"]["list"]]
    assert ["datasource", "cluster", "namespace", "pod", "model", "gpu"] == names


def test_every_query_is_narrowed_to_the_chosen_pods(board: dict[str, Any]) -> None:
    """Each query filters on $cluster, $namespace, $pod; per-model on $model, per-GPU on $gpu."""
    cluster = yaml.safe_load((ALERTS / "mixin.yaml").read_text(encoding="utf-8"))["cluster_label"]
    unfiltered = []
    for title, expr in _targets(board):
        needs_model = "canary" in expr or "nv_inference" in expr
        needs_gpu = "_gpu_" in expr and "xid" not in expr  # Xids are counted per pod
        filters = [f'{cluster}=~"$cluster"', 'namespace="$namespace"', 'pod=~"$pod"']
        filters += ['model=~"$model"'] * needs_model + ['gpu_uuid=~"$gpu"'] * needs_gpu
        if not all(f in expr for f in filters):
            unfiltered.append(title)
    assert [] == unfiltered


def test_triton_gpu_series_are_grouped_by_their_gpu_uuid_label(board: dict[str, Any]) -> None:
    """Triton labels its GPU gauges gpu_uuid: grouping them by gpu would merge all GPUs."""
    grouped = [
        (title, re.findall(r"by \(([^)]*)\) \(nv_gpu_\w+", expr))
        for title, expr in _targets(board)
        if "nv_gpu_" in expr
    ]
    assert grouped
    assert [] == [(t, g) for t, g in grouped if any("gpu_uuid" not in labels for labels in g)]


def test_every_panel_says_what_it_shows(board: dict[str, Any]) -> None:
    """Every panel (rows aside) has a description, shown as its tooltip."""
    assert [] == [
        p["title"] for p in board["panels"] if p["type"] != "row" and not p["description"]
    ]


def test_ratio_and_watts_are_on_separate_axes(board: dict[str, Any]) -> None:
    """Utilization (0-1) stays on the left axis; the watts series has its own right axis."""
    (panel,) = [p for p in board["panels"] if p["title"] == "GPU utilization and power (Triton)"]
    watts_ref = next(t["refId"] for t in panel["targets"] if "power" in t["expr"])
    (override,) = panel["fieldConfig"]["overrides"]
    props = {p["id"]: p["value"] for p in override["properties"]}
    assert ("percentunit", watts_ref) == (
        panel["fieldConfig"]["defaults"]["unit"],
        override["matcher"]["options"],
    )
    assert ("watt", "right") == (props["unit"], props["custom.axisPlacement"])


def test_playbook_runs_are_annotated(board: dict[str, Any]) -> None:
    """An annotation query marks each playbook run (and breaker trips) on the time series."""
    exprs = {a["name"]: a["expr"] for a in board["annotations"]["list"]}
    assert "sentinel_playbook_runs_total" in exprs["Playbook runs"]
    assert "sentinel_breaker_open" in exprs["Breaker open"]


def test_panels_have_unique_ids_and_do_not_overlap(board: dict[str, Any]) -> None:
    """Panel ids are unique and no two panels share a grid cell of the 24-column grid."""
    ids = [p["id"] for p in board["panels"]]
    cells: dict[tuple[int, int], int] = {}
    clashes = []
    for p in board["panels"]:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                if (x, y) in cells:
                    clashes.append((p["id"], cells[(x, y)]))
                cells[(x, y)] = p["id"]
    assert (len(ids), []) == (len(set(ids)), clashes)


def test_overview_covers_what_on_call_needs(board: dict[str, Any]) -> None:
    """Canary latency/agreement, incidents, playbooks, guards, breaker and GPU panels exist."""
    exprs = " ".join(expr for _, expr in _targets(board))
    needed = [
        "sentinel_canary_latency_seconds_bucket",
        "sentinel_canary_agreement",
        "sentinel_incidents_open",
        "sentinel_playbook_runs_total",
        "sentinel_playbook_guard_blocks_total",
        "sentinel_breaker_open",
        "sentinel_gpu_temperature_margin_celsius",
        "sentinel_gpu_clock_event_reason",
        "sentinel_gpu_memory_foreign_bytes",
    ]
    assert [] == [n for n in needed if n not in exprs]


def test_panels_use_the_datasource_variable(board: dict[str, Any]) -> None:
    """Every non-row panel reads from the ${datasource} variable, so it works in any Grafana."""
    wrong = [
        p["title"]
        for p in board["panels"]
        if p["type"] != "row" and p.get("datasource", {}).get("uid") != "${datasource}"
    ]
    assert [] == wrong

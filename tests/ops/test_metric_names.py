"""Every metric name in alerts/ and dashboards/ is really exported.

sentinel's names are checked against the `/metrics` of a running `sentinel run`
(a subprocess on free ports, canarying the `digits` model of a real tritonserver);
Triton's against that tritonserver's own `/metrics`. A labelled metric counts as
exported once its HELP/TYPE lines are there, since it has no samples before its
first observation.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from promql import (
    DASHBOARDS,
    all_exprs,
    metric_names,
    panel_queries,
    recorded_names,
    rule_files,
    rules,
)
from systools import free_port, get_json, query, running_prometheus

from sentinel.testing.triton_local import LocalTriton

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "examples" / "golden" / "digits.npz"

# Triton exports these only on a GPU machine (through DCGM); seen on an H200 with the
# same tritonserver build (shared/TRITON-LOCAL.md), absent on the CPU-only test machines.
TRITON_GPU_ONLY = {
    "nv_gpu_utilization",
    "nv_gpu_memory_used_bytes",
    "nv_gpu_memory_total_bytes",
    "nv_gpu_power_usage",
    "nv_gpu_power_limit",
    "nv_energy_consumption",
}
# dashboard panels that must show data once sentinel has canaried a model on Triton
DATA_PANELS = [
    "Canary latency p99 by model and batch size",
    "Canary agreement with the reference",
    "Canary outcomes",
    "Triton and models",
    "Queue vs compute time per request",
]
PROMETHEUS_OWN = {"up"}
"""Series Prometheus writes itself for each target."""

_SUFFIXES = ("_bucket", "_count", "_sum", "_created")


def _scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:
        text: str = resp.read().decode()
        return text


def exported(text: str) -> set[str]:
    """Names a text exposition offers: families (HELP/TYPE) and sample names."""
    names = set(re.findall(r"^# (?:HELP|TYPE) (\S+)", text, re.M))
    names |= set(re.findall(r"^([A-Za-z_:][\w:]*)[{ ]", text, re.M))
    return names


def is_exported(name: str, offered: set[str]) -> bool:
    """A name or, for histogram/summary series, its family is offered."""
    if name in offered:
        return True
    return any(name.endswith(s) and name[: -len(s)] in offered for s in _SUFFIXES)


def used_names() -> set[str]:
    names: set[str] = set()
    for e in all_exprs():
        names |= metric_names(e.promql)
    return names


def test_metric_name_tokenizer_finds_selected_series_only() -> None:
    """Functions, keywords, labels, ranges and numbers are not taken for metric names."""
    expr = (
        'sum by (le, model) (rate(a_bucket{model=~"x|y", le="0.25"}[5m])) '
        "/ on (pod) group_left () b_total > 2 * 1e6 and absent(c) offset 5m"
    )
    assert {"a_bucket", "b_total", "c"} == metric_names(expr)


def test_histogram_series_count_as_their_family() -> None:
    """_bucket/_count/_sum of an offered histogram family are exported; other names are not."""
    offered = exported("# HELP h_seconds x\n# TYPE h_seconds histogram\nup 1\n")
    found = [is_exported(n, offered) for n in ("h_seconds_bucket", "h_seconds_sum", "up", "z")]
    assert [True, True, True, False] == found


@pytest.fixture(scope="module")
def sentinel_run(
    triton_server: LocalTriton, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    """A `sentinel run` watching the real Triton: its /metrics URL and text after canaries."""
    work = tmp_path_factory.mktemp("sentinel-run")
    metrics_port, api_port = free_port(), free_port()
    config = {
        "pod": "ops-metric-names",
        "state_dir": str(work / "state"),
        "triton": {
            "url": triton_server.grpc_url,
            "protocol": "grpc",
            "metrics_url": triton_server.metrics_url,
        },
        "canaries": [
            {"model": "digits", "golden_set": str(GOLDEN), "interval_s": 0.5, "batch_sizes": [1]}
        ],
        "gpu": {"source": "off"},
        "api": {"bind": "127.0.0.1", "port": api_port},
        "metrics": {"bind": "127.0.0.1", "port": metrics_port},
    }
    path = work / "sentinel.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    log = (work / "sentinel.log").open("wb")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTINEL_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sentinel", "run", "--config", str(path)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=work,
    )
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    text = ""
    try:
        deadline = time.monotonic() + 40
        # wait until a canary has been observed, so labelled canary series exist too
        while "sentinel_canary_requests_total{" not in text:
            if proc.poll() is not None or time.monotonic() > deadline:
                break
            with contextlib.suppress(OSError):
                text = _scrape(url)
            time.sleep(0.25)
        if not text:
            tail = (work / "sentinel.log").read_text(errors="replace")[-3000:]
            pytest.fail(f"sentinel run served no /metrics (exit {proc.poll()}):\n{tail}")
        yield url, text
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()


@pytest.mark.triton
def test_every_sentinel_name_in_rules_and_dashboards_is_exported(
    sentinel_run: tuple[str, str],
) -> None:
    """Names starting with sentinel_ are offered by a running sentinel's /metrics."""
    offered = exported(sentinel_run[1])
    wanted = {n for n in used_names() if n.startswith("sentinel_")}
    missing = sorted(n for n in wanted if not is_exported(n, offered))
    assert [] == missing, f"used in alerts/ or dashboards/ but not exported: {missing}"


@pytest.mark.triton
def test_every_triton_name_in_rules_and_dashboards_is_exported(triton_server: LocalTriton) -> None:
    """Names starting with nv_ are offered by a real tritonserver (GPU-only ones excepted)."""
    offered = exported(_scrape(triton_server.metrics_url))
    wanted = {n for n in used_names() if n.startswith("nv_")} - TRITON_GPU_ONLY
    missing = sorted(n for n in wanted if not is_exported(n, offered))
    assert [] == missing


def test_every_name_is_sentinels_tritons_recorded_or_prometheus_own() -> None:
    """No name outside the known sources sneaks in (typos, other exporters)."""
    recorded = recorded_names()
    stray = sorted(
        n
        for n in used_names()
        if not n.startswith(("sentinel_", "nv_")) and n not in recorded | PROMETHEUS_OWN
    )
    assert [] == stray


@pytest.mark.triton
@pytest.mark.promtool
def test_rules_evaluate_on_real_scrapes_of_sentinel_and_triton(
    sentinel_run: tuple[str, str], triton_server: LocalTriton, tmp_path: Path
) -> None:
    """A real Prometheus scraping both evaluates every rule without error; the SLO rules
    and the dashboard's canary and Triton panels show data from the real series."""
    targets = {
        "sentinel": sentinel_run[0].removeprefix("http://").removesuffix("/metrics"),
        "triton": f"127.0.0.1:{triton_server.metrics_port}",
    }
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(p) for p in rule_files()],
        "scrape_configs": [
            {
                "job_name": job,
                "static_configs": [
                    {"targets": [target], "labels": {"namespace": "ops", "pod": "ops-0"}}
                ],
            }
            for job, target in targets.items()
        ],
    }
    # the dashboard's canary and Triton panels, filtered as a user would pick them
    values = {"cluster": ".*", "namespace": "ops", "pod": ".*", "model": "digits"}
    values["__rate_interval"] = "1m"
    panels = panel_queries(DASHBOARDS / "sentinel-overview.json", values)
    with running_prometheus(tmp_path, yaml.safe_dump(config)) as prometheus:
        deadline = time.monotonic() + 40
        while True:  # until both targets were scraped a few times and every rule ran
            _, slow = query(prometheus, 'sentinel:canary_slow:ratio_rate5m{model="digits"}')
            _, loaded = get_json(f"{prometheus}/api/v1/rules")
            evaluated = [
                r for g in loaded["data"]["groups"] for r in g["rules"] if r.get("lastEvaluation")
            ]
            with_data = {
                title: [bool(query(prometheus, q)[1]["data"]["result"]) for q in panels[title]]
                for title in DATA_PANELS
            }
            everything = all(all(v) for v in with_data.values())
            done = slow["data"]["result"] and len(evaluated) == len(rules()) and everything
            if done or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        _, up = query(prometheus, "up")
    health = sorted({(r["name"], r["health"], r.get("lastError", "")) for r in evaluated})
    names = sorted(str(r.get("alert") or r.get("record")) for r in rules())
    assert [(name, "ok", "") for name in names] == health
    assert {("sentinel", "1"), ("triton", "1")} == {
        (s["metric"]["job"], s["value"][1]) for s in up["data"]["result"]
    }
    assert {t: [True] * len(panels[t]) for t in DATA_PANELS} == with_data
    ratios = [float(s["value"][1]) for s in slow["data"]["result"]]
    assert [True] == [0.0 <= r <= 1.0 for r in ratios]

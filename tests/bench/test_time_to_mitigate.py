"""Smoke tests of the time-to-mitigate benchmark's pieces (no timings asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import time_to_mitigate as ttm  # noqa: E402
import ttm_anchor  # noqa: E402
import ttm_reps  # noqa: E402


@pytest.fixture
def webhook() -> Iterator[ttm_anchor.Webhook]:
    hook = ttm_anchor.Webhook()
    hook.start()
    yield hook
    hook.close()


def _post(port: int, body: object) -> int:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        return int(resp.status)


def test_webhook_records_firing_alerts_by_name_and_pod(webhook: ttm_anchor.Webhook) -> None:
    """A firing alert in Alertmanager's webhook format is recorded under its name and pod."""
    body = {
        "version": "4",
        "status": "firing",
        "alerts": [
            {"status": "firing", "labels": {"alertname": "SentinelTritonUnreachable", "pod": "p1"}},
            {"status": "resolved", "labels": {"alertname": "SentinelGpuHot", "pod": "p1"}},
        ],
    }
    assert 200 == _post(webhook.port, body)
    assert webhook.first("SentinelTritonUnreachable", "p1") is not None
    assert webhook.first("SentinelTritonUnreachable", "p2") is None
    assert webhook.first("SentinelGpuHot", "p1") is None


def test_webhook_survives_garbage(webhook: ttm_anchor.Webhook) -> None:
    """A body that is not JSON is answered and records nothing."""
    req = urllib.request.Request(f"http://127.0.0.1:{webhook.port}/", data=b"{not json")
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert 200 == resp.status
    assert [] == webhook.received


def test_proc_usage_reads_this_process() -> None:
    """CPU time and VmHWM are read from /proc for a live pid, None for a gone one."""
    usage = ttm_anchor.proc_usage(os.getpid())
    assert usage is not None
    cpu, hwm = usage
    assert cpu > 0
    assert hwm > 0
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    assert ttm_anchor.proc_usage(gone.pid) is None


def test_anchor_lower_bound_adds_for_and_group_wait() -> None:
    """An alert not seen in time is bounded below by active + for: + group_wait."""
    anchor = ttm.Anchor("accuracy", "SentinelCanaryAccuracyDrift", 600.0, onset=0.0, active_s=12.0)
    assert 12.0 + 600.0 + ttm_anchor.GROUP_WAIT_S == anchor.lower_bound_s()
    assert ttm.Anchor("hang", "SentinelTritonUnreachable", 120.0).lower_bound_s() is None


def test_anchor_alerts_exist_in_the_shipped_rules() -> None:
    """Each class maps to an alert of alerts/*.rules.yaml with the `for:` the bench assumes."""
    rules = {}
    for path in ttm_anchor.RULES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    rules[rule["alert"]] = rule.get("for", "0s")
    for alertname, for_s in ttm.ANCHOR_ALERT.values():
        text = rules[alertname]
        seconds = int(text[:-1]) * {"s": 1, "m": 60, "h": 3600}[text[-1]]
        assert for_s == seconds


@pytest.mark.promtool
def test_generated_configs_pass_promtool_and_amtool(
    tmp_path: Path, webhook: ttm_anchor.Webhook
) -> None:
    """The Prometheus and Alertmanager configs the bench writes are valid for the real tools."""
    targets = [ttm_anchor.Target("pod-a", "http://127.0.0.1:8002/metrics", "http://127.0.0.1:9/m")]
    mon = ttm_anchor.Monitoring(targets, webhook, workdir=tmp_path)
    prom, am = mon.write_configs()
    check = subprocess.run(
        ["promtool", "check", "config", str(prom)], capture_output=True, text=True
    )
    assert 0 == check.returncode, check.stdout + check.stderr
    check = subprocess.run(["amtool", "check-config", str(am)], capture_output=True, text=True)
    assert 0 == check.returncode, check.stdout + check.stderr


@pytest.mark.triton
def test_bench_config_opens_guards_and_keeps_the_demo_detectors(tmp_path: Path) -> None:
    """The repetitions' config is the demo's with no cooldown/budget and a wide breaker."""
    from sentinel.demo.scenario import DEMO_DETECTORS, EXAMPLES
    from sentinel.testing.triton_local import LocalTriton

    repo = EXAMPLES / "model_repository"
    server = LocalTriton(repo, workdir=tmp_path / "triton")
    config = ttm_reps.bench_config(server, tmp_path)
    assert ttm_reps.BENCH_OVERRIDES == config.playbooks.overrides
    assert 10_000 == config.playbooks.breaker_max_actions
    assert DEMO_DETECTORS["latency"]["slo_s"] == config.detectors.latency.slo_s
    assert server.grpc_url == config.triton.url


@pytest.mark.triton
def test_defaults_profile_changes_no_shipped_setting(tmp_path: Path) -> None:
    """The defaults profile runs the shipped probes, detectors, incident timing and
    triggers: its overrides open only the guards against back-to-back repetitions."""
    from sentinel.demo.scenario import EXAMPLES
    from sentinel.detect.settings import DetectorSettings
    from sentinel.incidents.settings import IncidentSettings
    from sentinel.probes.settings import CanarySettings, TritonSettings
    from sentinel.testing.triton_local import LocalTriton

    server = LocalTriton(EXAMPLES / "model_repository", workdir=tmp_path / "triton")
    config = ttm_reps.profile_config("defaults", server, tmp_path)
    shipped = CanarySettings(model="digits", golden_set=config.canaries[0].golden_set)
    assert DetectorSettings() == config.detectors
    assert IncidentSettings() == config.incidents
    assert shipped.model_dump(exclude={"batch_sizes"}) == config.canaries[0].model_dump(
        exclude={"batch_sizes"}
    )
    triton = TritonSettings()
    assert (triton.timeout_s, triton.health_interval_s) == (
        config.triton.timeout_s,
        config.triton.health_interval_s,
    )
    opened = {key for override in config.playbooks.overrides.values() for key in override}
    assert {"guards", "params", "steps"} >= opened
    assert {"min_uptime_s": "5"} == config.playbooks.overrides["restart-server"]["params"]
    assert ttm_reps.warmup_s(config) >= 60.0


def test_table_marks_an_unobserved_anchor_as_a_lower_bound() -> None:
    """A class whose alert did not arrive in time shows '>=' and its ratio uses the bound."""
    anchor = ttm.Anchor("accuracy", "SentinelCanaryAccuracyDrift", 600.0, onset=0.0, active_s=10.0)
    bound = anchor.lower_bound_s()
    assert bound is not None
    res = {
        "classes": {
            "accuracy": {
                "reps": 2,
                "verified": 2,
                "detect_s": {"median": 2.0, "worst": 3.0},
                "verified_s": {"median": 4.0, "worst": 5.0},
                "trigger_kind_s": {"median": 2.0, "worst": 3.0},
                "anchor": {
                    "alertname": anchor.alertname,
                    "for_s": anchor.for_s,
                    "alert_s": None,
                    "alert_lower_bound_s": bound,
                },
                "ratio_vs_verified": ttm._ratio(bound, 4.0),
                "ratio_vs_detect": ttm._ratio(bound, 2.0),
            }
        },
        "sentinel_in_process": {"cpu_s": 1.0, "wall_s": 10.0, "peak_rss_bytes": 2**20},
        "anchor_sentinel_processes": {},
        "total_wall_s": 10.0,
    }
    text = ttm.table(res)
    assert f">={bound:.1f}" in text
    assert f"{bound / 4.0:.1f}" in text

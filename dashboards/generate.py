"""Writes dashboards/sentinel-overview.json (Grafana dashboard schema, version 39).

Plain Python so the panels stay consistent (ids, grid, datasource, filters); the
generated JSON is committed and tests/ops/test_dashboards.py checks it is current:

    python dashboards/generate.py          # rewrite the JSON
    python dashboards/generate.py --check  # exit 1 when the JSON is stale

The cluster label of the $cluster variable comes from alerts/mixin.yaml (cluster_label),
the same site settings as the alert rules.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

OUT = Path(__file__).with_name("sentinel-overview.json")
MIXIN = Path(__file__).resolve().parents[1] / "alerts" / "mixin.yaml"
CLUSTER = yaml.safe_load(MIXIN.read_text(encoding="utf-8"))["cluster_label"]
DS = {"type": "prometheus", "uid": "${datasource}"}
# every sentinel/Triton query is narrowed to the chosen cluster, namespace, pods and
# models; GPU queries also to the chosen GPUs, by gpu_uuid (Triton's and sentinel's label)
SEL = f'{CLUSTER}=~"$cluster", namespace="$namespace", pod=~"$pod"'
MSEL = SEL + ', model=~"$model"'
GSEL = SEL + ', gpu_uuid=~"$gpu"'
RATE = "$__rate_interval"


class Layout:
    """Places panels left to right on Grafana's 24-column grid."""

    def __init__(self) -> None:
        self.panels: list[dict[str, Any]] = []
        self.x = 0
        self.y = 0
        self.row_h = 0

    def _next_id(self) -> int:
        return len(self.panels) + 1

    def row(self, title: str) -> None:
        self.y += self.row_h
        self.x, self.row_h = 0, 0
        self.panels.append(
            {
                "type": "row",
                "id": self._next_id(),
                "title": title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y},
                "panels": [],
            }
        )
        self.y += 1

    def panel(
        self,
        kind: str,
        title: str,
        targets: list[tuple[str, str]],
        *,
        w: int = 8,
        h: int = 8,
        unit: str = "short",
        description: str = "",
        extra: dict[str, Any] | None = None,
    ) -> None:
        if not description:
            raise ValueError(f"panel {title!r} needs a description (what it shows, why)")
        if self.x + w > 24:
            self.y += self.row_h
            self.x, self.row_h = 0, 0
        panel: dict[str, Any] = {
            "type": kind,
            "id": self._next_id(),
            "title": title,
            "description": description,
            "datasource": DS,
            "gridPos": {"h": h, "w": w, "x": self.x, "y": self.y},
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "options": {},
            "targets": [
                {"datasource": DS, "refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend}
                for i, (expr, legend) in enumerate(targets)
            ],
        }
        if extra:
            panel.update(extra)
        self.panels.append(panel)
        self.x += w
        self.row_h = max(self.row_h, h)


def _variable(name: str, label: str, query: str, *, multi: bool) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DS,
        "query": {"query": query, "refId": f"{name}-var"},
        "definition": query,
        "refresh": 2,
        "includeAll": multi,
        "multi": multi,
        "allValue": ".*" if multi else None,
        "current": {},
        "sort": 1,
    }


def build() -> dict[str, Any]:
    lay = Layout()

    lay.row("Canary")
    lay.panel(
        "timeseries",
        "Canary latency p99 by model and batch size",
        [
            (
                "histogram_quantile(0.99, sum by (le, model, batch_size) "
                f"(rate(sentinel_canary_latency_seconds_bucket{{{MSEL}}}[{RATE}])))",
                "{{model}} b{{batch_size}} p99",
            ),
            (
                "histogram_quantile(0.5, sum by (le, model, batch_size) "
                f"(rate(sentinel_canary_latency_seconds_bucket{{{MSEL}}}[{RATE}])))",
                "{{model}} b{{batch_size}} p50",
            ),
        ],
        unit="s",
        description="Golden-input inferences sent by sentinel through Triton.",
    )
    lay.panel(
        "timeseries",
        "Canary agreement with the reference",
        [
            (
                "min by (model, batch_size, metric) "
                f'(sentinel_canary_agreement{{{MSEL}, metric=~"top1|cosine|accuracy"}})',
                "{{model}} b{{batch_size}} {{metric}}",
            )
        ],
        unit="percentunit",
        description="1 = outputs match the stored FP32/FP16 reference; drift shows as a drop.",
    )
    lay.panel(
        "timeseries",
        "Canary max abs error",
        [
            (
                "max by (model, batch_size) "
                f'(sentinel_canary_agreement{{{MSEL}, metric="max_abs_error"}})',
                "{{model}} b{{batch_size}}",
            )
        ],
        description="Largest absolute difference between Triton's output and the reference "
        "for the golden inputs; a jump without an agreement drop is numeric noise.",
    )
    lay.panel(
        "timeseries",
        "Canary outcomes",
        [
            (
                f"sum by (model, outcome) (rate(sentinel_canary_requests_total{{{MSEL}}}[{RATE}]))",
                "{{model}} {{outcome}}",
            )
        ],
        unit="reqps",
        description="Canary requests per second by outcome; anything but ok means Triton "
        "answered wrongly, late or not at all.",
    )
    lay.panel(
        "timeseries",
        "Latency SLO: share of canaries slower than 0.25 s",
        [
            (f"sentinel:canary_slow:ratio_rate5m{{{MSEL}}}", "{{model}} 5m"),
            (f"sentinel:canary_slow:ratio_rate1h{{{MSEL}}}", "{{model}} 1h"),
        ],
        unit="percentunit",
        description="From the recording rules in alerts/sentinel.rules.yaml; SLO is 1%.",
    )
    lay.panel(
        "stat",
        "Triton and models",
        [
            (f"min(sentinel_triton_up{{{SEL}}})", "server up"),
            (f"min by (model) (sentinel_triton_model_ready{{{MSEL}}})", "{{model}} ready"),
        ],
        description="1 = Triton answers its health endpoint / the model is ready, as sentinel "
        "sees it (the worst pod).",
    )

    lay.row("Incidents and automation")
    lay.panel(
        "timeseries",
        "Open incidents",
        [(f"sum by (kind, severity) (sentinel_incidents_open{{{SEL}}})", "{{kind}} {{severity}}")],
        description="Incidents sentinel holds open, by detector kind and severity "
        "(`sentinel incidents` lists them).",
    )
    lay.panel(
        "timeseries",
        "Findings by detector kind",
        [(f"sum by (kind) (increase(sentinel_findings_total{{{SEL}}}[{RATE}]))", "{{kind}}")],
        description="Findings the detectors raised; several findings of a kind feed one incident.",
    )
    lay.panel(
        "timeseries",
        "Playbook runs by outcome",
        [
            (
                "sum by (playbook, outcome) "
                f"(increase(sentinel_playbook_runs_total{{{SEL}}}[{RATE}]))",
                "{{playbook}} {{outcome}}",
            )
        ],
        description="Playbook runs by outcome (verified, failed, rolled back, dry run); the "
        "annotations mark each run on every panel.",
        extra={"fieldConfig": {"defaults": {"custom": {"drawStyle": "bars"}}, "overrides": []}},
    )
    lay.panel(
        "timeseries",
        "Guard blocks",
        [
            (
                "sum by (playbook, guard) "
                f"(increase(sentinel_playbook_guard_blocks_total{{{SEL}}}[{RATE}]))",
                "{{playbook}} blocked by {{guard}}",
            )
        ],
        description="Playbooks that wanted to act and a guard refused (cooldown, budget, "
        "fleet, cause).",
    )
    lay.panel(
        "stat",
        "Breaker and budgets",
        [
            (f"max(sentinel_breaker_open{{{SEL}}})", "breaker open"),
            (
                f"sum by (playbook) (sentinel_playbook_budget_exhausted{{{SEL}}})",
                "{{playbook}} budget spent",
            ),
        ],
        description="1 = automation stopped; the breaker needs `sentinel breaker reset`.",
    )
    lay.panel(
        "timeseries",
        "Notifications and outbox",
        [
            (
                f"sum by (notifier, outcome) (rate(sentinel_notifications_total{{{SEL}}}[{RATE}]))",
                "{{notifier}} {{outcome}}",
            ),
            (f"sum(sentinel_outbox_pending{{{SEL}}})", "outbox pending"),
        ],
        description="Deliveries to Slack, PagerDuty and Alertmanager by outcome, and notices "
        "waiting in the durable outbox (should return to 0).",
    )

    lay.row("GPU")
    lay.panel(
        "timeseries",
        "Temperature margin to slowdown",
        [(f"sentinel_gpu_temperature_margin_celsius{{{GSEL}}}", "{{pod}} gpu {{gpu}}")],
        unit="celsius",
        description="Degrees below the GPU's slowdown threshold (NVML); under 5 °C the "
        "GPU is about to throttle.",
    )
    lay.panel(
        "state-timeline",
        "Clock-event (throttle) reasons",
        [
            (
                f"max by (gpu, reason) (sentinel_gpu_clock_event_reason{{{GSEL}}}) == 1",
                "gpu {{gpu}} {{reason}}",
            )
        ],
        description="HW thermal / power-brake slowdowns cannot be fixed by restarting Triton.",
    )
    lay.panel(
        "timeseries",
        "GPU memory: Triton vs other processes",
        [
            (
                f"sum by (gpu_uuid) (nv_gpu_memory_used_bytes{{{GSEL}}})",
                "{{gpu_uuid}} used (all)",
            ),
            (
                f"sum by (gpu_uuid) (sentinel_gpu_memory_foreign_bytes{{{GSEL}}})",
                "{{gpu_uuid}} other processes",
            ),
            (f"sum by (gpu_uuid) (nv_gpu_memory_total_bytes{{{GSEL}}})", "{{gpu_uuid}} total"),
        ],
        unit="bytes",
        description="Memory held by processes other than Triton is why sentinel pages "
        "instead of shrinking batches.",
    )
    lay.panel(
        "timeseries",
        "GPU memory used",
        [(f"sentinel_gpu_memory_used_ratio{{{GSEL}}}", "{{pod}} gpu {{gpu}}")],
        unit="percentunit",
        description="Memory used over total, as NVML reports it; above 95% for 10 minutes "
        "alerts (GPU OOM risk).",
    )
    lay.panel(
        "timeseries",
        "Xid events",
        [
            (
                "sum by (pod, xid, cause) "
                f"(increase(sentinel_gpu_xid_events_total{{{SEL}}}[{RATE}]))",
                "{{pod}} xid {{xid}} ({{cause}})",
            )
        ],
        description="Xid errors from the driver, by cause: hardware Xids (48, 79, ...) need "
        "the node drained, application Xids the model fixed.",
        extra={"fieldConfig": {"defaults": {"custom": {"drawStyle": "bars"}}, "overrides": []}},
    )
    lay.panel(
        "timeseries",
        "GPU utilization and power (Triton)",
        [
            (f"avg by (gpu_uuid) (nv_gpu_utilization{{{GSEL}}})", "{{gpu_uuid}} util"),
            (f"sum by (gpu_uuid) (nv_gpu_power_usage{{{GSEL}}})", "{{gpu_uuid}} watts"),
        ],
        unit="percentunit",
        description="Triton's own GPU gauges (labelled gpu_uuid): utilization 0-1 on the "
        "left axis, power in watts on the right.",
        extra={"fieldConfig": {"defaults": {"unit": "percentunit"}, "overrides": [_WATTS_RIGHT]}},
    )
    lay.panel(
        "stat",
        "NVML reachable",
        [(f"min by (gpu, gpu_uuid) (sentinel_gpu_up{{{GSEL}}})", "gpu {{gpu}} {{gpu_uuid}}")],
        w=24,
        h=4,
        description="1 = sentinel's GPU source (NVML) answers for this GPU; 0 or no value "
        "means sentinel is blind to it (docs/operations.md, SentinelGpuDown).",
    )

    lay.row("Triton")
    lay.panel(
        "timeseries",
        "Requests: success and failures by reason",
        [
            (
                f"sum by (model) (rate(nv_inference_request_success{{{MSEL}}}[{RATE}]))",
                "{{model}} success",
            ),
            (
                f"sum by (model, reason) (rate(nv_inference_request_failure{{{MSEL}}}[{RATE}]))",
                "{{model}} {{reason}}",
            ),
        ],
        unit="reqps",
        description="Triton's own request counters: successes and failures by reason "
        "(REJECTED = queue timeout, BACKEND = model error, CANCELED = client gave up).",
    )
    lay.panel(
        "timeseries",
        "Queue vs compute time per request",
        [
            (
                f"sum by (model) (rate(nv_inference_queue_duration_us{{{MSEL}}}[{RATE}])) / "
                f"sum by (model) (rate(nv_inference_request_success{{{MSEL}}}[{RATE}])) / 1e6",
                "{{model}} queue",
            ),
            (
                "sum by (model) "
                f"(rate(nv_inference_compute_infer_duration_us{{{MSEL}}}[{RATE}])) / "
                f"sum by (model) (rate(nv_inference_request_success{{{MSEL}}}[{RATE}])) / 1e6",
                "{{model}} compute",
            ),
            (
                f"sum by (model) (rate(nv_inference_request_duration_us{{{MSEL}}}[{RATE}])) / "
                f"sum by (model) (rate(nv_inference_request_success{{{MSEL}}}[{RATE}])) / 1e6",
                "{{model}} total",
            ),
        ],
        unit="s",
        description="Queue dominating means capacity; compute rising means a slower GPU.",
    )
    lay.panel(
        "timeseries",
        "Pending requests and batch size",
        [
            (f"sum by (model) (nv_inference_pending_request_count{{{MSEL}}})", "{{model}} pending"),
            (
                f"sum by (model) (rate(nv_inference_count{{{MSEL}}}[{RATE}])) / "
                f"sum by (model) (rate(nv_inference_exec_count{{{MSEL}}}[{RATE}]))",
                "{{model}} avg batch",
            ),
        ],
        description="Requests waiting in Triton's queue, and the average batch the dynamic "
        "batcher formed (inferences per execution).",
    )
    lay.panel(
        "table",
        "sentinel versions",
        [(f"sentinel_build_info{{{SEL}}}", "{{pod}} {{version}}")],
        w=24,
        h=5,
        description="Which sentinel version runs in each pod.",
        extra={"targets": [_instant(f"sentinel_build_info{{{SEL}}}")]},
    )

    return {
        "uid": "sentinel-overview",
        "title": "sentinel overview",
        "description": "Triton canaries, incidents, playbooks, guards and GPU health, per pod.",
        "tags": ["sentinel", "triton", "gpu"],
        "editable": True,
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "30s",
        "timezone": "utc",
        "graphTooltip": 1,
        "links": [],
        "annotations": {"list": _annotations()},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Data source",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                },
                _variable(
                    "cluster",
                    "Cluster",
                    f"label_values(sentinel_build_info, {CLUSTER})",
                    multi=True,
                ),
                _variable(
                    "namespace",
                    "Namespace",
                    f'label_values(sentinel_build_info{{{CLUSTER}=~"$cluster"}}, namespace)',
                    multi=False,
                ),
                _variable(
                    "pod",
                    "Pod",
                    f'label_values(sentinel_build_info{{{CLUSTER}=~"$cluster", '
                    'namespace="$namespace"}, pod)',
                    multi=True,
                ),
                _variable(
                    "model",
                    "Model",
                    f"label_values(sentinel_canary_requests_total{{{SEL}}}, model)",
                    multi=True,
                ),
                _variable(
                    "gpu",
                    "GPU",
                    # sentinel's and Triton's GPU series share gpu_uuid; either may be absent
                    f'label_values({{__name__=~"sentinel_gpu_up|nv_gpu_utilization", {SEL}}}, '
                    "gpu_uuid)",
                    multi=True,
                ),
            ]
        },
        "panels": lay.panels,
    }


_WATTS_RIGHT = {
    "matcher": {"id": "byFrameRefID", "options": "B"},
    "properties": [
        {"id": "unit", "value": "watt"},
        {"id": "custom.axisPlacement", "value": "right"},
        {"id": "custom.axisLabel", "value": "watts"},
    ],
}


def _annotations() -> list[dict[str, Any]]:
    """Playbook runs and breaker trips, marked on every time series panel."""
    return [
        {
            "name": "Playbook runs",
            "datasource": DS,
            "enable": True,
            "iconColor": "orange",
            "expr": "sum by (pod, playbook, outcome) "
            f"(changes(sentinel_playbook_runs_total{{{SEL}}}[2m])) > 0",
            "step": "1m",
            "titleFormat": "{{playbook}}: {{outcome}}",
            "textFormat": "playbook {{playbook}} ran in {{pod}} ({{outcome}})",
            "tagKeys": "playbook,outcome",
        },
        {
            "name": "Breaker open",
            "datasource": DS,
            "enable": True,
            "iconColor": "red",
            "expr": f"max by (pod) (sentinel_breaker_open{{{SEL}}}) == 1",
            "step": "1m",
            "titleFormat": "automation stopped in {{pod}}",
            "textFormat": "circuit breaker open: `sentinel breaker reset` after review",
            "tagKeys": "pod",
        },
    ]


def _instant(expr: str) -> dict[str, Any]:
    return {"datasource": DS, "refId": "A", "expr": expr, "instant": True, "format": "table"}


def render() -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if OUT.read_text(encoding="utf-8") != text:
            print(f"{OUT} is stale: run python dashboards/generate.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

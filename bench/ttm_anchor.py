"""The anchor of the time-to-mitigate benchmark: real Prometheus + Alertmanager.

Prometheus scrapes Triton's and sentinel's metrics every 15 s, evaluates the rules
in ``alerts/*.rules.yaml`` as shipped every 15 s, and sends to a real Alertmanager
whose only receiver is a loopback webhook here. The repository ships no
Alertmanager config, so Alertmanager's default ``group_wait`` (30 s) applies.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from sentinel.testing.triton_local import free_port

ROOT = Path(__file__).resolve().parents[1]
RULES = sorted((ROOT / "alerts").glob("*.rules.yaml"))
SCRAPE_INTERVAL = "15s"
EVALUATION_INTERVAL = "15s"
GROUP_WAIT_S = 30.0  # Alertmanager's default; no config is shipped in deploy/ or alerts/


@dataclass
class Received:
    """One alert as it reached the webhook receiver."""

    alertname: str
    pod: str
    at: float


class Webhook:
    """A loopback HTTP server speaking Alertmanager's webhook format (version 4)."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self._lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                now = time.time()
                length = int(self.headers.get("Content-Length", "0"))
                try:
                    body = json.loads(self.rfile.read(length))
                    alerts = body.get("alerts", [])
                except (ValueError, AttributeError):
                    alerts = []
                with hook._lock:
                    for a in alerts:
                        labels = a.get("labels", {}) if isinstance(a, dict) else {}
                        if a.get("status") == "firing":
                            hook.received.append(
                                Received(labels.get("alertname", ""), labels.get("pod", ""), now)
                            )
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass  # quiet

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def first(self, alertname: str, pod: str) -> float | None:
        """When the alert first reached the receiver (epoch seconds), if it did."""
        with self._lock:
            times = [r.at for r in self.received if r.alertname == alertname and r.pod == pod]
        return min(times) if times else None

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Target:
    """One scraped pod: a Triton metrics endpoint and a sentinel /metrics endpoint."""

    pod: str
    triton_metrics: str
    sentinel_metrics: str


@dataclass
class Monitoring:
    """Prometheus and Alertmanager processes, each in its own temporary folder."""

    targets: list[Target]
    webhook: Webhook
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="ttm-prom-")))
    prom_port: int = field(default_factory=free_port)
    am_port: int = field(default_factory=free_port)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def write_configs(self) -> tuple[Path, Path]:
        """prometheus.yml and alertmanager.yml in the work folder (checkable with promtool)."""
        am_cfg = {
            # one group per alert and pod, so one class's alert never waits on another's
            "route": {"receiver": "bench", "group_by": ["alertname", "pod"]},
            "receivers": [
                {
                    "name": "bench",
                    "webhook_configs": [
                        {"url": f"http://127.0.0.1:{self.webhook.port}/", "send_resolved": False}
                    ],
                }
            ],
        }
        am_path = self.workdir / "alertmanager.yml"
        am_path.write_text(yaml.safe_dump(am_cfg))
        prom_cfg = {
            "global": {
                "scrape_interval": SCRAPE_INTERVAL,
                "evaluation_interval": EVALUATION_INTERVAL,
            },
            "rule_files": [str(p) for p in RULES],
            "alerting": {
                "alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{self.am_port}"]}]}]
            },
            "scrape_configs": [
                _job("triton", [(t.pod, t.triton_metrics) for t in self.targets]),
                _job("sentinel", [(t.pod, t.sentinel_metrics) for t in self.targets]),
            ],
        }
        prom_path = self.workdir / "prometheus.yml"
        prom_path.write_text(yaml.safe_dump(prom_cfg))
        return prom_path, am_path

    def start(self) -> None:
        prom_path, am_path = self.write_configs()
        self._spawn(
            "alertmanager",
            [
                "/usr/bin/prometheus-alertmanager",
                f"--config.file={am_path}",
                f"--storage.path={self.workdir / 'am-data'}",
                f"--web.listen-address=127.0.0.1:{self.am_port}",
                "--cluster.listen-address=",
            ],
        )
        self._spawn(
            "prometheus",
            [
                "/usr/bin/prometheus",
                f"--config.file={prom_path}",
                f"--storage.tsdb.path={self.workdir / 'prom-data'}",
                f"--web.listen-address=127.0.0.1:{self.prom_port}",
            ],
        )

    def _spawn(self, name: str, cmd: list[str]) -> None:
        log = (self.workdir / f"{name}.log").open("wb")
        self.procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT))
        log.close()

    def query(self, path: str) -> Any:
        """GET a Prometheus API path; None when it does not answer."""
        url = f"http://127.0.0.1:{self.prom_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=2.0) as resp:
                return json.loads(resp.read())
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def targets_up(self) -> bool:
        """Every target has been scraped successfully at least once."""
        body = self.query("/api/v1/targets")
        if not body:
            return False
        active = body.get("data", {}).get("activeTargets", [])
        return len(active) == 2 * len(self.targets) and all(t["health"] == "up" for t in active)

    def active_since(self, alertname: str, pod: str) -> float | None:
        """When Prometheus first saw the alert's expression true (``activeAt``), if it has."""
        body = self.query("/api/v1/alerts")
        if not body:
            return None
        for a in body.get("data", {}).get("alerts", []):
            labels = a.get("labels", {})
            if labels.get("alertname") == alertname and labels.get("pod") == pod:
                return datetime.fromisoformat(a["activeAt"].replace("Z", "+00:00")).timestamp()
        return None

    def close(self) -> None:
        for p in self.procs:
            stop_process(p)
        shutil.rmtree(self.workdir, ignore_errors=True)


def _job(name: str, targets: list[tuple[str, str]]) -> dict[str, Any]:
    """A scrape job with one static target per pod (host:port from a metrics URL)."""
    return {
        "job_name": name,
        "static_configs": [
            {
                "targets": [url.split("//", 1)[-1].split("/", 1)[0]],
                "labels": {"namespace": "bench", "pod": pod},
            }
            for pod, url in targets
        ],
    }


def stop_process(p: subprocess.Popen[bytes], timeout_s: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited in time."""
    if p.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout_s)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def proc_usage(pid: int) -> tuple[float, int] | None:
    """CPU seconds (user + system) and peak resident memory (VmHWM, bytes) of a live process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    cpu = ticks / os.sysconf("SC_CLK_TCK")
    hwm = 0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            hwm = int(line.split()[1]) * 1024
    return cpu, hwm

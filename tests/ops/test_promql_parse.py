"""Every PromQL expression in alerts/ and dashboards/ parses in a real Prometheus.

Starts Debian's `prometheus` binary on a free loopback port with an empty TSDB and
sends each expression to /api/v1/query; a parse error comes back as `bad_data`.
"""

# ruff: noqa: SIM300  (the project asserts in `expected == actual` order)

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from promql import all_exprs
from systools import need_tool

pytestmark = pytest.mark.promtool


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prometheus on loopback with nothing to scrape; yields its base URL."""
    binary = need_tool("prometheus")
    work: Path = tmp_path_factory.mktemp("prometheus")
    config = work / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1m\n", encoding="utf-8")
    port = _free_port()
    log = (work / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={work / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{base}/-/ready", timeout=1) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((work / "prometheus.log").read_text(errors="replace")[-2000:])
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def _query(base: str, promql: str) -> tuple[int, dict[str, Any]]:
    return _get(f"{base}/api/v1/query?{urllib.parse.urlencode({'query': promql})}")


def test_every_expression_parses(prometheus: str) -> None:
    """Prometheus accepts every rule and dashboard expression (no bad_data)."""
    exprs = all_exprs()
    failures = []
    for e in exprs:
        _status, body = _query(prometheus, e.promql)
        if body.get("status") != "success":
            failures.append(f"{e.where}: {body.get('errorType')}: {body.get('error')}")
    assert [] == failures
    assert len(exprs) > 50  # the collection found the dashboards and the rules


def test_a_broken_expression_is_reported_as_bad_data(prometheus: str) -> None:
    """The check can fail: a malformed expression comes back as bad_data."""
    status, body = _query(prometheus, "sum by (model (rate(x[5m]))")
    assert (400, "error", "bad_data") == (status, body["status"], body["errorType"])

"""System tools the operations tests run (installed by tools/install-system-deps.sh)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest


def need_tool(name: str) -> str:
    """Path of a system tool, or skip the test when it is not installed."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} not installed (run tools/install-system-deps.sh as root)")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def get_json(url: str) -> tuple[int, dict[str, Any]]:
    """GET a JSON API on loopback; HTTP errors return their status and body too."""
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def query(base: str, promql: str) -> tuple[int, dict[str, Any]]:
    """An instant query against a Prometheus."""
    return get_json(f"{base}/api/v1/query?{urllib.parse.urlencode({'query': promql})}")


@contextmanager
def running_prometheus(work: Path, config: str) -> Iterator[str]:
    """The real `prometheus` binary on a free loopback port; yields its base URL."""
    binary = need_tool("prometheus")
    config_file = work / "prometheus.yml"
    config_file.write_text(config, encoding="utf-8")
    port = free_port()
    log_path = work / "prometheus.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config_file}",
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
                    tail = log_path.read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"prometheus did not start:\n{tail}")
                time.sleep(0.1)
            yield base
        finally:
            proc.terminate()
            proc.wait(timeout=10)

"""The daemon against a real tritonserver: metrics, server loss and recovery, --once."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from sentinel.config import Config
from sentinel.testing.triton_local import LocalTriton
from sentinel.wiring import build

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "examples" / "golden" / "digits.npz"

pytestmark = pytest.mark.triton


def config_for(server: LocalTriton, state: Path, **extra: object) -> Config:
    data: dict[str, object] = {
        "pod": "test-pod",
        "state_dir": str(state),
        "triton": {
            "url": server.grpc_url,
            "metrics_url": server.metrics_url,
            "health_interval_s": 0.2,
            "timeout_s": 1.0,
        },
        "canaries": [
            {"model": "digits", "golden_set": str(GOLDEN), "interval_s": 0.2, "batch_sizes": [1, 4]}
        ],
        "gpu": {"source": "off"},
        "playbooks": {"dirs": [str(ROOT / "playbooks")], "enabled": False},
        "metrics": {"bind": "127.0.0.1", "port": 0},
        "api": {"port": 0},
    }
    data.update(extra)
    return Config.model_validate(data)


def scrape(port: int) -> dict[str, float]:
    """Unlabelled and labelled samples of sentinel's /metrics, keyed by their text form."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return out


async def wait_for(predicate: Callable[[], bool], timeout_s: float = 20.0) -> None:
    """Until ``predicate`` holds; it runs off the loop (a scrape blocks, /metrics is served
    by the loop)."""
    deadline = time.monotonic() + timeout_s
    while not await asyncio.to_thread(predicate):
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)


async def test_server_loss_turns_triton_up_to_zero_and_recovers(
    dedicated_triton: LocalTriton, tmp_path: Path
) -> None:
    """A stopped server drops sentinel_triton_up to 0; the daemon keeps running and recovers."""
    config = config_for(dedicated_triton, tmp_path / "state")
    async with build(config, serve_api=False) as sentinel:
        task = asyncio.create_task(sentinel.daemon.run())
        try:
            await sentinel.daemon.started.wait()
            assert sentinel.daemon.metrics_server is not None
            port = sentinel.daemon.metrics_server.port
            await wait_for(lambda: scrape(port).get("sentinel_triton_up") == 1.0)
            dedicated_triton.kill()
            await wait_for(lambda: scrape(port).get("sentinel_triton_up") == 0.0)
            unreachable = (
                "sentinel_canary_requests_total{batch_size=1,model=digits,outcome=unreachable}"
            )
            await wait_for(lambda: scrape(port).get(unreachable, 0) >= 1)
            assert not task.done(), "the daemon must keep running without its server"
            await asyncio.to_thread(dedicated_triton.start)
            await wait_for(lambda: scrape(port).get("sentinel_triton_up") == 1.0)
        finally:
            sentinel.daemon.request_stop()
            await task


async def test_added_latency_shows_in_the_latency_histogram(
    dedicated_triton: LocalTriton, tmp_path: Path
) -> None:
    """The model's delay knob moves canary latency into the higher histogram buckets."""
    config = config_for(dedicated_triton, tmp_path / "state")
    slow = "sentinel_canary_latency_seconds_bucket{batch_size=1,le=0.25,model=digits,version=1}"
    count = "sentinel_canary_latency_seconds_count{batch_size=1,model=digits,version=1}"
    async with build(config, serve_api=False) as sentinel:
        task = asyncio.create_task(sentinel.daemon.run())
        try:
            await sentinel.daemon.started.wait()
            assert sentinel.daemon.metrics_server is not None
            port = sentinel.daemon.metrics_server.port
            await wait_for(lambda: scrape(port).get(count, 0) >= 3)
            fast = await asyncio.to_thread(scrape, port)
            assert fast[count] == fast[slow], "before the fault every canary is under 250 ms"
            served = await sentinel.triton.model_config("digits")
            params = dict(served.get("parameters", {}))
            params["delay_ms"] = {"string_value": "300"}
            await sentinel.triton.load_model("digits", {**served, "parameters": params})
            before = (await asyncio.to_thread(scrape, port))[count]
            await wait_for(lambda: scrape(port)[count] >= before + 3)
            after = await asyncio.to_thread(scrape, port)
            slow_ones = (after[count] - after[slow]) - (fast[count] - fast[slow])
            assert slow_ones >= 2, f"expected canaries over 250 ms, got {slow_ones}"
        finally:
            sentinel.daemon.request_stop()
            await task


def test_run_once_json_prints_what_it_saw(dedicated_triton: LocalTriton, tmp_path: Path) -> None:
    """`sentinel run --once --json` prints one round of samples as JSON records."""
    config = config_for(dedicated_triton, tmp_path / "state")
    path = tmp_path / "sentinel.json.yaml"
    path.write_text(config.model_dump_json())
    done = subprocess.run(
        [sys.executable, "-m", "sentinel", "run", "--config", str(path), "--once", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert 0 == done.returncode, done.stderr
    records = json.loads(done.stdout)
    kinds = sorted({(r["type"], r.get("outcome")) for r in records})
    assert [("canary", "ok"), ("triton", None)] == kinds

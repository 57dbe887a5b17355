"""The real-Triton test bed itself: launcher, model knobs, fixtures."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from triton_fixtures import GOLDEN_DIGITS, MODEL_REPOSITORY, ModelHandle

from sentinel.testing.triton_local import LocalTriton, TritonStartError, read_model_config

pytestmark = pytest.mark.triton


def _infer(server: LocalTriton, rows: np.ndarray) -> np.ndarray:
    body = {
        "inputs": [
            {
                "name": "INPUT",
                "shape": list(rows.shape),
                "datatype": "FP32",
                "data": rows.ravel().tolist(),
            }
        ]
    }
    request = urllib.request.Request(
        f"http://{server.http_url}/v2/models/digits/infer",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        out = json.loads(resp.read())["outputs"][0]
    return np.asarray(out["data"], dtype=np.float32).reshape(out["shape"])


def test_fp32_model_reproduces_the_golden_references(digits: ModelHandle) -> None:
    """The served FP32 model computes exactly the committed reference logits."""
    golden = np.load(GOLDEN_DIGITS)
    logits = _infer(digits.server, golden["INPUT"][:16])
    exact = 0.0
    assert exact == float(np.abs(logits - golden["reference__LOGITS"][:16]).max())


def test_read_model_config_matches_the_served_config(digits: ModelHandle) -> None:
    """The pbtxt parsed locally has the same batch size and knobs as Triton serves."""
    with urllib.request.urlopen(f"http://{digits.server.http_url}/v2/models/digits/config") as r:
        served = json.loads(r.read())
    local = read_model_config(MODEL_REPOSITORY / "digits")
    assert served["max_batch_size"] == local["max_batch_size"]
    assert served["parameters"] == local["parameters"]


def test_kill_then_supervisor_restarts_on_same_ports(dedicated_triton: LocalTriton) -> None:
    """A killed server is brought back by the supervisor, with a new pid and the same port."""
    first_pid = dedicated_triton.pid
    port = dedicated_triton.http_port
    dedicated_triton.supervise(backoff_s=0.1)
    os.kill(first_pid or 0, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (
        dedicated_triton.restarts == 1 and dedicated_triton.pid not in (None, first_pid)
    ):
        time.sleep(0.1)
    dedicated_triton.wait_ready(30)
    assert (1, port) == (dedicated_triton.restarts, dedicated_triton.http_port)
    assert dedicated_triton.pid not in (None, first_pid)
    dedicated_triton.stop()
    assert dedicated_triton.pid is None


def test_stop_also_ends_the_stubs_of_a_server_killed_by_pid(
    triton_factory: Callable[..., LocalTriton],
) -> None:
    """A server SIGKILLed by pid (as restart-server does) leaves its decoupled model's stub
    running on its own; stop() ends it too, so tests leave no process behind."""
    server = triton_factory(repo=MODEL_REPOSITORY.parent / "llm_repository")
    os.kill(server.pid or 0, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and server.pid is not None:
        time.sleep(0.1)
    server.stop()
    deadline = time.monotonic() + 10  # SIGKILL is delivered, not awaited
    while time.monotonic() < deadline and _running_from(server.workdir):
        time.sleep(0.1)
    assert [] == _running_from(server.workdir)


def _running_from(folder: Path) -> list[int]:
    """Pids of live processes whose command line names ``folder`` (zombies excluded)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and str(folder).encode() in (entry / "cmdline").read_bytes():
                stat = (entry / "stat").read_text()
                if stat[stat.rindex(")") + 2] != "Z":
                    found.append(int(entry.name))
        except OSError:
            continue
    return found


def test_broken_model_fails_start_with_log_tail(tmp_path: Path) -> None:
    """A repository whose model cannot load stops start() with Triton's own reason."""
    repo = tmp_path / "repo"
    shutil.copytree(MODEL_REPOSITORY, repo)
    config = repo / "digits" / "config.pbtxt"
    config.write_text(config.read_text().replace('string_value: "fp32"', 'string_value: "fp8"'))
    server = LocalTriton(repo, workdir=tmp_path / "work")
    try:
        with pytest.raises(TritonStartError, match="expected fp32, fp16 or int8, got 'fp8'"):
            server.start(timeout_s=60)
    finally:
        server.close()


@pytest.mark.parametrize("knob", ["delay_ms", "hang_s"])
def test_non_numeric_knob_refuses_the_load(digits: ModelHandle, knob: str) -> None:
    """A knob that is not a number makes Triton refuse the config, naming the parameter."""
    with pytest.raises(RuntimeError, match=f"parameter '{knob}': expected a number"):
        digits.reconfigure(**{knob: "soon"})


def test_jitter_spreads_latency(digits: ModelHandle) -> None:
    """delay_jitter_ms adds a random delay: latencies spread over tens of milliseconds."""
    digits.reconfigure(delay_jitter_ms=200)
    rows = np.load(GOLDEN_DIGITS)["INPUT"][:1]
    latencies = []
    for _ in range(6):
        start = time.monotonic()
        _infer(digits.server, rows)
        latencies.append(time.monotonic() - start)
    print("latencies with 0-200 ms jitter:", [round(x, 3) for x in latencies])
    assert max(latencies) - min(latencies) > 0.03
    assert max(latencies) < 0.2 + 0.5

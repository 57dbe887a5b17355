"""The whole loop live on a GPU machine (docs/gpu-verification.md, "Live loop").

A real tritonserver serves the digits model with its forward pass on the GPU (PyTorch,
CUDA); `sentinel run` watches it at the shipped detector defaults with canaries, Triton's
metrics, NVML at 1 Hz and Xid events, acting for real (not dry-run) and paging loopback
Slack and PagerDuty servers. Then real faults, one after another:

1. latency: every execution slows by 300 ms while max_batch_size > 16 (a reload with the
   model's fault knobs) -> latency_spike -> reduce-batch-size -> verified -> resolved;
2. GPU memory: another process fills the GPU (tools/gpu_live/fill.py) -> gpu_oom opens,
   the playbook sees foreign memory and pages; the process exits -> the incident resolves;
3. an application Xid: a kernel writes through a bad pointer (tools/gpu_live/xid.py).

Run from the repository root with the trimmed tritonserver and sentinel's missing
dependencies on PYTHONPATH (see the docs); results in $OUT. Also runs on a CPU machine
(model on the CPU, GPU source off, no memory or Xid fault) to check the script itself.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))
from overhead import Watch, measure  # noqa: E402
from repository import serving_repository  # noqa: E402

from sentinel.testing.notifiers import PagerDutyServer, SlackServer  # noqa: E402
from sentinel.testing.triton_local import LocalTriton, free_port  # noqa: E402

OUT = Path(os.environ["OUT"])
OUT.mkdir(parents=True, exist_ok=True)
WORK = Path(tempfile.mkdtemp(prefix="sentinel-live-"))
STATE = WORK / "state"
T0 = time.time()
LATENCY_WAIT_S = float(os.environ.get("LIVE_LATENCY_WAIT_S", "150"))
RESOLVE_WAIT_S = float(os.environ.get("LIVE_RESOLVE_WAIT_S", "230"))
FILL_HOLD_S = os.environ.get("LIVE_FILL_HOLD_S", "30")
timeline = (OUT / "timeline.txt").open("w")


def mark(what: str) -> None:
    line = f"{time.time() - T0:8.1f} s  {time.strftime('%H:%M:%S')}  {what}"
    print(line, flush=True)
    timeline.write(line + "\n")
    timeline.flush()


def gpu_present() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:
        return False


def rows(sql: str) -> list[sqlite3.Row]:
    db = STATE / "sentinel.db"
    if not db.exists():
        return []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql).fetchall()
    except sqlite3.Error:
        return []
    finally:
        conn.close()


def incidents() -> list[dict[str, Any]]:
    return [
        json.loads(r["data"]) | {"_status": r["status"]} for r in rows("SELECT * FROM incidents")
    ]


def incident(kind: str, since: float) -> dict[str, Any] | None:
    found = [
        i
        for i in incidents()
        if i.get("kind") == kind and float(i.get("detected_at") or 0) >= since
    ]
    return found[-1] if found else None


def runs() -> list[dict[str, Any]]:
    return [dict(r) for r in rows("SELECT * FROM runbook_runs ORDER BY started_at")]


def steps() -> list[dict[str, Any]]:
    return [dict(r) for r in rows("SELECT * FROM runbook_steps ORDER BY id")]


def http_json(url: str, body: dict[str, Any] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    request = urllib.request.Request(url, data=data, headers=headers)  # noqa: S310 (http: only)
    with urllib.request.urlopen(request, timeout=60) as resp:  # noqa: S310 (raises on >= 400)
        content = resp.read()
    return json.loads(content) if content else None


def reconfigure(server: LocalTriton, **params: str) -> dict[str, Any]:
    """Reload digits with knobs changed, from the config Triton serves now."""
    base = f"http://{server.http_url}/v2"
    config = http_json(f"{base}/models/digits/config")
    merged = dict(config.get("parameters", {}))
    merged.update({k: {"string_value": v} for k, v in params.items()})
    http_json(
        f"{base}/repository/models/digits/load",
        {"parameters": {"config": json.dumps({**config, "parameters": merged})}},
    )
    return dict(config)


def sentinel_config(
    server: LocalTriton, slack: SlackServer, pd: PagerDutyServer, gpu: bool, metrics_port: int
) -> Path:
    """The example config's probes and intervals, the shipped detectors, loopback notifiers."""
    example = yaml.safe_load((ROOT / "examples" / "sentinel.yaml").read_text())
    canary = dict(example["canaries"][0], golden_set=str(ROOT / "examples/golden/digits.npz"))
    config = {
        "pod": "h200-live",
        "state_dir": str(STATE),
        "dry_run": False,
        "triton": dict(
            example["triton"],
            url=server.http_url,
            protocol="http",
            metrics_url=server.metrics_url,
        ),
        "canaries": [canary],
        "gpu": dict(example["gpu"], source="nvml" if gpu else "off"),
        "playbooks": {
            "dirs": [str(ROOT / "playbooks")],
            "server_pid_file": str(WORK / "tritonserver.pid"),
        },
        "notifiers": {
            "console": {"enabled": False},
            "slack": {
                "enabled": True,
                "token": slack.token,
                "channel": "#gpu-live",
                "base_url": slack.base_url,
            },
            "pagerduty": {
                "enabled": True,
                "routing_key": pd.routing_key,
                "base_url": pd.base_url,
                "ca_file": str(pd.cert),
            },
        },
        "api": {"bind": "127.0.0.1", "port": free_port()},
        "metrics": {"bind": "127.0.0.1", "port": metrics_port},
        "logging": {"level": "info", "format": "json"},
    }
    path = WORK / "sentinel.yaml"
    path.write_text(json.dumps(config, indent=2))  # JSON is YAML
    (OUT / "sentinel.yaml").write_text(path.read_text())
    return path


async def wait_for(what: str, check: Any, timeout_s: float) -> Any:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        found = check()
        if found:
            mark(what)
            return found
        await asyncio.sleep(0.5)
    mark(f"NOT SEEN within {timeout_s:.0f} s: {what}")
    return None


def verified(playbook: str, since: float) -> dict[str, Any] | None:
    for r in runs():
        if r["playbook"] == playbook and r["started_at"] >= since and r["status"] == "succeeded":
            return r
    return None


async def latency_fault(server: LocalTriton, summary: dict[str, Any]) -> None:
    mark("fault 1: every execution +300 ms while max_batch_size > 16")
    before = reconfigure(server, delay_ms="300", slow_above_batch="16")
    t = time.time()
    summary["latency"] = lat = {"injected_at": t, "max_batch_size_before": before["max_batch_size"]}
    inc = await wait_for(
        "latency_spike incident open", lambda: incident("latency_spike", t), LATENCY_WAIT_S
    )
    if inc:
        lat["detected_after_s"] = float(inc["detected_at"]) - t
    run = await wait_for(
        "reduce-batch-size verified", lambda: verified("reduce-batch-size", t), LATENCY_WAIT_S
    )
    if run:
        lat["mitigated_after_s"] = float(run["finished_at"]) - t
    served = http_json(f"http://{server.http_url}/v2/models/digits/config")
    lat["max_batch_size_after"] = served.get("max_batch_size")
    mark(f"max_batch_size served now: {lat['max_batch_size_after']}")
    reconfigure(server, delay_ms="0", slow_above_batch="0")
    mark("fault 1 cleared (knobs off; the lease restores the batch size later)")


async def memory_fault(summary: dict[str, Any]) -> None:
    mark("fault 2: another process fills the GPU's memory")
    t = time.time()
    mem: dict[str, Any] = {"started_at": t}
    summary["memory"] = mem
    fill = await asyncio.create_subprocess_exec(
        sys.executable,
        str(HERE / "fill.py"),
        FILL_HOLD_S,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert fill.stdout is not None
    while line := (await fill.stdout.readline()).decode():
        mark("fill: " + line.strip())
        if "filled" in line:
            mem["filled_at"] = time.time()
        inc = incident("gpu_oom", t)
        if inc and "detected_after_s" not in mem and "filled_at" in mem:
            mem["detected_after_s"] = float(inc["detected_at"]) - mem["filled_at"]
            mark(f"gpu_oom open: {inc.get('summary')}")
    await fill.wait()
    mem["freed_at"] = time.time()
    mark("fill process exited: memory freed")
    inc = incident("gpu_oom", t)
    if inc and "detected_after_s" not in mem and "filled_at" in mem:
        mem["detected_after_s"] = float(inc["detected_at"]) - mem["filled_at"]
    mem["incident"] = inc


async def xid_fault(summary: dict[str, Any]) -> None:
    mark("fault 3: a kernel writes through a bad pointer (application Xid)")
    t = time.time()
    xid = await asyncio.create_subprocess_exec(
        sys.executable,
        str(HERE / "xid.py"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await xid.communicate()
    for line in out.decode().splitlines()[-4:]:
        mark("xid: " + line)
    summary["xid"] = {"launched_at": t}


def xid_series(metrics_port: int) -> list[str]:
    """sentinel's Xid counter lines (an application Xid is counted, not an incident)."""
    try:
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as resp:
            text = resp.read().decode()
    except OSError:  # URLError is one
        return []
    return [ln for ln in text.splitlines() if ln.startswith("sentinel_gpu_xid_events_total")]


async def main() -> int:
    gpu = gpu_present()
    mark(f"GPU for the model and NVML: {gpu}")
    repo = serving_repository(WORK, "cuda" if gpu else "cpu")
    server = LocalTriton(repo, workdir=WORK / "triton", pid_file=WORK / "tritonserver.pid")
    slack = await SlackServer().start()
    pd = await PagerDutyServer().start(WORK)
    summary: dict[str, Any] = {"gpu": gpu}
    proc: subprocess.Popen[bytes] | None = None
    try:
        await asyncio.to_thread(server.start)
        served = http_json(f"http://{server.http_url}/v2/models/digits/config")
        device = served["parameters"]["device"]["string_value"]
        mark(f"tritonserver {server.pid} ready; digits computes on {device}")
        metrics_port = free_port()
        config = sentinel_config(server, slack, pd, gpu, metrics_port)
        env = dict(
            os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
        )
        log = (OUT / "sentinel.log").open("wb")
        proc = subprocess.Popen(  # noqa: ASYNC220 -- returns at once
            [sys.executable, "-m", "sentinel", "run", "--config", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
        )
        idle = subprocess.Popen(  # noqa: ASYNC220 -- returns at once
            [sys.executable, "-c", "import signal; signal.pause()"]
        )
        mark(f"sentinel started, pid {proc.pid}; baseline and footprint for 60 s")
        await asyncio.sleep(10)
        figures = await asyncio.to_thread(
            measure, {"sentinel": Watch(proc.pid), "idle": Watch(idle.pid)}, 50.0
        )
        idle.terminate()
        summary["overhead"] = {k: vars(v) for k, v in figures.items()}
        for name, f in figures.items():
            mark(
                f"{name}: cpu {f.cpu_pct:.2f} % of a core, peak rss {f.peak_rss_mb:.0f} MB, "
                f"threads {f.threads}, wakeups {f.wakeups_per_s:.1f}/s over {f.seconds:.0f} s"
            )
        await latency_fault(server, summary)
        if gpu:
            await memory_fault(summary)
            await xid_fault(summary)
            await wait_for("xid counted", lambda: xid_series(metrics_port), 60)
            mem = summary["memory"]
            done = await wait_for(
                "gpu_oom resolved",
                lambda: (
                    (i := incident("gpu_oom", mem["freed_at"] - 120))
                    and i.get("_status") == "resolved"
                    and i
                ),
                RESOLVE_WAIT_S,
            )
            if done:
                mem["resolved_after_free_s"] = float(done["resolved_at"]) - mem["freed_at"]
            summary["xid"]["counted"] = xid_series(metrics_port)
            summary["xid"]["seen_in_log"] = [
                ln
                for ln in (OUT / "sentinel.log").read_text(errors="replace").splitlines()
                if "xid" in ln.lower()
            ][-5:]
            mark(f"xid counted by sentinel: {summary['xid']['counted']}")
        lat = summary["latency"]
        done = await wait_for(
            "latency_spike resolved",
            lambda: (
                (i := incident("latency_spike", lat["injected_at"]))
                and i.get("_status") == "resolved"
                and i
            ),
            30 if gpu else LATENCY_WAIT_S,
        )
        if done:
            lat["resolved_after_s"] = float(done["resolved_at"]) - lat["injected_at"]
        if proc.poll() is not None:
            mark(f"sentinel exited early with {proc.returncode}")
        return 0
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            await asyncio.to_thread(proc.wait, 20)
        summary["pages"] = {
            "slack_messages": [m.get("text", "")[:300] for m in slack.messages],
            "slack_updates": len(slack.updates),
            "pagerduty": [
                {
                    "action": e.get("event_action"),
                    "dedup_key": e.get("dedup_key"),
                    "summary": (e.get("payload") or {}).get("summary"),
                }
                for e in pd.events
            ],
        }
        (OUT / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
        (OUT / "incidents.json").write_text(json.dumps(incidents(), indent=2, default=str))
        (OUT / "runs.json").write_text(
            json.dumps({"runs": runs(), "steps": steps()}, indent=2, default=str)
        )
        await asyncio.to_thread(server.stop)
        shutil.copy(server.log_path, OUT / "tritonserver.log")
        await slack.stop()
        await pd.stop()
        mark("done")


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

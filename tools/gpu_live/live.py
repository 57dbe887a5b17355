"""Live on the GPU machine (docs/gpu-verification.md, "Live"): `sentinel run` (NVML at
1 Hz, Xid events, dry-run, no Triton), its footprint next to an idle Python, then a real
GPU memory fill: when gpu_oom opens (and resolves, given H8_WAIT_S). Output in $OUT."""

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from overhead import Watch, measure  # noqa: E402

OUT = Path(os.environ["OUT"])
T0 = time.time()
timeline = (OUT / "timeline.txt").open("w")


def mark(what: str) -> None:
    line = f"{time.time() - T0:8.1f} s  {time.strftime('%H:%M:%S')}  {what}"
    print(line, flush=True)
    timeline.write(line + "\n")
    timeline.flush()


def incidents() -> list[dict]:
    db = Path("/tmp/h8state/sentinel.db")  # noqa: S108 -- live.yaml's state_dir
    if not db.exists():
        return []
    conn = sqlite3.connect(db, timeout=5)
    try:
        rows = conn.execute("SELECT status, data FROM incidents").fetchall()
    except sqlite3.Error:
        return []
    finally:
        conn.close()
    return [json.loads(d) | {"_status": s} for s, d in rows]


def gpu_oom() -> dict | None:
    found = [i for i in incidents() if i.get("kind") == "gpu_oom"]
    return found[-1] if found else None


probe = subprocess.run(
    [sys.executable, str(HERE / "grpc_threads.py")], capture_output=True, text=True, timeout=60
)
(OUT / "grpc_threads.txt").write_text(probe.stdout + probe.stderr)
mark(
    "grpc threads: " + probe.stdout.strip().splitlines()[-2]
    if probe.stdout.strip()
    else "grpc probe failed"
)

env = dict(os.environ, PYTHONPATH=f"{ROOT}:/tmp/site")
log = (OUT / "sentinel.log").open("wb")
sentinel = subprocess.Popen(
    [sys.executable, "-m", "sentinel", "run", "--config", str(HERE / "live.yaml")],
    stdout=log,
    stderr=subprocess.STDOUT,
    env=env,
    cwd=ROOT,  # this checkout's sentinel first
)
idle = subprocess.Popen([sys.executable, "-c", "import signal; signal.pause()"])
mark(f"sentinel started, pid {sentinel.pid}")
time.sleep(12)
figures = measure(
    {"sentinel": Watch(sentinel.pid), "idle": Watch(idle.pid)},
    float(os.environ.get("H8_MEASURE_S", "45")),
)
(OUT / "overhead.json").write_text(json.dumps({k: vars(v) for k, v in figures.items()}, indent=2))
for name, f in figures.items():
    mark(
        f"{name}: cpu {f.cpu_pct:.2f} % of a core, peak rss {f.peak_rss_mb:.0f} MB, "
        f"threads {f.threads}, wakeups {f.wakeups_per_s:.1f}/s over {f.seconds:.0f} s"
    )
idle.terminate()

mark("fill starts")
fill = subprocess.Popen(
    [sys.executable, str(HERE / "fill.py"), os.environ.get("H8_HOLD_S", "40")],
    stdout=subprocess.PIPE,
    stderr=subprocess.STDOUT,
    text=True,
)
opened_at = freed_at = resolved_at = filled_at = None
for line in fill.stdout:
    mark("fill: " + line.strip())
    if "filled" in line:
        filled_at = time.time()
fill.wait()
freed_at = time.time()
mark("fill process exited: memory freed")
xid = subprocess.run(
    [sys.executable, str(HERE / "xid.py")], capture_output=True, text=True, timeout=60
)
for line in (xid.stdout + xid.stderr).splitlines()[-6:]:
    mark("xid: " + line)
deadline = time.time() + float(os.environ.get("H8_WAIT_S", "260"))
while time.time() < deadline:
    inc = gpu_oom()
    if inc and opened_at is None:
        mark(f"gpu_oom incident seen: {inc.get('status')} key {inc.get('key')}")
        opened_at = inc.get("detected_at")
    if inc and inc.get("status") == "resolved":
        resolved_at = inc.get("resolved_at")
        mark(f"gpu_oom resolved (resolved_at {resolved_at})")
        break
    time.sleep(1)
sentinel.terminate()
sentinel.wait(20)
summary = {
    "filled_at": filled_at,
    "freed_at": freed_at,
    "opened_at": opened_at,
    "resolved_at": resolved_at,
    "open_after_fill_s": None if None in (opened_at, filled_at) else opened_at - filled_at,
    "resolve_after_free_s": None if resolved_at is None else resolved_at - freed_at,
}
mark("summary " + json.dumps(summary))
(OUT / "incidents.json").write_text(json.dumps(incidents(), indent=2, default=str))
(OUT / "summary.json").write_text(json.dumps(summary, indent=2))

"""What `sentinel run` costs its pod: CPU, memory, threads and wakeups at production intervals.

One real local tritonserver (``sentinel.testing.triton_local``, with the latency
summaries on as deploy/ runs it) serves four copies of the example ``digits`` model.
For each configuration (1 or 4 canary models, 1 or 8 GPUs, the shipped protocol or
``:grpc``/``:http``) sentinel runs as a user runs it, with examples/sentinel.yaml's
intervals (canaries every 2 s at batch sizes 1 and 8 with 0.5 s rechecks, health
every 1 s, NVML every 1 s with Xid events); the GPUs are ``sentinel.testing``'s NVML
stand-in (bench/standin_sentinel.py) since this machine has none. An idle Python
process runs alongside and is measured over the same window, as the floor.

Figures, all from /proc over the steady-state window (after ``--warmup`` seconds):

* CPU: (utime + stime) of every thread, as a share of one core;
* peak RSS: VmHWM at the end (includes start-up);
* threads: the most seen at once (sampled every second);
* wakeups/s: voluntary + involuntary context switches of every thread (threads that
  ended during the window count too), per second.

    python bench/overhead.py                 # 60 s per configuration
    python bench/overhead.py --quick         # 15 s per configuration
    python bench/overhead.py --seconds 180 --configs 4x8
    python bench/overhead.py --configs 4x8 --py-spy prof/   # where the CPU goes
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import site
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from sentinel.probes.settings import TritonSettings
from sentinel.testing.triton_local import LocalTriton, free_port

ROOT = Path(__file__).resolve().parent.parent
DIGITS = ROOT / "examples" / "model_repository" / "digits"
GOLDEN = ROOT / "examples" / "golden" / "digits.npz"
EXAMPLE = ROOT / "examples" / "sentinel.yaml"
"""The intervals measured are the example config's (what a new user runs)."""
LAUNCHER = Path(__file__).resolve().parent / "standin_sentinel.py"
"""Runs sentinel with the stand-in GPUs (it imports sentinel.testing.nvml from --checkout)."""
CLK_TCK = os.sysconf("SC_CLK_TCK")
MODEL_NAMES = ("digits", "digits_2", "digits_3", "digits_4")
DEFAULT_CONFIGS = ("1x1", "1x8", "4x1", "4x8", "4x8:http")


# -- reading /proc ------------------------------------------------------------


def cpu_seconds(pid: int, task: int | None = None) -> float:
    """utime + stime of the whole process (every thread), or of one thread, in seconds."""
    where = f"/proc/{pid}/task/{task}/stat" if task is not None else f"/proc/{pid}/stat"
    text = Path(where).read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of stat


def status_fields(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out


def kib(value: str) -> int:
    return int(value.split()[0])


@dataclass
class Watch:
    """One process watched over a window: thread counts and per-thread context switches."""

    pid: int
    switches: dict[int, int] = field(default_factory=dict)
    """tid -> voluntary + involuntary switches, last seen (kept after the thread ends)."""
    max_threads: int = 0
    max_rss_kib: int = 0
    """The most VmRSS seen (the peak where the kernel keeps no VmHWM, as under gVisor)."""
    names: dict[int, str] = field(default_factory=dict)
    """tid -> thread name (comm)."""
    cpu: dict[int, float] = field(default_factory=dict)
    """tid -> CPU seconds, last seen."""

    def poll(self) -> None:
        status = status_fields(Path(f"/proc/{self.pid}/status"))
        self.max_threads = max(self.max_threads, int(status["Threads"]))
        self.max_rss_kib = max(self.max_rss_kib, kib(status.get("VmRSS", "0 kB")))
        for task in Path(f"/proc/{self.pid}/task").iterdir():
            with contextlib.suppress(OSError, KeyError, ValueError):
                s = status_fields(task / "status")
                n = int(s["voluntary_ctxt_switches"]) + int(s["nonvoluntary_ctxt_switches"])
                tid = int(task.name)
                self.switches[tid] = n
                self.names[tid] = s.get("Name", "?")
                self.cpu[tid] = cpu_seconds(self.pid, tid)

    def total_switches(self) -> int:
        return sum(self.switches.values())


@dataclass
class Figures:
    """What one process cost over the window."""

    name: str
    cpu_pct: float
    peak_rss_mb: float
    threads: int
    wakeups_per_s: float
    seconds: float
    log_lines_per_s: float | None = None
    by_thread: dict[str, tuple[int, float, float]] = field(default_factory=dict)
    """Thread name -> (threads of that name, CPU % of one core, wakeups/s)."""


def measure(watches: dict[str, Watch], seconds: float) -> dict[str, Figures]:
    """Poll every second for ``seconds``; the figures of each watched process."""
    for w in watches.values():
        w.poll()
        w.max_threads = 0
        w.poll()
    start = time.monotonic()
    cpu0 = {n: cpu_seconds(w.pid) for n, w in watches.items()}
    sw0 = {n: w.total_switches() for n, w in watches.items()}
    tcpu0 = {n: dict(w.cpu) for n, w in watches.items()}
    tsw0 = {n: dict(w.switches) for n, w in watches.items()}
    # threads that start during the window begin at 0 switches: count them from there
    known = {n: set(w.switches) for n, w in watches.items()}
    while time.monotonic() - start < seconds:
        time.sleep(min(1.0, max(0.0, seconds - (time.monotonic() - start))))
        for w in watches.values():
            w.poll()
    elapsed = time.monotonic() - start
    out = {}
    for n, w in watches.items():
        status = status_fields(Path(f"/proc/{w.pid}/status"))
        switches = w.total_switches() - sw0[n]
        assert known[n] <= set(w.switches)
        out[n] = Figures(
            name=n,
            cpu_pct=100.0 * (cpu_seconds(w.pid) - cpu0[n]) / elapsed,
            peak_rss_mb=kib(status.get("VmHWM", f"{w.max_rss_kib} kB")) / 1024,
            threads=w.max_threads,
            wakeups_per_s=switches / elapsed,
            seconds=elapsed,
            by_thread=per_thread(w, tcpu0[n], tsw0[n], elapsed),
        )
    return out


def per_thread(
    w: Watch, cpu0: dict[int, float], sw0: dict[int, int], elapsed: float
) -> dict[str, tuple[int, float, float]]:
    """The window's CPU and wakeups, summed by thread name (grpc's pool, the NVML thread...)."""
    rows: dict[str, tuple[int, float, float]] = {}
    for tid, name in w.names.items():
        count, cpu, wakeups = rows.get(name, (0, 0.0, 0.0))
        cpu += 100.0 * (w.cpu.get(tid, 0.0) - cpu0.get(tid, 0.0)) / elapsed
        wakeups += (w.switches.get(tid, 0) - sw0.get(tid, 0)) / elapsed
        rows[name] = (count + 1, cpu, wakeups)
    return dict(sorted(rows.items(), key=lambda kv: -kv[1][1]))


# -- the setup ----------------------------------------------------------------


def model_repository(into: Path, device: str = "cpu") -> Path:
    """Four copies of the example digits model, under four names, computing on ``device``
    (cuda: through PyTorch, which the server's Python stub must be able to import)."""
    repo = into / "models"
    for name in MODEL_NAMES:
        shutil.copytree(DIGITS, repo / name)
        config = repo / name / "config.pbtxt"
        text = config.read_text().replace('name: "digits"', f'name: "{name}"')
        text = text.replace(
            'key: "device" value { string_value: "cpu" }',
            f'key: "device" value {{ string_value: "{device}" }}',
        )
        config.write_text(text)
    return repo


def sentinel_config(
    server: LocalTriton,
    models: int,
    gpus: int,
    state: Path,
    protocol: str,
    canary_interval_s: float | None = None,
) -> str:
    """The example config (examples/sentinel.yaml: its intervals, batch sizes and
    deadlines), pointed at the local server, its models and free ports."""
    example = yaml.safe_load(EXAMPLE.read_text())
    canary = dict(example["canaries"][0], golden_set=str(GOLDEN))
    if canary_interval_s is not None:
        canary["interval_s"] = canary_interval_s
    config = {
        "pod": "bench-overhead",
        "state_dir": str(state),
        "triton": dict(
            example["triton"],
            url=server.grpc_url if protocol == "grpc" else server.http_url,
            protocol=protocol,
            metrics_url=server.metrics_url,
        ),
        "canaries": [dict(canary, model=name) for name in MODEL_NAMES[:models]],
        "gpu": dict(example["gpu"], source="nvml" if gpus else "off"),
        "server_processes": example["server_processes"],
        "api": {"bind": "127.0.0.1", "port": free_port()},
        "metrics": {"bind": "127.0.0.1", "port": free_port()},
        "logging": {"level": "info", "format": "json"},
    }
    return json.dumps(config, indent=2)  # JSON is YAML


@contextlib.contextmanager
def process(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> Iterator[int]:
    """A child process for the duration; SIGTERM then SIGKILL after."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
        )
    try:
        yield proc.pid
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def profiled(pid: int, seconds: float, into: Path | None, spec: str) -> Iterator[None]:
    """py-spy samples ``pid`` over the window (raw folded stacks, non-idle only)."""
    if into is None:
        yield
        return
    into.mkdir(parents=True, exist_ok=True)
    out = into / f"{spec.replace(':', '-')}.txt"
    exe = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or "py-spy"
    cmd = [exe, "record", "-p", str(pid), "-d", str(int(seconds)), "-r", "100"]
    cmd += ["-f", "raw", "-o", str(out), "--nonblocking"]
    with (into / f"{spec.replace(':', '-')}.log").open("wb") as log:
        spy = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield
        spy.wait(30)  # it writes the profile when its own duration is over
    finally:
        if spy.poll() is None:
            spy.kill()
            spy.wait()
    print(f"  profile: {out}", file=sys.stderr)


def wait_ready(api_port: int, pid: int, timeout_s: float = 60.0) -> None:
    """Until sentinel's /readyz answers 200 (it has seen Triton)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists():
            raise RuntimeError("sentinel exited before it was ready")
        with contextlib.suppress(urllib.error.URLError, OSError):
            url = f"http://127.0.0.1:{api_port}/readyz"
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return
        time.sleep(0.5)
    raise RuntimeError(f"sentinel not ready after {timeout_s:.0f} s")


def run_config(
    server: LocalTriton, spec: str, work: Path, idle_pid: int, args: argparse.Namespace
) -> tuple[Figures, Figures]:
    """One configuration: sentinel and the idle process measured over the same window."""
    models, gpus, protocol = parse_spec(spec)
    label = (
        f"{models} model{'s' if models > 1 else ''}, {gpus} GPU{'s' if gpus != 1 else ''}, "
        f"{protocol}"
    )
    folder = work / spec.replace(":", "-")
    folder.mkdir()
    config_path = folder / "sentinel.yaml"
    config_path.write_text(
        sentinel_config(server, models, gpus, folder / "state", protocol, args.canary_interval)
    )
    api_port = json.loads(config_path.read_text())["api"]["port"]
    if gpus and not args.real_nvml:
        cmd = [args.python, str(LAUNCHER), str(gpus), "run", "--config", str(config_path)]
    else:
        cmd = [args.python, "-m", "sentinel", "run", "--config", str(config_path)]
    paths = [str(args.checkout), os.environ.get("PYTHONPATH", "")]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in paths if p))
    log = folder / "sentinel.log"
    with process(cmd, log, env) as pid:
        wait_ready(api_port, pid)
        time.sleep(args.warmup)
        lines0 = len(log.read_bytes().splitlines())
        with profiled(pid, args.seconds, args.py_spy, spec):
            figures = measure({"sentinel": Watch(pid), "idle": Watch(idle_pid)}, args.seconds)
        lines = len(log.read_bytes().splitlines()) - lines0
    ours, idle = figures["sentinel"], figures["idle"]
    ours.name, idle.name = label, "idle Python, same window"
    ours.log_lines_per_s = lines / ours.seconds
    if args.keep:
        print(f"  logs: {log}", file=sys.stderr)
    return ours, idle


def parse_spec(spec: str) -> tuple[int, int, str]:
    """'4x8' or '4x8:grpc' as (models, GPUs, protocol); the shipped default unless said."""
    sizes, _, protocol = spec.partition(":")
    models, _, gpus = sizes.partition("x")
    if protocol not in ("", "grpc", "http"):
        raise ValueError(f"{spec}: protocol must be grpc or http")
    return int(models), int(gpus), protocol or TritonSettings().protocol


def table(rows: list[tuple[Figures, Figures]]) -> str:
    head = (
        "| configuration | CPU (% of one core) | peak RSS (MB) | threads | wakeups/s "
        "| log lines/s |\n|---|---:|---:|---:|---:|---:|"
    )
    out = [head]
    for ours, idle in rows:
        for f in (ours, idle):
            lines = f"{f.log_lines_per_s:.2f}" if f.log_lines_per_s is not None else ""
            out.append(
                f"| {f.name} | {f.cpu_pct:.2f} | {f.peak_rss_mb:.0f} | {f.threads} "
                f"| {f.wakeups_per_s:.1f} | {lines} |"
            )
    return "\n".join(out)


def thread_table(rows: list[tuple[Figures, Figures]]) -> str:
    """Where each configuration's CPU and wakeups went, by thread name."""
    out = [
        "| configuration | thread (count) | CPU (% of one core) | wakeups/s |",
        "|---|---|---:|---:|",
    ]
    for ours, _ in rows:
        for name, (count, cpu, wakeups) in ours.by_thread.items():
            out.append(f"| {ours.name} | {name} ({count}) | {cpu:.2f} | {wakeups:.1f} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="window per configuration")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds after ready")
    parser.add_argument("--quick", action="store_true", help="15 s windows, 5 s warm-up")
    parser.add_argument(
        "--configs",
        default=",".join(DEFAULT_CONFIGS),
        help="MODELSxGPUS[:grpc|:http],... (0 GPUs: gpu.source off; the shipped protocol "
        "unless said)",
    )
    parser.add_argument(
        "--python",
        default=sys.executable,
        help="interpreter for sentinel and the idle process (e.g. a venv with only "
        "sentinel's runtime dependencies; sentinel itself comes from this checkout)",
    )
    parser.add_argument(
        "--canary-interval", type=float, help="canary interval_s (default: the example's)"
    )
    parser.add_argument(
        "--py-spy",
        type=Path,
        metavar="DIR",
        help="also profile sentinel over each window with py-spy (raw folded stacks in DIR)",
    )
    parser.add_argument(
        "--checkout",
        type=Path,
        default=ROOT,
        help="folder holding the sentinel package to run (default: this checkout), "
        "e.g. an export of an older commit for a before/after",
    )
    parser.add_argument(
        "--real-nvml",
        action="store_true",
        help="on a GPU machine: the real NVML and every GPU there (MODELSxGPUS then only "
        "labels the row), not the stand-in",
    )
    parser.add_argument(
        "--device", default="cpu", choices=["cpu", "cuda"], help="where the digits copies compute"
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--threads", action="store_true", help="also print CPU and wakeups by thread name"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.warmup = 15.0, 5.0
    specs = args.configs.split(",")
    for spec in specs:
        parse_spec(spec)

    # SIGTERM unwinds like Ctrl-C, so the server and sentinel are stopped on the way out
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.device == "cuda":  # the server hands PYTHONPATH to the stub, which needs PyTorch
        paths = [*site.getsitepackages(), os.environ.get("PYTHONPATH", "")]
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    work = Path(tempfile.mkdtemp(prefix="sentinel-overhead-"))
    rows: list[tuple[Figures, Figures]] = []
    try:
        server = LocalTriton(
            model_repository(work, args.device),
            workdir=work / "triton",
            extra_args=["--metrics-config", "summary_latencies=true"],  # as deploy/ runs it
        )
        idle_cmd = [args.python, "-c", "import signal; signal.pause()"]
        with server, process(idle_cmd, work / "idle.log") as idle:
            for spec in specs:
                print(f"measuring {spec} ...", file=sys.stderr)
                rows.append(run_config(server, spec, work, idle, args))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(
        f"sentinel run, examples/sentinel.yaml intervals"
        f"{f' but canaries every {args.canary_interval:g} s' if args.canary_interval else ''}, "
        f"{args.seconds:.0f} s window "
        f"per configuration after {args.warmup:.0f} s warm-up; {os.cpu_count()} CPUs; "
        f"{args.python}; sentinel from {args.checkout}"
    )
    print(table(rows))
    if args.threads:
        print()
        print(thread_table(rows))
    if args.json:
        args.json.write_text(json.dumps([[asdict(a), asdict(b)] for a, b in rows], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

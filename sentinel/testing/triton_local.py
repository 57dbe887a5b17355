"""A real local tritonserver from the ``nvidia-pytriton`` wheel (demo and tests).

Follows TRITON-LOCAL.md: a backend directory holding the Python backend and the
stub for the running interpreter, ``LD_LIBRARY_PATH`` with this interpreter's
libpython first, ``PYTHONPATH`` with this environment's site-packages (so the
models' numpy imports work inside the stub), explicit model control loading
every model, free ports, the log in a file. ``stop()`` is SIGTERM then SIGKILL;
``kill()`` is an abrupt crash; ``supervise()`` restarts the server whenever it
dies, the way a kubelet restarts a container.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from sentinel.base.errors import SentinelError

_GLOG_ERROR = re.compile(r"^E\d{4} ")
_HARMLESS = ("CudaDriverHelper", "NVML", "DCGM")  # no GPU here: expected, see TRITON-LOCAL.md
STABLE_AFTER_S = 10.0
MAX_BACKOFF_S = 30.0
INSTALL_HINT = "pip install --no-deps nvidia-pytriton==0.7.0  (or the 'demo' extra)"


class TritonNotInstalled(SentinelError, RuntimeError):
    """The nvidia-pytriton wheel (which carries tritonserver) is not installed."""


class TritonStartError(SentinelError, RuntimeError):
    """tritonserver did not become ready; the message ends with the log's tail."""


@dataclass(frozen=True, slots=True)
class TritonInstall:
    """Where the wheel keeps the server and what it needs."""

    server: Path
    python_backend: Path
    stub: Path
    libs: Path
    site_packages: Path


def find_install() -> TritonInstall:
    """Locate tritonserver inside the installed nvidia-pytriton wheel, or explain why not."""
    try:
        pytriton = importlib.import_module("pytriton")
    except ImportError as exc:
        raise TritonNotInstalled(
            f"tritonserver needs the nvidia-pytriton wheel, which is not installed: {INSTALL_HINT}"
        ) from exc
    pkg = Path(str(pytriton.__file__)).resolve().parent
    site = pkg.parent
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    install = TritonInstall(
        server=pkg / "tritonserver" / "bin" / "tritonserver",
        python_backend=pkg / "tritonserver" / "backends" / "python",
        stub=pkg / "tritonserver" / "python_backend_stubs" / version / "triton_python_backend_stub",
        libs=site / "nvidia_pytriton.libs",
        site_packages=site,
    )
    for what, path in (
        ("server binary", install.server),
        ("Python backend", install.python_backend),
        (f"Python {version} backend stub", install.stub),
    ):
        if not path.exists():
            raise TritonNotInstalled(f"nvidia-pytriton is incomplete: no {what} at {path}")
    return install


def read_model_config(path: str | Path) -> dict[str, Any]:
    """A ``config.pbtxt`` (or a model folder holding one) as the JSON form Triton serves.

    That form is what ``load_model(config=...)`` takes, so this restores a model's
    on-disk config after an override.
    """
    # protobuf comes with tritonclient[grpc]; imported by name as it ships no type stubs
    text_format = importlib.import_module("google.protobuf.text_format")
    json_format = importlib.import_module("google.protobuf.json_format")
    model_config_pb2 = importlib.import_module("tritonclient.grpc.model_config_pb2")

    file = Path(path)
    if file.is_dir():
        file = file / "config.pbtxt"
    try:
        message = text_format.Parse(
            file.read_text(encoding="utf-8"), model_config_pb2.ModelConfig()
        )
    except text_format.ParseError as exc:
        raise ValueError(f"{file}: {exc}") from exc
    config: dict[str, Any] = json_format.MessageToDict(message, preserving_proto_field_name=True)
    if "name" not in config:
        config["name"] = file.parent.name
    return config


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class LocalTriton:
    """One tritonserver process serving a model repository on loopback ports.

    Ports are chosen once and kept across restarts, so clients keep their URLs.
    """

    def __init__(
        self,
        model_repository: str | Path,
        *,
        http_port: int | None = None,
        grpc_port: int | None = None,
        metrics_port: int | None = None,
        workdir: str | Path | None = None,
        load_models: Sequence[str] = ("*",),
        extra_args: Sequence[str] = (),
        exit_timeout_s: int = 5,
        pid_file: str | Path | None = None,
    ) -> None:
        self.model_repository = Path(model_repository).resolve()
        if not self.model_repository.is_dir():
            raise FileNotFoundError(f"model repository {self.model_repository} is not a folder")
        self.install = find_install()
        self.http_port = http_port or free_port()
        self.grpc_port = grpc_port or free_port()
        self.metrics_port = metrics_port or free_port()
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="sentinel-triton-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / "tritonserver.log"
        self.load_models = tuple(load_models)
        self.extra_args = tuple(extra_args)
        self.exit_timeout_s = exit_timeout_s
        self.pid_file = Path(pid_file) if pid_file is not None else None
        """Rewritten with the server's pid at every start (sentinel's process.signal reads it)."""
        self.server_id = f"sentinel-local-{uuid.uuid4().hex[:12]}"
        """Reported as the server's name by ``GET /v2``: how we know the port is ours."""
        self.restarts = 0
        """How many times the supervisor brought the server back."""
        self._proc: subprocess.Popen[bytes] | None = None
        self._groups: set[int] = set()
        """Process groups of every server started: a server killed by pid alone (as
        restart-server does) leaves its Python backend stubs in its group."""
        self._lock = threading.RLock()
        self._supervisor: threading.Thread | None = None
        self._stop_supervising = threading.Event()
        self._backoff_s = 1.0
        self._backend_dir = self._make_backend_dir()

    # -- addresses --------------------------------------------------------

    @property
    def http_url(self) -> str:
        """host:port of the KServe v2 HTTP endpoint."""
        return f"127.0.0.1:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        """host:port of the KServe v2 gRPC endpoint."""
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def metrics_url(self) -> str:
        """Triton's Prometheus endpoint."""
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    @property
    def pid(self) -> int | None:
        """Process id of the running server (None when not running)."""
        with self._lock:
            return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def is_running(self) -> bool:
        return self.pid is not None

    # -- lifecycle --------------------------------------------------------

    def start(self, timeout_s: float = 60.0) -> LocalTriton:
        """Start the server and wait until ``/v2/health/ready`` answers 200."""
        with self._lock:
            if self.is_running():
                return self
            self._spawn()
        self.wait_ready(timeout_s)
        return self

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Block until the server is ready; raise TritonStartError with the log tail if not."""
        deadline = time.monotonic() + timeout_s
        url = f"http://{self.http_url}/v2/health/ready"
        while time.monotonic() < deadline:
            with self._lock:
                proc = self._proc
            if proc is None or proc.poll() is not None:
                code = None if proc is None else proc.returncode
                raise TritonStartError(f"tritonserver exited (code {code})\n{self.log_problems()}")
            try:
                with urllib.request.urlopen(url, timeout=1.0) as resp:
                    if resp.status == 200:
                        self._check_identity()
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise TritonStartError(
            f"tritonserver not ready after {timeout_s:.0f} s\n{self.log_problems()}"
        )

    def _check_identity(self) -> None:
        """The server answering on our port must be ours, not another test's or demo's."""
        with urllib.request.urlopen(f"http://{self.http_url}/v2", timeout=2.0) as resp:
            name = json.loads(resp.read()).get("name")
        if name != self.server_id:
            raise TritonStartError(
                f"another server ({name!r}) answers on port {self.http_port}, not ours"
            )

    def stop(self, timeout_s: float = 10.0) -> None:
        """Graceful stop: SIGTERM, then SIGKILL after ``timeout_s``; supervision ends too."""
        self._end_supervision()
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self._kill_group(proc)
            self._kill_group(proc)  # Python backend stubs left behind, if any
        self._kill_stray_groups()

    def kill(self) -> None:
        """Crash the server (SIGKILL to its process group). A supervisor restarts it."""
        with self._lock:
            proc = self._proc
        if proc is not None and proc.poll() is None:
            self._kill_group(proc)

    def restart(self, timeout_s: float = 60.0) -> None:
        """Stop (gracefully) and start again on the same ports."""
        supervised = self._supervisor is not None
        self.stop()
        self.start(timeout_s)
        if supervised:
            self.supervise(self._backoff_s)

    def supervise(self, backoff_s: float = 1.0) -> None:
        """Restart the server whenever it dies, until ``stop()``.

        The first restart comes ``backoff_s`` after the death; a server that keeps
        dying waits twice as long each time (up to 30 s), like a kubelet would.
        """
        if self._supervisor is not None:
            return
        self._backoff_s = backoff_s
        self._stop_supervising.clear()
        self._supervisor = threading.Thread(
            target=self._supervise_loop,
            args=(backoff_s,),
            name="tritonserver-supervisor",
            daemon=True,
        )
        self._supervisor.start()

    def close(self) -> None:
        """Stop the server and remove the working folder if this object made it."""
        self.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> LocalTriton:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def log_problems(self, tail: int = 3) -> str:
        """The log's error lines (glog ``E`` lines, minus the harmless no-GPU ones) and its end."""
        lines = self.log_tail(10_000).splitlines()
        errors = [
            line
            for line in lines
            if _GLOG_ERROR.match(line) and not any(h in line for h in _HARMLESS)
        ]
        return "\n".join([*errors[-10:], *lines[-tail:]])

    def log_tail(self, lines: int = 30) -> str:
        """The end of the server's log, for error messages."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    # -- internals --------------------------------------------------------

    def command(self) -> list[str]:
        """The tritonserver command line."""
        cmd = [
            str(self.install.server),
            f"--model-repository={self.model_repository}",
            f"--backend-directory={self._backend_dir}",
            "--model-control-mode=explicit",
            *(f"--load-model={m}" for m in self.load_models),
            f"--http-port={self.http_port}",
            f"--grpc-port={self.grpc_port}",
            f"--metrics-port={self.metrics_port}",
            "--http-address=127.0.0.1",
            "--grpc-address=127.0.0.1",
            "--metrics-address=127.0.0.1",
            f"--exit-timeout-secs={self.exit_timeout_s}",
            "--allow-gpu-metrics=false",
            f"--id={self.server_id}",
            # never share a port with another server: a collision must fail loudly
            "--reuse-http-port=false",
            "--reuse-grpc-port=false",
            *self.extra_args,
        ]
        return cmd

    def environment(self) -> dict[str, str]:
        """The server's environment: libpython first, then the wheel's libraries."""
        env = dict(os.environ)
        libdir = sysconfig.get_config_var("LIBDIR") or ""
        env["LD_LIBRARY_PATH"] = os.pathsep.join(
            p for p in (libdir, str(self.install.libs), env.get("LD_LIBRARY_PATH", "")) if p
        )
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(self.install.site_packages), env.get("PYTHONPATH", "")) if p
        )
        # The stub's embedded interpreter finds its prefix through PATH: without this
        # interpreter's bin first (a venv that is used but not activated, e.g. from make)
        # it loads the base install's numpy, whose ABI breaks the model's tensors.
        bindir = str(Path(sys.executable).parent)
        env["PATH"] = os.pathsep.join(p for p in (bindir, env.get("PATH", "")) if p)
        if sys.prefix != sys.base_prefix:
            env["VIRTUAL_ENV"] = sys.prefix
        return env

    def _make_backend_dir(self) -> Path:
        backend = self.workdir / "backends" / "python"
        if not backend.exists():
            shutil.copytree(self.install.python_backend, backend)
            shutil.copy2(self.install.stub, backend / "triton_python_backend_stub")
        return backend.parent

    def _spawn(self) -> None:
        log = self.log_path.open("ab")
        try:
            self._proc = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.environment(),
                cwd=self.workdir,
                start_new_session=True,  # its own process group: kill() reaches the stubs
            )
        finally:
            log.close()
        self._groups.add(self._proc.pid)
        if self.pid_file is not None:
            self.pid_file.write_text(f"{self._proc.pid}\n", encoding="utf-8")

    @staticmethod
    def _kill_group(proc: subprocess.Popen[bytes]) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)

    def _kill_stray_groups(self) -> None:
        """SIGKILL what is left of earlier servers' groups (orphaned stubs): processes in
        one of those groups that run from this server's folder, so a recycled group id
        never reaches anyone else."""
        groups, self._groups = self._groups, set()
        mine = str(self.workdir).encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_bytes()
                group = int(stat[stat.rindex(b")") + 2 :].split()[2])
                if group in groups and mine in (entry / "cmdline").read_bytes():
                    os.kill(int(entry.name), signal.SIGKILL)
            except (OSError, ValueError, IndexError):
                continue  # gone, or not ours to read

    def _end_supervision(self) -> None:
        thread, self._supervisor = self._supervisor, None
        if thread is not None:
            self._stop_supervising.set()
            if thread is not threading.current_thread():
                thread.join()

    def _supervise_loop(self, backoff_s: float) -> None:
        """Respawn a dead server, backing off like a kubelet's CrashLoopBackOff."""
        delay = backoff_s
        started = time.monotonic()
        while not self._stop_supervising.wait(0.1):
            with self._lock:
                proc = self._proc
                dead = proc is not None and proc.poll() is not None
            if not dead:
                continue
            if time.monotonic() - started > STABLE_AFTER_S:
                delay = backoff_s  # it had been up a while: not a crash loop
            if self._stop_supervising.wait(delay):
                return
            with self._lock:
                if self._stop_supervising.is_set():
                    return
                self._spawn()
                self.restarts += 1
            started = time.monotonic()
            delay = min(delay * 2, MAX_BACKOFF_S)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m sentinel.testing.triton_local``: serve a model repository until interrupted."""
    parser = argparse.ArgumentParser(
        prog="python -m sentinel.testing.triton_local",
        description="Run a real local tritonserver (nvidia-pytriton wheel) on loopback.",
    )
    parser.add_argument(
        "--model-repository", default="examples/model_repository", help="folder of models"
    )
    parser.add_argument("--http-port", type=int, default=8000)
    parser.add_argument("--grpc-port", type=int, default=8001)
    parser.add_argument("--metrics-port", type=int, default=8002)
    parser.add_argument("--supervise", action="store_true", help="restart it when it dies")
    args = parser.parse_args(argv)
    try:
        server = LocalTriton(
            args.model_repository,
            http_port=args.http_port,
            grpc_port=args.grpc_port,
            metrics_port=args.metrics_port,
        )
        server.start()
    except (TritonNotInstalled, TritonStartError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3 if isinstance(exc, TritonNotInstalled) else 1
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    if args.supervise:
        server.supervise()
    print(
        f"tritonserver pid {server.pid}: grpc {server.grpc_url}, http {server.http_url}, "
        f"metrics {server.metrics_url}, log {server.log_path}",
        flush=True,
    )
    done.wait()
    server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

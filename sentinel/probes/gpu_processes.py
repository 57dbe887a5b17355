"""Names and parents of GPU processes, for the NVML sampler.

A process's name comes from ``nvmlSystemGetProcessName`` first (on an H200 with driver
580 it answered inside the pod's PID namespace, with the namespace's pids), then
``/proc/<pid>/comm``, else None; its parent's pid from ``/proc/<pid>/status``, so the
server's children count as the server's (:mod:`sentinel.vocabulary.processes`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sentinel.vocabulary.samples import GpuProcess


def gpu_processes(
    procs: Sequence[Any], nvml: Any, proc: Path | None, count: Callable[[Any], int | None]
) -> tuple[GpuProcess, ...]:
    """NVML's process entries as GpuProcess, named and parented; entries without a pid
    are left out (``count`` turns NVML's numbers into a valid count or None)."""
    out = []
    for p in procs:
        pid = count(getattr(p, "pid", None))
        if pid is not None:
            used = count(getattr(p, "usedGpuMemory", None))
            name, parent = process_name(nvml, proc, pid), parent_pid(proc, pid)
            out.append(GpuProcess(pid=pid, used_bytes=used, name=name, parent_pid=parent))
    return tuple(out)


def process_name(nvml: Any, proc: Path | None, pid: int) -> str | None:
    """NVML's name for the process, else the kernel's (``comm``), else None."""
    fn = getattr(nvml, "nvmlSystemGetProcessName", None)
    if fn is not None:
        try:
            raw = fn(pid)
        except Exception:  # not found, no permission: the kernel may still know
            raw = None
        name = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        if isinstance(name, str) and name.strip():
            return name.strip()
    comm = (proc_file(proc, pid, "comm") or "").strip()
    return comm or None


def parent_pid(proc: Path | None, pid: int) -> int | None:
    """The parent's pid from ``/proc/<pid>/status``; None when unreadable."""
    text = proc_file(proc, pid, "status")
    for line in (text or "").splitlines():
        if line.startswith("PPid:"):
            value = line.partition(":")[2].strip()
            return int(value) if value.isdigit() else None
    return None


def proc_file(proc: Path | None, pid: int, name: str) -> str | None:
    """``<proc>/<pid>/<name>`` as text; None when there is no /proc to read or it fails."""
    if proc is None:
        return None
    try:
        return (proc / str(pid) / name).read_text(encoding="utf-8", errors="replace")
    except OSError:  # gone, another PID namespace, or not ours to read
        return None

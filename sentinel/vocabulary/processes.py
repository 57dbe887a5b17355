"""Which processes are the server: one definition for every stage.

The server is ``tritonserver`` and the processes it starts to run models: the Python
backend's stub (``triton_python_backend_stub``: every Python-backend model, vLLM) and
TensorRT-LLM's executor workers. Memory any of them holds is the server's; memory held
by anything else on the GPU is *foreign* (a restart of the server cannot free it).

Names are matched on the executable's base name (of a path or a command line),
case-insensitively, as shell-style patterns (``python*``). A name of exactly 15
characters is also matched against the pattern's first 15: the kernel cuts
``/proc/<pid>/comm`` to 15 (``triton_python_b``).

A process is also the server's when its pid is one of the server's pids or its parent
is a server process (``PPid`` in ``/proc/<pid>/status``): the server's children, named
or not. A process whose name is unknown (NVML and ``/proc`` gave none) and that is not
the server's by pid is foreign only when the server's pids are known -- then it is
demonstrably some other process -- and *unknown* when they are not: without evidence
nobody is blamed, and unknown memory is not foreign.
"""

from __future__ import annotations

import enum
import fnmatch
from collections.abc import Collection, Iterable, Sequence

from sentinel.vocabulary.samples import GpuProcess

DEFAULT_SERVER_PROCESSES: tuple[str, ...] = (
    "tritonserver",
    "triton_python_backend_stub",
    "trtllmExecutorWorker",
)
"""The server's main process first (the one ``process.signal`` signals), then its
backend stubs and workers."""

COMM_LENGTH = 15
"""Characters the kernel keeps of a process name in ``/proc/<pid>/comm``."""


class Ownership(enum.StrEnum):
    """Whose a GPU process is."""

    SERVER = "server"
    FOREIGN = "foreign"
    UNKNOWN = "unknown"
    """No name and no pid link to the server, and the server's pids are not known."""


def base_name(name: str) -> str:
    """The executable's base name of a process name, path or command line, lower-cased."""
    words = name.split()
    return words[0].rsplit("/", 1)[-1].lower() if words else ""


def is_server_process(name: str | None, patterns: Sequence[str] = DEFAULT_SERVER_PROCESSES) -> bool:
    """Whether a process of this name (a path, a base name or a 15-character comm) is
    one of the server's; False for an unknown (None or empty) name."""
    if not name or not name.strip():
        return False
    base = base_name(name)
    for pattern in patterns:
        p = pattern.strip().lower()
        if fnmatch.fnmatchcase(base, p):
            return True
        if len(base) == COMM_LENGTH and fnmatch.fnmatchcase(base, p[:COMM_LENGTH]):
            return True
    return False


def ownership(
    processes: Iterable[GpuProcess],
    patterns: Sequence[str] = DEFAULT_SERVER_PROCESSES,
    server_pids: Collection[int] = (),
) -> list[tuple[GpuProcess, Ownership]]:
    """Each process of one GPU sample with whose it is (rules in the module docstring)."""
    procs = list(processes)
    pids = set(server_pids)
    server = {p.pid for p in procs if p.pid in pids or is_server_process(p.name, patterns)}
    grew = True
    while grew:  # a child of a server process is the server's (the stub's workers too)
        more = {p.pid for p in procs if p.parent_pid in pids | server} - server
        server |= more
        grew = bool(more)
    out: list[tuple[GpuProcess, Ownership]] = []
    for p in procs:
        if p.pid in server:
            owner = Ownership.SERVER
        elif p.name or pids:
            owner = Ownership.FOREIGN
        else:
            owner = Ownership.UNKNOWN
        out.append((p, owner))
    return out


def foreign_processes(
    processes: Iterable[GpuProcess],
    patterns: Sequence[str] = DEFAULT_SERVER_PROCESSES,
    server_pids: Collection[int] = (),
) -> list[GpuProcess]:
    """The processes holding memory that is not the server's (unknown ones are not)."""
    return [p for p, o in ownership(processes, patterns, server_pids) if o is Ownership.FOREIGN]

"""One definition of the server's processes: names in live samples, foreign memory
attributed the same way by the detector, the metrics and the runbook, proven on a real
tritonserver with its Python-backend stub."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sentinel.base.clock import FakeClock
from sentinel.base.yamlsource import InvalidFile
from sentinel.config import Config, load_config
from sentinel.detect.memory import MemoryDetector
from sentinel.detect.settings import DetectorSettings, MemorySettings
from sentinel.probes.gpu import GpuSampler
from sentinel.probes.settings import GpuSettings
from sentinel.runbook.actions.basic import gpu_facts
from sentinel.testing.nvml import GIB, GpuScript, NvmlStandIn
from sentinel.testing.triton_local import LocalTriton
from sentinel.vocabulary.processes import (
    DEFAULT_SERVER_PROCESSES,
    Ownership,
    is_server_process,
    ownership,
)
from sentinel.vocabulary.samples import GpuProcess, GpuSample

PROC = Path("/proc")


def _sample(*processes: GpuProcess) -> GpuSample:
    return GpuSample(
        ts=0.0,
        index=0,
        uuid="GPU-a",
        memory_total_bytes=80 * GIB,
        memory_used_bytes=sum(p.used_bytes or 0 for p in processes),
        processes=processes,
    )


@pytest.mark.parametrize(
    "name",
    [
        "tritonserver",
        "/opt/tritonserver/bin/tritonserver",
        "/opt/tritonserver/backends/python/triton_python_backend_stub",
        "triton_python_b",  # /proc/<pid>/comm keeps 15 characters
        "TRITONSERVER",
        "/usr/local/bin/trtllmExecutorWorker --flag",
    ],
)
def test_server_process_names_match_paths_comm_and_case(name: str) -> None:
    """The server, its Python stub and TRT-LLM workers match as paths, truncated comm, any case."""
    assert is_server_process(name)


@pytest.mark.parametrize("name", ["python3", "python3 train.py", "tritonserve", "", None])
def test_other_and_unknown_names_are_not_the_server(name: str | None) -> None:
    """Other programs, a near-miss name and an unknown name are not server processes."""
    assert not is_server_process(name)


def test_patterns_are_shell_globs() -> None:
    """A configured pattern (``vllm*``) matches by glob on the base name."""
    assert (True, False) == (
        is_server_process("/usr/bin/vllm_worker", ["tritonserver", "vllm*"]),
        is_server_process("/usr/bin/vllm_worker", ["tritonserver"]),
    )


def test_unknown_name_is_the_servers_when_its_parent_is() -> None:
    """A nameless child of the server is the server's; a nameless orphan is unknown, and
    foreign only once the server's pids are known."""
    procs = [
        GpuProcess(pid=10, used_bytes=GIB, name="tritonserver"),
        GpuProcess(pid=11, used_bytes=GIB, name=None, parent_pid=10),
        GpuProcess(pid=12, used_bytes=GIB, name=None, parent_pid=11),
        GpuProcess(pid=99, used_bytes=GIB, name=None, parent_pid=1),
    ]
    by_name = [o for _, o in ownership(procs)]
    by_pid = [o for _, o in ownership(procs, server_pids={10})]
    s, f, u = Ownership.SERVER, Ownership.FOREIGN, Ownership.UNKNOWN
    assert ([s, s, s, u], [s, s, s, f]) == (by_name, by_pid)


def test_named_child_of_the_server_is_the_servers() -> None:
    """A backend worker under its own name (python3), started by the stub, is the server's."""
    procs = [
        GpuProcess(pid=10, used_bytes=GIB, name="tritonserver"),
        GpuProcess(pid=11, used_bytes=GIB, name="triton_python_backend_stub", parent_pid=10),
        GpuProcess(pid=12, used_bytes=GIB, name="python3", parent_pid=11),
        GpuProcess(pid=13, used_bytes=GIB, name="python3", parent_pid=1),
    ]
    assert [13] == [p.pid for p, o in ownership(procs) if o is Ownership.FOREIGN]


def test_detector_and_runbook_agree_on_the_stub() -> None:
    """The stub's memory is the server's for the memory detector and for playbook facts."""
    sample = _sample(
        GpuProcess(pid=10, used_bytes=10 * GIB, name="tritonserver"),
        GpuProcess(pid=11, used_bytes=60 * GIB, name="triton_python_backend_stub"),
    )
    attribution = MemoryDetector().attribute(sample)
    facts = gpu_facts(sample, Config().playbooks.server_process_names)
    assert ("server", 70 * GIB, 0, []) == (
        attribution["cause"],
        attribution["server_bytes"],
        facts["foreign_memory_bytes"],
        facts["foreign_processes"],
    )


def test_one_config_key_reaches_both_stages(tmp_path: Path) -> None:
    """``server_processes`` sets the list the detector and the runbook use."""
    path = tmp_path / "sentinel.yaml"
    path.write_text("server_processes: [tritonserver, 'vllm*']\n")
    config = load_config(path, environ={})
    expected = ["tritonserver", "vllm*"]
    assert (expected, expected, expected) == (
        config.server_processes,
        config.detectors.memory.server_process_names,
        config.playbooks.server_process_names,
    )


def test_default_is_one_list_for_both_stages() -> None:
    """Without the key, both stages get the same default list."""
    config = Config()
    expected = list(DEFAULT_SERVER_PROCESSES)
    assert (expected, expected) == (
        config.detectors.memory.server_process_names,
        config.playbooks.server_process_names,
    )


def test_old_keys_still_work_as_aliases(tmp_path: Path) -> None:
    """A config still using a stage's old key sets the one list from it."""
    path = tmp_path / "sentinel.yaml"
    path.write_text("playbooks:\n  server_process_names: [tritonserver, my_worker]\n")
    config = load_config(path, environ={})
    expected = ["tritonserver", "my_worker"]
    assert (expected, expected) == (
        config.server_processes,
        config.detectors.memory.server_process_names,
    )


def test_disagreeing_keys_are_refused_naming_the_new_one(tmp_path: Path) -> None:
    """Two different lists are refused, and the message says to use server_processes."""
    path = tmp_path / "sentinel.yaml"
    path.write_text(
        "server_processes: [tritonserver]\n"
        "detectors:\n  memory:\n    server_process_names: [tritonserver, other]\n"
    )
    with pytest.raises(InvalidFile) as info:
        load_config(path, environ={})
    text = " ".join(str(p) for p in info.value.problems)
    assert "keep only server_processes" in text


def test_programmatic_stage_settings_follow_the_top_level_key() -> None:
    """Stage settings built in code get the top-level list too."""
    config = Config(
        server_processes=["tritonserver", "w*"],
        detectors=DetectorSettings(memory=MemorySettings(high_fraction=0.9)),
    )
    assert (["tritonserver", "w*"], 0.9) == (
        config.detectors.memory.server_process_names,
        config.detectors.memory.high_fraction,
    )


def test_sampler_names_processes_from_nvml_then_proc() -> None:
    """NVML's name first; where NVML has none, /proc/<pid>/comm; else no name."""
    me = os.getpid()
    comm = (PROC / str(me) / "comm").read_text().strip()
    gpu = GpuScript(
        uuid="GPU-a",
        procs=[(4_000_000, GIB), (me, 2 * GIB), (4_000_001, GIB)],
        process_names={4_000_000: "/opt/tritonserver/bin/tritonserver"},
    )
    sampler = GpuSampler(NvmlStandIn([gpu]), GpuSettings(), FakeClock())
    sampler.open()
    [sample] = sampler.tick_sync()
    assert isinstance(sample, GpuSample)
    expected = [
        (4_000_000, "/opt/tritonserver/bin/tritonserver", None),
        (me, comm, os.getppid()),
        (4_000_001, None, None),
    ]
    assert expected == [(p.pid, p.name, p.parent_pid) for p in sample.processes]


def _children(pid: int) -> list[int]:
    out = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        if f"\nPPid:\t{pid}\n" in status:
            out.append(int(entry.name))
    return out


@pytest.mark.triton
def test_real_python_backend_stub_is_the_servers(triton_server: LocalTriton) -> None:
    """On a real tritonserver serving the Python-backend digits model, a GPU sample whose
    processes are the server, its stub and this test process (names read from /proc:
    no GPU here) attributes the server and stub as the server's and only this one as
    foreign, in the detector, the runbook's facts and the sampler's parent links."""
    server = triton_server.pid
    assert server is not None
    stubs = [
        c
        for c in _children(server)
        if (PROC / str(c) / "comm").read_text().strip() == "triton_python_b"
    ]
    assert stubs, "the digits model runs in a triton_python_backend_stub"
    me = os.getpid()
    gpu = GpuScript(
        uuid="GPU-a",
        total=80 * GIB,
        used=75 * GIB,
        procs=[(server, 5 * GIB), (stubs[0], 50 * GIB), (me, 20 * GIB)],
    )
    sampler = GpuSampler(NvmlStandIn([gpu]), GpuSettings(), FakeClock())
    sampler.open()
    [sample] = sampler.tick_sync()
    assert isinstance(sample, GpuSample)
    names = {p.pid: p.name for p in sample.processes}
    assert ("tritonserver", "triton_python_b") == (names[server], names[stubs[0]])
    assert server == next(p.parent_pid for p in sample.processes if p.pid == stubs[0])
    attribution = MemoryDetector().attribute(sample)
    facts = gpu_facts(sample, list(DEFAULT_SERVER_PROCESSES))
    assert ("other_process", 55 * GIB, 20 * GIB, [me], [me]) == (
        attribution["cause"],
        attribution["server_bytes"],
        facts["foreign_memory_bytes"],
        [o["pid"] for o in attribution["other_processes"]],
        [p["pid"] for p in facts["foreign_processes"]],
    )


def test_names_nvml_gave_on_an_h200_attribute_the_stub_to_the_server() -> None:
    """What NVML answered on an H200 (driver 580.159.04, namespace pids): the stub by its
    full path and an unrelated python by its own; replayed through the sampler, the stub's
    2.5 GiB are the server's and only the python's 1.5 GiB are foreign."""
    gpu = GpuScript(
        uuid="GPU-h200",
        total=140 * GIB,
        used=4 * GIB,
        procs=[(628, 2_690_646_016), (634, 1_616_904_192)],
        process_names={628: "/tmp/gn/triton_python_backend_stub", 634: "/usr/bin/python3.12"},
    )
    sampler = GpuSampler(NvmlStandIn([gpu]), GpuSettings(), FakeClock(), proc=None)
    sampler.open()
    [sample] = sampler.tick_sync()
    assert isinstance(sample, GpuSample)
    attribution = MemoryDetector().attribute(sample)
    assert ("server", 2_690_646_016, 1_616_904_192, [634]) == (
        attribution["cause"],
        attribution["server_bytes"],
        attribution["other_bytes"],
        [o["pid"] for o in attribution["other_processes"]],
    )


def test_main_process_must_be_a_plain_name(tmp_path: Path) -> None:
    """The first entry is the process to signal: a pattern there is refused."""
    path = tmp_path / "sentinel.yaml"
    path.write_text("server_processes: ['triton*']\n")
    with pytest.raises(InvalidFile) as info:
        load_config(path, environ={})
    assert "the first entry is the server's main process" in str(info.value.problems[0])

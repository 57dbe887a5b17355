"""`sentinel gpu`: exit 3 on this GPU-less machine for real; the view with NvmlStandIn."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import sentinel.cli.gpu as gpu_cli
from sentinel.cli import main
from sentinel.probes.nvml import NvmlUnavailable, load_nvml
from sentinel.testing.nvml import GpuScript, NvmlStandIn
from sentinel.vocabulary.samples import GpuSample, from_record


def _nvml_here() -> bool:
    try:
        load_nvml()
    except NvmlUnavailable:
        return False
    return True


@pytest.mark.skipif(_nvml_here(), reason="this machine has NVML")
def test_gpu_without_nvml_exits_3_with_a_plain_message(capsys: pytest.CaptureFixture[str]) -> None:
    """No NVIDIA driver here: one plain sentence on stderr, nothing on stdout, exit 3."""
    code = main(["gpu"])
    out, err = capsys.readouterr()
    assert (3, "") == (code, out)
    assert err.startswith("sentinel gpu: NVML is not available: libnvidia-ml.so.1 was not found")


def test_gpu_view_decodes_reasons(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The text view names each GPU and its clock-event reasons with the raw mask."""
    nvml = NvmlStandIn([GpuScript(uuid="GPU-a", reasons=0x4 | 0x40, procs=[(77, 2 << 30)])])
    monkeypatch.setattr(gpu_cli, "load_nvml", lambda: nvml)
    code = main(["gpu"])
    out = capsys.readouterr().out
    assert 0 == code
    assert "GPU 0 Stand-in H100 GPU-a" in out
    assert "clock events: SwPowerCap, HwThermalSlowdown (0x44)" in out
    assert "procs 77:2.0GiB" in out


def test_gpu_json_is_one_record_per_gpu(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--json prints recording-format records that load back as GpuSamples."""
    nvml = NvmlStandIn([GpuScript(uuid="GPU-a"), GpuScript(uuid="GPU-b", temp=70)])
    monkeypatch.setattr(gpu_cli, "load_nvml", lambda: nvml)
    code = main(["gpu", "--json"])
    samples = [from_record(json.loads(line)) for line in capsys.readouterr().out.splitlines()]
    assert (0, [("GPU-a", 35.0), ("GPU-b", 70.0)]) == (
        code,
        [(s.uuid, s.temperature_c) for s in samples if isinstance(s, GpuSample)],
    )


def test_gpu_unknown_device_in_config_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A config selecting a missing GPU UUID is bad input (2)."""
    config = tmp_path / "c.yaml"
    config.write_text("gpu:\n  devices: [GPU-zzz]\n")
    monkeypatch.setattr(gpu_cli, "load_nvml", NvmlStandIn)
    code = main(["gpu", "--config", str(config)])
    assert (2, True) == (code, "no GPU with UUID 'GPU-zzz'" in capsys.readouterr().err)

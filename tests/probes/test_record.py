"""`sentinel record`: on this GPU-less machine for real, and with NvmlStandIn."""

from __future__ import annotations

import argparse
import asyncio
import io
from pathlib import Path

import pytest
from triton_fixtures import GOLDEN_DIGITS

from sentinel.base.clock import SystemClock
from sentinel.cli import main
from sentinel.cli.record import parse_duration, record
from sentinel.config import Config
from sentinel.probes.nvml import NvmlUnavailable, load_nvml
from sentinel.probes.recording import RecordingWriter, iter_lines, iter_recording
from sentinel.probes.settings import GpuSettings
from sentinel.testing.nvml import GpuScript, NvmlStandIn
from sentinel.testing.triton_local import LocalTriton
from sentinel.vocabulary.samples import CanaryResult, GpuEvent, GpuSample, TritonHealth


def _nvml_here() -> bool:
    try:
        load_nvml()
    except NvmlUnavailable:
        return False
    return True


no_gpu_here = pytest.mark.skipif(_nvml_here(), reason="this machine has NVML")


@pytest.mark.parametrize(
    ("text", "seconds"), [("60s", 60.0), ("2m", 120.0), ("1.5h", 5400.0), ("90", 90.0)]
)
def test_parse_duration(text: str, seconds: float) -> None:
    """Durations take ms, s, m, h, d, combined (1h30m), or plain seconds."""
    assert seconds == parse_duration(text)


@pytest.mark.parametrize("text", ["", "0s", "-1s", "5x", "soon"])
def test_parse_duration_rejects_nonsense(text: str) -> None:
    """A malformed or zero duration is an argument error."""
    with pytest.raises(argparse.ArgumentTypeError, match="not a duration"):
        parse_duration(text)


@no_gpu_here
def test_record_without_nvml_says_so_and_exits_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No driver here: record says GPU unavailable, writes that event, exits 3 (nothing else)."""
    out = tmp_path / "r.jsonl"
    code = main(["record", "--out", str(out), "--duration", "0.1s"])
    err = capsys.readouterr().err
    recorded = list(iter_recording(out))
    assert (3, ["nvml_unavailable"]) == (
        code,
        [s.kind for s in recorded if isinstance(s, GpuEvent)],
    )
    assert "GPU unavailable: NVML is not available" in err


async def test_record_with_standin_writes_samples_and_xids() -> None:
    """With an NVML stand-in, record writes GPU samples and an Xid pushed mid-run."""
    nvml = NvmlStandIn([GpuScript(uuid="GPU-a", reasons=0x4)])
    buf = io.StringIO()
    err = io.StringIO()
    config = Config(gpu=GpuSettings(interval_s=0.05))
    asyncio.get_running_loop().call_later(0.1, nvml.push_xid, nvml.gpus[0], 79)
    code = await record(
        config, RecordingWriter(buf), 0.4, SystemClock(), nvml_loader=lambda: nvml, err=err
    )
    samples = list(iter_lines(io.StringIO(buf.getvalue())))
    gpu = [s for s in samples if isinstance(s, GpuSample)]
    xids = [(s.xid, s.cause) for s in samples if isinstance(s, GpuEvent)]
    assert (0, [(79, "hardware")]) == (code, xids)
    assert len(gpu) >= 3
    assert {("GPU-a", ("SwPowerCap",))} == {(s.uuid, s.clock_event_names) for s in gpu}
    assert "Xid events registered on 1 GPU(s)" in err.getvalue()


async def test_record_with_gpu_off_and_nothing_else_exits_3() -> None:
    """gpu.source=off and no canaries leaves nothing to record: exit 3."""
    err = io.StringIO()
    code = await record(
        Config(gpu=GpuSettings(source="off")),
        RecordingWriter(io.StringIO()),
        0.1,
        SystemClock(),
        err=err,
    )
    assert 3 == code
    assert "nothing to record" in err.getvalue()


async def test_record_with_unknown_device_exits_2() -> None:
    """A gpu.devices entry that is not there is bad input (2), named in the message."""
    err = io.StringIO()
    code = await record(
        Config(gpu=GpuSettings(devices=[3])),
        RecordingWriter(io.StringIO()),
        0.1,
        SystemClock(),
        nvml_loader=NvmlStandIn,
        err=err,
    )
    assert (2, True) == (code, "gpu.devices: no GPU with index 3" in err.getvalue())


def test_record_bad_config_exits_2_naming_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A config with a wrong gpu field is reported as FILE:LINE: field and exits 2."""
    config = tmp_path / "c.yaml"
    config.write_text("gpu:\n  interval_s: -1\n")
    code = main(["record", "--out", str(tmp_path / "r.jsonl"), "--config", str(config)])
    err = capsys.readouterr().err
    assert (2, True) == (code, f"{config}:2: gpu.interval_s" in err)


def test_record_unwritable_out_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An --out path that cannot be written is bad input (2) with the path named."""
    out = tmp_path / "missing-dir" / "r.jsonl"
    code = main(["record", "--out", str(out), "--duration", "1s"])
    assert (2, True) == (code, f"cannot write {out}" in capsys.readouterr().err)


@pytest.mark.triton
async def test_record_with_real_triton_writes_canaries_and_health(
    dedicated_triton: LocalTriton, tmp_path: Path
) -> None:
    """A config with a canary records real canary results and Triton health (GPU off here)."""
    triton_server = dedicated_triton  # a server of its own: no other test's knobs linger
    config = Config.model_validate(
        {
            "triton": {
                "url": triton_server.grpc_url,
                "metrics_url": triton_server.metrics_url,
                "health_interval_s": 0.2,
            },
            "canaries": [{"model": "digits", "golden_set": str(GOLDEN_DIGITS), "interval_s": 0.2}],
            "gpu": {"source": "off"},
        }
    )
    out = tmp_path / "r.jsonl"
    with out.open("w", encoding="utf-8") as fh:
        code = await record(config, RecordingWriter(fh), 1.0, SystemClock(), err=io.StringIO())
    samples = list(iter_recording(out))
    canaries = {(s.model, s.outcome) for s in samples if isinstance(s, CanaryResult)}
    health = {
        (s.live, s.ready, s.model, s.model_ready) for s in samples if isinstance(s, TritonHealth)
    }
    assert (0, {("digits", "ok")}, {(True, True, "digits", True)}) == (code, canaries, health)


async def test_record_with_missing_golden_set_exits_2(tmp_path: Path) -> None:
    """A canary whose golden set file is missing is bad input (2), naming the canary."""
    config = Config.model_validate(
        {
            "canaries": [{"model": "digits", "golden_set": str(tmp_path / "none.npz")}],
            "gpu": {"source": "off"},
        }
    )
    err = io.StringIO()
    code = await record(config, RecordingWriter(io.StringIO()), 0.1, SystemClock(), err=err)
    assert (2, True) == (code, "canaries[digits].golden_set" in err.getvalue())

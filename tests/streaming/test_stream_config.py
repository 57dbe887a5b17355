"""Streaming canaries in the config: built as probes, refused where they cannot stream."""

from __future__ import annotations

from pathlib import Path

import pytest
from streaming_golden import GOLDEN_CHARLM

from sentinel.base.clock import SystemClock
from sentinel.config import load_config
from sentinel.probes.stream_canary import StreamCanaryProbe
from sentinel.probes.triton import connect
from sentinel.wiring import ConfigError, build_probes


def write_config(tmp_path: Path, protocol: str, golden: Path = GOLDEN_CHARLM) -> Path:
    path = tmp_path / "sentinel.yaml"
    path.write_text(
        f"triton: {{url: '127.0.0.1:1', protocol: {protocol}}}\n"
        "gpu: {source: 'off'}\n"
        f"stream_canaries:\n  - {{model: charlm, golden_set: '{golden}', interval_s: 7}}\n"
    )
    return path


async def test_a_configured_stream_canary_becomes_a_probe_on_the_grpc_endpoint(
    tmp_path: Path,
) -> None:
    """stream_canaries entries are built into probes that stream to triton.url."""
    config = load_config(write_config(tmp_path, "grpc"))
    triton = connect(config.triton)
    probes, _ = build_probes(config, SystemClock(), triton)
    streams = [p for p in probes if isinstance(p, StreamCanaryProbe)]
    assert [("stream:charlm", "127.0.0.1:1", 7.0)] == [
        (p.name, p.url, p.settings.interval_s) for p in streams
    ]
    assert 4 == streams[0].golden.rows
    await triton.close()


async def test_a_stream_canary_without_grpc_is_a_config_error(tmp_path: Path) -> None:
    """With triton over HTTP and no stream url, the config is refused, naming the canary."""
    config = load_config(write_config(tmp_path, "http"))
    triton = connect(config.triton)
    with pytest.raises(ConfigError, match=r"stream_canaries\[charlm\]\.url"):
        build_probes(config, SystemClock(), triton)
    await triton.close()


async def test_a_missing_streaming_golden_set_is_a_config_error(tmp_path: Path) -> None:
    """A golden set that cannot be read is refused at start, naming the file."""
    config = load_config(write_config(tmp_path, "grpc", tmp_path / "none.npz"))
    triton = connect(config.triton)
    with pytest.raises(ConfigError, match=r"none\.npz: no such file"):
        build_probes(config, SystemClock(), triton)
    await triton.close()

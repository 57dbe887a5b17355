"""gRPC (and tritonclient's gRPC client, ~10 MB resident) is loaded only when used."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

BUILD_OVER = """
import asyncio, sys
from sentinel.base.clock import FakeClock
from sentinel.config import Config
from sentinel.probes import triton as triton_adapter
from sentinel.wiring import build_probes

async def main() -> None:
    triton = {{"url": "127.0.0.1:1", "protocol": "{protocol}"}}
    config = Config(triton=triton, gpu={{"source": "off"}})
    triton = triton_adapter.connect(config.triton)
    try:
        build_probes(config, FakeClock(), triton)
    finally:
        await triton.close()

asyncio.run(main())
print("grpc" in sys.modules)
"""


def _grpc_loaded_after_building(protocol: str) -> bool:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-c", BUILD_OVER.format(protocol=protocol)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    return done.stdout.strip().splitlines()[-1] == "True"


def test_http_without_stream_canaries_never_imports_grpc() -> None:
    """Over HTTP with no streaming canary, building the probes leaves gRPC unimported."""
    assert False is _grpc_loaded_after_building("http")


def test_grpc_protocol_imports_grpc() -> None:
    """Over gRPC the client is loaded (the check above can see an import)."""
    assert True is _grpc_loaded_after_building("grpc")


def test_the_cli_with_every_command_registered_never_imports_grpc() -> None:
    """Building `sentinel`'s parser (every command module) leaves gRPC unimported."""
    script = "import sys\nfrom sentinel.cli import build_parser\nbuild_parser()\n"
    done = subprocess.run(
        [sys.executable, "-c", script + "print('grpc' in sys.modules)"],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        timeout=120,
        check=True,
    )
    assert "False" == done.stdout.strip().splitlines()[-1]

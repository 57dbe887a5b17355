"""`sentinel run` when its API or metrics port is taken: one line, non-zero exit."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.parametrize("setting", ["api", "metrics"])
def test_busy_port_is_one_line_naming_the_setting(tmp_path: Path, setting: str) -> None:
    """A port held by another process gives '<config>: SETTING.port: ...', exit 2."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        busy = holder.getsockname()[1]
        ports = {"api": 0, "metrics": 0, setting: busy}
        config = tmp_path / "sentinel.yaml"
        config.write_text(
            f"pod: p\nstate_dir: {tmp_path / 'state'}\ngpu:\n  source: off\n"
            "triton:\n  url: 127.0.0.1:1\nplaybooks:\n  dirs: []\n"
            f"api:\n  bind: 127.0.0.1\n  port: {ports['api']}\n"
            f"metrics:\n  bind: 127.0.0.1\n  port: {ports['metrics']}\n"
        )
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
        done = subprocess.run(
            [sys.executable, "-m", "sentinel", "run", "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
    assert 2 == done.returncode
    assert "Traceback" not in done.stderr
    [line] = [ln for ln in done.stderr.splitlines() if ln.startswith(str(config))]
    assert line.startswith(f"{config}: {setting}.port: cannot listen on 127.0.0.1:{busy}: ")

"""The model repository the live-GPU tools serve: the example one, digits on a chosen device."""

from __future__ import annotations

import os
import shutil
import site
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def serving_repository(work: Path, device: str) -> Path:
    """A copy of the example repository under ``work`` with digits computing on ``device``
    (cpu or cuda). For cuda, the Python backend's stub is pointed at this interpreter's
    site-packages, where PyTorch is (the server passes PYTHONPATH on to the stub)."""
    repo = work / "models"
    shutil.copytree(ROOT / "examples" / "model_repository", repo)
    config = repo / "digits" / "config.pbtxt"
    config.write_text(
        config.read_text().replace(
            'key: "device" value { string_value: "cpu" }',
            f'key: "device" value {{ string_value: "{device}" }}',
        )
    )
    if device == "cuda":
        paths = [*site.getsitepackages(), os.environ.get("PYTHONPATH", "")]
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    return repo

"""Builds the wheel with sentinel's shipped files as package data under ``sentinel/defaults/``.

The top-level folders (playbooks/, alerts/, dashboards/, the demo's examples and GPU traces)
stay the source of truth that tests and docs name; they are copied into the build at wheel
time so an installed sentinel (``sentinel demo``, the image) finds them without a checkout.
Everything else is declared in pyproject.toml.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent

# name under sentinel/defaults/ -> (folder in the checkout, glob patterns copied)
# Kept in step with sentinel/base/assets.py:CHECKOUT_LAYOUT (tests/ops/test_wheel.py checks).
SHIPPED: dict[str, tuple[str, tuple[str, ...]]] = {
    "playbooks": ("playbooks", ("*.yaml",)),
    "alerts": ("alerts", ("*.rules.yaml",)),
    "dashboards": ("dashboards", ("*.json",)),
    "examples": (
        "examples",
        ("sentinel.yaml", "golden/*.npz", "model_repository/**/*.pbtxt",
         "model_repository/**/*.py", "model_repository/**/*.npz",
         "llm_repository/**/*.pbtxt", "llm_repository/**/*.py", "llm_repository/**/*.npz"),
    ),
    "gpu-traces": ("tests/data/gpu", ("h200-oom.jsonl", "h200-thermal-synth.jsonl")),
}


class BuildWithDefaults(build_py):
    """build_py that also copies the shipped files into ``sentinel/defaults/``."""

    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "sentinel" / "defaults"
        for name, (folder, patterns) in SHIPPED.items():
            source = HERE / folder
            for pattern in patterns:
                for path in sorted(source.glob(pattern)):
                    if path.is_file() and "__pycache__" not in path.parts:
                        dest = target / name / path.relative_to(source)
                        dest.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copy2(path, dest)


setup(cmdclass={"build_py": BuildWithDefaults})

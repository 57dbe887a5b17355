"""Where the streaming test bed's golden sets live (shared by tests/streaming)."""

from __future__ import annotations

from pathlib import Path

from triton_fixtures import ROOT

GOLDEN_CHARLM = ROOT / "examples" / "golden" / "charlm.npz"
GOLDEN_SCORE = ROOT / "examples" / "golden" / "charlm_score.npz"


def golden_path(name: str) -> Path:
    """A file of examples/golden by name."""
    return ROOT / "examples" / "golden" / name

"""Detector thresholds (the `detectors:` config section). Owned by the detect stage."""

from __future__ import annotations

from sentinel.settings import Section


class DetectorSettings(Section):
    """Thresholds of every detector; each has a documented default."""

"""The `incidents:` config section. Owned by the incidents stage."""

from __future__ import annotations

from sentinel.settings import Section


class IncidentSettings(Section):
    """Lifecycle timing: hysteresis, re-fire window, re-notify interval."""

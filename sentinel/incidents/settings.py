"""The `incidents:` config section. Owned by the incidents stage."""

from __future__ import annotations

from pydantic import Field

from sentinel.base.duration import Duration
from sentinel.base.settings import Section


class IncidentSettings(Section):
    """Lifecycle timing: hysteresis, re-fire window, re-notify interval."""

    resolve_hold_s: Duration = Field(20.0, ge=0)
    """After a Cleared, the incident resolves only if no new finding arrives for this long
    (one that comes later, within ``refire_window_s``, reopens the same incident)."""
    refire_window_s: Duration = Field(300.0, ge=0)
    """A finding within this long after resolution reopens the same incident (same id)."""
    renotify_interval_s: Duration = Field(3600.0, ge=0)
    """Remind people of a still-open, unmuted incident this often; 0 turns reminders off."""
    restart_grace_s: Duration = Field(300.0, ge=0)
    """After a restart, open incidents no detector re-confirms within this long are resolved."""
    inhibit: bool = True
    """Mute symptoms explained by a cause: server down mutes latency/canary findings on it;
    a thermal or power finding on a GPU mutes latency findings on that GPU."""

"""The `notifiers:` config section. Owned by the notify stage."""

from __future__ import annotations

from sentinel.settings import Section


class NotifySettings(Section):
    """Which notifiers are on and how to reach them; secrets via env or *_file."""

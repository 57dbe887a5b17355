"""The `playbooks:` config section. Owned by the runbook stage."""

from __future__ import annotations

from sentinel.settings import Section


class RunbookSettings(Section):
    """Where playbooks live and the executor's global guards."""

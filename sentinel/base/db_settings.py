"""The state database's settings (``state:`` in the config), apart from :mod:`sentinel.base.db`
so that loading a config (`sentinel config check`) does not import what the database needs
(structlog, prometheus_client)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from sentinel.base.settings import Section

OnCorrupt = Literal["move_aside", "refuse"]


class AuditSettings(Section):
    """Bounds on the audit trail, so no caller (nor an attacker) can fill the disk with it."""

    max_field_chars: int = Field(1024, ge=16, le=65536)
    """Longest actor, action, target or outcome kept, and longest string in the details;
    longer ones are cut and say by how much."""
    max_details_chars: int = Field(16384, ge=256, le=1_048_576)
    """Longest details JSON kept; a longer one is replaced by its head."""
    refused_per_minute: float = Field(60.0, gt=0, allow_inf_nan=False)
    """Rows recorded per minute for refused (unauthenticated) requests, on average; the
    rest are counted (``sentinel_audit_rows_dropped_total``) and summed up in one row."""
    refused_burst: int = Field(60, ge=1, le=100_000)
    """How many refused-request rows may be recorded at once before the rate applies."""
    max_rows: int = Field(100_000, ge=100, le=100_000_000)
    """Rows kept; the oldest beyond this are pruned."""
    max_age_days: float = Field(90.0, gt=0, le=36500, allow_inf_nan=False)
    """Rows older than this are pruned."""


class StateSettings(Section):
    """The state database under ``state_dir``."""

    on_corrupt: OnCorrupt = "move_aside"
    """A damaged database: ``move_aside`` renames it to ``<name>.corrupt-<time>`` (logged as
    an error naming both) and starts a fresh one; ``refuse`` stops with that error instead."""
    audit: AuditSettings = AuditSettings()

"""Paging policy: Slack hears everything, PagerDuty only when a human is needed.

A page goes out for a PageRequest (automation cannot act, failed, or a guard
blocked it) or an incident at/above ``page_severity``; never for a muted
(silenced or inhibited) incident -- the audit trail records those anyway.
"""

from __future__ import annotations

import hashlib

from sentinel.notify.settings import PolicySettings
from sentinel.vocabulary.notices import ActionUpdate, IncidentChanged, Notice, PageRequest

PAGING_CHANGES = frozenset({"opened", "reopened", "escalated", "renotify"})


class PagingPolicy:
    def __init__(self, settings: PolicySettings | None = None) -> None:
        self.settings = settings or PolicySettings()

    def pages(self, notice: Notice) -> bool:
        """Whether this notice should trigger (or re-trigger) PagerDuty."""
        if isinstance(notice, PageRequest):
            return (
                notice.action == "trigger"
                and self.settings.page_on_request
                and not notice.incident.muted
            )
        if isinstance(notice, IncidentChanged):
            inc = notice.incident
            return (
                notice.change in PAGING_CHANGES
                and inc.open
                and not inc.muted
                and inc.severity.rank >= self.settings.page_severity.rank
            )
        return False

    def to_slack(self, notice: Notice) -> bool:
        if isinstance(notice, ActionUpdate) or notice.incident is None:
            return True
        return self.settings.slack_when_muted or not notice.incident.muted


def notice_key(notice: Notice) -> str:
    """Identity of a notice: telling the same notice twice queues it once per notifier."""
    if isinstance(notice, IncidentChanged):
        inc = notice.incident
        return f"{inc.id}/{notice.change}/{inc.updated_at:.3f}"
    if isinstance(notice, PageRequest):
        digest = hashlib.sha256(notice.reason.encode()).hexdigest()[:10]
        page = "page" if notice.action == "trigger" else notice.action
        return f"{notice.incident.id}/{page}/{notice.incident.updated_at:.3f}/{digest}"
    digest = hashlib.sha256(notice.text.encode()).hexdigest()[:10]
    return f"run/{notice.run_id}/{notice.step or '-'}/{notice.status}/{digest}"


def muted_note(notice: Notice) -> str:
    inc = notice.incident
    if inc is None:
        return ""
    if inc.silenced_by:
        return f" (silenced by {inc.silenced_by}: no page)"
    if inc.inhibited_by:
        return f" (inhibited by incident {inc.inhibited_by}: no page)"
    return ""

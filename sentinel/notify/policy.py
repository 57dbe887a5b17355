"""Paging policy: Slack hears everything, PagerDuty only when a human is needed.

A page goes out for a PageRequest (automation cannot act, failed, or a guard
blocked it) or an incident at/above ``page_severity``; never for a muted
(silenced or inhibited) incident -- the audit trail records those anyway.

Routes (``notifiers.routes``) pick the Slack channel and PagerDuty key a notice goes
to, by playbook, step, severity, cause or kind. The notifiers pick when they plan a
message and store the choice in its payload, so a retry goes where the first try did.
"""

from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from sentinel.notify.settings import PolicySettings, RouteSettings
from sentinel.vocabulary.notices import ActionUpdate, IncidentChanged, Notice, PageRequest

PAGING_CHANGES = frozenset({"opened", "reopened", "escalated", "renotify"})


@dataclass(frozen=True, slots=True)
class RouteFacts:
    """What routes match a notice on."""

    playbook: str = ""
    step: str = ""
    severity: str = ""
    kind: str = ""
    causes: tuple[str, ...] = ()


def route_facts(notice: Notice, incident_only: bool = False) -> RouteFacts:
    """The notice's playbook, step, incident severity, kind and causes; with
    ``incident_only``, only what the incident itself says (where its thread goes)."""
    inc = notice.incident
    causes: list[str] = []
    if inc is not None and isinstance(inc.evidence.get("cause"), str):
        causes.append(inc.evidence["cause"])
    facts = RouteFacts(
        severity=inc.severity.value if inc is not None else "",
        kind=inc.kind if inc is not None else "",
        causes=tuple(causes),
    )
    if incident_only or isinstance(notice, IncidentChanged):
        return facts
    return RouteFacts(
        playbook=notice.playbook,
        step=notice.step or "",
        severity=facts.severity,
        kind=facts.kind,
        causes=(*notice.causes, *causes),
    )


def _any(patterns: Sequence[str], values: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(v, p) for p in patterns for v in values if v)


def route_matches(route: RouteSettings, facts: RouteFacts) -> bool:
    """Every field the route's ``match`` names matches the notice."""
    m = route.match
    return (
        (not m.playbook or _any(m.playbook, [facts.playbook]))
        and (not m.step or _any(m.step, [facts.step]))
        and (not m.severity or facts.severity in {s.value for s in m.severity})
        and (not m.cause or _any(m.cause, facts.causes))
        and (not m.kind or _any(m.kind, [facts.kind]))
    )


class PagingPolicy:
    def __init__(
        self, settings: PolicySettings | None = None, routes: Sequence[RouteSettings] = ()
    ) -> None:
        self.settings = settings or PolicySettings()
        self.routes = list(routes)

    def slack_route(self, notice: Notice, incident_only: bool = False) -> RouteSettings | None:
        """The first matching route with a Slack channel; None: the default channel."""
        facts = route_facts(notice, incident_only)
        return next((r for r in self.routes if r.slack_channel and route_matches(r, facts)), None)

    def pagerduty_route(self, notice: Notice) -> RouteSettings | None:
        """The first matching route with a PagerDuty key; None: the default key."""
        facts = route_facts(notice)
        return next(
            (
                r
                for r in self.routes
                if (r.pagerduty_routing_key or r.pagerduty_routing_key_file)
                and route_matches(r, facts)
            ),
            None,
        )

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

"""Alertmanager, both ways.

Out: incidents are pushed to ``POST /api/v2/alerts`` (so fleet-wide grouping,
silences and inhibition apply), re-sent while firing by
:meth:`AlertmanagerNotifier.resend` (Alertmanager resolves alerts that stop
arriving), and closed with ``endsAt`` on resolution. Muted incidents are not
pushed (they must not page through Alertmanager either).

In: :func:`parse_webhook` reads Alertmanager's documented webhook JSON (the
control API's ``POST /v1/alertmanager``), and :func:`alert_to_judgement`
turns an external alert (e.g. an Xid alert from dcgm-exporter) into a
finding the incident manager and the playbooks understand. Alerts sentinel
pushed itself carry ``origin="sentinel"`` and are ignored on the way back,
so the loop never feeds itself.
"""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sentinel.base.clock import Clock
from sentinel.base.errors import InputError
from sentinel.notify.http import TRANSPORT_ERRORS, HttpClient, describe, retry_after
from sentinel.notify.outbox import (
    DeliveryError,
    History,
    Message,
    Outbox,
    OutboxRow,
    RetryableDelivery,
)
from sentinel.notify.policy import notice_key
from sentinel.notify.settings import AlertmanagerSettings
from sentinel.vocabulary.findings import Cleared, Finding, Judgement, Severity, Subject
from sentinel.vocabulary.incidents import Incident
from sentinel.vocabulary.notices import IncidentChanged, Notice
from sentinel.vocabulary.ports import OpenIncidents

log = structlog.get_logger(__name__)

NAME = "alertmanager"
ORIGIN = "sentinel"


def iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, tz=dt.UTC).isoformat().replace("+00:00", "Z")


def alert_for(inc: Incident, settings: AlertmanagerSettings, api_url: str) -> dict[str, Any]:
    """The v2 API alert for an incident (``endsAt`` only once resolved)."""
    labels = {**settings.labels, **inc.labels()}
    labels.pop("key", None)
    labels.update(alertname=f"sentinel_{inc.kind}", origin=ORIGIN)
    alert: dict[str, Any] = {
        "labels": {k: v for k, v in labels.items() if v},
        "annotations": {
            "summary": inc.summary,
            "incident_id": inc.id,
            "incident_key": inc.key,
            "status": inc.status.value,
        },
        "startsAt": iso(inc.started_at),
        "generatorURL": settings.generator_url or f"{api_url.rstrip('/')}/v1/incidents/{inc.id}",
    }
    if inc.resolved_at is not None:
        alert["endsAt"] = iso(inc.resolved_at)
    return alert


class AlertmanagerNotifier:
    name = NAME

    def __init__(self, settings: AlertmanagerSettings, api_url: str = "http://127.0.0.1:9309"):
        self._s = settings
        self._api_url = api_url
        self._url = settings.url.rstrip("/") + "/api/v2/alerts"
        self._client = HttpClient(settings.timeout_s)

    def plan(self, notice: Notice, history: History) -> list[Message]:
        if not isinstance(notice, IncidentChanged):
            return []
        inc = notice.incident
        if inc.muted and inc.open:
            return []
        alerts = [alert_for(inc, self._s, self._api_url)]
        if notice.change == "escalated":
            # the severity label is part of the alert's identity: end the lower ones now
            for lower in Severity:
                if lower.rank < inc.severity.rank:
                    old = alert_for(inc, self._s, self._api_url)
                    old["labels"]["severity"] = lower.value
                    old["endsAt"] = iso(inc.updated_at)
                    alerts.append(old)
        return [Message("alert", {"alerts": alerts}, inc.id, notice_key(notice))]

    async def deliver(self, row: OutboxRow, outbox: Outbox) -> dict[str, Any]:
        await self.post(row.payload["alerts"])
        return {}

    async def post(self, alerts: Sequence[dict[str, Any]]) -> None:
        """POST alerts; DeliveryError on failure (RetryableDelivery unless a 4xx other than 429)."""
        try:
            resp = await self._client.post(self._url, json=list(alerts))
        except TRANSPORT_ERRORS as exc:  # alerts are state: a plain retry is harmless
            raise RetryableDelivery(f"alertmanager unreachable: {describe(exc)}") from None
        body = resp.text[:300]
        if resp.status == 429:
            ra = retry_after(resp.headers, default=1.0)
            raise RetryableDelivery("alertmanager 429", retry_after=ra)
        if resp.status >= 500:
            raise RetryableDelivery(f"alertmanager {resp.status}: {body}")
        if resp.status >= 400:
            raise DeliveryError(f"alertmanager refused {resp.status}: {body}")

    async def resend(self, incidents: Sequence[Incident]) -> int:
        """Re-push every open, unmuted incident as firing; returns how many."""
        alerts = [alert_for(i, self._s, self._api_url) for i in incidents if i.open and not i.muted]
        if alerts:
            await self.post(alerts)
        return len(alerts)

    async def run_resender(self, open_incidents: OpenIncidents, clock: Clock) -> None:
        """Service: keep firing alerts alive in Alertmanager every resend_interval_s."""
        while True:
            await clock.sleep(self._s.resend_interval_s)
            try:
                await self.resend(open_incidents())
            except DeliveryError as exc:
                log.warning("alertmanager_resend_failed", error=exc.reason)

    async def reconcile(self, row: OutboxRow, outbox: Outbox) -> dict[str, Any] | None:
        return None  # alerts are state, not events: resending is harmless

    def record(self, conn: sqlite3.Connection, row: OutboxRow, result: dict[str, Any]) -> None:
        return None

    async def aclose(self) -> None:
        await self._client.aclose()


# -- webhooks in ------------------------------------------------------------------


class _WebhookAlert(BaseModel):
    model_config = ConfigDict(extra="allow")
    status: str
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: str = ""  # Alertmanager spells its fields in camelCase
    endsAt: str = ""
    generatorURL: str = ""
    fingerprint: str = ""


class _Webhook(BaseModel):
    model_config = ConfigDict(extra="allow")
    version: str = "4"
    groupKey: str = ""
    status: str = ""
    receiver: str = ""
    alerts: list[_WebhookAlert]


@dataclass(frozen=True, slots=True)
class ExternalAlert:
    """One alert from an Alertmanager webhook."""

    status: str
    """firing | resolved"""
    labels: dict[str, str]
    annotations: dict[str, str] = field(default_factory=dict)
    starts_at: float | None = None
    ends_at: float | None = None
    fingerprint: str = ""
    generator_url: str = ""
    receiver: str = ""

    @property
    def from_sentinel(self) -> bool:
        return self.labels.get("origin") == ORIGIN


class WebhookError(InputError, ValueError):
    """The body is not an Alertmanager webhook (the message names the field)."""


def _epoch(text: str) -> float | None:
    if not text or text.startswith("0001-01-01"):
        return None
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def parse_webhook(body: Any) -> list[ExternalAlert]:
    """Alertmanager webhook JSON (version 4) -> alerts; WebhookError on anything else."""
    try:
        hook = _Webhook.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise WebhookError(f"{where}: {first['msg']}") from exc
    return [
        ExternalAlert(
            status=a.status,
            labels=dict(a.labels),
            annotations=dict(a.annotations),
            starts_at=_epoch(a.startsAt),
            ends_at=_epoch(a.endsAt),
            fingerprint=a.fingerprint,
            generator_url=a.generatorURL,
            receiver=hook.receiver,
        )
        for a in hook.alerts
    ]


_SEVERITY = {
    "critical": Severity.CRITICAL,
    "page": Severity.CRITICAL,
    "error": Severity.CRITICAL,
    "warning": Severity.WARNING,
    "warn": Severity.WARNING,
}


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def alert_to_judgement(alert: ExternalAlert, now: float) -> Judgement | None:
    """An external alert as a finding (firing) or cleared (resolved); None for our own.

    kind: label ``sentinel_kind``, else ``kind``, else the alertname in snake case
    (``GpuXidError`` -> ``gpu_xid_error``); subject from ``model``/``version`` and
    ``gpu_uuid`` or dcgm-exporter's ``UUID``.
    """
    if alert.from_sentinel:
        return None
    labels = alert.labels
    kind = (
        labels.get("sentinel_kind")
        or labels.get("kind")
        or _snake(labels.get("alertname", "external_alert"))
    )
    subject = Subject(
        model=labels.get("model"),
        version=labels.get("version"),
        gpu_uuid=labels.get("gpu_uuid") or labels.get("UUID"),
    )
    evidence = {
        "labels": labels,
        "annotations": alert.annotations,
        "fingerprint": alert.fingerprint,
        "source": "alertmanager",
    }
    if alert.status == "resolved":
        return Cleared(
            kind=kind,
            subject=subject,
            cleared_at=alert.ends_at or now,
            evidence=evidence,
            detector="alertmanager",
        )
    summary = alert.annotations.get("summary") or alert.annotations.get("description") or kind
    return Finding(
        kind=kind,
        severity=_SEVERITY.get(labels.get("severity", "").lower(), Severity.WARNING),
        subject=subject,
        started_at=alert.starts_at or now,
        detected_at=now,
        summary=summary,
        evidence=evidence,
        detector="alertmanager",
    )

"""PagerDuty Events API v2: trigger / acknowledge / resolve keyed by the incident's
dedup key, and a change event for every action taken.

The official ``pagerduty`` client is synchronous and retries with blocking
sleeps; here it is called in a thread with its own retries switched off (the
outbox retries, honouring ``Retry-After``). Trigger/ack/resolve are idempotent
by dedup key, so a resend after a crash is harmless. ``submit()`` always gets
an explicit timestamp (7.2.0 crashes building its default one).

Routes (``notifiers.routes``) pick the routing key per page and change event; the
payload names the route (never the key), and the incident remembers the route its
trigger went through, so its acknowledge and resolve reach the same service.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
import ssl
from typing import Any

import pagerduty
import structlog

from sentinel.base.logging import silenced_library_logger
from sentinel.notify.outbox import (
    DeliveryError,
    History,
    Message,
    Outbox,
    OutboxRow,
    RetryableDelivery,
)
from sentinel.notify.policy import PagingPolicy, notice_key
from sentinel.notify.settings import PagerDutySettings, RouteSettings
from sentinel.vocabulary.notices import ActionUpdate, IncidentChanged, Notice, PageRequest

log = structlog.get_logger(__name__)

NAME = "pagerduty"
DEFAULT_ROUTE = ""
"""The route name of the default key (``pagerduty.routing_key``)."""
_PD_SEVERITY = {"critical": "critical", "warning": "warning", "info": "info"}
_NO_CHANGE_EVENT = frozenset({"planned"})


def iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, tz=dt.UTC).isoformat()


class PagerDutyNotifier:
    name = NAME

    def __init__(
        self, settings: PagerDutySettings, pod: str, policy: PagingPolicy | None = None
    ) -> None:
        key = settings.key()
        if not key:
            raise ValueError("pagerduty: set notifiers.pagerduty.routing_key (or routing_key_file)")
        self._s = settings
        self._source = settings.source or pod
        self._policy = policy or PagingPolicy()
        self._clients = {DEFAULT_ROUTE: self._client_for(key)}
        for route in self._policy.routes:
            route_key = route.pagerduty_key()
            if route_key:
                self._clients[route.name] = self._client_for(route_key)
        self._client = self._clients[DEFAULT_ROUTE]

    def _client_for(self, key: str) -> pagerduty.EventsApiV2Client:
        settings = self._s
        kw: dict[str, Any] = {}
        if settings.ca_file is not None:
            kw["verify"] = ssl.create_default_context(cafile=str(settings.ca_file))
        client = pagerduty.EventsApiV2Client(key, base_url=settings.base_url, **kw)
        # one attempt per call: a positive retry count with max_http_attempts < 0 returns
        # the response at once (429 would otherwise retry forever with blocking sleeps)
        client.retry = {429: 1, 500: 1, 502: 1, 503: 1, 504: 1}
        client.max_http_attempts = -1
        client.max_network_attempts = 0
        client.timeout = max(1, round(settings.timeout_s))
        # the client logs each non-2xx as an error; the outbox logs the retry decision itself
        client.log = silenced_library_logger("sentinel.notify.pagerduty.client")
        return client

    def _route(self, notice: Notice) -> str:
        route: RouteSettings | None = self._policy.pagerduty_route(notice)
        return route.name if route is not None else DEFAULT_ROUTE

    # -- planning ---------------------------------------------------------------

    def plan(self, notice: Notice, history: History) -> list[Message]:
        key = notice_key(notice)
        if isinstance(notice, ActionUpdate):
            if not self._s.change_events or notice.dry_run or notice.status in _NO_CHANGE_EVENT:
                return []
            change = {**self._change(notice), "route": self._route(notice)}
            return [Message("change", change, _id(notice), key)]
        inc = notice.incident
        if isinstance(notice, PageRequest) and notice.action in ("acknowledge", "resolve"):
            # a playbook's pagerduty.acknowledge/resolve step: only for a page we sent
            if not history.queued(NAME, inc.id, "trigger"):
                return []
            return [Message(notice.action, {"dedup_key": inc.key}, inc.id, key)]
        if self._policy.pages(notice):
            trigger = {**self._trigger(notice), "route": self._route(notice)}
            return [Message("trigger", trigger, inc.id, key)]
        if not isinstance(notice, IncidentChanged) or not history.queued(NAME, inc.id, "trigger"):
            return []
        if notice.change == "resolved":
            return [Message("resolve", {"dedup_key": inc.key}, inc.id, key)]
        if notice.change == "mitigating" and self._s.acknowledge_on_mitigating:
            return [Message("acknowledge", {"dedup_key": inc.key}, inc.id, key)]
        return []

    def _trigger(self, notice: IncidentChanged | PageRequest) -> dict[str, Any]:
        inc = notice.incident
        summary = inc.summary
        details: dict[str, Any] = {
            "incident_id": inc.id,
            "status": inc.status.value,
            "change": getattr(notice, "change", "page"),
            "evidence": inc.evidence,
            "started_at": iso(inc.started_at),
        }
        if isinstance(notice, PageRequest):
            summary = f"{notice.reason} -- {inc.summary}"
            details["page_reason"] = notice.reason
            details["page_evidence"] = notice.evidence
        return {
            "dedup_key": inc.key,
            "payload": {
                "summary": f"[{inc.kind}] {summary}"[:1024],
                "source": self._source,
                "severity": _PD_SEVERITY.get(inc.severity.value, "error"),
                "component": inc.subject.model or inc.subject.gpu_uuid or "triton",
                "group": inc.group or inc.id,
                "class": inc.kind,
                "timestamp": iso(inc.detected_at),
                "custom_details": details,
            },
        }

    def _change(self, n: ActionUpdate) -> dict[str, Any]:
        step = f" step {n.step}" if n.step else ""
        target = n.incident.key if n.incident else "manual run"
        return {
            "summary": f"sentinel {n.playbook}{step} {n.status}: {n.text}"[:1024],
            "source": self._source,
            "custom_details": {
                "run_id": n.run_id,
                "incident": target,
                "status": n.status,
                "evidence": n.evidence,
            },
        }

    # -- delivery -----------------------------------------------------------------

    async def deliver(self, row: OutboxRow, outbox: Outbox) -> dict[str, Any]:
        route = row.payload.get("route")
        if route is None and row.incident_id:  # ack/resolve: where the trigger went
            ref = outbox.ref(NAME, row.incident_id) or {}
            route = ref.get("route")
        client = self._clients.get(route or DEFAULT_ROUTE)
        if client is None:  # the route is gone from the config since this was queued
            log.warning("pagerduty_route_gone", route=route, using="the default key")
            client = self._clients[DEFAULT_ROUTE]
        result = await asyncio.to_thread(self._send, client, row)
        return {**result, "route": route or DEFAULT_ROUTE} if row.op == "trigger" else result

    def _send(self, client: pagerduty.EventsApiV2Client, row: OutboxRow) -> dict[str, Any]:
        p = row.payload
        try:
            if row.op == "change":
                client.submit(
                    summary=p["summary"],
                    source=p["source"],
                    custom_details=p["custom_details"],
                    timestamp=iso(row.created_at),
                )
                return {}
            if row.op == "trigger":
                key = client.send_event("trigger", dedup_key=p["dedup_key"], payload=p["payload"])
            else:
                key = client.send_event(row.op, dedup_key=p["dedup_key"])
            return {"dedup_key": key}
        except pagerduty.HttpError as exc:
            raise _classify(exc) from exc
        except pagerduty.Error as exc:  # network: no response at all
            raise RetryableDelivery(f"pagerduty connection error: {exc}") from exc

    async def reconcile(self, row: OutboxRow, outbox: Outbox) -> dict[str, Any] | None:
        return None  # idempotent by dedup key: resending is safe

    def record(self, conn: sqlite3.Connection, row: OutboxRow, result: dict[str, Any]) -> None:
        if row.op == "trigger" and row.incident_id:
            Outbox.set_ref(conn, NAME, row.incident_id, {"route": result.get("route", "")})

    async def aclose(self) -> None:
        for client in self._clients.values():
            await asyncio.to_thread(client.close)


def _id(n: ActionUpdate) -> str | None:
    return n.incident.id if n.incident else None


def _classify(exc: pagerduty.HttpError) -> DeliveryError:
    resp = exc.response
    status = resp.status_code if resp is not None else 0
    if status == 429:
        raw = resp.headers.get("Retry-After") if resp is not None else None
        try:
            ra = float(raw) if raw is not None else 1.0
        except ValueError:
            ra = 1.0
        return RetryableDelivery("pagerduty rate limited (429)", retry_after=ra)
    if status >= 500 or status == 202:  # 202 with a malformed body: the event may be lost
        return RetryableDelivery(f"pagerduty server error {status}")
    body = resp.text[:200] if resp is not None else ""
    return DeliveryError(f"pagerduty refused ({status}): {body}")

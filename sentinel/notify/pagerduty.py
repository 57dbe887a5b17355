"""PagerDuty Events API v2: trigger / acknowledge / resolve keyed by the incident's
dedup key, and a change event for every action taken.

The documented wire format over aiohttp's client: ``POST /v2/enqueue`` (an event with its
``routing_key``, ``event_action`` and ``dedup_key``; 202 answers the dedup key) and
``POST /v2/change/enqueue``, one attempt per send (the outbox retries, honouring
``Retry-After``). Trigger/ack/resolve are idempotent by dedup key, so a resend after a
crash or an unanswered send is harmless.

Routes (``notifiers.routes``) pick the routing key per page and change event; the
payload names the route (never the key), and the incident remembers the route its
trigger went through, so its acknowledge and resolve reach the same service.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from typing import Any

import structlog

from sentinel.notify.http import TRANSPORT_ERRORS, Answer, HttpClient, describe, retry_after
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
EVENTS_API = "https://events.pagerduty.com"
"""The Events API v2 base URL when ``pagerduty.base_url`` is not set."""


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
        self._keys = {DEFAULT_ROUTE: key}
        for route in self._policy.routes:
            route_key = route.pagerduty_key()
            if route_key:
                self._keys[route.name] = route_key
        self._client = HttpClient(
            settings.timeout_s, ca_file=settings.ca_file, base_url=settings.base_url or EVENTS_API
        )

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
        key = self._keys.get(route or DEFAULT_ROUTE)
        if key is None:  # the route is gone from the config since this was queued
            log.warning("pagerduty_route_gone", route=route, using="the default key")
            key = self._keys[DEFAULT_ROUTE]
        result = await self._send(key, row)
        return {**result, "route": route or DEFAULT_ROUTE} if row.op == "trigger" else result

    async def _send(self, key: str, row: OutboxRow) -> dict[str, Any]:
        p = row.payload
        if row.op == "change":
            payload = {
                "summary": p["summary"],
                "timestamp": iso(row.created_at),
                "source": p["source"],
                "custom_details": p["custom_details"],
            }
            await self._post("/v2/change/enqueue", {"routing_key": key, "payload": payload})
            return {}
        event: dict[str, Any] = {
            "routing_key": key,
            "event_action": row.op,
            "dedup_key": p["dedup_key"],
        }
        if row.op == "trigger":
            event["payload"] = p["payload"]
        answer = await self._post("/v2/enqueue", event)
        if not isinstance(answer, dict) or "dedup_key" not in answer:
            # accepted, but not as documented: the event may be lost (idempotent: resend)
            raise RetryableDelivery(f"pagerduty answered {answer!r:.100} without a dedup_key")
        return {"dedup_key": answer["dedup_key"]}

    async def _post(self, path: str, event: dict[str, Any]) -> Any:
        """One POST; the answer's JSON (None when not JSON), or a DeliveryError."""
        try:
            resp = await self._client.post(path, json=event)
        except TRANSPORT_ERRORS as exc:  # idempotent by dedup key: a plain retry
            raise RetryableDelivery(f"pagerduty connection error: {describe(exc)}") from None
        if resp.is_success:
            try:
                return resp.json()
            except ValueError:
                return None
        raise _classify(resp)

    async def reconcile(self, row: OutboxRow, outbox: Outbox) -> dict[str, Any] | None:
        return None  # idempotent by dedup key: resending is safe

    def record(self, conn: sqlite3.Connection, row: OutboxRow, result: dict[str, Any]) -> None:
        if row.op == "trigger" and row.incident_id:
            Outbox.set_ref(conn, NAME, row.incident_id, {"route": result.get("route", "")})

    async def aclose(self) -> None:
        await self._client.aclose()


def _id(n: ActionUpdate) -> str | None:
    return n.incident.id if n.incident else None


def _classify(resp: Answer) -> DeliveryError:
    status = resp.status
    if status == 429:
        ra = retry_after(resp.headers, default=1.0)
        return RetryableDelivery("pagerduty rate limited (429)", retry_after=ra)
    if status >= 500:
        return RetryableDelivery(f"pagerduty server error {status}")
    return DeliveryError(f"pagerduty refused ({status}): {resp.text[:200]}")

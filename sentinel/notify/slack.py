"""Slack: one root message per incident, every step a reply in its thread.

The documented Web API over aiohttp's client: ``chat.postMessage`` and ``chat.update`` (JSON bodies)
to send, ``conversations.history`` and ``conversations.replies`` to reconcile, one
attempt per send (the outbox owns retries and honours ``Retry-After``). Every message
carries metadata with its idempotency key, so a row left ``sending`` by a
crash is found in the channel (``conversations.history``/``.replies``)
instead of being posted twice -- and so is one whose answer never came (a
timeout, a dropped connection, a non-JSON reply): those are
:class:`UncertainDelivery`, reconciled before any resend. Without a bot token
an incoming-webhook URL is a reduced fallback: no threads, no root updates, no routes
(a webhook posts to its own channel).

Routes (``notifiers.routes``): an incident's thread starts in the channel its kind,
severity and cause route to; a notice whose playbook or step routes elsewhere is
also posted there, outside the thread. The channel is in each row's payload.
"""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

from sentinel.notify.http import (
    TRANSPORT_ERRORS,
    Answer,
    HttpClient,
    retry_after,
    transport_failure,
)
from sentinel.notify.outbox import (
    DeliveryError,
    History,
    Message,
    Outbox,
    OutboxRow,
    RetryableDelivery,
    UncertainDelivery,
)
from sentinel.notify.policy import PagingPolicy, muted_note, notice_key
from sentinel.notify.settings import SlackSettings
from sentinel.vocabulary.incidents import Incident, IncidentStatus
from sentinel.vocabulary.notices import ActionUpdate, IncidentChanged, Notice

NAME = "slack"
EVENT_TYPE = "sentinel_notice"
_ICON = {
    "critical": ":red_circle:",
    "warning": ":large_orange_circle:",
    "info": ":large_blue_circle:",
}
_RETRYABLE_ERRORS = {"ratelimited", "service_unavailable", "fatal_error", "internal_error"}


class SlackWebApi:
    """The Web API methods sentinel calls: a JSON object with ``ok: true`` back, or a
    DeliveryError that says whether trying again (or reconciling first) makes sense."""

    def __init__(self, token: str, base_url: str, timeout_s: float) -> None:
        self._client = HttpClient(timeout_s, base_url=base_url)
        self._auth = {"Authorization": f"Bearer {token}"}

    async def post(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        """A write method (``chat.postMessage``, ``chat.update``) with a JSON body."""
        return await self._call("POST", method, json=body)

    async def get(self, method: str, params: dict[str, str]) -> dict[str, Any]:
        """A read method (``conversations.history`` ...) with query arguments."""
        return await self._call("GET", method, params=params)

    async def _call(self, verb: str, method: str, **kw: Any) -> dict[str, Any]:
        try:
            resp = await self._client.request(verb, method, headers=self._auth, **kw)
        except TRANSPORT_ERRORS as exc:
            raise transport_failure("slack", exc) from None
        return _answer(resp)

    async def aclose(self) -> None:
        await self._client.aclose()


def _answer(resp: Answer) -> dict[str, Any]:
    status = resp.status
    if status == 429:
        return _raise(RetryableDelivery("slack rate limited (429)", retry_after=_ra(resp)))
    try:
        data = resp.json()
    except ValueError:
        data = None
    if status >= 500:
        return _raise(RetryableDelivery(f"slack server error {status}"))
    if not (isinstance(data, dict) and "ok" in data):
        # a proxy's HTML page, plain text, broken JSON: the send may have arrived
        what = "empty" if not resp.content else resp.headers.get("content-type", "unknown")
        return _raise(UncertainDelivery(f"slack answered {status} without a JSON body ({what})"))
    if data["ok"] is True:
        return data
    error = str(data.get("error", ""))
    if error == "ratelimited":
        return _raise(RetryableDelivery("slack rate limited (429)", retry_after=_ra(resp)))
    if error in _RETRYABLE_ERRORS:
        return _raise(RetryableDelivery(f"slack server error {status} {error}"))
    return _raise(DeliveryError(f"slack refused ({status}): {error or 'unknown error'}"))


def _ra(resp: Answer) -> float | None:
    return retry_after(resp.headers, default=1.0)


def _raise(exc: DeliveryError) -> dict[str, Any]:
    raise exc


def _when(t: float | None) -> str:
    return "-" if t is None else time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))


def doing(inc: Incident) -> str:
    """What sentinel is doing about it, for the root message."""
    if inc.status is IncidentStatus.RESOLVED:
        return (
            f"Resolved at {_when(inc.resolved_at)} ({inc.evidence.get('resolution', 'cleared')})."
        )
    if inc.status is IncidentStatus.MITIGATING:
        pb = inc.evidence.get("playbook") or "a playbook"
        return f"Mitigating: running {pb}; steps follow in this thread."
    if inc.muted:
        return "Watching; muted" + muted_note_for(inc) + "."
    return "Firing: looking for a playbook that can act safely; steps follow in this thread."


def muted_note_for(inc: Incident) -> str:
    if inc.silenced_by:
        return f" by silence {inc.silenced_by}"
    return f" by incident {inc.inhibited_by}" if inc.inhibited_by else ""


def root_blocks(inc: Incident) -> tuple[str, list[dict[str, Any]]]:
    """Block Kit root message: what, where, evidence, what sentinel is doing."""
    state = inc.status.value.upper()
    title = f"{_ICON.get(inc.severity.value, '')} [{state}] {inc.kind} on {inc.key}"[:150]
    s = inc.subject
    fields = [
        ("Pod", inc.pod or "-"),
        ("Model", f"{s.model}:{s.version or '*'}" if s.model else "-"),
        ("GPU", s.gpu_uuid or "-"),
        ("Severity", inc.severity.value),
        ("Started", _when(inc.started_at)),
        ("Detector", inc.detector or "-"),
    ]
    if inc.group and inc.group != inc.id:
        fields.append(("Related to", f"incident {inc.group}"))
    evidence = json.dumps(inc.evidence, indent=1, sort_keys=True, default=str)
    if len(evidence) > 2800:
        evidence = evidence[:2800] + "\n..."
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title, "emoji": True}},
        {"type": "section", "text": {"type": "mrkdwn", "text": inc.summary[:2900] or "-"}},
        {
            "type": "section",
            "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{v}"} for k, v in fields],
        },
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*Evidence*\n```{evidence}```"}},
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": f"*sentinel:* {doing(inc)}"[:2900]}],
        },
    ]
    text = f"[{state}] {inc.severity.value} {inc.kind} on {inc.key}: {inc.summary}"
    if inc.muted and inc.open:
        text += f" (muted{muted_note_for(inc)}: no page)"
    return text, blocks


def reply_text(notice: Notice) -> str:
    if isinstance(notice, IncidentChanged):
        inc = notice.incident
        return f"*{notice.change}* ({inc.severity.value}): {inc.summary}{muted_note(notice)}"
    if isinstance(notice, ActionUpdate):
        step = f" step `{notice.step}`" if notice.step else ""
        dry = " _(dry run)_" if notice.dry_run else ""
        ev = f"\n```{json.dumps(notice.evidence, default=str)[:2500]}```" if notice.evidence else ""
        return f"`{notice.playbook}`{step} *{notice.status}*{dry}: {notice.text}{ev}"
    ev = f"\n```{json.dumps(notice.evidence, default=str)[:2500]}```" if notice.evidence else ""
    if notice.action != "trigger":
        return f":pager: PagerDuty page *{notice.action}d*: {notice.reason}{ev}"
    return f":rotating_light: *paging a human*: {notice.reason}{muted_note(notice)}{ev}"


class SlackNotifier:
    """Web API (token) or incoming webhook (fallback) notifier."""

    name = NAME

    def __init__(self, settings: SlackSettings, policy: PagingPolicy | None = None) -> None:
        self._s = settings
        self._policy = policy or PagingPolicy()
        token = settings.bot_token()
        self._web = SlackWebApi(token, settings.base_url, settings.timeout_s) if token else None
        hook = settings.webhook()
        self._hook = (hook, HttpClient(settings.timeout_s)) if hook and not token else None
        if self._web is None and self._hook is None:
            raise ValueError("slack: set a bot token (and channel) or a webhook_url")
        if self._web is not None and not settings.channel:
            raise ValueError("slack: a bot token needs notifiers.slack.channel (a channel ID)")

    # -- planning ---------------------------------------------------------------

    def plan(self, notice: Notice, history: History) -> list[Message]:
        if not self._policy.to_slack(notice):
            return []
        key = notice_key(notice)
        inc = notice.incident
        if inc is None:
            channel = self._channel(notice)
            return [Message("post", {"text": reply_text(notice), "channel": channel}, None, key)]
        thread = self._channel(notice, incident_only=True)
        out: list[Message] = []
        opened = isinstance(notice, IncidentChanged) and notice.change == "opened"
        if opened or not history.queued(NAME, inc.id, "root"):
            text, blocks = root_blocks(inc)
            root = {"text": text, "blocks": blocks, "channel": thread}
            out.append(Message("root", root, inc.id, f"{inc.id}/root"))
            if opened:  # the root message is the news
                return out
        broadcast = isinstance(notice, IncidentChanged) and notice.change == "resolved"
        reply = {"text": reply_text(notice), "broadcast": broadcast, "channel": thread}
        out.append(Message("reply", reply, inc.id, key))
        routed = self._channel(notice)
        if routed != thread:  # a route sends this one elsewhere too: a copy, outside the thread
            text = f"{inc.key}: {reply_text(notice)}"
            out.append(Message("post", {"text": text, "channel": routed}, inc.id, f"{key}/routed"))
        if isinstance(notice, IncidentChanged) and notice.change != "renotify":
            text, blocks = root_blocks(inc)
            out.append(Message("update", {"text": text, "blocks": blocks}, inc.id, f"{key}/update"))
        return out

    def _channel(self, notice: Notice, incident_only: bool = False) -> str:
        """The route's channel for this notice, else the default one."""
        route = self._policy.slack_route(notice, incident_only)
        return route.slack_channel if route is not None and route.slack_channel else self._s.channel

    # -- delivery -----------------------------------------------------------------

    async def deliver(self, row: OutboxRow, outbox: Outbox) -> dict[str, Any]:
        if self._web is None:
            return await self._deliver_webhook(row)
        return await self._deliver_web(self._web, row, outbox)

    async def _deliver_web(
        self, web: SlackWebApi, row: OutboxRow, outbox: Outbox
    ) -> dict[str, Any]:
        p = row.payload
        meta = {"event_type": EVENT_TYPE, "event_payload": {"idem": row.idem_key}}
        ref = outbox.ref(NAME, row.incident_id) if row.incident_id else None
        if row.op == "update":
            if ref is None:
                return {"skipped": "no root message to update"}
            body = {"channel": ref["channel"], "ts": ref["ts"], "text": p["text"]}
            resp = await web.post("chat.update", {**body, "blocks": p["blocks"]})
            return {"channel": resp["channel"], "ts": resp["ts"]}
        channel = p.get("channel") or self._s.channel  # rows queued before routes had none
        msg: dict[str, Any] = {"channel": channel, "text": p["text"], "metadata": meta}
        if "blocks" in p:
            msg["blocks"] = p["blocks"]
        if row.op == "reply" and ref is not None:
            msg.update(channel=ref["channel"], thread_ts=ref["ts"])
            if p.get("broadcast"):
                msg["reply_broadcast"] = True
        resp = await web.post("chat.postMessage", msg)
        return {"channel": resp["channel"], "ts": resp["ts"]}

    async def _deliver_webhook(self, row: OutboxRow) -> dict[str, Any]:
        assert self._hook is not None
        url, client = self._hook
        if row.op == "update":
            return {"skipped": "webhook cannot update messages"}
        body: dict[str, Any] = {"text": row.payload["text"]}
        if row.payload.get("blocks"):
            body["blocks"] = row.payload["blocks"]
        try:
            resp = await client.post(url, json=body)
        except TRANSPORT_ERRORS as exc:
            raise transport_failure("slack webhook", exc) from None
        if resp.status == 429:
            raise RetryableDelivery("slack webhook 429", retry_after=retry_after(resp.headers))
        if resp.status >= 500:
            raise RetryableDelivery(f"slack webhook {resp.status}")
        if resp.status >= 400:
            raise DeliveryError(f"slack webhook {resp.status}: {resp.text[:200]}")
        return {"webhook": resp.status}

    async def reconcile(self, row: OutboxRow, outbox: Outbox) -> dict[str, Any] | None:
        """Find a message we may have posted (before a crash, or unanswered), by its
        metadata; RetryableDelivery when Slack cannot be asked now."""
        if self._web is None or row.op == "update":
            return None  # webhook: cannot look; update: idempotent, just resend
        return await self._find(self._web, row, outbox)

    async def _find(
        self, web: SlackWebApi, row: OutboxRow, outbox: Outbox
    ) -> dict[str, Any] | None:
        ref = outbox.ref(NAME, row.incident_id) if row.incident_id else None
        if row.op == "reply" and ref is not None:
            channel = ref["channel"]
            args = {"channel": channel, "ts": ref["ts"]}
            resp = await web.get("conversations.replies", {**args, **_ALL_METADATA})
        else:
            channel = row.payload.get("channel") or self._s.channel
            args = {"channel": channel, "oldest": f"{row.created_at - 1:.6f}"}
            resp = await web.get("conversations.history", {**args, **_ALL_METADATA})
        for msg in resp.get("messages") or []:
            payload = (msg.get("metadata") or {}).get("event_payload") or {}
            if payload.get("idem") == row.idem_key:
                return {"channel": channel, "ts": msg["ts"]}
        return None

    def record(self, conn: sqlite3.Connection, row: OutboxRow, result: dict[str, Any]) -> None:
        if row.op == "root" and row.incident_id and "ts" in result:
            Outbox.set_ref(
                conn, NAME, row.incident_id, {"channel": result["channel"], "ts": result["ts"]}
            )

    async def aclose(self) -> None:
        if self._web is not None:
            await self._web.aclose()
        if self._hook is not None:
            await self._hook[1].aclose()


_ALL_METADATA = {"include_all_metadata": "true", "limit": "200"}

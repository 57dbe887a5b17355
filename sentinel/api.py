"""The control API: health, status, incidents, runs (show, cancel), silences, pauses,
manual playbook runs, breaker reset and the Alertmanager webhook (aiohttp, JSON).

Read endpoints are open (bind to localhost by default). Acting endpoints need
``Authorization: Bearer <token>`` (compared in constant time): missing -> 401,
wrong -> 403, and with no token configured they refuse with 403 saying so.
Every request to an acting endpoint is audited with its actor and outcome; tokens
are never logged or recorded. The actor is the authenticated identity (``token``:
whoever holds the API token); the optional ``X-Sentinel-Actor`` header is only a
name the caller claims, recorded next to it (``token:alice``), never trusted alone.

Hostile input is bounded: bodies (``MAX_BODY_BYTES``), JSON nesting
(``MAX_JSON_DEPTH``), request lines and headers, idle connections
(``IDLE_TIMEOUT_S``); non-finite numbers are refused and answers are standard JSON.
"""

from __future__ import annotations

import hmac
import math
import re
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web

from sentinel.base import strictjson
from sentinel.base.audit import audit
from sentinel.base.clock import Clock
from sentinel.base.db import health_of
from sentinel.incidents.silences import SilenceError, SilenceStore
from sentinel.incidents.store import IncidentStore
from sentinel.notify.alertmanager import ExternalAlert, WebhookError, parse_webhook
from sentinel.notify.outbox import Outbox
from sentinel.runbook.pauses import PauseError, PauseStore, pause_duration
from sentinel.vocabulary.ports import PlaybookService

log = structlog.get_logger(__name__)


AlertSink = Callable[[list[ExternalAlert]], Awaitable[None]]
"""Where Alertmanager webhook alerts go (the daemon turns them into findings/triggers)."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_ACTOR = re.compile(r"^[\w.@:+-]{1,64}$")
AUTHENTICATED = "token"
"""The identity a valid bearer token proves (one shared token: whoever holds it)."""

MAX_BODY_BYTES = 1024**2
MAX_JSON_DEPTH = strictjson.DEFAULT_MAX_DEPTH
MAX_SILENCE_S = 30 * 86400.0
"""The longest silence the API sets: a longer one is a typo or an attack, not a plan."""
IDLE_TIMEOUT_S = 15.0
"""A connection idle this long (no request, or a request that never completes) is closed."""
# request line, one header field, header count: far above what the CLI, Alertmanager or
# curl send (the longest is a bearer token), far below what would hold memory per client
MAX_LINE_BYTES = 4096
MAX_HEADER_BYTES = 4096
MAX_HEADERS = 64
ACTOR_KEY: web.RequestKey[str] = web.RequestKey("actor", str)
AUDIT_KEY: web.RequestKey[dict[str, Any]] = web.RequestKey("audit", dict)


def build_app(
    *,
    conn: sqlite3.Connection,
    token: str | None,
    clock: Clock,
    playbooks: PlaybookService | None = None,
    on_alerts: AlertSink | None = None,
    status: Callable[[], dict[str, Any]] | None = None,
    ready: Callable[[], bool] | None = None,
    degraded: Callable[[], dict[str, Any]] | None = None,
) -> web.Application:
    """The aiohttp application; every dependency is an argument (None: that part is off).

    ``degraded`` names what sentinel cannot do right now (e.g. pages stuck for a notifier);
    anything it returns makes /readyz answer 503 with it.
    """
    api = _Api(conn, token, clock, playbooks, on_alerts, status, ready)
    api.degraded = degraded
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    r = app.router
    r.add_get("/healthz", api.healthz)
    r.add_get("/readyz", api.readyz)
    r.add_get("/v1/status", api.status)
    r.add_get("/v1/incidents", api.incidents)
    r.add_get("/v1/incidents/{id}", api.incident)
    r.add_get("/v1/runs", api.runs)
    r.add_get("/v1/playbooks", api.playbook_list)
    r.add_get("/v1/silences", api.silences)
    r.add_post("/v1/silences", api.acting("silence.add", api.silence_add))
    r.add_delete("/v1/silences/{id}", api.acting("silence.expire", api.silence_expire))
    r.add_post("/v1/playbooks/{name}/run", api.acting("playbook.run", api.playbook_run))
    r.add_post("/v1/breaker/reset", api.acting("breaker.reset", api.breaker_reset))
    r.add_get("/v1/runs/{id}", api.run_show)
    r.add_post("/v1/runs/{id}/cancel", api.acting("run.cancel", api.run_cancel))
    r.add_post("/v1/runs/{id}/approve", api.acting("run.approve", api.run_approve))
    r.add_post("/v1/runs/{id}/reject", api.acting("run.reject", api.run_reject))
    r.add_get("/v1/pauses", api.pauses)
    r.add_post("/v1/pauses", api.acting("pause.add", api.pause_add))
    r.add_delete("/v1/pauses/{id}", api.acting("pause.resume", api.pause_resume))
    r.add_post("/v1/alertmanager", api.acting("alertmanager.webhook", api.alertmanager))
    return app


async def start_api(
    app: web.Application, bind: str, port: int, *, idle_timeout_s: float = IDLE_TIMEOUT_S
) -> tuple[web.AppRunner, int]:
    """Serve ``app``; returns the runner (``await runner.cleanup()`` to stop) and the port.

    aiohttp has no cap on concurrent connections, so idle ones are closed after
    ``idle_timeout_s`` (it also bounds a client that never finishes its request).
    """
    runner = web.AppRunner(
        app,
        access_log=None,
        keepalive_timeout=idle_timeout_s,
        max_line_size=MAX_LINE_BYTES,
        max_field_size=MAX_HEADER_BYTES,
        max_headers=MAX_HEADERS,
    )
    await runner.setup()
    site = web.TCPSite(runner, bind, port)
    await site.start()
    server = site._server
    sockets = getattr(server, "sockets", None) or []
    return runner, (sockets[0].getsockname()[1] if sockets else port)


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A standard JSON answer: never ``NaN`` or ``Infinity``."""
    return web.json_response(body, status=status, headers=headers, dumps=strictjson.dumps)


def _error(status: int, message: str, **headers: str) -> web.Response:
    return _json({"error": message}, status=status, headers=headers or None)


def _bad_request(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(
        text=strictjson.dumps({"error": message}), content_type="application/json"
    )


async def _json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object (empty body: {}); HTTPBadRequest saying why otherwise.

    The body is at most MAX_BODY_BYTES (aiohttp answers 413 past it), nested at most
    MAX_JSON_DEPTH deep, with finite numbers only.
    """
    if not request.can_read_body:
        return {}
    try:
        body = strictjson.loads(await request.read(), max_depth=MAX_JSON_DEPTH)
    except strictjson.JsonRefused as exc:
        raise _bad_request(f"body is not acceptable JSON: {exc}") from None
    if not isinstance(body, dict):
        raise _bad_request("body must be a JSON object")
    return body


def _seconds(value: Any, field: str) -> float:
    """A finite number of seconds (a number or a numeric string); ValueError otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{field}: must be a number of seconds")
    try:
        seconds = float(value)
    except (ValueError, OverflowError):
        raise ValueError(f"{field}: must be a number of seconds") from None
    if not math.isfinite(seconds):
        raise ValueError(f"{field}: must be a finite number of seconds")
    return seconds


def _actor(claimed: str | None) -> str:
    """The audit actor: the authenticated identity, with the caller's claimed name if valid."""
    if claimed and _ACTOR.match(claimed):
        return f"{AUTHENTICATED}:{claimed}"
    return AUTHENTICATED


def _opt_str(value: Any, field: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"{field}: must be a string")
    return value


def _str_map(value: Any, field: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ValueError(f"{field}: must be an object of strings")
    return {k: str(v) for k, v in value.items()}


class _Api:
    def __init__(
        self,
        conn: sqlite3.Connection,
        token: str | None,
        clock: Clock,
        playbooks: PlaybookService | None,
        on_alerts: AlertSink | None,
        status: Callable[[], dict[str, Any]] | None,
        ready: Callable[[], bool] | None,
    ) -> None:
        self._conn = conn
        self._token = token or None
        self._clock = clock
        self._playbooks = playbooks
        self._on_alerts = on_alerts
        self._status = status
        self._ready = ready
        self.degraded: Callable[[], dict[str, Any]] | None = None
        self._incidents = IncidentStore(conn)
        self._silences = SilenceStore(conn)
        self._pauses = PauseStore(conn)

    # -- auth and audit -----------------------------------------------------------

    def _check(self, request: web.Request) -> tuple[int, str] | None:
        """None if authorised, else (status, why)."""
        if self._token is None:
            return 403, "no API token is configured: acting endpoints are disabled"
        header = request.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            return 401, "missing bearer token"
        if not hmac.compare_digest(given.strip().encode(), self._token.encode()):
            return 403, "wrong bearer token"
        return None

    def acting(self, action: str, handler: Handler) -> Handler:
        """Wrap an acting endpoint: authenticate, then audit the attempt and its outcome."""

        async def wrapped(request: web.Request) -> web.StreamResponse:
            actor = _actor(request.headers.get("X-Sentinel-Actor"))
            target = request.match_info.get("name") or request.match_info.get("id") or ""
            details = {"method": request.method, "path": request.path, "remote": request.remote}
            refused = self._check(request)
            if refused is not None:
                status, why = refused
                who = f"unauthenticated@{request.remote}"
                audit(
                    self._conn,
                    who,
                    action,
                    target,
                    f"refused {status}: {why}",
                    details,
                    at=self._clock.now(),
                )
                log.warning(
                    "api_refused", action=action, status=status, reason=why, remote=request.remote
                )
                extra = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
                return _error(status, why, **extra)
            request[ACTOR_KEY] = actor
            try:
                response = await handler(request)
            except web.HTTPException as exc:
                audit(
                    self._conn,
                    actor,
                    action,
                    target,
                    f"failed {exc.status}",
                    details,
                    at=self._clock.now(),
                )
                raise
            except Exception as exc:
                log.exception("api_handler_failed", action=action)
                audit(
                    self._conn,
                    actor,
                    action,
                    target,
                    f"error: {type(exc).__name__}",
                    details,
                    at=self._clock.now(),
                )
                return _error(500, f"{action} failed: {type(exc).__name__}")
            outcome = "ok" if response.status < 400 else f"failed {response.status}"
            audit(
                self._conn,
                actor,
                action,
                target,
                outcome,
                {**details, **request.get(AUDIT_KEY, {})},
                at=self._clock.now(),
            )
            return response

        return wrapped

    # -- read endpoints -----------------------------------------------------------

    async def healthz(self, request: web.Request) -> web.Response:
        return _json({"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        ok = self._ready() if self._ready is not None else True
        state = health_of(self._conn)
        problems = self.degraded() if self.degraded is not None else {}
        body: dict[str, Any] = {"ready": ok and state.writable and not problems}
        if not state.writable:  # incidents and pages may not be recorded: say so
            body["state"] = state.to_dict()
        body.update(problems)
        return _json(body, status=200 if body["ready"] else 503)

    async def status(self, request: web.Request) -> web.Response:
        body: dict[str, Any] = dict(self._status()) if self._status is not None else {}
        body["open_incidents"] = len(self._incidents.open())
        body["outbox"] = Outbox(self._conn, self._clock).counts()
        body["active_silences"] = len(
            [s for s in self._silences.list(self._clock.now()) if s.active(self._clock.now())]
        )
        return _json(body)

    async def incidents(self, request: web.Request) -> web.Response:
        try:
            limit = max(1, min(int(request.query.get("limit", "100")), 1000))
        except ValueError:
            return _error(400, "limit: must be an integer")
        only_open = request.query.get("open", "") in ("1", "true", "yes")
        items = self._incidents.list(limit, include_resolved=not only_open)
        return _json({"incidents": [i.to_dict() for i in items]})

    async def incident(self, request: web.Request) -> web.Response:
        inc = self._incidents.get(request.match_info["id"])
        if inc is None:
            return _error(404, "no such incident")
        return _json(inc.to_dict())

    async def runs(self, request: web.Request) -> web.Response:
        if self._playbooks is None:
            return _error(503, "the playbook engine is not running")
        try:
            limit = max(1, min(int(request.query.get("limit", "50")), 1000))
        except ValueError:
            return _error(400, "limit: must be an integer")
        return _json({"runs": self._playbooks.runs(limit)})

    async def playbook_list(self, request: web.Request) -> web.Response:
        if self._playbooks is None:
            return _error(503, "the playbook engine is not running")
        return _json({"playbooks": self._playbooks.list()})

    async def silences(self, request: web.Request) -> web.Response:
        now = self._clock.now()
        everything = request.query.get("all", "") in ("1", "true", "yes")
        items = self._silences.list(now, include_expired=everything)
        return _json({"silences": [s.to_dict(now) for s in items]})

    # -- acting endpoints ---------------------------------------------------------

    async def silence_add(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        now = self._clock.now()
        try:
            matchers = body.get("matchers")
            if not isinstance(matchers, list) or not all(isinstance(m, str) for m in matchers):
                raise SilenceError("matchers: must be a list of strings like 'model=resnet'")
            starts = _seconds(body.get("starts_at", now), "starts_at")
            if "ends_at" in body:
                ends = _seconds(body["ends_at"], "ends_at")
            elif "duration_s" in body:
                ends = starts + _seconds(body["duration_s"], "duration_s")
            else:
                raise SilenceError("ends_at or duration_s is required")
            if ends - max(starts, now) > MAX_SILENCE_S or starts - now > MAX_SILENCE_S:
                days = MAX_SILENCE_S / 86400
                raise SilenceError(f"a silence may start and last at most {days:g} days ahead")
            # created_by is a claim like X-Sentinel-Actor: recorded next to the identity
            claimed = body.get("created_by")
            author = _actor(claimed) if isinstance(claimed, str) else request[ACTOR_KEY]
            s = self._silences.add(
                matchers, starts, ends, author, str(body.get("comment", "")), now
            )
        except (SilenceError, TypeError, ValueError) as exc:
            return _error(400, str(exc))
        request[AUDIT_KEY] = {"silence": s.to_dict()}
        return _json(s.to_dict(now), status=201)

    async def silence_expire(self, request: web.Request) -> web.Response:
        now = self._clock.now()
        try:
            s = self._silences.expire(request.match_info["id"], now)
        except KeyError:
            return _error(404, "no such active silence")
        return _json(s.to_dict(now))

    async def playbook_run(self, request: web.Request) -> web.Response:
        if self._playbooks is None:
            return _error(503, "the playbook engine is not running")
        body = await _json_body(request)
        name = request.match_info["name"]
        try:
            target = _str_map(body.get("target"), "target")
            params = _str_map(body.get("params"), "params")
            dry_run = body.get("dry_run", False)
            if not isinstance(dry_run, bool):
                raise ValueError("dry_run: must be true or false")
            result = await self._playbooks.run(name, target, params, dry_run, request[ACTOR_KEY])
        except KeyError:
            return _error(404, f"no playbook named {name!r}")
        except ValueError as exc:
            return _error(400, str(exc))
        request[AUDIT_KEY] = {
            "dry_run": dry_run,
            "target": target,
            "params": params,
            "run_id": result.get("run_id") or result.get("id"),
        }
        return _json(result)

    async def breaker_reset(self, request: web.Request) -> web.Response:
        if self._playbooks is None:
            return _error(503, "the playbook engine is not running")
        self._playbooks.reset_breaker(request[ACTOR_KEY])
        return _json({"breaker": "reset"})

    # -- operator control: runs, pauses -----------------------------------------

    async def run_show(self, request: web.Request) -> web.Response:
        if self._playbooks is None:
            return _error(503, "the playbook engine is not running")
        run = self._playbooks.run_record(request.match_info["id"])
        if run is None:
            return _error(404, "no such run")
        return _json(run)

    async def run_cancel(self, request: web.Request) -> web.Response:
        if self._playbooks is None:
            return _error(503, "the playbook engine is not running")
        run_id = request.match_info["id"]
        if not self._playbooks.cancel(run_id, request[ACTOR_KEY]):
            known = self._playbooks.run_record(run_id)
            why = "no such run" if known is None else f"run is not under way ({known['status']})"
            return _error(404 if known is None else 409, why)
        # the rollback runs in the daemon now; GET /v1/runs/{id} shows how it went
        return _json({"run_id": run_id, "cancel": "requested"}, status=202)

    async def run_approve(self, request: web.Request) -> web.Response:
        return self._decide(request, approve=True)

    async def run_reject(self, request: web.Request) -> web.Response:
        return self._decide(request, approve=False)

    def _decide(self, request: web.Request, approve: bool) -> web.Response:
        if self._playbooks is None:
            return _error(503, "the playbook engine is not running")
        run_id = request.match_info["id"]
        if not self._playbooks.decide(run_id, approve, request[ACTOR_KEY]):
            known = self._playbooks.run_record(run_id)
            why = (
                "no such run"
                if known is None
                else f"run is not awaiting approval ({known['status']})"
            )
            return _error(404 if known is None else 409, why)
        decision = "approved" if approve else "rejected"
        return _json({"run_id": run_id, "decision": decision})

    async def pauses(self, request: web.Request) -> web.Response:
        now = self._clock.now()
        everything = request.query.get("all", "") in ("1", "true", "yes")
        items = self._pauses.list(now, include_ended=everything)
        return _json({"pauses": [p.to_dict(now) for p in items]})

    async def pause_add(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        now = self._clock.now()
        try:
            duration = pause_duration(body.get("duration_s"), body.get("for"))
            pause = self._pauses.add(
                model=_opt_str(body.get("model"), "model"),
                playbook=_opt_str(body.get("playbook"), "playbook"),
                duration_s=duration,
                reason=str(body.get("reason") or ""),
                created_by=request[ACTOR_KEY],
                now=now,
            )
        except (PauseError, TypeError, ValueError) as exc:
            return _error(400, str(exc))
        request[AUDIT_KEY] = {"pause": pause.to_dict(now)}
        return _json(pause.to_dict(now), status=201)

    async def pause_resume(self, request: web.Request) -> web.Response:
        now = self._clock.now()
        try:
            pause = self._pauses.resume(request.match_info["id"], request[ACTOR_KEY], now)
        except KeyError:
            return _error(404, "no such active pause")
        return _json(pause.to_dict(now))

    async def alertmanager(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        try:
            alerts = parse_webhook(body)
        except WebhookError as exc:
            return _error(400, f"not an Alertmanager webhook: {exc}")
        if self._on_alerts is not None:
            await self._on_alerts(alerts)
        request[AUDIT_KEY] = {
            "alerts": len(alerts),
            "receiver": alerts[0].receiver if alerts else "",
        }
        return _json({"accepted": len(alerts)})

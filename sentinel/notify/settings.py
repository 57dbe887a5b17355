"""The `notifiers:` config section. Owned by the notify stage."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field, SecretStr, field_validator, model_validator

from sentinel.base.duration import Duration
from sentinel.base.settings import RelPath, Section, read_secret
from sentinel.vocabulary.findings import Severity


class SlackSettings(Section):
    """Slack: one thread per incident through the Web API; a webhook as reduced fallback."""

    enabled: bool = False
    token: SecretStr | None = None
    """Bot token (xoxb-...); set via SENTINEL_NOTIFIERS__SLACK__TOKEN."""
    token_file: RelPath | None = None
    """File holding the bot token (wins over ``token``)."""
    channel: str = ""
    """Channel ID (not name) the incident threads go to."""
    base_url: str = "https://slack.com/api/"
    """Web API base URL (tests point it at a loopback server)."""
    webhook_url: SecretStr | None = None
    """Incoming-webhook URL, used when no token is set: no threads, no updates."""
    webhook_url_file: RelPath | None = None
    timeout_s: Duration = Field(10.0, gt=0)
    """Per-request timeout."""

    @model_validator(mode="after")
    def _reachable(self) -> SlackSettings:
        has_token = self.token is not None or self.token_file is not None
        has_hook = self.webhook_url is not None or self.webhook_url_file is not None
        if self.enabled and not (has_token or has_hook):
            raise ValueError("slack is enabled but has neither a token nor a webhook_url")
        if self.enabled and has_token and not self.channel:
            raise ValueError("slack with a bot token needs a channel (its ID, e.g. C0123456)")
        return self

    def bot_token(self) -> str | None:
        return read_secret(self.token, self.token_file)

    def webhook(self) -> str | None:
        return read_secret(self.webhook_url, self.webhook_url_file)


class PagerDutySettings(Section):
    """PagerDuty Events API v2 (trigger/ack/resolve keyed by the incident's dedup key)."""

    enabled: bool = False
    routing_key: SecretStr | None = None
    """Integration (routing) key; set via SENTINEL_NOTIFIERS__PAGERDUTY__ROUTING_KEY."""
    routing_key_file: RelPath | None = None
    base_url: str | None = None
    """Events API base URL, https only; default https://events.pagerduty.com."""
    ca_file: RelPath | None = None
    """Extra CA bundle to trust (e.g. a test's self-signed certificate)."""
    acknowledge_on_mitigating: bool = True
    """Acknowledge the page when automation takes the incident."""
    change_events: bool = True
    """Send a change event for every action taken (not for dry runs or plans)."""
    source: str | None = None
    """payload.source; default: the pod name."""
    timeout_s: Duration = Field(10.0, gt=0)

    @field_validator("base_url")
    @classmethod
    def _https(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith("https://"):
            raise ValueError("the PagerDuty Events API is https:// only (the key travels in it)")
        return v

    @model_validator(mode="after")
    def _keyed(self) -> PagerDutySettings:
        if self.enabled and self.routing_key is None and self.routing_key_file is None:
            raise ValueError("pagerduty is enabled but has no routing_key (or routing_key_file)")
        return self

    def key(self) -> str | None:
        return read_secret(self.routing_key, self.routing_key_file)


class AlertmanagerSettings(Section):
    """Push incidents to Alertmanager's v2 API (fleet grouping, silences, inhibition)."""

    enabled: bool = False
    url: str = "http://localhost:9093"
    """Alertmanager base URL (``/api/v2/alerts`` is appended)."""
    resend_interval_s: Duration = Field(60.0, gt=0)
    """Firing alerts are re-sent this often (Alertmanager expires silent ones)."""
    generator_url: str = ""
    """Link back to sentinel (e.g. its status page); default: the incident's API URL."""
    labels: dict[str, str] = Field(default_factory=dict)
    """Extra labels on every alert (cluster, namespace ...)."""
    timeout_s: Duration = Field(5.0, gt=0)


class ConsoleSettings(Section):
    """Readable lines on stdout."""

    enabled: bool = True


class PolicySettings(Section):
    """Who gets what: Slack hears everything; PagerDuty only when a human is needed."""

    page_severity: Severity = Severity.CRITICAL
    """Incidents at or above this severity page on their own."""
    page_on_request: bool = True
    """Page on a PageRequest (automation cannot act, failed, or a guard blocked it)."""
    slack_when_muted: bool = True
    """Silenced/inhibited incidents still go to Slack (marked muted); pages never do."""


class OutboxSettings(Section):
    """Delivery retries of the durable outbox."""

    backoff_initial_s: Duration = Field(1.0, gt=0)
    """First retry delay after a 5xx or connection error; doubles each attempt."""
    backoff_max_s: Duration = Field(300.0, gt=0)
    """Cap of the retry delay."""
    retry_after_max_s: Duration = Field(900.0, gt=0)
    """Cap on a server's Retry-After."""
    give_up_after_s: Duration = Field(86400.0, gt=0)
    """A notification still undelivered this long after it was queued is dropped (logged)."""
    poll_s: Duration = Field(5.0, gt=0)
    """Idle check interval of the dispatcher (new notices wake it at once)."""
    keep_sent_s: Duration = Field(7 * 86400.0, gt=0)
    """Delivered rows are pruned after this long."""
    reconcile_after_s: Duration = Field(10.0, ge=0)
    """A send that got no answer is looked up no sooner than this (the far side may still
    be writing it), before any resend."""
    stuck_after_s: Duration = Field(600.0, gt=0)
    """A notifier whose oldest undelivered row waited this long is stuck (``Dispatcher.stuck``)."""


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


Globs = Annotated[list[str], BeforeValidator(_as_list)]
"""One shell pattern or a list of them (``thermal-*``)."""


class RouteMatch(Section):
    """What a notice must be to take a route: every field given must match (any of its
    values, as shell patterns); a field left out matches anything."""

    playbook: Globs = Field(default_factory=list)
    """The playbook that sent it (a run's updates and pages, a playbook's notify steps)."""
    step: Globs = Field(default_factory=list)
    """The step that sent it (a notify step, or the step a guard refused)."""
    severity: Annotated[list[Severity], BeforeValidator(_as_list)] = Field(default_factory=list)
    """The incident's severity (info, warning, critical)."""
    cause: Globs = Field(default_factory=list)
    """A cause of the incident: the executor's refused causes (hardware_thermal,
    hardware_power, xid_hardware, gpu_lost, foreign_memory) and the detector's
    attribution (other_process, server)."""
    kind: Globs = Field(default_factory=list)
    """The incident's kind (thermal_throttle, gpu_oom, ...)."""


class RouteSettings(Section):
    """Where the notices a route matches go instead of the default channel and key."""

    name: str = ""
    """Names the route in logs and in queued pages (default ``route-N``, N from 1)."""
    match: RouteMatch = RouteMatch()
    slack_channel: str | None = None
    """Slack channel ID for the matched notices (an incident's thread stays where it
    started; a matched update is also posted here)."""
    pagerduty_routing_key: SecretStr | None = None
    """PagerDuty integration key for the matched pages and change events."""
    pagerduty_routing_key_file: RelPath | None = None
    """File holding that key (wins over ``pagerduty_routing_key``)."""

    @model_validator(mode="after")
    def _goes_somewhere(self) -> RouteSettings:
        has_key = (
            self.pagerduty_routing_key is not None or self.pagerduty_routing_key_file is not None
        )
        if not self.slack_channel and not has_key:
            raise ValueError("a route needs a slack_channel or a pagerduty_routing_key(_file)")
        return self

    def pagerduty_key(self) -> str | None:
        return read_secret(self.pagerduty_routing_key, self.pagerduty_routing_key_file)


class NotifySettings(Section):
    """Which notifiers are on and how to reach them; secrets via env or *_file."""

    slack: SlackSettings = SlackSettings()
    pagerduty: PagerDutySettings = PagerDutySettings()
    alertmanager: AlertmanagerSettings = AlertmanagerSettings()
    console: ConsoleSettings = ConsoleSettings()
    policy: PolicySettings = PolicySettings()
    outbox: OutboxSettings = OutboxSettings()
    routes: list[RouteSettings] = Field(default_factory=list)
    """Routes by playbook, step, severity, cause or kind, tried in order: for each
    notifier the first matching route that names a target for it (``slack_channel`` for
    Slack, a routing key for PagerDuty) wins; none: ``slack.channel`` and
    ``pagerduty.routing_key``. An incident's page is acknowledged and resolved through
    the key that triggered it."""

    @field_validator("routes")
    @classmethod
    def _named(cls, routes: list[RouteSettings]) -> list[RouteSettings]:
        named = [
            r if r.name else r.model_copy(update={"name": f"route-{i}"})
            for i, r in enumerate(routes, 1)
        ]
        names = [r.name for r in named]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"route names must be unique: {', '.join(twice)}")
        return named

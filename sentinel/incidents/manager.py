"""The incident lifecycle: findings in, incident changes out.

firing -> mitigating -> resolved, with hysteresis (a Cleared resolves only
after ``resolve_hold_s`` without a new finding), reopening within
``refire_window_s``, re-trigger when severity rises, re-notify reminders,
grouping, inhibition and silences. Synchronous and clock-driven: the daemon
calls :meth:`IncidentManager.ingest` for each judgement and
:meth:`IncidentManager.tick` every few seconds, then hands the changes to
the runbook engine and the teller.

Dedup key: ``{pod}/{model}:{version}/{kind}[/{gpu_uuid}]`` (``-`` when there is
no model, ``*`` when no version). The batch size is *not* in the key: a spike
at bs1 and bs8 is one problem of the model; it is kept in the evidence as
``batch_size``.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import uuid

from sentinel.base.audit import audit
from sentinel.base.clock import Clock
from sentinel.incidents.settings import IncidentSettings
from sentinel.incidents.silences import SilenceStore
from sentinel.incidents.store import IncidentStore
from sentinel.vocabulary.findings import Cleared, Finding, Judgement, Subject
from sentinel.vocabulary.incidents import Incident, IncidentStatus
from sentinel.vocabulary.notices import IncidentChanged

SERVER_DOWN_KINDS = frozenset({"server_unhealthy", "server_down", "server_not_ready"})
"""Causes that explain every canary symptom on the pod."""
CANARY_KINDS = frozenset(
    {
        "latency_spike",
        "backlog",
        "error_burst",
        "accuracy_drift",
        "model_not_ready",
        "canary_timeout",
        "canary_failed",
    }
)
"""Symptoms seen through canaries, muted while the server is down."""
THERMAL_KINDS = frozenset({"thermal_throttle", "power_brake"})
LATENCY_KINDS = frozenset({"latency_spike", "backlog", "traffic_latency_spike", "queue_buildup"})
"""Symptoms muted while their GPU is throttled (slowness is expected then)."""
TRAFFIC_KINDS = frozenset(
    {"traffic_latency_spike", "queue_buildup", "error_rate_rise", "throughput_collapse"}
)
"""Symptoms seen in users' traffic, muted while the server is down (it explains them)."""
SUPERSEDED_BY = {"queue_buildup": "backlog", "error_rate_rise": "error_burst"}
"""A relative traffic finding muted while the absolute one of the same model is open:
one problem, told once (the absolute one says more)."""

SENTINEL_ACTOR = "sentinel"


def dedup_key(pod: str, kind: str, subject: Subject) -> str:
    """``{pod}/{model}:{version}/{kind}[/{gpu_uuid}]``; batch size deliberately left out."""
    model = f"{subject.model}:{subject.version or '*'}" if subject.model else "-"
    key = f"{pod}/{model}/{kind}"
    return f"{key}/{subject.gpu_uuid}" if subject.gpu_uuid else key


class IncidentManager:
    """Turns judgements into durable incidents and reports what changed."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        settings: IncidentSettings,
        pod: str,
        clock: Clock,
        silences: SilenceStore | None = None,
    ) -> None:
        self.store = IncidentStore(conn)
        self.silences = silences or SilenceStore(conn)
        self._conn = conn
        self._s = settings
        self._pod = pod
        self._clock = clock

    # -- inputs ---------------------------------------------------------------

    def recover(self, now: float | None = None) -> list[Incident]:
        """After a restart: open incidents must be re-confirmed within restart_grace_s.

        Fresh detectors fire again for conditions still present; whatever they
        don't confirm in time is resolved by :meth:`tick`, so a problem that
        ended while sentinel was down still gets resolved (and PagerDuty told).
        """
        now = self._clock.now() if now is None else now
        out = self.store.open()
        for inc in out:
            inc.confirm_by = now + self._s.restart_grace_s
            self.store.save(inc)
        return out

    def ingest(self, judgement: Judgement) -> list[IncidentChanged]:
        if isinstance(judgement, Finding):
            return self._finding(judgement)
        return self._cleared(judgement)

    def mark_mitigating(
        self, incident_id: str, playbook: str = "", run_id: str = ""
    ) -> list[IncidentChanged]:
        """The playbook engine took the incident (PagerDuty ack, Slack root updated)."""
        inc = self.store.get(incident_id)
        if inc is None or inc.status is not IncidentStatus.FIRING:
            return []
        now = self._clock.now()
        inc.status = IncidentStatus.MITIGATING
        inc.updated_at = now
        inc.evidence = {**inc.evidence, "playbook": playbook, "run_id": run_id}
        return [self._emit(inc, "mitigating", now)]

    def mark_firing(self, incident_id: str) -> None:
        """Mitigation gave up: back to firing (the engine sends its own PageRequest)."""
        inc = self.store.get(incident_id)
        if inc is None or inc.status is not IncidentStatus.MITIGATING:
            return
        inc.status = IncidentStatus.FIRING
        inc.updated_at = self._clock.now()
        self.store.save(inc)

    def tick(self, now: float | None = None) -> list[IncidentChanged]:
        """Resolve after hysteresis/grace, re-evaluate mutes, send reminders."""
        now = self._clock.now() if now is None else now
        changes: list[IncidentChanged] = []
        for inc in self.store.open():
            hold_done = (
                inc.clear_pending_at is not None
                and now >= inc.clear_pending_at + self._s.resolve_hold_s
            )
            unconfirmed = inc.confirm_by is not None and now >= inc.confirm_by
            if hold_done or unconfirmed:
                why = "cleared" if hold_done else "not re-confirmed after restart"
                changes.append(self._resolve(inc, now, why))
        for inc in self.store.open():
            was_muted = inc.muted
            mutes = (inc.silenced_by, inc.inhibited_by)
            self._apply_mutes(inc, now)
            due = (
                self._s.renotify_interval_s > 0
                and inc.notified_at is not None
                and now - inc.notified_at >= self._s.renotify_interval_s
            )
            if not inc.muted and (was_muted or due):
                inc.updated_at = now
                changes.append(self._emit(inc, "renotify", now))
            elif mutes != (inc.silenced_by, inc.inhibited_by):  # no write a tick otherwise
                self.store.save(inc)
        return changes

    # -- lifecycle ------------------------------------------------------------

    def _finding(self, f: Finding) -> list[IncidentChanged]:
        subject = dataclasses.replace(f.subject, batch_size=None)
        key = dedup_key(self._pod, f.kind, subject)
        evidence = dict(f.evidence)
        if f.subject.batch_size is not None:
            evidence["batch_size"] = f.subject.batch_size
        now = f.detected_at
        inc = self.store.latest(key)
        if inc is not None and inc.open:
            inc.last_seen_at, inc.clear_pending_at, inc.confirm_by = now, None, None
            inc.findings += 1
            inc.evidence, inc.summary, inc.updated_at = evidence, f.summary, now
            if f.severity.rank > inc.severity.rank:
                inc.severity = f.severity
                self._apply_mutes(inc, now)
                return [self._emit(inc, "escalated", now)]
            self.store.save(inc)
            return []
        if (
            inc is not None
            and inc.resolved_at is not None
            and now - inc.resolved_at <= self._s.refire_window_s
        ):
            inc.status, inc.resolved_at, inc.reopened = (
                IncidentStatus.FIRING,
                None,
                inc.reopened + 1,
            )
            inc.severity, inc.summary, inc.evidence = f.severity, f.summary, evidence
            inc.last_seen_at, inc.clear_pending_at, inc.updated_at = now, None, now
            inc.findings += 1
            change = "reopened"
        else:
            inc = Incident(
                id=uuid.uuid4().hex[:16],
                key=key,
                kind=f.kind,
                severity=f.severity,
                subject=subject,
                status=IncidentStatus.FIRING,
                summary=f.summary,
                started_at=f.started_at,
                detected_at=f.detected_at,
                updated_at=now,
                evidence=evidence,
                pod=self._pod,
                detector=f.detector,
                last_seen_at=now,
            )
            change = "opened"
        inc.group = self._group_of(inc)
        self._apply_mutes(inc, now)
        return [self._emit(inc, change, now)]

    def _cleared(self, c: Cleared) -> list[IncidentChanged]:
        subject = dataclasses.replace(c.subject, batch_size=None)
        inc = self.store.latest(dedup_key(self._pod, c.kind, subject))
        if inc is None or not inc.open:
            return []
        inc.evidence = {**inc.evidence, "cleared": c.evidence}
        if self._s.resolve_hold_s == 0:
            return [self._resolve(inc, c.cleared_at, "cleared")]
        inc.clear_pending_at = c.cleared_at
        inc.updated_at = c.cleared_at
        self.store.save(inc)
        return []

    def _resolve(self, inc: Incident, now: float, why: str) -> IncidentChanged:
        inc.status, inc.resolved_at, inc.updated_at = IncidentStatus.RESOLVED, now, now
        inc.clear_pending_at = inc.confirm_by = None
        inc.evidence = {**inc.evidence, "resolution": why}
        return self._emit(inc, "resolved", now)

    def _emit(self, inc: Incident, change: str, now: float) -> IncidentChanged:
        """Persist, audit (always, muted or not) and describe the change."""
        if not inc.muted:
            inc.notified_at = now
        self.store.save(inc)
        outcome = "recorded"
        if inc.silenced_by:
            outcome = f"silenced by {inc.silenced_by}"
        elif inc.inhibited_by:
            outcome = f"inhibited by {inc.inhibited_by}"
        audit(
            self._conn,
            SENTINEL_ACTOR,
            f"incident.{change}",
            inc.key,
            outcome,
            {"id": inc.id, "severity": inc.severity.value, "summary": inc.summary},
            at=now,
        )
        return IncidentChanged(incident=dataclasses.replace(inc), change=change)

    # -- relations ------------------------------------------------------------

    def _apply_mutes(self, inc: Incident, now: float) -> None:
        silence = self.silences.matching(inc.labels(), now)
        inc.silenced_by = silence.id if silence else None
        cause = self._inhibitor(inc) if self._s.inhibit else None
        inc.inhibited_by = cause.id if cause else None

    def _inhibitor(self, inc: Incident) -> Incident | None:
        for other in self.store.open():
            if other.id == inc.id:
                continue
            if other.kind in SERVER_DOWN_KINDS and inc.kind in CANARY_KINDS | TRAFFIC_KINDS:
                return other
            same_model = inc.subject.model is not None and other.subject.model == inc.subject.model
            if SUPERSEDED_BY.get(inc.kind) == other.kind and same_model:
                return other
            same_gpu = inc.subject.gpu_uuid in (None, other.subject.gpu_uuid)
            if other.kind in THERMAL_KINDS and inc.kind in LATENCY_KINDS and same_gpu:
                return other
        return None

    def _group_of(self, inc: Incident) -> str:
        """Related open incidents (same model, or same GPU) share the first one's id."""
        for other in self.store.open():
            if other.id == inc.id:
                continue
            same_model = inc.subject.model is not None and other.subject.model == inc.subject.model
            same_gpu = inc.subject.gpu_uuid is not None and (
                other.subject.gpu_uuid == inc.subject.gpu_uuid
            )
            if same_model or same_gpu:
                return other.group or other.id
        return inc.id

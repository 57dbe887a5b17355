"""The incident state machine: dedup, hysteresis, reopen, escalation, reminders, restarts."""

from __future__ import annotations

import sqlite3

from sentinel.base.clock import FakeClock
from sentinel.incidents.manager import IncidentManager, dedup_key
from sentinel.incidents.settings import IncidentSettings
from sentinel.vocabulary.findings import Cleared, Finding, Severity, Subject
from sentinel.vocabulary.incidents import IncidentStatus

POD = "pod-a"


def spike(
    at: float,
    model: str = "resnet",
    severity: Severity = Severity.WARNING,
    kind: str = "latency_spike",
    batch: int | None = None,
    gpu: str | None = None,
) -> Finding:
    return Finding(
        kind=kind,
        severity=severity,
        subject=Subject(model=model, version="1", batch_size=batch, gpu_uuid=gpu),
        started_at=at - 5,
        detected_at=at,
        summary=f"{kind} on {model}",
        evidence={"p99_ms": 400.0},
        detector="latency",
    )


def clear(at: float, model: str = "resnet", kind: str = "latency_spike") -> Cleared:
    return Cleared(kind=kind, subject=Subject(model=model, version="1"), cleared_at=at)


def manager(conn: sqlite3.Connection, clock: FakeClock, **kw: float) -> IncidentManager:
    return IncidentManager(conn, IncidentSettings(**kw), POD, clock)


def test_dedup_key_format() -> None:
    """Keys follow {pod}/{model}:{version}/{kind}[/{gpu_uuid}]; batch size is left out."""
    assert (
        dedup_key(POD, "latency_spike", Subject("resnet", "1", batch_size=8))
        == "pod-a/resnet:1/latency_spike"
    )
    assert (
        dedup_key(POD, "thermal_throttle", Subject(gpu_uuid="GPU-1"))
        == "pod-a/-/thermal_throttle/GPU-1"
    )
    assert "pod-a/bert:*/error_burst" == dedup_key(POD, "error_burst", Subject("bert"))


def test_repeated_findings_fold_into_one_incident_and_escalate(
    conn: sqlite3.Connection, clock: FakeClock
) -> None:
    """Same key: one incident; batch sizes fold into evidence; a severity rise re-triggers."""
    m = manager(conn, clock)
    t = clock.now()
    [opened] = m.ingest(spike(t, batch=1))
    assert [] == m.ingest(spike(t + 1, batch=8))
    [escalated] = m.ingest(spike(t + 2, severity=Severity.CRITICAL))
    assert (opened.change, escalated.change) == ("opened", "escalated")
    assert opened.incident.id == escalated.incident.id
    stored = m.store.get(opened.incident.id)
    assert stored is not None
    assert (stored.findings, stored.severity) == (3, Severity.CRITICAL)
    assert 1 == opened.incident.evidence["batch_size"]


def test_cleared_resolves_only_after_the_hold(conn: sqlite3.Connection, clock: FakeClock) -> None:
    """A Cleared starts the hold; a finding within it cancels; tick resolves after it."""
    m = manager(conn, clock, resolve_hold_s=60)
    t = clock.now()
    [opened] = m.ingest(spike(t))
    assert [] == m.ingest(clear(t + 10))
    assert [] == m.tick(t + 40)
    assert [] == m.ingest(spike(t + 45))  # flapped back: the hold is cancelled
    assert [] == m.tick(t + 80)
    m.ingest(clear(t + 90))
    assert [] == m.tick(t + 149)
    [resolved] = m.tick(t + 150)
    assert ("resolved", opened.incident.id, t + 150) == (
        resolved.change,
        resolved.incident.id,
        resolved.incident.resolved_at,
    )


def test_refire_within_window_reopens_same_incident(
    conn: sqlite3.Connection, clock: FakeClock
) -> None:
    """Within refire_window_s the same incident reopens; after it, a new one opens."""
    m = manager(conn, clock, resolve_hold_s=0, refire_window_s=300)
    t = clock.now()
    [opened] = m.ingest(spike(t))
    m.ingest(clear(t + 10))
    [reopened] = m.ingest(spike(t + 100))
    assert ("reopened", opened.incident.id, 1) == (
        reopened.change,
        reopened.incident.id,
        reopened.incident.reopened,
    )
    m.ingest(clear(t + 110))
    [fresh] = m.ingest(spike(t + 1000))
    assert "opened" == fresh.change
    assert opened.incident.id != fresh.incident.id


def test_mitigating_then_resolved(conn: sqlite3.Connection, clock: FakeClock) -> None:
    """mark_mitigating moves firing -> mitigating once; resolution follows from there."""
    m = manager(conn, clock, resolve_hold_s=0)
    [opened] = m.ingest(spike(clock.now()))
    [mit] = m.mark_mitigating(opened.incident.id, "int8-to-fp16", "run-7")
    assert [] == m.mark_mitigating(opened.incident.id, "int8-to-fp16", "run-7")
    assert (mit.incident.status, mit.incident.evidence["run_id"]) == (
        IncidentStatus.MITIGATING,
        "run-7",
    )
    [res] = m.ingest(clear(clock.now() + 5))
    assert IncidentStatus.RESOLVED == res.incident.status


def test_renotify_interval(conn: sqlite3.Connection, clock: FakeClock) -> None:
    """An open incident is re-announced every renotify_interval_s, not more often."""
    m = manager(conn, clock, renotify_interval_s=600)
    t = clock.now()
    [opened] = m.ingest(spike(t))
    assert [] == m.tick(t + 599)
    [again] = m.tick(t + 600)
    assert ("renotify", opened.incident.id) == (again.change, again.incident.id)
    assert [] == m.tick(t + 1100)
    assert [c.change for c in m.tick(t + 1200)] == ["renotify"]


def test_restart_resolves_unconfirmed_and_keeps_confirmed(
    conn: sqlite3.Connection, clock: FakeClock
) -> None:
    """After recover(), incidents re-confirmed by a finding survive; the rest resolve."""
    m = manager(conn, clock, restart_grace_s=120)
    t = clock.now()
    [gone] = m.ingest(spike(t, model="resnet"))
    [stays] = m.ingest(spike(t, model="bert"))
    m2 = manager(conn, clock, restart_grace_s=120)
    m2.recover(t + 500)
    assert [] == m2.ingest(spike(t + 510, model="bert"))
    changes = m2.tick(t + 621)
    assert [("resolved", gone.incident.id)] == [(c.change, c.incident.id) for c in changes]
    assert [stays.incident.id] == [i.id for i in m2.store.open()]


def test_server_down_inhibits_canary_findings(conn: sqlite3.Connection, clock: FakeClock) -> None:
    """Latency/canary incidents on a pod whose server is down are muted, and unmute after."""
    m = manager(conn, clock, resolve_hold_s=0, renotify_interval_s=0)
    t = clock.now()
    [down] = m.ingest(
        Finding("server_unhealthy", Severity.CRITICAL, Subject(), t, t, "server not live")
    )
    [lat] = m.ingest(spike(t + 1, severity=Severity.CRITICAL))
    assert down.incident.id == lat.incident.inhibited_by
    m.ingest(Cleared("server_unhealthy", Subject(), t + 20))
    [unmuted] = m.tick(t + 21)
    assert ("renotify", lat.incident.id, None) == (
        unmuted.change,
        unmuted.incident.id,
        unmuted.incident.inhibited_by,
    )


def test_thermal_inhibits_latency_on_that_gpu_only(
    conn: sqlite3.Connection, clock: FakeClock
) -> None:
    """A thermal incident on GPU-1 mutes latency on GPU-1, not on GPU-2."""
    m = manager(conn, clock)
    t = clock.now()
    [hot] = m.ingest(
        Finding("thermal_throttle", Severity.WARNING, Subject(gpu_uuid="GPU-1"), t, t, "hot")
    )
    [same] = m.ingest(spike(t, model="resnet", gpu="GPU-1"))
    [other] = m.ingest(spike(t, model="bert", gpu="GPU-2"))
    assert (hot.incident.id, None) == (same.incident.inhibited_by, other.incident.inhibited_by)
    assert hot.incident.id == same.incident.group  # related: same GPU


def test_related_findings_share_a_group(conn: sqlite3.Connection, clock: FakeClock) -> None:
    """Incidents on the same model group under the first one; others stand alone."""
    m = manager(conn, clock)
    t = clock.now()
    [a] = m.ingest(spike(t, model="resnet"))
    [b] = m.ingest(spike(t, model="resnet", kind="error_burst"))
    [c] = m.ingest(spike(t, model="bert"))
    assert (a.incident.id, a.incident.id, c.incident.id) == (
        a.incident.group,
        b.incident.group,
        c.incident.group,
    )


def test_every_change_is_audited(conn: sqlite3.Connection, clock: FakeClock) -> None:
    """Each emitted change leaves an audit row naming the incident key."""
    from sentinel.base.audit import entries

    m = manager(conn, clock, resolve_hold_s=0)
    [opened] = m.ingest(spike(clock.now()))
    m.ingest(clear(clock.now() + 1))
    actions = [(e["action"], e["target"]) for e in entries(conn)]
    key = opened.incident.key
    assert [("incident.resolved", key), ("incident.opened", key)] == actions


def test_ticks_that_change_nothing_write_nothing(
    conn: sqlite3.Connection, clock: FakeClock
) -> None:
    """An open incident that nothing happens to is not rewritten every tick (the daemon
    ticks each second)."""
    m = manager(conn, clock)
    t = clock.now()
    m.ingest(spike(t))
    before = conn.total_changes
    changes = [m.tick(t + s) for s in range(1, 11)]
    assert ([[]] * 10, before) == (changes, conn.total_changes)

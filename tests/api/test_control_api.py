"""The control API over real HTTP: auth, audit, silences, playbook runs, webhooks."""

from __future__ import annotations

from typing import Any

import pytest
from api_bed import TOKEN, Api

from sentinel.base.audit import entries

ACTING = [
    ("POST", "/v1/silences", {"matchers": ["model=a"], "duration_s": 60, "comment": "x"}),
    ("DELETE", "/v1/silences/abc", None),
    ("POST", "/v1/playbooks/restart-server/run", {"dry_run": True}),
    ("POST", "/v1/breaker/reset", None),
    ("POST", "/v1/alertmanager", {"alerts": []}),
]


async def _call(
    api: Api, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    async with api.session.request(method, api.url + path, json=body, headers=headers) as r:
        return r.status, await r.json()


@pytest.mark.parametrize(("method", "path", "body"), ACTING)
async def test_acting_endpoints_refuse_missing_and_wrong_tokens_and_audit(
    api: Api, method: str, path: str, body: Any
) -> None:
    """No token -> 401, wrong token -> 403; both refused attempts land in the audit trail."""
    missing, _ = await _call(api, method, path, body)
    wrong, _ = await _call(api, method, path, body, {"Authorization": "Bearer nope"})
    assert (missing, wrong) == (401, 403)
    assert (api.playbooks.calls, api.playbooks.resets) == ([], [])
    outcomes = sorted(e["outcome"] for e in entries(api.conn))
    assert ["refused 401: missing bearer token", "refused 403: wrong bearer token"] == outcomes
    assert all(e["actor"].startswith("unauthenticated@") for e in entries(api.conn))
    assert TOKEN not in str(entries(api.conn))


async def test_acting_endpoints_disabled_without_configured_token(api_without_token: Api) -> None:
    """With no token configured, acting endpoints answer 403 and say why."""
    api = api_without_token
    status, body = await _call(api, "POST", "/v1/breaker/reset", None, api.auth())
    assert 403 == status
    assert "no API token is configured" in body["error"]
    assert [] == api.playbooks.resets


async def test_read_endpoints_are_open(api: Api) -> None:
    """Health, readiness, status and lists answer without a token."""
    results = [
        (await _call(api, "GET", p))[0]
        for p in ("/healthz", "/readyz", "/v1/status", "/v1/incidents", "/v1/silences", "/v1/runs")
    ]
    assert [200] * 6 == results


async def test_silence_lifecycle_over_the_api(api: Api) -> None:
    """POST creates (author: token + claimed name), GET lists, DELETE expires; all audited."""
    body = {"matchers": ["model=resnet"], "duration_s": 3600, "comment": "driver upgrade"}
    status, created = await _call(api, "POST", "/v1/silences", body, api.auth(actor="bob"))
    assert (status, created["created_by"], created["matchers"]) == (
        201,
        "token:bob",
        ["model=resnet"],
    )
    _, listed = await _call(api, "GET", "/v1/silences")
    assert [created["id"]] == [s["id"] for s in listed["silences"]]
    status, _ = await _call(api, "DELETE", f"/v1/silences/{created['id']}", None, api.auth())
    assert 200 == status
    _, listed = await _call(api, "GET", "/v1/silences")
    assert [] == listed["silences"]
    audited = [(e["actor"], e["action"], e["outcome"]) for e in entries(api.conn)][::-1]
    assert [("token:bob", "silence.add", "ok"), ("token:alice", "silence.expire", "ok")] == audited


async def test_bad_silence_is_a_400_naming_the_problem(api: Api) -> None:
    """A silence without a comment is refused with a clear message."""
    body = {"matchers": ["model=resnet"], "duration_s": 60}
    status, answer = await _call(api, "POST", "/v1/silences", body, api.auth())
    assert 400 == status
    assert "comment" in answer["error"]


async def test_manual_playbook_run_reaches_the_service(api: Api) -> None:
    """A manual run passes target, params, dry_run and actor to the playbook service."""
    body = {"target": {"model": "resnet"}, "params": {"batch": "4"}, "dry_run": True}
    status, result = await _call(
        api, "POST", "/v1/playbooks/restart-server/run", body, api.auth(actor="carol")
    )
    assert (status, result["run_id"]) == (200, "run-1")
    expected = [("restart-server", {"model": "resnet"}, {"batch": "4"}, True, "token:carol")]
    assert expected == api.playbooks.calls
    status, _ = await _call(api, "POST", "/v1/playbooks/nope/run", {}, api.auth())
    assert 404 == status
    status, _ = await _call(
        api, "POST", "/v1/playbooks/restart-server/run", {"dry_run": "yes"}, api.auth()
    )
    assert 400 == status


async def test_breaker_reset_and_garbage_bodies(api: Api) -> None:
    """Breaker reset records the actor; non-JSON and non-webhook bodies are 400s."""
    status, _ = await _call(api, "POST", "/v1/breaker/reset", None, api.auth(actor="dave"))
    assert (status, api.playbooks.resets) == (200, ["token:dave"])
    async with api.session.post(
        api.url + "/v1/alertmanager", data=b"{not json", headers=api.auth()
    ) as r:
        assert 400 == r.status
    status, body = await _call(api, "POST", "/v1/alertmanager", {"alerts": "x"}, api.auth())
    assert 400 == status
    assert "alerts" in body["error"]


async def test_alertmanager_webhook_becomes_alerts(api: Api) -> None:
    """A documented v4 webhook body is parsed and handed to the alert sink."""
    hook = {
        "version": "4",
        "groupKey": '{}:{alertname="GpuXidError"}',
        "status": "firing",
        "receiver": "sentinel",
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://am:9093",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "GpuXidError", "UUID": "GPU-1", "severity": "critical"},
                "annotations": {"summary": "Xid 79 on GPU-1"},
                "startsAt": "2026-11-22T01:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prom/graph",
                "fingerprint": "abc123",
            }
        ],
    }
    status, body = await _call(api, "POST", "/v1/alertmanager", hook, api.auth())
    assert (status, body["accepted"]) == (200, 1)
    [alert] = api.alerts
    assert (alert.status, alert.labels["UUID"], alert.ends_at) == ("firing", "GPU-1", None)


async def test_incidents_endpoints(api: Api) -> None:
    """Incidents are listed (open filter) and fetched by id; unknown ids are 404."""
    from sentinel.incidents.manager import IncidentManager
    from sentinel.incidents.settings import IncidentSettings
    from sentinel.vocabulary.findings import Cleared, Finding, Severity, Subject

    manager = IncidentManager(api.conn, IncidentSettings(resolve_hold_s=0), "pod-a", api.clock)
    t = api.clock.now()
    [gone] = manager.ingest(Finding("gpu_oom", Severity.CRITICAL, Subject("a"), t, t, "oom"))
    [live] = manager.ingest(Finding("error_burst", Severity.WARNING, Subject("b"), t, t, "5xx"))
    manager.ingest(Cleared("gpu_oom", Subject("a"), t + 1))
    _, everything = await _call(api, "GET", "/v1/incidents")
    _, only_open = await _call(api, "GET", "/v1/incidents?open=1")
    assert {gone.incident.id, live.incident.id} == {i["id"] for i in everything["incidents"]}
    assert [live.incident.id] == [i["id"] for i in only_open["incidents"]]
    status, one = await _call(api, "GET", f"/v1/incidents/{live.incident.id}")
    assert (200, "pod-a/b:*/error_burst") == (status, one["key"])
    status, _ = await _call(api, "GET", "/v1/incidents/nope")
    assert 404 == status
    _, state = await _call(api, "GET", "/v1/status")
    assert 1 == state["open_incidents"]

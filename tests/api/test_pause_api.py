"""Operator control over real HTTP: pauses (add, list, resume), a run shown with its steps,
and a run under way cancelled, each acting call authenticated and audited."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from api_bed import TOKEN, Api

from sentinel.api import build_app, start_api
from sentinel.base.audit import entries
from sentinel.base.clock import FakeClock
from sentinel.runbook.context import synthetic_incident
from sentinel.runbook.engine import Engine
from sentinel.runbook.pauses import PauseStore
from sentinel.runbook.schema import load_playbook
from sentinel.runbook.service import EnginePlaybookService
from sentinel.runbook.settings import RunbookSettings

WAITS = """
name: waits
steps:
  - name: look
    action: wait
    with: {seconds: 1}
  - name: settle
    action: wait
    with: {seconds: 50}
"""

ASKS = """
name: asks
mode: approve
triggers: [{kinds: [backlog]}]
steps:
  - name: look
    action: wait
    with: {seconds: 1}
"""

AUTH = {"Authorization": f"Bearer {TOKEN}", "X-Sentinel-Actor": "alice"}


async def _call(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    async with session.request(method, url, json=body, headers=headers) as r:
        return r.status, await r.json()


async def test_pause_add_list_resume_and_audit(api: Api) -> None:
    """POST makes a pause the store (and so the executor) sees; DELETE ends it; both audited."""
    body = {"model": "digits", "for": "2h", "reason": "engine rebuild"}
    status, made = await _call(api.session, "POST", api.url + "/v1/pauses", body, api.auth())
    assert (201, "model=digits", 7200.0) == (
        status,
        made["scope"],
        made["ends_at"] - made["created_at"],
    )
    [stored] = PauseStore(api.conn).list(api.clock.now())
    assert ("token:alice", "engine rebuild") == (stored.created_by, stored.reason)
    _, listed = await _call(api.session, "GET", api.url + "/v1/pauses")
    assert [made["id"]] == [p["id"] for p in listed["pauses"]]
    url = f"{api.url}/v1/pauses/{made['id']}"
    status, ended = await _call(api.session, "DELETE", url, None, api.auth(actor="bob"))
    assert (200, "token:bob", False) == (status, ended["resumed_by"], ended["active"])
    assert [] == PauseStore(api.conn).list(api.clock.now())
    actions = [(e["action"], e["actor"], e["outcome"]) for e in entries(api.conn)]
    assert [("pause.resume", "token:bob", "ok"), ("pause.add", "token:alice", "ok")] == actions


@pytest.mark.parametrize(
    "body",
    [
        {"for": "2h"},
        {"for": "2 hours", "reason": "x"},
        {"duration_s": 60, "for": "1m", "reason": "x"},
        {"duration_s": -5, "reason": "x"},
        {"model": 3, "for": "1h", "reason": "x"},
    ],
)
async def test_bad_pause_is_a_400_saying_why(api: Api, body: dict[str, Any]) -> None:
    """No reason, a bad duration or a non-string scope is refused, and nothing is stored."""
    status, answer = await _call(api.session, "POST", api.url + "/v1/pauses", body, api.auth())
    assert 400 == status
    assert answer["error"]
    assert [] == PauseStore(api.conn).list(api.clock.now(), include_ended=True)


async def test_pause_endpoints_need_the_token(api: Api) -> None:
    """Adding or resuming a pause without the token is refused and nothing changes."""
    body = {"for": "1h", "reason": "x"}
    added, _ = await _call(api.session, "POST", api.url + "/v1/pauses", body)
    resumed, _ = await _call(api.session, "DELETE", api.url + "/v1/pauses/abc")
    assert (401, 401) == (added, resumed)
    assert [] == PauseStore(api.conn).list(api.clock.now(), include_ended=True)


async def test_resume_of_unknown_pause_is_404(api: Api) -> None:
    """Resuming a pause that does not exist (or already ended) says so."""
    status, _ = await _call(api.session, "DELETE", api.url + "/v1/pauses/nope", None, api.auth())
    assert 404 == status


@dataclass
class RunsBed:
    url: str
    conn: sqlite3.Connection
    clock: FakeClock
    engine: Engine
    session: aiohttp.ClientSession


@pytest.fixture
async def runs_bed(conn: sqlite3.Connection, tmp_path: Path) -> AsyncIterator[RunsBed]:
    """A real engine (a playbook that only waits) behind the API on loopback."""
    path = tmp_path / "waits.yaml"
    path.write_text(WAITS, encoding="utf-8")
    asks = tmp_path / "asks.yaml"
    asks.write_text(ASKS, encoding="utf-8")
    clock = FakeClock()
    engine = Engine(
        settings=RunbookSettings(dirs=[]),
        conn=conn,
        clock=clock,
        playbooks={"waits": load_playbook(path), "asks": load_playbook(asks)},
        pod="pod-a",
    )
    app = build_app(conn=conn, token=TOKEN, clock=clock, playbooks=EnginePlaybookService(engine))
    runner, port = await start_api(app, "127.0.0.1", 0)
    async with aiohttp.ClientSession() as session:
        yield RunsBed(f"http://127.0.0.1:{port}", conn, clock, engine, session)
    await runner.cleanup()


async def _waiting_run(bed: RunsBed) -> tuple[asyncio.Task[Any], str]:
    task = asyncio.ensure_future(bed.engine.run_manual("waits", {"model": "digits"}))
    for _ in range(200):
        await asyncio.sleep(0)
        await bed.clock.advance(1.0)
        running = list(bed.engine.executor.running)
        if running and len(bed.engine.history.steps(running[0])) == 2:
            return task, running[0]
    raise AssertionError("the run never reached its second wait")


async def test_cancel_through_the_api_ends_the_run_cancelled(runs_bed: RunsBed) -> None:
    """POST /v1/runs/{id}/cancel answers 202; the run ends cancelled; GET shows every step."""
    bed = runs_bed
    task, run_id = await _waiting_run(bed)
    url = f"{bed.url}/v1/runs/{run_id}"
    status, _ = await _call(bed.session, "POST", url + "/cancel", {}, AUTH)
    assert 202 == status
    result = await asyncio.wait_for(task, timeout=30)
    assert ("cancelled", "cancelled by token:alice; no step had changed anything") == (
        result.status,
        result.reason,
    )
    status, shown = await _call(bed.session, "GET", url)
    assert (200, "cancelled") == (status, shown["status"])
    assert [("look", "succeeded", {"waited_s": 1.0}), ("settle", "cancelled", {})] == [
        (s["name"], s["status"], s["output"]) for s in shown["steps"]
    ]
    assert "evidence" in shown
    again, answer = await _call(bed.session, "POST", url + "/cancel", {}, AUTH)
    assert (409, "run is not under way (cancelled)") == (again, answer["error"])
    [audited, _] = [e for e in entries(bed.conn) if e["action"] == "run.cancel"][::-1]
    assert ("token:alice", run_id, "ok") == (
        audited["actor"],
        audited["target"],
        audited["outcome"],
    )


async def test_cancel_needs_the_token_and_a_known_run(runs_bed: RunsBed) -> None:
    """Without the token a cancel is refused and the run goes on; an unknown id is 404."""
    bed = runs_bed
    task, run_id = await _waiting_run(bed)
    refused, _ = await _call(bed.session, "POST", f"{bed.url}/v1/runs/{run_id}/cancel", {})
    unknown, _ = await _call(bed.session, "POST", f"{bed.url}/v1/runs/nope/cancel", {}, AUTH)
    assert (401, 404) == (refused, unknown)
    assert run_id in bed.engine.executor.running
    await bed.clock.advance(55.0)
    assert "succeeded" == (await asyncio.wait_for(task, timeout=30)).status


async def test_show_of_unknown_run_is_404(runs_bed: RunsBed) -> None:
    """GET /v1/runs/{id} for an id never recorded is a 404."""
    status, _ = await _call(runs_bed.session, "GET", f"{runs_bed.url}/v1/runs/nope")
    assert 404 == status


async def test_approve_through_the_api_lets_the_run_go(runs_bed: RunsBed) -> None:
    """POST /v1/runs/{id}/approve decides a waiting run once; it is audited with its actor."""
    bed = runs_bed
    incident = synthetic_incident("pod-a", {"model": "digits"}, "backlog", bed.clock.now())
    task = asyncio.ensure_future(bed.engine.consider(incident))
    for _ in range(100):
        await asyncio.sleep(0)
        if bed.engine.executor.approvals.pending:
            break
    [run_id] = bed.engine.executor.approvals.pending
    url = f"{bed.url}/v1/runs/{run_id}"
    refused, _ = await _call(bed.session, "POST", url + "/approve", {})
    status, answer = await _call(bed.session, "POST", url + "/approve", {}, AUTH)
    assert (401, 200, "approved") == (refused, status, answer["decision"])
    for _ in range(100):
        if task.done():
            break
        await asyncio.sleep(0)
        await bed.clock.advance(1.0)
    [result] = task.result()
    assert "succeeded" == result.status
    again, body = await _call(bed.session, "POST", url + "/reject", {}, AUTH)
    assert (409, "run is not awaiting approval (succeeded)") == (again, body["error"])
    decided = [
        e for e in entries(bed.conn) if e["action"] == "run.approve" and e["outcome"] == "ok"
    ]
    assert ["token:alice"] == [e["actor"] for e in decided]

"""The control API under hostile input, over real HTTP on loopback: deep or huge bodies,
non-finite numbers, oversized headers, idle connections and a claimed actor."""

from __future__ import annotations

import asyncio
import json
import math
import sqlite3
from typing import Any

import pytest
from api_bed import TOKEN, Api, PlaybookServiceStandIn

from sentinel.api import MAX_BODY_BYTES, MAX_JSON_DEPTH, build_app, start_api
from sentinel.base import strictjson
from sentinel.base.audit import entries
from sentinel.base.clock import FakeClock

DAY = 86400


def _nested(depth: int) -> str:
    """A silence body whose ``extra`` field is lists nested so the whole body is ``depth`` deep."""
    inner = "[" * (depth - 1) + "]" * (depth - 1)
    return '{"matchers": ["model=a"], "duration_s": 60, "comment": "x", "extra": ' + inner + "}"


async def _post_raw(api: Api, path: str, raw: str | bytes) -> tuple[int, str]:
    headers = {**api.auth(), "Content-Type": "application/json"}
    async with api.session.post(api.url + path, data=raw, headers=headers) as r:
        return r.status, await r.text()


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 5_000, 200_000])
async def test_deeply_nested_body_is_a_400_naming_the_limit(api: Api, depth: int) -> None:
    """A body nested past the limit is refused with 400 and says so, never a 500."""
    status, text = await _post_raw(api, "/v1/silences", _nested(depth))
    assert 400 == status
    assert f"nested deeper than {MAX_JSON_DEPTH} levels" in json.loads(text)["error"]
    assert [] == [s for s in api.conn.execute("SELECT id FROM silences")]


async def test_body_nested_to_the_limit_is_accepted(api: Api) -> None:
    """Nesting up to the limit is ordinary JSON and goes through."""
    status, _ = await _post_raw(api, "/v1/silences", _nested(MAX_JSON_DEPTH))
    assert 201 == status


async def test_body_over_the_size_limit_is_refused(api: Api) -> None:
    """A body over MAX_BODY_BYTES is answered 413 without being parsed."""
    raw = '{"comment": "%s"}' % ("x" * MAX_BODY_BYTES)
    status, _ = await _post_raw(api, "/v1/silences", raw)
    assert 413 == status


@pytest.mark.parametrize(
    "duration",
    ["NaN", "Infinity", "-Infinity", "1e400", '"nan"', '"inf"', '"1e999"', "true", str(31 * DAY)],
)
async def test_non_finite_or_overlong_durations_are_400(api: Api, duration: str) -> None:
    """NaN, infinities, 1e400 and durations past 30 days are refused, not stored forever."""
    raw = '{"matchers": ["model=a"], "comment": "x", "duration_s": ' + duration + "}"
    status, text = await _post_raw(api, "/v1/silences", raw)
    assert 400 == status
    assert "error" in strictjson.loads(text)
    assert [] == [s for s in api.conn.execute("SELECT id FROM silences")]


@pytest.mark.parametrize(
    "field", ['"ends_at": 1e308', '"ends_at": Infinity', '"starts_at": 1e300, "duration_s": 60']
)
async def test_far_or_infinite_ends_and_starts_are_400(api: Api, field: str) -> None:
    """An end or a start past the 30-day bound, or infinite, is refused."""
    raw = '{"matchers": ["model=a"], "comment": "x", ' + field + "}"
    status, _ = await _post_raw(api, "/v1/silences", raw)
    assert 400 == status


async def test_thirty_day_silence_is_accepted(api: Api) -> None:
    """A silence of exactly the maximum length is an ordinary silence."""
    raw = '{"matchers": ["model=a"], "comment": "x", "duration_s": ' + str(30 * DAY) + "}"
    status, text = await _post_raw(api, "/v1/silences", raw)
    assert 201 == status
    assert 30 * DAY == strictjson.loads(text)["ends_at"] - strictjson.loads(text)["starts_at"]


class NanPlaybooksStandIn(PlaybookServiceStandIn):
    """STAND-IN playbook service whose run result holds NaN and infinite numbers."""

    async def run(
        self, name: str, target: dict[str, str], params: dict[str, str], dry_run: bool, actor: str
    ) -> dict[str, Any]:
        result = await super().run(name, target, params, dry_run, actor)
        return {**result, "p99_ms": math.nan, "ratio": [math.inf, 1.5]}


async def test_answers_never_contain_nan_or_infinity(conn: sqlite3.Connection) -> None:
    """Non-finite numbers in a result are written as null: every answer is standard JSON."""
    app = build_app(conn=conn, token=TOKEN, clock=FakeClock(), playbooks=NanPlaybooksStandIn())
    runner, port = await start_api(app, "127.0.0.1", 0)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /v1/playbooks/restart-server/run HTTP/1.1\r\nHost: x\r\n"
            b"Authorization: Bearer " + TOKEN.encode() + b"\r\nContent-Length: 2\r\n"
            b"Connection: close\r\n\r\n{}"
        )
        answer = await asyncio.wait_for(reader.read(), 30)
        writer.close()
    finally:
        await runner.cleanup()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    parsed = strictjson.loads(body)
    assert (None, [None, 1.5]) == (parsed["p99_ms"], parsed["ratio"])


@pytest.mark.parametrize(
    "header", [("X-Padding", "p" * 5000), ("Authorization", "Bearer " + "t" * 5000)]
)
async def test_oversized_header_is_refused(api: Api, header: tuple[str, str]) -> None:
    """A header field past the limit is refused before any handler runs."""
    async with api.session.get(api.url + "/healthz", headers=dict([header])) as r:
        status = r.status
    assert 400 == status
    assert [] == entries(api.conn)


async def test_oversized_request_line_is_refused(api: Api) -> None:
    """A request line past the limit is refused."""
    async with api.session.get(api.url + "/v1/incidents/" + "i" * 5000) as r:
        assert 400 <= r.status < 500
        assert 404 != r.status


@pytest.mark.parametrize("sent", [b"", b"GET /healthz HTTP/1.1\r\nHost: x\r\n"])
async def test_idle_and_unfinished_connections_are_closed(
    conn: sqlite3.Connection, sent: bytes
) -> None:
    """A connection that sends nothing, or never finishes its headers, is closed when idle."""
    app = build_app(conn=conn, token=TOKEN, clock=FakeClock())
    runner, port = await start_api(app, "127.0.0.1", 0, idle_timeout_s=0.5)
    try:
        connections = [await asyncio.open_connection("127.0.0.1", port) for _ in range(20)]
        for _, writer in connections:
            writer.write(sent)
        # generous bound for a busy host: the server closes them in about 0.5 s
        closed = [await asyncio.wait_for(reader.read(), 20) for reader, _ in connections]
        for _, writer in connections:
            writer.close()
    finally:
        await runner.cleanup()
    assert [b""] * 20 == closed


async def test_claimed_actor_is_recorded_next_to_the_authenticated_identity(api: Api) -> None:
    """X-Sentinel-Actor is only a claim: the audit says token:<claim>, or token without one."""
    claimed = {**api.auth(actor="root"), "Content-Type": "application/json"}
    bare = {"Authorization": f"Bearer {TOKEN}"}
    for headers in (claimed, bare, {**bare, "X-Sentinel-Actor": "not a valid name!"}):
        async with api.session.post(api.url + "/v1/breaker/reset", headers=headers) as r:
            assert 200 == r.status
    assert ["token:root", "token", "token"] == api.playbooks.resets
    assert ["token:root", "token", "token"] == [e["actor"] for e in entries(api.conn)][::-1]


async def test_created_by_in_a_silence_is_a_claim_too(api: Api) -> None:
    """A silence's created_by cannot pose as the identity: it is stored as token:<claim>."""
    body = {"matchers": ["model=a"], "duration_s": 60, "comment": "x", "created_by": "admin"}
    async with api.session.post(api.url + "/v1/silences", json=body, headers=api.auth()) as r:
        created = await r.json()
    assert "token:admin" == created["created_by"]

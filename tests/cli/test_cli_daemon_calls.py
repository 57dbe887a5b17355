"""The CLI's calls to a running daemon: what they send, and how answers become exit codes."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from cli_config_files import write_config

from sentinel.cli import main

TOKEN = "t0k3n-for-daemon-calls"
RUNS = [
    {
        "id": "r1",
        "playbook": "halve",
        "target_key": "model=digits",
        "status": "succeeded",
        "actor": "auto",
        "dry_run": False,
        "started_at": 1700000000.0,
    }
]


class DaemonStandIn:
    """STAND-IN for the daemon's API on loopback, in its own thread: answers the run list,
    404 for any one run, and a redirect for cancel; records each request's headers."""

    def __init__(self) -> None:
        self.seen: list[dict[str, str]] = []
        self.runs: list[dict[str, Any]] = RUNS
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._serve(),))

    async def _record(self, request: web.Request) -> None:
        self.seen.append(dict(request.headers))

    async def _runs(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.json_response({"runs": self.runs})

    async def _run(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.json_response({"error": "no such run"}, status=404)

    async def _cancel(self, request: web.Request) -> web.Response:
        await self._record(request)
        raise web.HTTPTemporaryRedirect("http://127.0.0.1:9/elsewhere")

    async def _serve(self) -> None:
        app = web.Application()
        app.router.add_get("/v1/runs", self._runs)
        app.router.add_get("/v1/runs/{id}", self._run)
        app.router.add_post("/v1/runs/{id}/cancel", self._cancel)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = runner.addresses[0][1]
        self._stop = asyncio.Event()
        self._started.set()
        await self._stop.wait()
        await runner.cleanup()

    def __enter__(self) -> DaemonStandIn:
        self._thread.start()
        assert self._started.wait(30)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
        self._loop.close()


@pytest.fixture
def daemon() -> Iterator[DaemonStandIn]:
    with DaemonStandIn() as stand_in:
        yield stand_in


@pytest.fixture
def cfg(tmp_path: Path, daemon: DaemonStandIn) -> list[str]:
    api = f"api: {{bind: 127.0.0.1, port: {daemon.port}, token: {TOKEN}}}\n"
    return ["--config", str(write_config(tmp_path, "pod: pod-a\nstate_dir: state\n" + api))]


def test_runs_list_prints_the_daemons_runs_and_sends_token_and_actor(
    daemon: DaemonStandIn, cfg: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """`runs --json` prints the daemon's runs; the call carries the bearer token and actor."""
    assert 0 == main(["runs", "--json", *cfg])
    printed: list[dict[str, Any]] = json.loads(capsys.readouterr().out)
    [headers] = daemon.seen
    assert (RUNS, f"Bearer {TOKEN}", True) == (
        printed,
        headers["Authorization"],
        headers["X-Sentinel-Actor"].startswith("cli"),
    )


def test_a_long_answer_is_read_whole(
    daemon: DaemonStandIn, cfg: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """A run list of ~600 KB (many TCP segments) is read to its end, not to the first."""
    daemon.runs = [dict(RUNS[0], id=f"r{i}", reason="x" * 200) for i in range(2500)]
    assert 0 == main(["runs", "--json", *cfg])
    assert 2500 == len(json.loads(capsys.readouterr().out))


def test_a_404_from_the_daemon_exits_2_with_its_message(
    cfg: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """A 404 answer exits 2 and prints the URL, the status and the daemon's message."""
    assert 2 == main(["runs", "show", "nope", *cfg])
    err = capsys.readouterr().err
    assert (True, True) == ("/v1/runs/nope: 404:" in err, "no such run" in err)


def test_a_redirect_from_the_daemon_is_not_followed(
    daemon: DaemonStandIn, cfg: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """A redirect is not followed (the token stays with the daemon): exit 1 naming the 307."""
    assert 1 == main(["runs", "cancel", "r1", *cfg])
    assert (1, True) == (len(daemon.seen), ": 307: " in capsys.readouterr().err)

"""What the playbook/runs/breaker commands share: config, the daemon's API or a
local engine, argument parsing and printing."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import io
import json
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TextIO, cast

from sentinel.base import db
from sentinel.base.clock import SystemClock
from sentinel.base.db import open_db
from sentinel.base.errors import SentinelError
from sentinel.base.logging import configure as configure_logging
from sentinel.cli.config_load import add_config_arg, load_or_report
from sentinel.config import Config
from sentinel.runbook.engine import Engine
from sentinel.runbook.history import History
from sentinel.runbook.service import EnginePlaybookService
from sentinel.vocabulary.findings import Severity, Subject
from sentinel.vocabulary.incidents import Incident, IncidentStatus
from sentinel.vocabulary.notices import Notice
from sentinel.vocabulary.ports import CanaryRunner, PlaybookService, TritonControl


def add_config_args(p: argparse.ArgumentParser, local_flag: bool = True) -> None:
    add_config_arg(p)
    if local_flag:
        p.add_argument(
            "--local",
            action="store_true",
            help="act in this process on the state database instead of through the daemon",
        )


def pairs(items: list[str], flag: str) -> dict[str, str]:
    """``['model=digits', 'x=1']`` -> dict; a malformed item is a ValueError naming the flag."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{flag} {item!r}: expected KEY=VALUE")
        out[key.strip()] = value
    return out


def local_actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def json_file(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"{what} {path}: cannot read: {exc.strerror or exc}") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path}:1: expected a JSON object")
    return data


def incident_from_file(path: Path) -> Incident:
    """An incident as the API or ``sentinel incidents --json`` prints it."""
    data = json_file(path, "--incident")
    data = data.get("incident", data)
    try:
        subject = data.get("subject") or {}
        now = float(data.get("detected_at") or data.get("started_at") or 0.0)
        return Incident(
            id=str(data.get("id") or path.stem),
            key=str(data.get("key") or path.stem),
            kind=str(data["kind"]),
            severity=Severity(data.get("severity", "warning")),
            subject=Subject(
                model=subject.get("model"),
                version=subject.get("version"),
                batch_size=subject.get("batch_size"),
                gpu_uuid=subject.get("gpu_uuid"),
            ),
            status=IncidentStatus(data.get("status", "firing")),
            summary=str(data.get("summary", "")),
            started_at=float(data.get("started_at") or now),
            detected_at=now,
            updated_at=float(data.get("updated_at") or now),
            evidence=dict(data.get("evidence") or {}),
        )
    except KeyError as exc:
        raise ValueError(f"{path}: {exc.args[0]}: required field is missing") from exc
    except (TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"{path}: not an incident: {exc}") from exc


class _Stderr(io.TextIOBase):
    """Whatever sys.stderr is at the time of writing (it may be swapped, e.g. by tests)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


class PrintTeller:
    """Local runs print what they would tell; the daemon's outbox is not involved."""

    async def tell(self, notice: Notice) -> None:
        text = getattr(notice, "text", None) or getattr(notice, "reason", "")
        print(f"  [{type(notice).__name__}] {text}", file=sys.stderr)


class SnapshotTriton:
    """Read-only Triton for plans: answers model_config from a file, refuses the rest."""

    def __init__(self, configs: dict[str, dict[str, Any]]) -> None:
        self.configs = configs

    async def server_live(self) -> bool:
        return True

    async def server_ready(self) -> bool:
        return True

    async def model_ready(self, model: str, version: str = "") -> bool:
        return True

    async def model_config(self, model: str, version: str = "") -> dict[str, Any]:
        return dict(self.configs.get(model) or {})

    async def load_model(self, model: str, config: dict[str, Any] | None = None) -> None:
        raise RuntimeError("a plan never loads models")

    async def unload_model(self, model: str) -> None:
        raise RuntimeError("a plan never unloads models")

    async def statistics(self, model: str = "") -> dict[str, Any]:
        return {}


class Session:
    """One command's way to the runbook: the daemon's API, or a local engine."""

    def __init__(self, config: Config, local: bool, scratch: bool) -> None:
        self.config = config
        self.local = local
        self.scratch = scratch
        self.code = 0
        self._history: History | None = None

    def engine(
        self,
        model_config: dict[str, dict[str, Any]] | None = None,
        triton: TritonControl | None = None,
        canary: CanaryRunner | None = None,
    ) -> Engine:
        """A local engine on the state database (a scratch one for plans)."""
        path = ":memory:" if self.scratch else db.path_in(self.config.state_dir)
        if triton is None and model_config is not None:
            triton = SnapshotTriton(model_config)
        return Engine(
            settings=self.config.playbooks,
            conn=open_db(path),
            clock=SystemClock(),
            triton=triton,
            canary=canary,
            teller=PrintTeller(),
            pod=self.config.pod,
            dry_run=self.config.dry_run,
        )

    def call(
        self,
        method: str,
        path: str,
        local: Callable[[PlaybookService], Awaitable[dict[str, Any]]],
        body: dict[str, Any] | None = None,
        needs_triton: bool = False,
    ) -> dict[str, Any] | None:
        """The daemon's answer, or the local engine's; None (and ``code``) on failure."""
        if self.local:
            try:
                return asyncio.run(self._local(local, needs_triton))
            except KeyError as exc:
                print(f"no playbook named {exc.args[0]!r}", file=sys.stderr)
            except ValueError as exc:
                print(exc, file=sys.stderr)
            self.code = 2
            return None
        return self._http(method, path, body)

    async def _local(
        self, fn: Callable[[PlaybookService], Awaitable[dict[str, Any]]], needs_triton: bool
    ) -> dict[str, Any]:
        from sentinel.probes.canary import CanaryGroup, CanaryProbe
        from sentinel.probes.triton import connect

        if not needs_triton:
            return await fn(EnginePlaybookService(self.engine()))
        triton = connect(self.config.triton)
        try:
            canary = CanaryGroup([CanaryProbe(triton, c) for c in self.config.canaries])
            engine = self.engine(triton=triton, canary=canary)
            for problem in engine.problems:
                print(problem, file=sys.stderr)
            return await fn(EnginePlaybookService(engine))
        finally:
            await triton.close()

    def recent_runs(self) -> list[dict[str, Any]]:
        """The latest few runs with their steps, from the daemon or (local) the state
        database read-only; for progress lines, so any failure is an exception."""
        if not self.local:
            url, headers = self._endpoint("/v1/runs?limit=5")
            status, raw = asyncio.run(fetch("GET", url, headers, None, timeout_s=5.0))
            if status >= 400:
                raise RuntimeError(f"{url}: {status}")
            runs: list[dict[str, Any]] = json.loads(raw)["runs"]
            return runs
        if self._history is None:
            self._history = read_history(self.config)
        return self._history.runs(5) if self._history is not None else []

    def _endpoint(self, path: str) -> tuple[str, dict[str, str]]:
        """The daemon's URL for ``path`` and the headers every call sends."""
        api = self.config.api
        url = f"http://{api.bind}:{api.port}{path}"
        headers = {"Content-Type": "application/json", "X-Sentinel-Actor": local_actor()}
        token = api.bearer_token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return url, headers

    def _http(self, method: str, path: str, body: dict[str, Any] | None) -> dict[str, Any] | None:
        url, headers = self._endpoint(path)
        try:
            status, raw = asyncio.run(fetch(method, url, headers, body, timeout_s=900.0))
        except DaemonUnreachable as exc:
            print(
                f"no sentinel daemon answered at {url} ({exc}); start one, or use --local",
                file=sys.stderr,
            )
            self.code = 3
            return None
        if status >= 400:
            text = raw[:MAX_ANSWER_BYTES].decode("utf-8", errors="replace")
            print(f"{url}: {status}: {text.strip()}", file=sys.stderr)
            self.code = 2 if status in (400, 404) else 1
            return None
        try:
            answer = json.loads(raw) if len(raw) <= MAX_ANSWER_BYTES else None
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            print(f"{url}: {status}: the answer is not a JSON object", file=sys.stderr)
            self.code = 1
            return None
        return answer


MAX_ANSWER_BYTES = 64 * 1024 * 1024
"""The most of the daemon's answer read (a run list with its steps is far smaller)."""


class DaemonUnreachable(SentinelError):
    """No answer from the daemon: not listening, cut off or too slow."""


async def fetch(
    method: str, url: str, headers: dict[str, str], body: dict[str, Any] | None, timeout_s: float
) -> tuple[int, bytes]:
    """One call to the daemon: the answer's status and body (at most MAX_ANSWER_BYTES + 1
    bytes of it, so a caller can tell one past the bound). The daemon is local: no proxy
    from the environment, no redirects; ``timeout_s`` bounds each phase (a run may take
    15 minutes)."""
    import aiohttp  # here: commands that never call the daemon do not pay for it

    from sentinel.base.http_body import read_up_to

    timeout = aiohttp.ClientTimeout(
        total=None, connect=timeout_s, sock_connect=timeout_s, sock_read=timeout_s
    )
    data = None if body is None else json.dumps(body).encode()
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout, trust_env=False) as client,
            client.request(method, url, headers=headers, data=data, allow_redirects=False) as resp,
        ):
            return resp.status, await read_up_to(resp, MAX_ANSWER_BYTES)
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise DaemonUnreachable(f"{type(exc).__name__}: {exc}") from exc


def read_history(config: Config) -> History | None:
    """The runbook's history on the state database, read-only; None when there is no
    database (nothing ever ran). Nothing is created or migrated."""
    conn = db.open_read_only(db.path_in(config.state_dir))
    return None if conn is None else History(conn)


@contextlib.contextmanager
def session(
    args: argparse.Namespace, local: bool = False, scratch: bool = False
) -> Iterator[Session | None]:
    """The config, loaded (None after printing its problems)."""
    config = load_or_report(args.config)
    if config is None:
        yield None
        return
    # logs go to stderr: stdout is the command's answer (often JSON)
    configure_logging(config.logging.level, config.logging.format, stream=cast(TextIO, _Stderr()))
    yield Session(config, local or bool(getattr(args, "local", False)), scratch)


def print_run(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(result, indent=2, default=str))
        return
    dry = " (dry run)" if result.get("dry_run") else ""
    print(f"run {result['run_id']}  {result['playbook']}  {result['status']}{dry}")
    if result.get("reason"):
        print(f"  {result['reason']}")
    for step in result.get("steps", []):
        params = json.dumps(step.get("params") or {}, default=str, sort_keys=True)
        if len(params) > 160:
            params = params[:157] + "..."
        why = f"  -- {step['reason']}" if step.get("reason") else ""
        print(
            f"  {step['phase']:<10} {step['name']:<16} {step['action']:<22} "
            f"{step['status']:<13} {params}{why}"
        )

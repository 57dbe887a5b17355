"""Soak: `sentinel run` for a long while against a real Triton, faults on a schedule, and
notifiers that fail, slow down and recover. Nothing may be lost, nothing sent twice, and
the process must stay flat.

One real local tritonserver serves the example ``digits`` model; ``sentinel run`` (a
subprocess, as users run it) watches it with the demo's fast detectors and the shipped
playbooks (guards opened so every fault is acted on). Loopback Slack and PagerDuty
servers (``sentinel.testing.notifiers``, the services' wire formats) take the pages.
Every ``--period`` seconds the bench injects the next fault (INT8 accuracy drift, a
latency spike) and clears it half a period later; the notifiers cycle through healthy,
500s, 429 with Retry-After, and slower than sentinel's client timeout.

At the end (after the notifiers are healthy again and the outbox has drained) it prints,
per notifier, the pages sentinel planned (its outbox rows), how many arrived, how many were
lost and how many arrived twice; and the RSS and open file descriptors of the sentinel
process over the run (the first and last quarter after warm-up), with their growth.

    python bench/soak.py                  # one hour
    python bench/soak.py --seconds 120    # the suite's variant (tests/e2e/test_soak.py)
    python bench/soak.py --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml
from ttm_reps import BENCH_OVERRIDES, FAULT_PARAMS, reconfigure

from sentinel.base.assets import shipped
from sentinel.base.db import path_in
from sentinel.demo.scenario import MODEL, demo_config
from sentinel.probes import triton as triton_adapter
from sentinel.probes.settings import TritonSettings
from sentinel.testing.notifiers import Failure, PagerDutyServer, SlackServer
from sentinel.testing.triton_local import LocalTriton, free_port

EXAMPLES = shipped("examples")
FAULTS = ("accuracy", "latency")
NOTIFIER_PHASES = ("healthy", "errors", "ratelimited", "slow", "healthy")
CLIENT_TIMEOUT_S = 2.0
"""sentinel's Slack and PagerDuty client timeout in the soak; the slow phase answers later."""


@dataclass
class Receipts:
    """What one notifier planned against what its server received."""

    planned: int
    delivered: int
    lost: int
    duplicated: int
    pending_at_end: int
    resent: int = 0
    """Events delivered again after an answer that came too late, which the service
    deduplicates (PagerDuty: same dedup_key on an open incident): not a second page."""


@dataclass
class Growth:
    """A resource of the sentinel process: median of the first and last quarter."""

    first: float
    last: float
    peak: float

    @property
    def growth(self) -> float:
        return self.last - self.first


@dataclass
class SoakResult:
    seconds: float
    faults_injected: int
    incidents: int
    runs: int
    slack: Receipts
    pagerduty: Receipts
    rss_mib: Growth
    open_fds: Growth
    sentinel_exit: int | None
    notes: list[str] = field(default_factory=list)

    def ok(self, max_rss_growth_mib: float = 20.0, max_fd_growth: float = 10.0) -> bool:
        """Nothing lost or doubled, and no leak beyond the allowed growth."""
        return (
            self.slack.lost == self.slack.duplicated == 0
            and self.pagerduty.lost == self.pagerduty.duplicated == 0
            and self.rss_mib.growth <= max_rss_growth_mib
            and self.open_fds.growth <= max_fd_growth
            and self.sentinel_exit in (None, 0)
        )


def proc_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def proc_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def growth(values: list[float]) -> Growth:
    if not values:
        return Growth(0.0, 0.0, 0.0)
    q = max(1, len(values) // 4)
    return Growth(statistics.median(values[:q]), statistics.median(values[-q:]), max(values))


def sentinel_config(
    server: LocalTriton, workdir: Path, slack: SlackServer, pd: PagerDutyServer
) -> Path:
    """The demo's fast config as a file, paging loopback Slack and PagerDuty."""
    base = demo_config(server, workdir).model_dump(mode="json", exclude_none=True)
    for key in ("stream_canaries", "model_files"):
        base.pop(key, None)
    base["playbooks"]["overrides"] = BENCH_OVERRIDES
    base["playbooks"]["breaker_max_actions"] = 10_000
    base["notifiers"] = {
        "console": {"enabled": False},
        "slack": {
            "enabled": True,
            "token": slack.token,
            "channel": "#soak",
            "base_url": slack.base_url,
            "timeout_s": CLIENT_TIMEOUT_S,
        },
        "pagerduty": {
            "enabled": True,
            "routing_key": pd.routing_key,
            "base_url": pd.base_url,
            "ca_file": str(pd.cert),
            "timeout_s": CLIENT_TIMEOUT_S,
        },
        "outbox": {"poll_s": 0.5, "backoff_initial_s": 0.5, "backoff_max_s": 5.0},
    }
    base["api"] = {"port": 0}
    base["metrics"] = {"bind": "127.0.0.1", "port": free_port()}
    base["logging"] = {"level": "info", "format": "json"}
    path = workdir / "sentinel.yaml"
    path.write_text(yaml.safe_dump(base))
    return path


class SlowSlack(SlackServer):
    """The loopback Slack, able to answer later than the client waits (the post lands)."""

    delay_s: float = 0.0

    async def _post(self, request: Any) -> Any:
        response = await super()._post(request)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        return response


class SlowPagerDuty(PagerDutyServer):
    """The loopback PagerDuty, able to answer later than the client waits (the event lands)."""

    delay_s: float = 0.0

    async def _enqueue(self, request: Any) -> Any:
        response = await super()._enqueue(request)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        return response


def set_phase(phase: str, slack: SlowSlack, pd: SlowPagerDuty) -> None:
    for server in (slack, pd):
        server.script.clear()
        server.delay_s = 0.0
        if phase == "errors":
            server.script.extend(Failure(500) for _ in range(6))
        elif phase == "ratelimited":
            server.script.extend(Failure(429, retry_after=1.0) for _ in range(4))
        elif phase == "slow":
            server.delay_s = CLIENT_TIMEOUT_S + 1.0


def receipts_slack(rows: list[sqlite3.Row], slack: SlackServer) -> Receipts:
    # Posts (roots, replies) carry their outbox idem key in the message metadata; chat.update
    # rewrites a root and is counted per text.
    posts = [r["idem_key"] for r in rows if r["op"] != "update"]
    seen = Counter(slack.idem_keys())
    updates = Counter(
        p.get("text", "") for p in (json.loads(r["payload"]) for r in rows if r["op"] == "update")
    )
    updated = Counter(u.get("text", "") for u in slack.updates)
    return Receipts(
        planned=len(posts) + sum(updates.values()),
        delivered=sum(1 for k in posts if seen[k])
        + sum(min(n, updated[k]) for k, n in updates.items()),
        lost=sum(1 for k in posts if not seen[k])
        + sum(max(0, n - updated[k]) for k, n in updates.items()),
        duplicated=sum(n - 1 for n in seen.values() if n > 1)
        + sum(max(0, n - updates[k]) for k, n in updated.items()),
        pending_at_end=sum(1 for r in rows if r["state"] in ("pending", "sending")),
    )


def pagerduty_pages(events: list[tuple[str, str]]) -> int:
    """Pages PagerDuty raises for these events, in order: a trigger opens an incident
    unless one with its dedup_key is open; a resolve closes it."""
    open_keys: set[str] = set()
    pages = 0
    for action, key in events:
        if action == "trigger" and key not in open_keys:
            pages += 1
            open_keys.add(key)
        elif action == "resolve":
            open_keys.discard(key)
    return pages


def receipts_pagerduty(rows: list[sqlite3.Row], pd: PagerDutyServer) -> Receipts:
    # Events carry no idempotency key of their own: compare per (action, dedup_key), and
    # change events per (summary, run) of their payload. A duplicate is a page PagerDuty
    # raised that the outbox did not plan; an event resent into an open incident is not.
    def key(op: str, payload: dict[str, Any]) -> tuple[str, str]:
        if op == "change":
            return ("change", payload["summary"] + "|" + payload["custom_details"]["run_id"])
        return (op, payload["dedup_key"])

    ordered = [key(r["op"], json.loads(r["payload"])) for r in rows]
    planned = Counter(ordered)
    seen = Counter(pd.actions())
    seen.update(key("change", c["payload"]) for c in pd.changes)
    planned_pages = pagerduty_pages([k for k in ordered if k[0] != "change"])
    return Receipts(
        planned=sum(planned.values()),
        delivered=sum(min(n, seen[k]) for k, n in planned.items()),
        lost=sum(max(0, n - seen[k]) for k, n in planned.items()),
        duplicated=max(0, pagerduty_pages(pd.actions()) - planned_pages),
        pending_at_end=sum(1 for r in rows if r["state"] in ("pending", "sending")),
        resent=sum(max(0, n - planned[k]) for k, n in seen.items()),
    )


async def soak(seconds: float, period_s: float, workdir: Path, say: Any) -> SoakResult:
    repo = workdir / "models"
    shutil.copytree(EXAMPLES / "model_repository", repo)
    server = LocalTriton(repo, workdir=workdir / "triton", pid_file=workdir / "tritonserver.pid")
    slack = await SlowSlack().start()
    pd = await SlowPagerDuty().start(workdir)
    notes: list[str] = []
    rss: list[float] = []
    fds: list[float] = []
    proc: subprocess.Popen[bytes] | None = None
    injected = 0
    try:
        await asyncio.to_thread(server.start)
        server.supervise(backoff_s=0.5)
        config = sentinel_config(server, workdir, slack, pd)
        log = (workdir / "sentinel.log").open("wb")
        proc = subprocess.Popen(  # noqa: ASYNC220 -- returns at once; the loop polls it
            [sys.executable, "-m", "sentinel", "run", "--config", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        triton = triton_adapter.connect(TritonSettings(url=server.grpc_url))
        clean = await triton.model_config(MODEL)
        t0 = time.monotonic()
        warmup = min(20.0, seconds / 6)
        next_fault, fault_i, phase_i, faulty = t0 + warmup, 0, 0, False
        next_phase = t0 + warmup
        while time.monotonic() - t0 < seconds:
            now = time.monotonic()
            if proc.poll() is not None:
                notes.append(f"sentinel exited early with {proc.returncode}")
                break
            if now - t0 > warmup:
                rss.append(proc_rss_mib(proc.pid))
                fds.append(proc_fds(proc.pid))
            if now >= next_phase:
                phase = NOTIFIER_PHASES[phase_i % len(NOTIFIER_PHASES)]
                set_phase(phase, slack, pd)
                say(f"notifiers: {phase}")
                phase_i += 1
                next_phase = now + period_s * 0.7
            if now >= next_fault:
                try:
                    if faulty:
                        await triton.load_model(MODEL, clean)
                        say("fault cleared")
                    else:
                        fault = FAULTS[fault_i % len(FAULTS)]
                        await reconfigure(triton, **FAULT_PARAMS[fault])
                        injected += 1
                        fault_i += 1
                        say(f"fault injected: {fault}")
                except Exception as exc:  # a reload during sentinel's own action: try later
                    notes.append(f"injection skipped: {exc}")
                faulty = not faulty
                next_fault = now + period_s / 2
            await asyncio.sleep(1.0)
        # Notifiers healthy again, faults cleared: let the outbox drain.
        set_phase("healthy", slack, pd)
        with contextlib.suppress(Exception):
            await triton.load_model(MODEL, clean)
        await triton.close()
        db = path_in(workdir / "state")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if not _live_rows(db):
                break
            await asyncio.sleep(1.0)
        await asyncio.sleep(2.0)  # answers in flight land
    finally:
        exit_code = None
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            exit_code = proc.returncode
        await slack.stop()
        await pd.stop()
        await asyncio.to_thread(server.close)
    conn = sqlite3.connect(path_in(workdir / "state"))
    conn.row_factory = sqlite3.Row
    try:
        rows = conn.execute("SELECT * FROM outbox ORDER BY id").fetchall()
        incidents = conn.execute("SELECT COUNT(*) FROM incidents").fetchone()[0]
        runs = conn.execute("SELECT COUNT(*) FROM runbook_runs").fetchone()[0]
    finally:
        conn.close()
    return SoakResult(
        seconds=seconds,
        faults_injected=injected,
        incidents=incidents,
        runs=runs,
        slack=receipts_slack([r for r in rows if r["notifier"] == "slack"], slack),
        pagerduty=receipts_pagerduty([r for r in rows if r["notifier"] == "pagerduty"], pd),
        rss_mib=growth(rss),
        open_fds=growth(fds),
        sentinel_exit=exit_code if exit_code != -signal.SIGTERM else 0,
        notes=notes,
    )


def _live_rows(db: Path) -> int:
    try:
        conn = sqlite3.connect(db, timeout=5)
        try:
            return int(
                conn.execute(
                    "SELECT COUNT(*) FROM outbox WHERE state IN ('pending', 'sending')"
                ).fetchone()[0]
            )
        finally:
            conn.close()
    except sqlite3.Error:
        return 1


def report(r: SoakResult) -> str:
    lines = [
        f"soak: {r.seconds:.0f} s, {r.faults_injected} faults injected, "
        f"{r.incidents} incidents, {r.runs} playbook runs, sentinel exit {r.sentinel_exit}",
        f"{'notifier':10s} {'planned':>8s} {'delivered':>9s} {'lost':>5s} {'duplicated':>10s} "
        f"{'pending':>8s} {'resent*':>8s}",
    ]
    for name, x in (("slack", r.slack), ("pagerduty", r.pagerduty)):
        lines.append(
            f"{name:10s} {x.planned:8d} {x.delivered:9d} {x.lost:5d} {x.duplicated:10d} "
            f"{x.pending_at_end:8d} {x.resent:8d}"
        )
    lines.append(
        "* resent: delivered again after a late answer into an open PagerDuty incident "
        "(same dedup_key): deduplicated by PagerDuty, not a second page"
    )
    for name, g, unit in (("RSS", r.rss_mib, "MiB"), ("open fds", r.open_fds, "")):
        lines.append(
            f"{name:9s} first quarter {g.first:7.1f}{unit}  last quarter {g.last:7.1f}{unit}  "
            f"growth {g.growth:+6.1f}{unit}  peak {g.peak:7.1f}{unit}"
        )
    lines += [f"note: {n}" for n in r.notes]
    lines.append("PASS" if r.ok() else "FAIL")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=3600.0)
    ap.add_argument("--period", type=float, default=30.0, help="seconds between faults")
    ap.add_argument("--json", type=Path, help="also write the result as JSON here")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (logs, state)")
    args = ap.parse_args(argv)
    t0 = time.monotonic()

    def say(text: str) -> None:
        print(f"[{time.monotonic() - t0:7.1f}s] {text}", flush=True)

    workdir = Path(tempfile.mkdtemp(prefix="sentinel-soak-"))
    try:
        result = asyncio.run(soak(args.seconds, args.period, workdir, say))
    finally:
        if args.keep:
            print(f"work folder: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(report(result))
    if args.json:
        args.json.write_text(json.dumps(asdict(result), indent=2))
    return 0 if result.ok() else 1


if __name__ == "__main__":
    sys.exit(main())

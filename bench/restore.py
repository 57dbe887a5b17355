"""Recovery time of a damaged model on real Triton: damage -> finding -> verified restore.

A private copy of examples/model_repository is served by a real tritonserver and
watched by a sentinel built in this process (model-files probe every ``--interval``
seconds, canaries every 0.5 s, the shipped playbooks with restore-known-good's
cooldown lifted so repetitions can run). Once the canaries have proven digits:1
known-good (manifest + backup), each repetition damages the served model's weights
(``--damage truncate|flip|delete``) and reloads it the way a bad deploy would, then
measures, from the moment of damage:

* detection: until the ``model_files_changed`` finding;
* restore: from the finding until the restore step's canary verification passed
  (playbook start, backup check, copy, Triton reload, canary rounds), with the copy +
  reload step and the canary verification shown apart;
* total: damage to verified restore (the recovery time objective).

    python bench/restore.py [--reps 5] [--interval 1.0] [--damage truncate] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from sentinel.base import logging as sentinel_logging
from sentinel.config import Config
from sentinel.testing.triton_local import LocalTriton
from sentinel.vocabulary.findings import Finding, Judgement
from sentinel.vocabulary.notices import ActionUpdate, Notice
from sentinel.wiring import build

ROOT = Path(__file__).resolve().parents[1]
REPOSITORY = ROOT / "examples" / "model_repository"
GOLDEN = ROOT / "examples" / "golden" / "digits.npz"
WEIGHTS = Path("digits") / "1" / "weights.npz"


def damage(repo: Path, how: str) -> None:
    path = repo / WEIGHTS
    data = bytearray(path.read_bytes())
    if how == "truncate":
        path.write_bytes(bytes(data[: len(data) // 2]))
    elif how == "flip":
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    else:
        path.unlink()


def reload(server: LocalTriton) -> None:
    url = f"http://{server.http_url}/v2/repository/models/digits/load"
    request = urllib.request.Request(url, data=b"{}", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60):
            pass
    except urllib.error.HTTPError:
        pass  # damaged weights may not load: that is the fault being measured


def config(server: LocalTriton, repo: Path, tmp: Path, interval: float) -> Config:
    return Config.model_validate(
        {
            "pod": "bench",
            "state_dir": str(tmp / "state"),
            "triton": {
                "url": server.http_url,
                "protocol": "http",
                "metrics_url": server.metrics_url,
                "health_interval_s": 0.5,
                "timeout_s": 5.0,
            },
            "canaries": [
                {
                    "model": "digits",
                    "golden_set": str(GOLDEN),
                    "interval_s": 0.5,
                    "batch_sizes": [1, 8],
                }
            ],
            "gpu": {"source": "off"},
            "model_files": {
                "repository": str(repo),
                "backup_dir": str(tmp / "backup"),
                "interval_s": interval,
                "known_good_after": 3,
            },
            "playbooks": {
                "dirs": [str(ROOT / "playbooks")],
                "canary_interval_s": 0.5,
                "overrides": {
                    "restore-known-good": {
                        "guards": {"cooldown": "0s", "budget": {"runs": 1000, "per": "24h"}}
                    }
                },
            },
            "incidents": {"resolve_hold_s": 1.0, "refire_window_s": 0},
            "api": {"port": 0},
        }
    )


class Marks:
    """Wall-clock moments the sentinel reported, per repetition."""

    def __init__(self) -> None:
        self.finding: float | None = None
        self.finding_wall = 0.0
        self.verified: float | None = None

    def reset(self) -> None:
        self.finding = self.verified = None

    def on_judgement(self, j: Judgement) -> None:
        if isinstance(j, Finding) and j.kind == "model_files_changed" and self.finding is None:
            self.finding = time.monotonic()
            self.finding_wall = time.time()

    def on_notice(self, n: Notice) -> None:
        if (
            isinstance(n, ActionUpdate)
            and n.playbook == "restore-known-good"
            and n.step == "restore"
            and n.status == "verified"
            and self.verified is None
        ):
            self.verified = time.monotonic()


async def wait_for(what: str, predicate: Any, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"not within {timeout_s:g} s: {what}")
        await asyncio.sleep(0.02)


async def measure(reps: int, interval: float, how: str, tmp: Path) -> list[dict[str, float]]:
    repo = tmp / "model_repository"
    shutil.copytree(REPOSITORY, repo, ignore=shutil.ignore_patterns("__pycache__"))
    server = LocalTriton(repo, workdir=tmp / "triton").start()
    marks = Marks()
    rng = random.Random(20)
    rows: list[dict[str, float]] = []
    try:
        async with build(
            config(server, repo, tmp, interval),
            serve_api=False,
            serve_metrics=False,
            console=io.StringIO(),
            on_judgement=lambda j: marks.on_judgement(j),
            on_notice=lambda n: marks.on_notice(n),
        ) as s:
            task = asyncio.create_task(s.daemon.run())
            try:
                backup = tmp / "backup" / "digits" / "1" / "manifest.json"
                await wait_for("digits:1 proven known-good", backup.is_file)
                for _ in range(reps):
                    await wait_for("no open incident", lambda: not s.incidents.store.open())
                    await asyncio.sleep(interval * rng.uniform(1.0, 2.0))  # any scan phase
                    marks.reset()
                    t0 = time.monotonic()
                    damage(repo, how)
                    await asyncio.to_thread(reload, server)
                    await wait_for("a verified restore", lambda: marks.verified is not None)
                    if marks.finding is None or marks.verified is None:
                        raise RuntimeError("verified without a finding")
                    await s.engine.idle()
                    run = s.engine.history.runs(1)[0]
                    copy_s, verify_s = step_times(run["steps"])
                    rows.append(
                        {
                            "detect_s": marks.finding - t0,
                            "restore_s": marks.verified - marks.finding,
                            "start_s": run["started_at"] - marks.finding_wall,
                            "copy_reload_s": copy_s,
                            "verify_s": verify_s,
                            "total_s": marks.verified - t0,
                        }
                    )
            finally:
                s.daemon.request_stop()
                await task
    finally:
        server.kill()
        server.close()
    return rows


def step_times(steps: list[dict[str, Any]]) -> tuple[float, float]:
    """Seconds the restore step took (copy + Triton reload) and its canary verification."""

    def took(phase: str) -> float:
        row = next(r for r in steps if r["name"] == "restore" and r["phase"] == phase)
        return float(row["finished_at"] - row["started_at"])

    return took("step"), took("verify")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--interval", type=float, default=1.0, help="model_files.interval_s")
    p.add_argument("--damage", choices=["truncate", "flip", "delete"], default="truncate")
    p.add_argument("--json", type=Path, help="also write the rows here")
    args = p.parse_args(argv)
    sentinel_logging.configure("error", "console", stream=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="bench-restore-") as tmp:
        rows = asyncio.run(measure(args.reps, args.interval, args.damage, Path(tmp)))
    print(
        f"restore-known-good on real Triton: {args.reps} x {args.damage} weights, "
        f"model_files.interval_s={args.interval:g}"
    )
    print(f"{'part':<38} {'median':>8} {'worst':>8}")
    parts = (
        ("detect_s", "detection (damage -> finding)"),
        ("restore_s", "restore (finding -> canary verified)"),
        ("start_s", "  of which incident -> playbook start"),
        ("copy_reload_s", "  of which copy + Triton reload"),
        ("verify_s", "  of which canary verification"),
        ("total_s", "total (damage -> verified restore)"),
    )
    for key, label in parts:
        values = [r[key] for r in rows]
        print(f"{label:<38} {statistics.median(values):>7.2f}s {max(values):>7.2f}s")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

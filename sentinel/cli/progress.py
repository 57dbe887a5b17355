"""Step progress for `sentinel playbook run`: a run may wait on Triton, canaries or an
approval for minutes, so while the command waits, each step's change of state is printed
to stderr (stdout stays the run's result). ``--quiet`` turns it off."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, TextIO

Fetch = Callable[[], list[dict[str, Any]]]
"""Recent runs, newest first, each with its ``steps`` (as ``sentinel runs --json``)."""


class RunProgress:
    """Polls ``fetch`` every ``interval`` seconds in a thread and prints, for the newest run
    of ``playbook`` started at or after ``since``, each step whose state changed. A last
    poll when the block ends prints the steps that changed since the one before."""

    def __init__(
        self, fetch: Fetch, playbook: str, since: float, out: TextIO, interval: float = 1.0
    ) -> None:
        self.fetch = fetch
        self.playbook = playbook
        self.since = since
        self.out = out
        self.interval = interval
        self._seen: dict[tuple[str, str], str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="run-progress", daemon=True)
        self._lock = threading.Lock()

    def __enter__(self) -> RunProgress:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=max(5.0, 2 * self.interval))
        if exc_type is None:
            self.poll()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.poll()

    def poll(self) -> list[str]:
        """One look at the runs; the lines printed (a failed look prints nothing: the
        command's own answer reports what went wrong)."""
        try:
            runs = self.fetch()
        except Exception:  # progress is best effort: the result is what counts
            return []
        mine = [
            r
            for r in runs
            if r.get("playbook") == self.playbook and float(r.get("started_at", 0)) >= self.since
        ]
        if not mine:
            return []
        run = max(mine, key=lambda r: float(r["started_at"]))
        lines = []
        with self._lock:
            for step in run.get("steps") or []:
                key = (str(step.get("phase", "")), str(step.get("name", "")))
                status = str(step.get("status", ""))
                if self._seen.get(key) != status:
                    self._seen[key] = status
                    lines.append(
                        f"[{time.strftime('%H:%M:%S')}] {run['id']} {key[0]} {key[1]}"
                        f" ({step.get('action', '?')}): {status}"
                    )
            for line in lines:
                print(line, file=self.out, flush=True)
        return lines

"""Hot reload of the playbook folders: on SIGHUP and when a file changes, all or nothing.

A reload that finds any invalid file keeps every playbook as it was (a half-edited
folder must not drop the playbook that was running fine); the problems are logged,
counted in ``sentinel_playbooks_invalid`` and shown on /readyz until a good reload.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import structlog

from sentinel.base.clock import Clock

log = structlog.get_logger(__name__)

Fingerprint = tuple[tuple[str, int, int], ...]


def fingerprint(dirs: list[Path]) -> Fingerprint:
    """(path, mtime_ns, size) of every playbook file: any edit, addition or removal changes it."""
    out: list[tuple[str, int, int]] = []
    for d in dirs:
        try:
            files = sorted([*d.glob("*.yaml"), *d.glob("*.yml")])
        except OSError:
            continue
        for f in files:
            try:
                st = f.stat()
            except OSError:
                continue  # removed between the listing and the stat: the next look sees it
            out.append((str(f), st.st_mtime_ns, st.st_size))
    return tuple(out)


class PlaybookWatcher:
    """Calls ``reload`` when the folders' fingerprint changes (polled: works on every
    filesystem, ConfigMap symlink swaps included)."""

    def __init__(
        self,
        dirs: list[Path],
        reload: Callable[[], object],
        clock: Clock,
        interval_s: float,
    ) -> None:
        self.dirs = dirs
        self.reload = reload
        self.clock = clock
        self.interval_s = interval_s
        self.seen = fingerprint(dirs)

    def check(self) -> bool:
        """One look; True when the files changed and a reload was asked for."""
        now = fingerprint(self.dirs)
        if now == self.seen:
            return False
        self.seen = now
        log.info("playbook_files_changed", files=len(now))
        self.reload()
        return True

    async def run(self) -> None:
        while True:
            await self.clock.sleep(self.interval_s)
            self.check()

"""One HTTP client stack: the notifiers send through aiohttp's client (sentinel.notify.http);
no httpx and no vendor SDK (slack_sdk, pagerduty and its httpx2)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import sentinel.notify

SDKS = {"slack_sdk", "pagerduty", "httpx2", "requests", "urllib3"}
NOTIFIERS = (
    "sentinel.notify.teller, sentinel.notify.slack, sentinel.notify.pagerduty, "
    "sentinel.notify.alertmanager"
)


def _loaded(imports: str, modules: set[str]) -> list[str]:
    """The names in ``modules`` (packages or dotted modules) that importing ``imports`` loads."""
    probe = (
        f"import json, sys, {imports}; print(json.dumps(sorted(set(sys.modules) & {modules!r})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    loaded: list[str] = json.loads(done.stdout)
    return loaded


def _imported_packages(source: Path) -> set[str]:
    """Top-level packages a module imports anywhere in it (in functions too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text(), str(source))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_notifiers_load_aiohttps_client_and_neither_httpx_nor_sdks() -> None:
    """Importing the senders (Slack, PagerDuty, Alertmanager) loads aiohttp's client only."""
    wanted = SDKS | {"httpx", "aiohttp.client"}
    assert ["aiohttp.client"] == _loaded(NOTIFIERS, wanted)


def test_no_notify_module_imports_httpx_or_an_sdk() -> None:
    """No file under sentinel/notify imports httpx or a vendor SDK, not even lazily."""
    folder = Path(sentinel.notify.__file__).parent
    offenders = {
        f"{path.name}: {pkg}"
        for path in sorted(folder.glob("*.py"))
        for pkg in _imported_packages(path) & (SDKS | {"httpx"})
    }
    assert 10 <= len(list(folder.glob("*.py")))  # the scan saw the stage's modules
    assert set() == offenders


@pytest.mark.parametrize("entry", ["sentinel.wiring", "sentinel.cli", "sentinel.cli.support"])
def test_entry_points_load_no_vendor_sdk(entry: str) -> None:
    """The daemon's wiring and the CLI load no vendor HTTP SDK (aiohttp is the API server)."""
    assert [] == _loaded(entry, SDKS)

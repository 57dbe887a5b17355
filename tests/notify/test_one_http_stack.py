"""One HTTP client stack: the notifiers, the Kubernetes client and the CLI send through
httpx; no vendor SDK (slack_sdk, pagerduty and its httpx2) and no aiohttp client."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

SDKS = {"slack_sdk", "pagerduty", "httpx2", "requests", "urllib3"}


def _loaded(imports: str, packages: set[str]) -> list[str]:
    """The top-level packages of ``packages`` that importing ``imports`` loads."""
    probe = (
        f"import json, sys, {imports}; "
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & {packages!r})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    loaded: list[str] = json.loads(done.stdout)
    return loaded


def test_notifiers_and_kubernetes_client_load_neither_sdks_nor_aiohttp() -> None:
    """The senders (Slack, PagerDuty, Alertmanager, Kubernetes) load httpx, no SDK, no aiohttp."""
    imports = (
        "sentinel.notify.teller, sentinel.notify.slack, sentinel.notify.pagerduty, "
        "sentinel.notify.alertmanager, sentinel.runbook.kube"
    )
    assert ["httpx"] == _loaded(imports, SDKS | {"aiohttp", "httpx"})


@pytest.mark.parametrize("entry", ["sentinel.wiring", "sentinel.cli", "sentinel.cli.support"])
def test_entry_points_load_no_vendor_sdk(entry: str) -> None:
    """The daemon's wiring and the CLI load no vendor HTTP SDK (aiohttp is the API server)."""
    assert [] == _loaded(entry, SDKS)

"""The real-Triton test bed: fixtures for tests marked ``@pytest.mark.triton``.

* ``triton_server`` (session): one real tritonserver on free loopback ports serving
  ``examples/model_repository``; started once, shared by every test.
* ``digits``: the ``digits`` model on that server, with ``reconfigure(...)`` to reload
  it with a config override; the on-disk config is restored after the test.
* ``dedicated_triton``: a server of the test's own (for tests that stop or kill it).
* ``triton_factory``: makes dedicated servers for other model repositories.
* ``triton_adapter``: sentinel's adapter to the session server, once per protocol
  (``make_adapter(server, "grpc"|"http")`` for other servers).

Tests marked ``triton`` are skipped (not failed) only when the nvidia-pytriton wheel
is missing.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sentinel.probes.settings import TritonSettings
from sentinel.probes.triton import TritonAdapter, connect
from sentinel.testing.triton_local import LocalTriton, read_model_config

ROOT = Path(__file__).resolve().parent.parent
MODEL_REPOSITORY = ROOT / "examples" / "model_repository"
GOLDEN_DIGITS = ROOT / "examples" / "golden" / "digits.npz"
HAVE_PYTRITON = importlib.util.find_spec("pytriton") is not None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip triton-marked tests when tritonserver's wheel is not installed."""
    if HAVE_PYTRITON:
        return
    skip = pytest.mark.skip(reason="nvidia-pytriton (tritonserver) is not installed")
    for item in items:
        if "triton" in item.keywords:
            item.add_marker(skip)


def _need_pytriton() -> None:
    """Skip a test that asks for a server (even unmarked) when the wheel is missing."""
    if not HAVE_PYTRITON:
        pytest.skip("nvidia-pytriton (tritonserver) is not installed")


@pytest.fixture(scope="session")
def triton_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalTriton]:
    """A real tritonserver serving examples/model_repository, shared by the session."""
    _need_pytriton()
    server = LocalTriton(MODEL_REPOSITORY, workdir=tmp_path_factory.mktemp("triton"))
    server.start()
    try:
        yield server
    finally:
        server.kill()  # nothing to drain in tests; a graceful stop costs seconds
        server.close()


def _post(url: str, body: dict[str, Any], timeout_s: float = 60.0) -> None:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s):
            pass
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"{url}: {exc.code} {exc.read().decode(errors='replace')}") from exc


class ModelHandle:
    """One model of a local server, reloadable with config overrides (synchronously)."""

    def __init__(self, server: LocalTriton, name: str) -> None:
        self.server = server
        self.name = name
        self.default_config = read_model_config(server.model_repository / name)

    def config_with(
        self, max_batch_size: int | None = None, **parameters: object
    ) -> dict[str, Any]:
        """The on-disk config with ``max_batch_size`` and string parameters replaced."""
        config = copy.deepcopy(self.default_config)
        if max_batch_size is not None:
            config["max_batch_size"] = max_batch_size
        params = config.setdefault("parameters", {})
        for key, value in parameters.items():
            params[key] = {"string_value": str(value)}
        return config

    def load(self, config: dict[str, Any] | None) -> None:
        """(Re)load the model, with this full config override when given."""
        body: dict[str, Any] = {}
        if config is not None:
            body = {"parameters": {"config": json.dumps(config)}}
        _post(f"http://{self.server.http_url}/v2/repository/models/{self.name}/load", body)

    def reconfigure(self, max_batch_size: int | None = None, **parameters: object) -> None:
        """Reload with knobs changed, e.g. ``reconfigure(precision="int8", delay_ms=50)``."""
        self.load(self.config_with(max_batch_size, **parameters))

    def unload(self) -> None:
        _post(f"http://{self.server.http_url}/v2/repository/models/{self.name}/unload", {})
        # unload returns before the model is gone; wait so the test sees it unloaded
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and self.is_ready():
            time.sleep(0.05)

    def is_ready(self) -> bool:
        url = f"http://{self.server.http_url}/v2/models/{self.name}/ready"
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def served_config(self) -> dict[str, Any] | None:
        """The config Triton serves now (None when the model is not loaded)."""
        url = f"http://{self.server.http_url}/v2/models/{self.name}/config"
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                config: dict[str, Any] = json.loads(resp.read())
                return config
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def is_default(self) -> bool:
        """Ready, with the on-disk batch size and knobs."""
        served = self.served_config()
        return (
            served is not None
            and self.is_ready()
            and served.get("max_batch_size") == self.default_config.get("max_batch_size")
            and served.get("parameters") == self.default_config.get("parameters")
        )

    def restore(self) -> None:
        """Back to the on-disk config (also reloads a model a test unloaded), checked: a
        knob left behind (a hang, say) fails the test that set it, not a later one."""
        problem = ""
        for _ in range(3):
            if not self.server.is_running() or self.is_default():
                return
            try:
                self.load(self.default_config)
            except (OSError, RuntimeError) as exc:  # e.g. a reload queued behind a hang
                problem = str(exc)
                time.sleep(1.0)
        if self.server.is_running() and not self.is_default():
            raise RuntimeError(f"{self.name} could not be restored to its default: {problem}")


@pytest.fixture
def digits(triton_server: LocalTriton) -> Iterator[ModelHandle]:
    """The session server's ``digits`` model, in its default config before and after."""
    handle = ModelHandle(triton_server, "digits")
    handle.restore()  # whatever an earlier test (of any module) left behind
    try:
        yield handle
    finally:
        handle.restore()


@pytest.fixture
def triton_factory(tmp_path: Path) -> Iterator[Callable[..., LocalTriton]]:
    """Start dedicated servers: ``triton_factory(repo=..., **LocalTriton kwargs)``."""
    _need_pytriton()
    servers: list[LocalTriton] = []

    def make(repo: Path = MODEL_REPOSITORY, **kwargs: Any) -> LocalTriton:
        workdir = tmp_path / f"triton-{len(servers)}"
        server = LocalTriton(repo, workdir=workdir, **kwargs)
        servers.append(server)
        return server.start()

    try:
        yield make
    finally:
        for server in servers:
            server.kill()
            server.close()


@pytest.fixture
def dedicated_triton(triton_factory: Callable[..., LocalTriton]) -> LocalTriton:
    """A started server of this test's own, free to stop, kill or restart."""
    return triton_factory()


def make_adapter(server: LocalTriton, protocol: str, timeout_s: float = 5.0) -> TritonAdapter:
    """sentinel's Triton adapter for a local server over ``grpc`` or ``http``."""
    url = server.grpc_url if protocol == "grpc" else server.http_url
    settings = TritonSettings.model_validate(
        {"url": url, "protocol": protocol, "timeout_s": timeout_s}
    )
    return connect(settings)


@pytest.fixture(params=["grpc", "http"])
async def triton_adapter(
    request: pytest.FixtureRequest, digits: ModelHandle
) -> AsyncIterator[TritonAdapter]:
    """The session server through sentinel's adapter, once per protocol (digits in default)."""
    adapter = make_adapter(digits.server, str(request.param))
    try:
        yield adapter
    finally:
        await adapter.close()

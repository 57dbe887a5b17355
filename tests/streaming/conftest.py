"""A real tritonserver serving examples/llm_repository (the streaming test bed)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from triton_fixtures import ROOT, ModelHandle, _need_pytriton

from sentinel.testing.triton_local import LocalTriton

LLM_REPOSITORY = ROOT / "examples" / "llm_repository"


@pytest.fixture(scope="session")
def llm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalTriton]:
    """One real tritonserver with the streaming model and its BYTES/BF16 sibling."""
    _need_pytriton()
    server = LocalTriton(LLM_REPOSITORY, workdir=tmp_path_factory.mktemp("llm-triton"))
    server.start()
    try:
        yield server
    finally:
        server.kill()
        server.close()


@pytest.fixture
def charlm(llm_server: LocalTriton) -> Iterator[ModelHandle]:
    """The streaming model in its on-disk config before and after the test."""
    handle = ModelHandle(llm_server, "charlm")
    # the pbtxt's JSON form leaves out a zero max_batch_size; Triton serves it as 0
    handle.default_config.setdefault("max_batch_size", 0)
    handle.restore()
    try:
        yield handle
    finally:
        handle.restore()

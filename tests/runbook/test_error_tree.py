"""The act stage's errors: one tree, and retryability decided by type, not by message."""

from __future__ import annotations

import errno

import pytest

from sentinel.base.errors import Retryable, SentinelError, is_retryable
from sentinel.runbook.actions.base import classify
from sentinel.runbook.errors import ActionError, StepTimeout, TransientError, UnknownPlaybook
from sentinel.runbook.kube import ApiError, ApiUnavailable, Conflict, KubeApi
from sentinel.testing.kubernetes import KubernetesApiStandIn


class _AdapterBusy(Retryable):
    """An adapter's own error that says it may pass."""


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (ConnectionRefusedError("connection refused"), True),
        (TimeoutError("timed out"), True),
        (_AdapterBusy("busy"), True),
        (OSError(errno.ENOSPC, "No space left on device"), False),
        (OSError(errno.ECONNRESET, "reset by peer"), True),
        (RuntimeError("server unavailable, try again"), False),
        (SentinelError("timeout in the message only"), False),
    ],
)
def test_classify_decides_retryability_by_type(exc: BaseException, transient: bool) -> None:
    """classify() makes an error transient only when its type says it may pass."""
    err = classify(exc)
    assert (transient, transient) == (isinstance(err, TransientError), is_retryable(err))
    assert f"{type(exc).__name__}: {exc}" == str(err)


def test_action_errors_hang_below_sentinel_error() -> None:
    """Every act-stage error is a SentinelError; only the transient ones are Retryable."""
    errors = [ActionError("x"), StepTimeout("x"), UnknownPlaybook("x"), ApiError(404, "x")]
    assert [True] * 4 == [isinstance(e, SentinelError) for e in errors]
    assert [False] * 4 == [is_retryable(e) for e in errors]
    assert is_retryable(ApiUnavailable(503, "x"))


def test_unknown_playbook_is_still_a_key_error() -> None:
    """The API and CLI answer "no such playbook" to a KeyError: UnknownPlaybook is one."""
    with pytest.raises(KeyError):
        raise UnknownPlaybook("nope")


async def test_api_statuses_become_typed_errors() -> None:
    """404 is a plain ApiError, 409 a Conflict, 429 and an unreachable server retryable."""
    async with KubernetesApiStandIn(token="t") as server:
        server.pdb_refusals = 1
        async with KubeApi(server.url, token=lambda: "t") as kube:
            caught = []
            for method, path, body in [
                ("GET", "/apis/apps/v1/namespaces/ns/deployments/none", None),
                ("POST", "/api/v1/namespaces/ns/pods/p/eviction", {"kind": "Eviction"}),
            ]:
                with pytest.raises(ApiError) as info:
                    await kube.request(method, path, body)
                caught.append((type(info.value), info.value.status))
            lease = {"metadata": {"name": "l"}}
            await kube.create_lease("ns", lease)
            with pytest.raises(Conflict):
                await kube.create_lease("ns", lease)
        await server.close()
        async with KubeApi(server.url, token=lambda: "t") as kube:
            with pytest.raises(ApiUnavailable) as down:
                await kube.get_lease("ns", "l")
    assert [(ApiError, 404), (ApiUnavailable, 429)] == caught
    assert (0, True) == (down.value.status, is_retryable(down.value))

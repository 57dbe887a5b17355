"""The act stage's errors, one tree below :class:`~sentinel.base.errors.SentinelError`.

Whether a failed step is tried again is decided by type: an error that may pass
derives from :class:`~sentinel.base.errors.Retryable` (``TransientError``), and
the executor asks :func:`~sentinel.base.errors.is_retryable`.
"""

from __future__ import annotations

from sentinel.base.errors import Retryable, SentinelError

__all__ = ["ActionError", "RunbookError", "StepTimeout", "TransientError", "UnknownPlaybook"]


class RunbookError(SentinelError):
    """Root of the errors the runbook stage raises (``TemplateFailure`` and the Kubernetes
    client's ``ApiError`` hang below it too, in their own modules)."""


class ActionError(RunbookError):
    """The action failed and retrying will not help (bad config, refused, not found)."""


class TransientError(ActionError, Retryable):
    """The action failed for a reason that may pass (connection refused, 429, timeout)."""


class StepTimeout(ActionError):
    """The step's action ran past its timeout (not retried: it may have half-happened)."""


class UnknownPlaybook(RunbookError, KeyError):
    """No playbook by that name is loaded.

    Also a ``KeyError``: the control API and the CLI answer "no such playbook" to that.
    """

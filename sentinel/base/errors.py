"""The roots of every error sentinel raises on purpose.

One tree per concern hangs below :class:`SentinelError`: :class:`InputError`
(a config, file or argument a person gave), :class:`ProbeError` (observing
Triton and the GPUs), the runbook's ``ActionError`` and notify's
``DeliveryError``. Whether trying again may help is a *type*, not a
substring: an error that may pass also derives from :class:`Retryable`, and
:func:`is_retryable` is the one place that judges exceptions from libraries.
"""

from __future__ import annotations

import errno

__all__ = ["InputError", "ProbeError", "Retryable", "SentinelError", "is_retryable"]


class SentinelError(Exception):
    """Base of every error sentinel raises on purpose; ``str()`` is a one-line reason."""


class Retryable(SentinelError):
    """Trying the same thing again later may succeed (timeouts, refused connections, 429).

    Mixed into a concern's own error: ``class TritonTimeout(TritonError, Retryable)``.
    """

    retry_after: float | None = None
    """Seconds the other side asked us to wait, when it said (``Retry-After``)."""


class InputError(SentinelError):
    """Something a person gave (a config, a file, an argument) is wrong; retrying the same
    input cannot help, and the message says what to fix.

    Errors that callers have always caught as ``ValueError`` also derive from it:
    ``class SilenceError(InputError, ValueError)``.
    """


class ProbeError(SentinelError):
    """Observing failed: Triton or NVML did not answer as it should."""


# OS errors that say the other side or the network may come back; anything else
# from the OS (a full disk, a missing file, a permission) will not pass by itself.
_TRANSIENT_ERRNOS = frozenset(
    {
        errno.ECONNREFUSED,
        errno.ECONNRESET,
        errno.ECONNABORTED,
        errno.EPIPE,
        errno.ETIMEDOUT,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.ENETDOWN,
        errno.EAGAIN,
        errno.EINTR,
        errno.EBUSY,
    }
)


def is_retryable(exc: BaseException) -> bool:
    """Whether trying again may help: by type for our errors, by kind for foreign ones."""
    if isinstance(exc, Retryable):
        return True
    if isinstance(exc, SentinelError):
        return False
    if isinstance(exc, TimeoutError | ConnectionError):
        return True
    if isinstance(exc, OSError):
        return exc.errno in _TRANSIENT_ERRNOS
    return False

"""Small builders shared by the notify tests."""

from __future__ import annotations

from sentinel.base.clock import FakeClock
from sentinel.notify.outbox import Dispatcher
from sentinel.vocabulary.findings import Cleared, Finding, Severity, Subject


def finding(
    model: str,
    at: float,
    kind: str = "latency_spike",
    severity: Severity = Severity.CRITICAL,
    gpu: str | None = None,
) -> Finding:
    return Finding(
        kind=kind,
        severity=severity,
        subject=Subject(model=model, version="1", gpu_uuid=gpu),
        started_at=at - 30,
        detected_at=at,
        summary=f"p99 latency of {model} 412 ms > SLO 250 ms for 30 s",
        evidence={"p99_ms": 412.0, "slo_ms": 250.0, "samples": 30},
        detector="latency",
    )


def cleared(model: str, at: float, kind: str = "latency_spike") -> Cleared:
    return Cleared(kind=kind, subject=Subject(model=model, version="1"), cleared_at=at)


async def drain(dispatcher: Dispatcher, clock: FakeClock, rounds: int = 500) -> int:
    """Deliver until the outbox is empty, jumping the fake clock to each due time."""
    for i in range(rounds):
        nxt = await dispatcher.deliver_due()
        if nxt is None:
            return i
        wait = nxt - clock.now()
        if wait > 0:
            clock.set(clock.monotonic() + wait)
    raise AssertionError("the outbox did not drain")

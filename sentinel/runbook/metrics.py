"""The runbook's Prometheus metrics (names used by alerts/sentinel.rules.yaml)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class RunbookMetrics:
    """Counters and gauges on the daemon's injected registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.runs = Counter(
            "sentinel_playbook_runs_total",
            "Playbook runs by outcome (succeeded, failed, planned, blocked, paged, skipped...).",
            ["playbook", "outcome"],
            registry=registry,
        )
        self.blocks = Counter(
            "sentinel_playbook_guard_blocks_total",
            "Runs or steps a guard stopped (breaker, budget, cooldown, stale, cleared, gate, "
            "lock, fleet, when).",
            ["playbook", "guard"],
            registry=registry,
        )
        self.actions = Counter(
            "sentinel_playbook_actions_total",
            "Actions called by playbook steps, by outcome.",
            ["action", "outcome"],
            registry=registry,
        )
        self.budget_exhausted = Gauge(
            "sentinel_playbook_budget_exhausted",
            "1 while a playbook's run budget is spent on some target (it pages instead).",
            ["playbook"],
            registry=registry,
        )
        self.breaker_open = Gauge(
            "sentinel_breaker_open",
            "1 while the circuit breaker stops all automation (until `sentinel breaker reset`).",
            registry=registry,
        )
        self.playbooks_invalid = Gauge(
            "sentinel_playbooks_invalid",
            "Problems found in the playbook files (or their overrides) at the last load; "
            "the playbooks concerned do not run, and /readyz fails while any remain.",
            registry=registry,
        )
        self.leases_active = Gauge(
            "sentinel_playbook_leases_active",
            "Degradations (FP16, smaller batch) currently held as leases, awaiting restore.",
            registry=registry,
        )

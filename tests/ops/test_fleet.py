"""Fleet guard against a loopback STAND-IN of the Kubernetes API (sentinel.testing.kubernetes)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pydantic
import pytest

from sentinel.base.clock import FakeClock
from sentinel.runbook.fleet import (
    STATE_ANNOTATION,
    FleetBudget,
    FleetHalt,
    LeaseFleetGuard,
    build_fleet_guard,
    deployment_replicas,
    static_replicas,
)
from sentinel.runbook.guards import AllowAllGuard, FleetGuard
from sentinel.runbook.kube import KubeApi
from sentinel.runbook.settings import FleetSettings
from sentinel.testing.kubernetes import KubernetesApiStandIn

NS = "inference"
LEASE = "triton-remediation"

GuardFactory = Callable[..., LeaseFleetGuard]


@pytest.fixture
async def make_guard(
    lease_server: KubernetesApiStandIn,
) -> AsyncIterator[GuardFactory]:
    """Build guards (one per simulated pod) that share the stand-in and a clock."""
    apis: list[KubeApi] = []

    def make(
        holder: str,
        clock: FakeClock,
        replicas: int = 10,
        budget: FleetBudget | None = None,
        halts: list[FleetHalt] | None = None,
    ) -> LeaseFleetGuard:
        api = KubeApi(lease_server.url, token=lambda: lease_server.token)
        apis.append(api)

        async def on_halt(halt: FleetHalt) -> None:
            if halts is not None:
                halts.append(halt)

        return LeaseFleetGuard(
            api,
            namespace=NS,
            lease=LEASE,
            holder=holder,
            replicas=static_replicas(replicas),
            clock=clock,
            budget=budget,
            on_halt=on_halt,
        )

    yield make
    for api in apis:
        await api.aclose()


async def with_clock(clock: FakeClock, *coros: Awaitable[bool]) -> list[bool]:
    """Run racers concurrently, moving the fake clock so their backoff sleeps end."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    while not all(t.done() for t in tasks):
        await clock.advance(0.05)
        await asyncio.sleep(0.001)
    return [t.result() for t in tasks]


def stored_state(server: KubernetesApiStandIn) -> dict[str, object]:
    lease = server.leases[(NS, LEASE)]
    state: dict[str, object] = json.loads(lease["metadata"]["annotations"][STATE_ANNOTATION])
    return state


async def test_two_sentinels_racing_for_the_last_slot_exactly_one_acts(
    lease_server: KubernetesApiStandIn, make_guard: GuardFactory
) -> None:
    """Two pods read the same resourceVersion for the last slot: one wins, one gets 409 then no."""
    clock = FakeClock()
    first = make_guard("pod-0", clock)
    assert await first.acquire("restart", "pod-0")  # creates the lease: 1 slot for 10 replicas
    clock.set(clock.monotonic() + 601)  # the slot frees up again
    a, b = make_guard("pod-1", clock), make_guard("pod-2", clock)
    lease_server.hold_gets(2)
    results = await with_clock(clock, a.acquire("restart", "pod-1"), b.acquire("restart", "pod-2"))
    assert [False, True] == sorted(results)
    conflicts = [r for r in lease_server.requests if r[0] == "PUT" and r[2] == 409]
    assert 1 == len(conflicts)
    actions = stored_state(lease_server)["actions"]
    assert isinstance(actions, list)
    assert 1 == len(actions)
    winner = "pod-1" if results[0] else "pod-2"
    assert winner == actions[0]["holder"]


async def test_two_sentinels_racing_to_create_the_lease_exactly_one_acts(
    lease_server: KubernetesApiStandIn, make_guard: GuardFactory
) -> None:
    """Both see no Lease and POST; the second gets 409 AlreadyExists, re-reads and is refused."""
    clock = FakeClock()
    a, b = make_guard("pod-1", clock), make_guard("pod-2", clock)
    lease_server.hold_gets(2)
    results = await with_clock(clock, a.acquire("evict", "pod-1"), b.acquire("evict", "pod-2"))
    assert [False, True] == sorted(results)
    assert [("POST", 201), ("POST", 409)] == sorted(
        (m, s) for m, _, s in lease_server.requests if m == "POST"
    )


async def test_budget_is_a_share_of_replicas_per_window(
    lease_server: KubernetesApiStandIn, make_guard: GuardFactory
) -> None:
    """30 replicas at 10% give 3 slots per 10 minutes; the 4th waits for the window to slide."""
    clock = FakeClock()
    guards = [make_guard(f"pod-{i}", clock, replicas=30) for i in range(5)]
    granted = []
    for i, g in enumerate(guards[:4]):
        granted.append(await g.acquire("restart", f"pod-{i}"))
        clock.set(clock.monotonic() + 60)
    assert [True, True, True, False] == granted
    refusal = guards[3].last_decision
    assert refusal is not None
    assert "3 of 3" in refusal.reason
    clock.set(600 + 1)  # the first action (t=0) leaves the window
    assert await guards[4].acquire("restart", "pod-4")


async def test_small_fleets_still_get_one_slot(
    lease_server: KubernetesApiStandIn, make_guard: GuardFactory
) -> None:
    """With 3 replicas, 10% rounds down to 0 but min_slots keeps one slot per window."""
    clock = FakeClock()
    assert [True, False] == [
        await make_guard("pod-0", clock, replicas=3).acquire("restart", "pod-0"),
        await make_guard("pod-1", clock, replicas=3).acquire("restart", "pod-1"),
    ]


async def test_most_replicas_degraded_halts_automation_and_pages_once(
    lease_server: KubernetesApiStandIn, make_guard: GuardFactory
) -> None:
    """When 3 of 4 replicas report degraded, every acquire is refused and one halt is paged."""
    clock = FakeClock()
    halts: list[FleetHalt] = []
    budget = FleetBudget(max_fraction=1.0)  # plenty of slots: only the halt can refuse
    guards = [make_guard(f"pod-{i}", clock, 4, budget, halts) for i in range(4)]
    await guards[0].report(degraded=True)
    await guards[1].report(degraded=True)
    assert [] == halts
    await guards[2].report(degraded=True)
    assert [["pod-0", "pod-1", "pod-2"]] == [h.degraded for h in halts]
    results = [await g.acquire("restart", f"pod-{i}") for i, g in enumerate(guards)]
    assert [False, False, False, False] == results
    assert 1 == len(halts)
    state = stored_state(lease_server)
    assert isinstance(state["halted"], dict)
    assert "pod-2" == state["halted"]["by"]


async def test_halt_is_paged_once_when_replicas_trip_it_concurrently(
    lease_server: KubernetesApiStandIn, make_guard: GuardFactory
) -> None:
    """Four pods asking to act at once (each counts itself degraded) page exactly once in all."""
    clock = FakeClock()
    halts: list[FleetHalt] = []
    budget = FleetBudget(max_fraction=1.0, max_attempts=10)
    guards = [make_guard(f"pod-{i}", clock, 4, budget, halts) for i in range(4)]
    results = await with_clock(
        clock, *(g.acquire("restart", f"pod-{i}") for i, g in enumerate(guards))
    )
    assert 1 == len(halts)
    assert 2 == sum(results)  # slots went to the first two; the 3rd degraded pod trips the halt


async def test_halt_clears_when_replicas_recover(
    lease_server: KubernetesApiStandIn, make_guard: GuardFactory
) -> None:
    """Once degraded reports drop back under the threshold, a slot can be taken again."""
    clock = FakeClock()
    halts: list[FleetHalt] = []
    guards = [
        make_guard(f"pod-{i}", clock, 4, FleetBudget(max_fraction=1.0), halts) for i in range(4)
    ]
    for g in guards[:3]:
        await g.report(degraded=True)
    await guards[1].report(degraded=False)
    await guards[2].report(degraded=False)
    assert await guards[3].acquire("restart", "pod-3")
    assert stored_state(lease_server)["halted"] is None


async def test_unreachable_api_denies(
    make_guard: GuardFactory, lease_server: KubernetesApiStandIn
) -> None:
    """When the API server cannot be reached, the guard refuses rather than act uncoordinated."""
    clock = FakeClock()
    guard = make_guard("pod-0", clock)
    await lease_server.close()
    decision = await guard.decide("restart", "pod-0")
    assert (False, True) == (decision.granted, "unusable" in decision.reason)


async def test_corrupt_lease_state_denies_and_names_the_annotation(
    lease_server: KubernetesApiStandIn, make_guard: GuardFactory
) -> None:
    """Garbage in the annotation refuses with a reason naming it, and is left for a human."""
    clock = FakeClock()
    guard = make_guard("pod-0", clock)
    assert await guard.acquire("restart", "pod-0")
    lease_server.leases[(NS, LEASE)]["metadata"]["annotations"][STATE_ANNOTATION] = "{not json"
    decision = await guard.decide("restart", "pod-0")
    assert (False, True) == (decision.granted, STATE_ANNOTATION in decision.reason)
    assert (
        "{not json" == lease_server.leases[(NS, LEASE)]["metadata"]["annotations"][STATE_ANNOTATION]
    )


async def test_wrong_token_denies(lease_server: KubernetesApiStandIn) -> None:
    """A 401 from the API server is a refusal with the status in the reason."""
    api = KubeApi(lease_server.url, token=lambda: "wrong")
    guard = LeaseFleetGuard(
        api, namespace=NS, lease=LEASE, holder="p", replicas=static_replicas(5), clock=FakeClock()
    )
    decision = await guard.decide("restart", "p")
    await api.aclose()
    assert (False, True) == (decision.granted, "401" in decision.reason)


async def test_replica_count_is_read_from_the_deployment(
    lease_server: KubernetesApiStandIn, tmp_path: Path
) -> None:
    """deployment_replicas reads spec.replicas, authenticated by the mounted token file."""
    lease_server.deployments[(NS, "triton")] = 20
    (tmp_path / "token").write_text(lease_server.token + "\n", encoding="utf-8")
    api = KubeApi.in_cluster(sa_dir=tmp_path, base_url=lease_server.url)
    count = await deployment_replicas(api, NS, "triton")()
    await api.aclose()
    assert 20 == count


async def test_allow_all_guard_satisfies_the_protocol() -> None:
    """Outside Kubernetes the local guard always allows."""
    guard: FleetGuard = AllowAllGuard()
    assert await guard.acquire("restart", "local")


async def test_build_fleet_guard_from_settings_uses_the_mounted_service_account(
    lease_server: KubernetesApiStandIn, tmp_path: Path
) -> None:
    """Enabled settings build a Lease guard: namespace and token from the mounted files."""
    (tmp_path / "token").write_text(lease_server.token, encoding="utf-8")
    (tmp_path / "namespace").write_text(NS, encoding="utf-8")
    lease_server.deployments[(NS, "triton")] = 4
    settings = FleetSettings(
        enabled=True,
        deployment="triton",
        api_url=lease_server.url,
        service_account_dir=tmp_path,
    )
    guard = build_fleet_guard(settings, holder="pod-0", clock=FakeClock())
    granted = await guard.acquire("restart", "pod-0")
    await guard.aclose()
    assert (True, [(NS, "sentinel-fleet-budget")]) == (granted, list(lease_server.leases))


async def test_disabled_fleet_settings_build_the_allow_all_guard() -> None:
    """The default (disabled) section gives the local allow-all guard."""
    guard = build_fleet_guard(FleetSettings(), holder="pod-0", clock=FakeClock())
    assert isinstance(guard, AllowAllGuard)


def test_enabled_fleet_settings_need_a_replica_source() -> None:
    """Enabling the guard without a deployment or a replica count is a config error."""
    with pytest.raises(pydantic.ValidationError, match="deployment"):
        FleetSettings(enabled=True)


async def test_a_lease_that_never_stops_changing_gives_up_after_max_attempts(
    lease_server: KubernetesApiStandIn, make_guard: GuardFactory
) -> None:
    """Every PUT loses a race: the guard retries max_attempts times, then refuses."""
    clock = FakeClock()
    guard = make_guard("pod-0", clock, replicas=30, budget=FleetBudget(max_attempts=3))
    assert await guard.acquire("restart", "pod-0")  # creates the lease
    lease_server.interfere = 100
    decisions = await with_clock(clock, guard.decide("restart", "pod-0"))
    puts = [s for m, _, s in lease_server.requests if m == "PUT"]
    assert (False, [409, 409, 409]) == (decisions[0].granted, puts)
    assert "contended" in decisions[0].reason


async def test_a_lost_race_is_retried_and_then_granted(
    lease_server: KubernetesApiStandIn, make_guard: GuardFactory
) -> None:
    """One 409 from another writer: the guard re-reads and takes the slot on the next try."""
    clock = FakeClock()
    guard = make_guard("pod-0", clock, replicas=30)
    assert await guard.acquire("restart", "pod-0")
    lease_server.interfere = 1
    assert await guard.acquire("restart", "pod-0")
    puts = [s for m, _, s in lease_server.requests if m == "PUT"]
    assert [409, 200] == puts


async def test_a_replica_that_stays_degraded_keeps_counting(
    lease_server: KubernetesApiStandIn, make_guard: GuardFactory
) -> None:
    """Reports refresh a degraded mark before it expires; silence lets it expire."""
    clock = FakeClock()
    guards = [make_guard(f"pod-{i}", clock, 4) for i in range(2)]
    await guards[0].report(degraded=True)
    await guards[1].report(degraded=True)
    clock.set(400)  # past half the window: pod-0's next report refreshes its mark
    await guards[0].report(degraded=True)
    clock.set(700)  # pod-1's mark (t=0) expired; pod-0's (t=400) did not
    decision = await guards[0].report(degraded=True)
    assert ["pod-0"] == decision.evidence["degraded"]

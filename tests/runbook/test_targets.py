"""Which model a playbook acts on when the incident names none (server- or GPU-wide)."""

from __future__ import annotations

from sentinel.runbook.context import synthetic_incident
from sentinel.runbook.targets import target_of


def test_model_incident_targets_its_model() -> None:
    """An incident about a model targets that model and version."""
    incident = synthetic_incident("pod", {"model": "resnet", "version": "3"}, "latency_spike", 0)
    assert {"model": "resnet", "version": "3"} == target_of(incident, ["digits"])


def test_server_wide_incident_targets_the_one_served_model() -> None:
    """A GPU or server incident on a one-model sidecar targets that model."""
    incident = synthetic_incident("pod", {}, "server_unhealthy", 0)
    assert {"model": "digits"} == target_of(incident, ["digits"])


def test_server_wide_incident_with_several_models_names_none() -> None:
    """With several served models sentinel does not guess which one to act on."""
    incident = synthetic_incident("pod", {}, "gpu_oom", 0)
    assert {} == target_of(incident, ["a", "b"])

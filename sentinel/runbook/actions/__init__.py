"""The action adapters a playbook step can name, by name."""

from __future__ import annotations

from sentinel.runbook.actions.base import Action, ActionSpec
from sentinel.runbook.actions.basic import CanaryCheck, DiagnosticsCapture, Wait
from sentinel.runbook.actions.k8s import EvictPod, RolloutRestart, Scale
from sentinel.runbook.actions.model_repo import CheckRepo, RestoreKnownGood
from sentinel.runbook.actions.notify import Page, SlackNote
from sentinel.runbook.actions.process import Exec, Signal
from sentinel.runbook.actions.triton import LoadModel, RestoreConfig, UnloadModel, WaitReady


def _registry() -> dict[str, Action]:
    actions: list[Action] = [
        LoadModel(),
        RestoreConfig(),
        UnloadModel(),
        WaitReady(),
        CanaryCheck(),
        Wait(),
        DiagnosticsCapture(),
        Signal(),
        Exec(),
        EvictPod(),
        RolloutRestart(),
        Scale(),
        SlackNote(),
        Page("trigger"),
        Page("acknowledge"),
        Page("resolve"),
        CheckRepo(),
        RestoreKnownGood(),
    ]
    return {a.spec.name: a for a in actions}


REGISTRY: dict[str, Action] = _registry()
"""Every action, by the name playbooks use."""

ACTIONS: dict[str, ActionSpec] = {name: a.spec for name, a in REGISTRY.items()}
"""What each action declares (side effects, mutating, disruptive, undoable)."""

__all__ = ["ACTIONS", "REGISTRY", "Action", "ActionSpec"]

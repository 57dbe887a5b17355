"""What a run acts on: the target of an incident, and the key that locks it."""

from __future__ import annotations

from collections.abc import Sequence

from sentinel.vocabulary.incidents import Incident


def target_of(incident: Incident, served: Sequence[str] = ()) -> dict[str, str]:
    """The model a playbook acts on: the incident's, or -- for a server- or GPU-wide
    incident -- the model this sidecar serves, when it serves exactly one."""
    target: dict[str, str] = {}
    if incident.subject.model is None and len(served) == 1:
        target["model"] = served[0]
    if incident.subject.model:
        target["model"] = incident.subject.model
    if incident.subject.version:
        target["version"] = incident.subject.version
    return target


def target_key(pod: str, target: dict[str, str]) -> str:
    """One run at a time per model on this server."""
    return f"{pod}/{target.get('model', '*')}"

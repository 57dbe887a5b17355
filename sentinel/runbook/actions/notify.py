"""Telling people from a playbook: Slack notes and PagerDuty pages, through the Teller."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from sentinel.runbook.actions.base import ActionContext, ActionParams, ActionSpec, NoUndo, param
from sentinel.vocabulary.incidents import Incident
from sentinel.vocabulary.notices import ActionUpdate, PageRequest


def _causes(incident: Incident) -> tuple[str, ...]:
    from sentinel.runbook.context import incident_causes  # here: context imports the actions

    return incident_causes(incident)


class SlackParams(ActionParams):
    text: str
    """The message, posted in the incident's thread."""


class PageParams(ActionParams):
    reason: str = ""
    """Why (default: '<verb> by playbook <name>')."""
    evidence: dict[str, Any] = Field(default_factory=dict)
    """Extra evidence attached to the page (the run id is always added)."""


class SlackNote(NoUndo):
    """A message in the incident's Slack thread."""

    spec = ActionSpec(
        "notify.slack", side_effects=True, summary="post to the incident thread", params=SlackParams
    )

    async def run(self, ctx: ActionContext, params: dict[str, Any]) -> dict[str, Any]:
        text = param(params, "text", str)
        await ctx.need_teller().tell(
            ActionUpdate(
                ctx.incident,
                ctx.playbook,
                ctx.run_id,
                ctx.step,
                "note",
                text,
                causes=_causes(ctx.incident),
            )
        )
        return {"text": text}


class Page(NoUndo):
    """Trigger, acknowledge or resolve the incident's PagerDuty page."""

    def __init__(self, verb: str) -> None:
        self.verb = verb
        self.spec = ActionSpec(
            f"pagerduty.{verb}",
            side_effects=True,
            summary=f"{verb} the incident's page",
            params=PageParams,
        )

    async def run(self, ctx: ActionContext, params: dict[str, Any]) -> dict[str, Any]:
        reason = param(params, "reason", str, f"{self.verb} by playbook {ctx.playbook}")
        evidence = param(params, "evidence", dict, {})
        await ctx.need_teller().tell(
            PageRequest(
                ctx.incident,
                reason,
                {"run_id": ctx.run_id, **evidence},
                self.verb,
                playbook=ctx.playbook,
                step=ctx.step or "",
                causes=_causes(ctx.incident),
            )
        )
        return {"action": self.verb, "reason": reason}

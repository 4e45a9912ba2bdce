"""The whole charter file (`CharterSpec`), its failure policy and the gateway's settings."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from charter.spec.backends import Models
from charter.spec.base import (
    StrictModel,
    check_id,
)
from charter.spec.capabilities import Instruction, Knowledge, Policy, Tool, ToolLimits
from charter.spec.guards import Guards
from charter.spec.holding import Critique, Drift, Memory
from charter.spec.persona import Persona, Principle

# --- failure policy ------------------------------------------------------------------------

FailureMode = Literal["closed", "open"]


class FailurePolicy(StrictModel):
    """What happens when a stage raises.

    `closed` (default) answers with the persona's apology and marks the turn blocked; `open` skips
    the stage and carries on. Either way the failure is recorded in the trace.
    """

    default: FailureMode = "closed"
    stages: dict[str, FailureMode] = Field(default_factory=dict)

    def mode_for(self, stage: str) -> FailureMode:
        return self.stages.get(stage, self.default)


# --- gateway ---------------------------------------------------------------------------------


class Gateway(StrictModel):
    """How `charter serve` treats what OpenAI clients send."""

    client_system: Literal["reject", "merge"] = Field(
        default="merge",
        description="A request's `system` and `developer` messages: merge places them below the "
        "charter's own prompt as operator instructions (checked by the input guards; the "
        "charter takes precedence); reject answers such a request with a 400.",
    )


# --- the charter ---------------------------------------------------------------------------


class CharterSpec(StrictModel):
    """The whole charter file."""

    id: str = Field(description="Identifier, also the model name on the gateway.")
    version: str = "1"
    persona: Persona
    constitution: list[Principle] = Field(default_factory=list)
    policies: list[Policy] = Field(default_factory=list)
    instructions: list[Instruction] = Field(default_factory=list)
    tools: list[Tool] = Field(default_factory=list)
    tool_limits: ToolLimits = Field(default_factory=ToolLimits)
    knowledge: Knowledge | None = None
    guards: Guards = Field(default_factory=Guards)
    critique: Critique = Field(default_factory=Critique)
    drift: Drift = Field(default_factory=Drift)
    memory: Memory = Field(default_factory=Memory)
    models: Models = Field(default_factory=Models)
    on_failure: FailurePolicy = Field(default_factory=FailurePolicy)
    gateway: Gateway = Field(default_factory=Gateway)
    tests: list[str] = Field(
        default_factory=list,
        description="Files of the team's own eval cases (YAML or JSONL), relative to the "
        "charter file: each is a suite `cases:<name>` in `charter eval` (docs/eval.md, "
        "'Your own cases').",
    )

    _id = field_validator("id")(check_id)

    @field_validator("constitution", "policies", "instructions", "tools")
    @classmethod
    def _unique_ids(cls, items: list[Any]) -> list[Any]:
        seen: set[str] = set()
        for item in items:
            key = item.name if isinstance(item, Tool) else item.id
            if key in seen:
                raise ValueError(f"duplicate id {key!r}")
            seen.add(key)
        return items

    @model_validator(mode="after")
    def _cost_budget_needs_a_price(self) -> CharterSpec:
        if self.tool_limits.max_cost is not None and self.models.chat.price is None:
            raise ValueError("tool_limits.max_cost needs models.chat.price")
        return self

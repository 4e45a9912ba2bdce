"""One turn's tool use as data: each call the model decided on, and what became of it.

A `Step` is one decided call (or the model's "no more calls", or a decision that could not
be read) with its `Action`. The trace shows the steps as `Step.to_dict()`
(`tools.detail.steps`, `generate.detail.client_tool_steps`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from charter.models.base import Usage

Call = dict[str, Any]
"""A decided call: {"tool": NAME, "arguments": {...}}."""

Action = Literal[
    "ran",
    "proposed",
    "answer",
    "invalid",
    "variant",
    "loop",
    "failed",
    "withheld",
    "refused",
    "awaiting_approval",
]
"""What became of a step:
- `ran`: the tool ran and the model saw its result;
- `proposed`: sent to the caller, who runs its own tools (the gateway's client tools);
- `answer`: the model made no call: it is done with tools;
- `invalid`: not run: an unknown tool, arguments the schema rejects, a required value
  nobody gave (`grounded_arguments`), or a decision that could not be read;
- `variant`: not run: a check found it adds nothing the request asked for (`variants`,
  `redundant`);
- `loop`: not run: the very same call was made earlier in the turn;
- `failed`: the tool raised an error or timed out;
- `withheld`: the tool ran, but the result guard flagged its result, which the model did
  not see;
- `refused`: a dangerous tool, and nobody can approve it;
- `awaiting_approval`: a dangerous tool: a human's approval was asked for.
"""

ACTIONS: tuple[Action, ...] = get_args(Action)

MADE: frozenset[Action] = frozenset({"ran", "withheld", "awaiting_approval", "proposed"})
"""The actions of calls the turn made (run, filed for approval, or proposed)."""

_TIMED_FIRST: frozenset[Action] = frozenset({"ran", "withheld"})


@dataclass
class Step:
    """One step of the tool loop: a decided call and what came of it (`action`)."""

    decision: Call | None
    """The call as decided, with the arguments it ran with when they were converted or had
    values dropped; {"tool": "none"} for `answer`; None for a decision that could not be
    read."""
    action: Action
    error: str | None = None
    """Why the call did not run, failed or was withheld."""
    converted: list[str] | None = None
    """Values rewritten into the form their parameter takes (percentages, dates)."""
    dropped: list[str] | None = None
    """`path=value` taken out of the arguments (values nobody gave, options nobody named)."""
    reference: str | None = None
    """The approval request's reference (`awaiting_approval`)."""
    ms: float | None = None
    """How long the tool ran."""
    result_chars: int | None = None
    """The size of the result the model saw."""

    def to_dict(self) -> dict[str, Any]:
        """The step as the trace shows it: the fields that are set.

        In the order traces have always had them (a run's time before its action).
        """
        out: dict[str, Any] = {"decision": self.decision}
        if self.converted is not None:
            out["converted"] = self.converted
        if self.dropped is not None:
            out["dropped"] = self.dropped
        if self.ms is not None and self.action in _TIMED_FIRST:
            out["ms"] = self.ms
        out["action"] = self.action
        if self.error is not None:
            out["error"] = self.error
        if self.reference is not None:
            out["reference"] = self.reference
        if self.result_chars is not None:
            out["result_chars"] = self.result_chars
        if self.ms is not None and self.action not in _TIMED_FIRST:
            out["ms"] = self.ms
        return out


@dataclass
class LoopOutcome:
    """What one turn's tool use did."""

    steps: list[Step] = field(default_factory=list)
    results: list[str] = field(default_factory=list)
    """`name({args}) → result` for each call that ran (or awaits approval, or failed last,
    or was sent to the caller)."""
    reason: str | None = None
    """Why the loop stopped, when it did not stop because the model was done."""
    usage: Usage = field(default_factory=Usage)
    count: int | None = None
    """How many calls the first decision said the request needs (with `count_calls`)."""
    unused: list[str] = field(default_factory=list)
    """The values of the request no call had used, as last pointed out to the model."""

    @property
    def calls(self) -> list[Call]:
        """The calls made (run, filed for approval, or proposed), in order.

        Each is {"tool", "arguments"}.
        """
        return [s.decision for s in self.steps if s.action in MADE and s.decision is not None]

    @property
    def proposals(self) -> list[dict[str, Any]]:
        """The calls proposed to the caller, in order: {"name", "arguments"}."""
        return [
            {"name": str(s.decision.get("tool")), "arguments": s.decision["arguments"]}
            for s in self.steps
            if s.action == "proposed" and s.decision is not None
        ]

    @property
    def ran(self) -> int:
        """How many calls ran."""
        return sum(s.action == "ran" for s in self.steps)

    def step_dicts(self) -> list[dict[str, Any]]:
        """The steps as the trace shows them."""
        return [s.to_dict() for s in self.steps]

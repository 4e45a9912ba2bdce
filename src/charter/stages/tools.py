"""Tools stage: let the model call the charter's tools, safely, before it answers.

Tools are offered most relevant first, and only those the relevance gate
(`charter.tools.relevance`) scores at or above `tool_limits.min_relevance`; a message no tool
fits skips tool use at no model cost. The calls themselves go through
`charter.tools.service.ToolUse`, run here (`RunHere`: schema-forced decisions, the
argument checks, validation and bounded retries, loop detection, approval for dangerous
tools, timeouts, the injection guard on results).
The results go into the system prompt for the final answer (and into the grounding check's
sources). Every step, argument, error, result size and millisecond is in the trace.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from charter.stages.escalate import handoff_message
from charter.tools.executors import RunHere
from charter.tools.service import ToolUse

if TYPE_CHECKING:
    from charter.guards.base import Guard
    from charter.models.base import ChatModel
    from charter.pipeline import CallNext, TurnState
    from charter.spec.models import ModelSpec, ToolLimits
    from charter.tools.registry import LoadedTool


class ToolsStage:
    """The tools stage: runs the charter's tools the model calls; their results go into the prompt.

    A call to a dangerous tool is filed for a person's approval (an escalation) instead of run.
    """

    name = "tools"

    def __init__(
        self,
        model: ChatModel,
        spec: ModelSpec,
        tools: dict[str, LoadedTool],
        limits: ToolLimits,
        *,
        result_guard: Guard | None = None,
        role: str = "chat",
    ) -> None:
        self.model = model
        self.role = role
        """The model role the decisions are counted under (`chat`, or `strong` with
        `models.routing.tools: strong`)."""
        self.spec = spec
        self.tools = tools
        self.limits = limits
        self.result_guard = result_guard

    async def __call__(self, state: TurnState, call_next: CallNext) -> TurnState:
        record = state.trace[self.name]
        here = RunHere(
            result_guard=self.result_guard, approve=lambda call: self._approval(state, call)
        )
        use = ToolUse(self.model, self.limits, price=self.spec.price)
        used = await use(self.tools, state.system_prompt, state.messages, here)
        record.detail["relevance"] = used.relevance
        if used.loop is None:
            record.reason = "no tool relevant to this message: no tool call asked"
            return await call_next(state)
        record.detail["offered"] = used.offered
        out = used.loop
        state.add_usage(out.usage, model=self.role)
        record.detail["model_role"] = self.role
        record.prompt_tokens += out.usage.prompt_tokens
        record.completion_tokens += out.usage.completion_tokens
        record.detail["steps"] = out.step_dicts()
        if out.count is not None:
            record.detail["count"] = out.count
        if out.unused:
            record.detail["unused"] = out.unused
        record.detail["calls"] = out.ran
        if out.reason is not None:
            record.reason = out.reason
        if out.results:
            state.tool_results = out.results
            state.system_prompt += (
                "\n\nTool results for this reply (state values exactly as given; never invent "
                "one):\n" + "\n".join(f"- {r}" for r in out.results)
            )
            record.verdict = "pass"
        return await call_next(state)

    def _approval(self, state: TurnState, call: str) -> str:
        reference = f"ESC-{uuid.uuid4().hex[:8].upper()}"
        state.outcome.escalations.append(
            {
                "id": reference,
                "trigger": "approval",
                "reason": f"approve the action {call}",
                "transcript": [m.to_wire() for m in state.messages],
            }
        )
        state.trace[self.name].detail["approval_message"] = handoff_message(
            state.charter.persona, reference
        )
        return reference

"""Tools stage: let the model call the charter's tools, safely, before it answers.

Tools are offered most relevant first, and only those the relevance gate
(`charter.tools.relevance`) scores at or above `tool_limits.min_relevance`; a message no tool
fits skips tool use at no model cost. The calls themselves go through
`charter.tools.loop.ToolLoop` (schema-forced decisions, validation and bounded retries,
loop detection, approval for dangerous tools, timeouts, the injection guard on results).
The results go into the system prompt for the final answer (and into the grounding check's
sources). Every step, argument, error, result size and millisecond is in the trace.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING

from charter.stages.escalate import handoff_message
from charter.tools.loop import ToolLoop
from charter.tools.relevance import gate

if TYPE_CHECKING:
    from charter.guards.base import Guard
    from charter.models.base import ChatModel
    from charter.pipeline import CallNext, TurnState
    from charter.spec.models import ModelSpec, ToolLimits
    from charter.tools.registry import LoadedTool


class ToolsStage:
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
        scores, offered = await asyncio.to_thread(
            gate, state.messages[-1].content, self.tools, self.limits.min_relevance
        )
        record.detail["relevance"] = {name: round(score, 3) for name, score in scores.items()}
        if not offered:
            record.reason = "no tool relevant to this message: no tool call asked"
            return await call_next(state)
        record.detail["offered"] = list(offered)
        loop = ToolLoop(
            self.model,
            offered,
            self.limits,
            result_guard=self.result_guard,
            approve=lambda call: self._approval(state, call),
            price=self.spec.price,
        )
        out = await loop.run(state.system_prompt, state.messages)
        state.add_usage(out.usage, model=self.role)
        record.detail["model_role"] = self.role
        record.prompt_tokens += out.usage.prompt_tokens
        record.completion_tokens += out.usage.completion_tokens
        record.detail["steps"] = out.steps
        if out.count is not None:
            record.detail["count"] = out.count
        if out.unused:
            record.detail["unused"] = out.unused
        record.detail["calls"] = len([s for s in out.steps if s.get("action") == "ran"])
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
        state.escalations.append(
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

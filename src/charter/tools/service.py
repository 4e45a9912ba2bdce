"""Tool use as one service: the relevance gate, then the tool loop, then what it did.

`ToolUse` is how every caller uses tools, the same way: the tools stage (the charter's own
tools, run here), the generate stage (a gateway caller's tools, proposed to it) and the
`tools` eval suite (BFCL's functions, recorded, not executed).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from charter.models.base import ChatModel, latest_user
from charter.tools.loop import ToolLoop
from charter.tools.relevance import gate

if TYPE_CHECKING:
    from charter.models.base import Message
    from charter.spec.models import Price, ToolLimits
    from charter.tools.executors import Executor
    from charter.tools.registry import LoadedTool
    from charter.tools.steps import LoopOutcome


@dataclass
class ToolUseOutcome:
    """What one turn's tool use did."""

    scores: dict[str, float] = field(default_factory=dict)
    """The relevance gate's score of each tool (none when every tool was offered)."""
    offered: list[str] = field(default_factory=list)
    """The tools offered to the model, most relevant first."""
    loop: LoopOutcome | None = None
    """The loop's outcome; None when no tool was offered (no model call)."""

    @property
    def relevance(self) -> dict[str, float]:
        """The scores as the trace shows them."""
        return {name: round(score, 3) for name, score in self.scores.items()}

    @property
    def proposals(self) -> list[dict[str, Any]]:
        """The calls proposed to the caller (`ProposeToCaller`): {"name", "arguments"}."""
        return [] if self.loop is None else self.loop.proposals


@dataclass
class ToolUse:
    """Gate → loop → outcome, over one model and the charter's `tool_limits`."""

    model: ChatModel | Callable[[], ChatModel]
    """The model that decides the calls, or what gives it, asked only when a tool is
    offered (a model loaded on first use is not loaded for a message no tool fits)."""
    limits: ToolLimits
    price: Price | None = None
    """The model's price, for `tool_limits.max_cost`."""

    async def __call__(
        self,
        tools: dict[str, LoadedTool],
        system_prompt: str,
        messages: list[Message],
        executor: Executor,
        *,
        gated: bool = True,
    ) -> ToolUseOutcome:
        """Offer the tools the relevance gate passes and run the loop over them with `executor`.

        The gate scores each tool for the user's latest message against `min_relevance` (every tool
        is offered with `gated` False). No tool offered: no model call.
        """
        outcome = ToolUseOutcome()
        offered = tools
        if gated:
            asked = latest_user(messages)
            outcome.scores, offered = await asyncio.to_thread(
                gate, asked, tools, self.limits.min_relevance
            )
        outcome.offered = list(offered)
        if offered:
            model = self.model if isinstance(self.model, ChatModel) else self.model()
            loop = ToolLoop(model, offered, self.limits, price=self.price)
            outcome.loop = await loop.turn(system_prompt, messages, executor)
        return outcome

"""Route stage: send this turn to the cheap or the strong model (see `models/routing.py`).

Runs after retrieval and tools (so tool results count as a signal) and before critique and
generate, which answer with the chosen model. Present only when the charter names
`models.strong`. The trace shows the signals found, the threshold and the choice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from charter.models.routing import choose, route_signals

if TYPE_CHECKING:
    from charter.pipeline import CallNext, TurnState
    from charter.spec.models import Routing


class RouteStage:
    """The route stage: picks the model that answers this turn, by `routing`."""

    name = "route"

    def __init__(self, routing: Routing) -> None:
        self.routing = routing

    async def __call__(self, state: TurnState, call_next: CallNext) -> TurnState:
        signals = route_signals(
            state.messages[-1].content,
            long_words=self.routing.long_message_words,
            tool_results=len(state.tool_results),
            reanchor=state.request.carry.reanchor,
        )
        state.route = choose(signals, self.routing, has_strong=True)
        record = state.trace[self.name]
        record.detail.update(
            signals=signals, threshold=self.routing.threshold, mode=self.routing.mode
        )
        record.reason = f"{state.route}: " + (
            f"mode {self.routing.mode}"
            if self.routing.mode != "auto"
            else f"{len(signals)} signal(s), {self.routing.threshold} needed for strong"
        )
        return await call_next(state)

"""Generate stage: call the model with the system prompt and as much history as fits."""

from __future__ import annotations

from typing import TYPE_CHECKING

from charter.errors import ModelError
from charter.models.base import ChatRequest, Completion, Message, TextDelta
from charter.models.routing import tools_role
from charter.persona.compile import persona_reminder

if TYPE_CHECKING:
    from charter.models.base import ChatModel
    from charter.models.routing import ModelSet
    from charter.pipeline import CallNext, TurnState
    from charter.spec.models import ModelSpec

# A deliberately pessimistic estimate (Qwen's tokenizer averages ~4 characters per token on
# English); it only decides which old turns to leave out, never what the model sees of a turn.
_CHARS_PER_TOKEN = 3.0
_MESSAGE_OVERHEAD_TOKENS = 6


def estimate_tokens(message: Message) -> int:
    """A pessimistic token count of `message`: 3 characters a token, plus 6 of overhead."""
    return int(len(message.content) / _CHARS_PER_TOKEN) + _MESSAGE_OVERHEAD_TOKENS


GOAL_CHARS = 400


def goal_note(first_request: str, dropped: int) -> str:
    """The note that `dropped` earlier messages are not shown, quoting the user's first request.

    The request is cut at a word near `GOAL_CHARS` characters.
    """
    goal = first_request.strip()
    if len(goal) > GOAL_CHARS:
        goal = goal[:GOAL_CHARS].rsplit(" ", 1)[0] + " …"
    return (
        f"\n\n(Context: {dropped} earlier messages of this conversation are not shown. "
        f"The user's first request was: «{goal}»)"
    )


def fit_history(
    system: Message, history: list[Message], *, budget: int
) -> tuple[list[Message], int]:
    """Fit the conversation into `budget` tokens.

    The system prompt (persona, constitution, this turn's instructions) is pinned and never
    cut. The newest messages are kept while they fit; the latest is always kept; the kept
    part starts with a user message. When anything is left out, the user's first request
    (their original goal) is pinned to the system prompt with a note of how much is missing.
    Returns the messages to send and how many were left out.
    """
    first_user = next((m for m in history if m.role == "user"), None)
    note = goal_note(first_user.content, len(history)) if first_user else ""
    remaining = budget - estimate_tokens(system)
    if len(history) > 1:
        remaining -= len(note) // int(_CHARS_PER_TOKEN) + 1  # room for the goal note
    kept: list[Message] = []
    for message in reversed(history):
        cost = estimate_tokens(message)
        if kept and cost > remaining:
            break
        kept.append(message)
        remaining -= cost
    kept.reverse()
    while len(kept) > 1 and kept[0].role != "user":
        kept.pop(0)  # a conversation shown from the middle starts with the user
    dropped = len(history) - len(kept)
    if dropped and first_user is not None and first_user not in kept:
        system = Message(
            role="system", content=system.content + goal_note(first_user.content, dropped)
        )
    return [system, *kept], dropped


class GenerateStage:
    """The generate stage: the routed model writes the reply, streamed when the caller streams.

    With the caller's own tools, the model may answer with calls to them instead. A model that fails
    after part of its reply was streamed is not replaced by the other one.
    """

    name = "generate"

    def __init__(self, models: ModelSet) -> None:
        self.models = models

    async def __call__(self, state: TurnState, call_next: CallNext) -> TurnState:
        system = Message(role="system", content=state.system_prompt)
        history = state.messages
        if state.request.carry.reanchor:
            # The persona slipped last turn: restate it right next to the newest message,
            # where a small model pays the most attention.
            latest = history[-1]
            reminder = persona_reminder(state.charter)
            history = [
                *history[:-1],
                Message(role="user", content=f"{reminder}\n\n{latest.content}"),
            ]
        record = state.trace[self.name]
        if state.request.client_tools and await self._client_calls(state, history):
            return await call_next(state)
        dropped = 0

        def request(model: ChatModel, spec: ModelSpec) -> ChatRequest:
            nonlocal dropped
            sampling = state.request.sampling
            messages, dropped = fit_history(
                system, history, budget=model.context_window - sampling.limit(spec.max_tokens)
            )
            return sampling.request(
                messages,
                max_tokens=spec.max_tokens,
                temperature=spec.temperature,
                seed=spec.seed,
                json_schema=state.request.json_schema,
            )

        async def send(model: ChatModel, request: ChatRequest) -> Completion:
            return await self._generate(model, request, state)

        try:
            routed = await self.models.complete(state.route, request, send)
        except _Streamed as exc:  # text already reached the user: no fallback
            raise exc.error from None
        completion = routed.completion
        state.add_usage(completion.usage, model=routed.role)
        record.detail.update(routed.to_detail())
        state.outcome.reply = completion.text.strip()
        record.prompt_tokens = completion.usage.prompt_tokens
        record.completion_tokens = completion.usage.completion_tokens
        record.detail.update(
            reanchored=state.request.carry.reanchor,
            model=completion.model,
            finish_reason=completion.finish_reason,
            dropped_messages=dropped,
        )
        if state.request.sampling.to_dict():
            record.detail["sampling"] = state.request.sampling.to_dict()
        if completion.prompt_ms is not None:
            record.detail["model_prompt_ms"] = round(completion.prompt_ms, 2)
        if completion.generate_ms is not None:
            record.detail["model_generate_ms"] = round(completion.generate_ms, 2)
        return await call_next(state)

    async def _client_calls(self, state: TurnState, history: list[Message]) -> bool:
        """Offer the caller's own tools to the model; True when the turn answers with calls.

        The model that `models.routing.tools` names is asked whether to call them, if the relevance
        gate offers any for the user's latest message (the charter's `tool_limits`, as for its own
        tools). With `tool_choice` "required" every tool is offered (no gate) and the model's first
        decision must hold at least one call. With valid calls the turn answers with them and no
        text; otherwise the turn goes on to an ordinary reply (the trace says when a required call
        did not come).
        """
        from charter.tools.executors import ProposeToCaller
        from charter.tools.registry import client_tools
        from charter.tools.service import ToolUse

        record = state.trace[self.name]
        tools = client_tools(list(state.request.client_tools))
        required = state.request.tool_choice == "required"
        role = tools_role(state.charter.models)
        use = ToolUse(lambda: self.models.model(role), state.charter.tool_limits)
        propose = ProposeToCaller(require=required)
        used = await use(tools, state.system_prompt, history, propose, gated=not required)
        if required:
            record.detail["client_tool_choice"] = "required"
        else:
            record.detail["client_tool_relevance"] = used.relevance
        if used.loop is None:
            record.detail["client_tool_steps"] = []
            return False
        out, calls = used.loop, used.proposals
        state.add_usage(out.usage, model=role)
        record.detail["client_tool_model_role"] = role
        record.prompt_tokens += out.usage.prompt_tokens
        record.completion_tokens += out.usage.completion_tokens
        record.detail["client_tool_steps"] = out.step_dicts()
        if not calls:
            if required:
                record.detail["client_tool_choice_unmet"] = (
                    "tool_choice required a call, but the model proposed no valid one"
                )
            return False
        state.outcome.tool_calls = calls
        state.outcome.reply = None
        record.reason = "answered with calls to the caller's tools: " + ", ".join(
            c["name"] for c in calls
        )
        return True

    @staticmethod
    async def _generate(model: ChatModel, request: ChatRequest, state: TurnState) -> Completion:
        if not state.stream.live:
            return await model.acomplete(request)
        final: Completion | None = None
        sent = False
        try:
            async for event in model.astream(request):
                if isinstance(event, TextDelta):
                    sent = True
                    await state.stream.send(event.text)
                else:
                    final = event
        except ModelError as exc:
            if sent:
                raise _Streamed(exc) from exc
            raise
        if final is None:
            raise ModelError("the model's stream ended without a final completion")
        return final


class _Streamed(Exception):
    """A model failed after part of its reply was streamed out.

    Another model cannot take over without the user seeing two replies.
    """

    def __init__(self, error: ModelError) -> None:
        super().__init__(str(error))
        self.error = error

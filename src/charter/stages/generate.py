"""Generate stage: call the model with the system prompt and as much history as fits.

When the conversation no longer fits the model's window, its oldest messages are left out.
With `memory` on (the default), the cheap model first takes notes on the messages about to
go (`persona/memory.py`), and the notes are pinned to the system prompt right after the
persona. The notes are taken only when messages are left out, and only on the newly left-out
span: the memory so far travels with the conversation (`Carry.memory`). Each time, enough is
left out that the shown part fills at most half of the room, so the next turns fit without
another call. A notes taker that fails costs the turn nothing: the turn goes on as without
memory (the user's first request pinned as a note), and the trace says why.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from charter.errors import ModelError
from charter.models.base import ChatRequest, Completion, Message, TextDelta
from charter.models.routing import CHEAP, tools_role
from charter.persona.compile import compile_system_prompt, persona_reminder
from charter.persona.memory import (
    SUMMARY_INSTRUCTIONS,
    SUMMARY_MAX_TOKENS,
    SUMMARY_SCHEMA,
    ConversationMemory,
    Embed,
    message_cost,
    parse_summary,
    prefix_digest,
    prefix_digests,
    recall,
    recall_tokens,
    render_recalled,
    summary_messages,
    text_tokens,
)

if TYPE_CHECKING:
    from charter.models.base import ChatModel
    from charter.models.routing import ModelSet
    from charter.pipeline import CallNext, TurnState
    from charter.spec.models import CharterSpec, ModelSpec

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
    system: Message,
    history: list[Message],
    *,
    budget: int,
    first_request: Message | None = None,
    earlier: int = 0,
) -> tuple[list[Message], int]:
    """Fit the conversation into `budget` tokens.

    The system prompt (persona, memory, constitution, this turn's instructions) is pinned and
    never cut. The newest messages are kept while they fit; the latest is always kept; the kept
    part starts with a user message. When anything is left out, the user's first request (their
    original goal; `first_request`, else the first user message of `history`) is pinned to the
    system prompt with a note of how many messages are missing (`earlier` of them were left out
    before `history`). Returns the messages to send and how many of `history` were left out.
    """
    first_user = first_request or next((m for m in history if m.role == "user"), None)
    note = goal_note(first_user.content, earlier + len(history)) if first_user else ""
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
            role="system",
            content=system.content + goal_note(first_user.content, earlier + dropped),
        )
    return [system, *kept], dropped


KEEP_SHARE = 0.5
"""After notes are taken, the shown history fills at most this share of the room it has."""
MAX_SUMMARY_CALLS = 4
"""Calls to the notes taker in one turn at most; a longer span goes without notes on its
middle (a whole long history sent at once, to the gateway)."""
_KNOWN_CAPACITY = 1024


def cut_point(history: Sequence[Message], room: int) -> int:
    """Where the shown part of `history` starts, so that it takes at most `room` tokens.

    The latest message is always shown, and the shown part starts with a user message. 0: all
    of it fits, or nothing can be left out.
    """
    start = len(history) - 1
    total = estimate_tokens(history[-1]) if history else 0
    while start > 0 and total + estimate_tokens(history[start - 1]) <= room:
        start -= 1
        total += estimate_tokens(history[start])
    while start < len(history) - 1 and history[start].role != "user":
        start += 1
    return start


def positions(view: Sequence[Message], asked: Sequence[Message]) -> list[int]:
    """Where each message of `view` is in `asked`, which it is drawn from in order.

    `view` is what the model is to see: the request's messages, less those a stage left out
    (a refused exchange). A message no stage took from the request is placed after it.
    """
    if len(view) == len(asked) and all(a is b for a, b in zip(view, asked, strict=True)):
        return list(range(len(view)))  # no stage left anything out: the usual turn
    out: list[int] = []
    at = 0
    for message in view:
        found = at
        while found < len(asked) and asked[found] != message:
            found += 1
        if found < len(asked):
            out.append(found)
            at = found + 1
        else:
            out.append(len(asked))
    return out


def _shared_embed() -> Embed:
    """The process's shared MiniLM (the `guards` extra), loaded on first use."""
    from charter.guards.embedder import shared_embedder

    return shared_embedder().embed


def pin(prompt: str, persona: str, memory: str) -> str:
    """`prompt` with `memory` placed right after the `persona` part it starts with.

    Later additions (this turn's instructions, passages, tool results) change every turn; the
    persona and the memory change seldom, so they stay a stable prefix for the prompt cache.
    """
    if not memory:
        return prompt
    if prompt.startswith(persona):
        return f"{persona}\n\n{memory}{prompt[len(persona) :]}"
    return f"{prompt}\n\n{memory}"


RESAMPLE_TEMPERATURE = 0.8
"""The least temperature of a new try: a small model at a low temperature, shown the same
question, gives the same reply again however the history around it was trimmed."""


def resampled(request: ChatRequest, tries: int) -> ChatRequest:
    """`request` for new try number `tries` (0: the first draw, unchanged).

    A new try is drawn at RESAMPLE_TEMPERATURE at least, with the seed moved on by `tries`
    (when there is one), so that it is not the draw that spun.
    """
    if tries <= 0:
        return request
    return replace(
        request,
        temperature=max(request.temperature, RESAMPLE_TEMPERATURE),
        seed=None if request.seed is None else request.seed + tries,
    )


def _notes_request(messages: list[Message]) -> Callable[[ChatModel, ModelSpec], ChatRequest]:
    """The notes taker's request for any model: forced JSON, greedy, the model's own seed."""

    def request(model: ChatModel, spec: ModelSpec) -> ChatRequest:
        return ChatRequest(
            messages=messages,
            max_tokens=SUMMARY_MAX_TOKENS,
            temperature=0.0,
            seed=spec.seed,
            json_schema=SUMMARY_SCHEMA,
        )

    return request


class GenerateStage:
    """The generate stage: the routed model writes the reply, streamed when the caller streams.

    With the caller's own tools, the model may answer with calls to them instead. A model that fails
    after part of its reply was streamed is not replaced by the other one.
    """

    name = "generate"

    def __init__(self, models: ModelSet) -> None:
        self.models = models
        self._known: OrderedDict[str, ConversationMemory] = OrderedDict()
        """The memories this stage made, by the digest of the messages they stand for: a
        caller that sends the whole history but not the carry still pays once per span."""
        self._lock = threading.Lock()
        self._persona: tuple[CharterSpec, str] | None = None

    async def __call__(self, state: TurnState, call_next: CallNext) -> TurnState:
        record = state.trace[self.name]
        if state.request.client_tools and await self._client_calls(
            state, self._reanchored(state, state.messages)
        ):
            return await call_next(state)
        prompt = state.system_prompt
        memory, history = await self._remember(state, Message(role="system", content=prompt))
        earlier = len(state.messages) - len(history)
        pinned = "\n\n".join(
            part
            for part in (
                memory.render() if memory is not None else "",
                self._recalled(state, state.messages[:earlier]),
            )
            if part
        )
        if pinned:
            prompt = pin(prompt, self._persona_prompt(state.charter), pinned)
        system = Message(role="system", content=prompt)
        first_request = next((m for m in state.messages if m.role == "user"), None)
        history = self._reanchored(state, history)
        dropped = 0

        def request(model: ChatModel, spec: ModelSpec) -> ChatRequest:
            nonlocal dropped
            sampling = state.request.sampling
            messages, dropped = fit_history(
                system,
                history,
                budget=model.context_window - sampling.limit(spec.max_tokens),
                first_request=first_request,
                earlier=earlier,
            )
            return resampled(
                sampling.request(
                    messages,
                    max_tokens=spec.max_tokens,
                    temperature=spec.temperature,
                    seed=spec.seed,
                    json_schema=state.request.json_schema,
                ),
                state.new_tries,
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
            dropped_messages=earlier + dropped,
        )
        if state.request.sampling.to_dict():
            record.detail["sampling"] = state.request.sampling.to_dict()
        if completion.prompt_ms is not None:
            record.detail["model_prompt_ms"] = round(completion.prompt_ms, 2)
        if completion.generate_ms is not None:
            record.detail["model_generate_ms"] = round(completion.generate_ms, 2)
        return await call_next(state)

    @staticmethod
    def _reanchored(state: TurnState, history: list[Message]) -> list[Message]:
        """`history`, with the persona restated next to the newest message when it slipped."""
        if not state.request.carry.reanchor or not history:
            return history
        # The persona slipped last turn: restate it right next to the newest message,
        # where a small model pays the most attention.
        latest = history[-1]
        reminder = persona_reminder(state.charter)
        return [*history[:-1], Message(role="user", content=f"{reminder}\n\n{latest.content}")]

    def _persona_prompt(self, charter: CharterSpec) -> str:
        """The compiled persona the system prompt starts with (compiled once per charter)."""
        if self._persona is None or self._persona[0] is not charter:
            self._persona = (charter, compile_system_prompt(charter).text)
        return self._persona[1]

    async def _remember(
        self, state: TurnState, system: Message
    ) -> tuple[ConversationMemory | None, list[Message]]:
        """The memory to pin this turn, and the messages it does not stand for.

        When those no longer fit the answering model's window, the oldest of them are noted and
        left out first (`outcome.memory`). Without `memory` in the charter: no memory, every
        message.
        """
        settings = state.charter.memory
        view = state.messages
        if not settings.enabled:
            return None, view
        asked = state.request.messages
        detail: dict[str, Any] = {}
        memory = state.outcome.memory or state.request.carry.memory
        if memory is not None and not memory.empty and not memory.matches(asked):
            detail["reset"] = "the memory was made from another history"
            state.outcome.memory = ConversationMemory()  # forget it
            memory = None
        if memory is not None and memory.empty:
            memory = None
        model = self.models.model(state.route)
        spec = self.models.spec_for(state.route)
        budget = model.context_window - state.request.sampling.limit(spec.max_tokens)
        # room for recall, kept free when messages are cut (not asked of every turn: that
        # would call the notes taker more often; a turn it does not fit drops more history)
        reserve = recall_tokens(settings.recall)
        bound = min(settings.max_tokens, model.context_window // 4) if settings.notes else 0
        where = positions(view, asked)

        def unnoted(memory: ConversationMemory | None) -> list[int]:
            """Where in `view` the messages are that `memory` does not stand for."""
            covered = memory.covered if memory is not None else 0
            return [i for i, at in enumerate(where) if at >= covered]

        def fits(memory: ConversationMemory | None) -> bool:
            room = budget - estimate_tokens(system) - (memory.tokens() if memory else 0)
            return sum(estimate_tokens(view[i]) for i in unnoted(memory)) <= room

        if memory is None and not fits(None):
            memory = self._recall(asked)
            if memory is not None:
                detail["from"] = "made earlier in this process"
        shown = unnoted(memory)
        history = [view[i] for i in shown]
        if fits(memory):
            return self._noted(state, memory, history, detail)
        room = budget - estimate_tokens(system) - bound - reserve
        cut = cut_point(history, int(room * KEEP_SHARE))
        if cut == 0 or not settings.notes:  # without notes, only recall brings them back
            left_out = {"left_out": cut} if cut else {}
            return self._noted(state, memory, history[cut:], {**detail, **left_out})
        end = where[shown[cut]]
        started = time.perf_counter()
        try:
            made = await self._summarise(state, memory, history[:cut], bound, detail)
        except Exception as exc:  # the turn goes on without new notes, as without memory
            detail["error"] = f"{type(exc).__name__}: {exc}"
            detail["fallback"] = "goal note"
            detail["ms"] = round((time.perf_counter() - started) * 1000, 2)
            return self._noted(state, memory, history, detail)
        made = replace(made, covered=end, digest=prefix_digest(asked[:end]))
        detail["ms"] = round((time.perf_counter() - started) * 1000, 2)
        detail["summarised"] = cut
        detail["summarised_tokens"] = sum(estimate_tokens(m) for m in history[:cut])
        state.outcome.memory = made
        with self._lock:
            self._known[made.digest] = made
            while len(self._known) > _KNOWN_CAPACITY:
                self._known.popitem(last=False)
        return self._noted(state, made, history[cut:], detail)

    def _recalled(self, state: TurnState, left_out: Sequence[Message]) -> str:
        """The left-out user messages that bear on the latest one, rendered to be pinned.

        Without `memory.recall`, or with nothing left out, "". A failing embedder is recorded in
        the trace and the turn goes on without recall, as it does without notes.
        """
        settings = state.charter.memory
        # the caller's last message: not a note the hygiene stage added for a new try
        latest = state.request.messages[-1] if state.request.messages else None
        if not settings.enabled or settings.recall == 0 or latest is None or latest.role != "user":
            return ""
        if not any(message.role == "user" for message in left_out):
            return ""
        detail = state.trace[self.name].detail.setdefault("memory", {})
        started = time.perf_counter()
        try:
            recalled = recall(
                _shared_embed(),
                latest.content,
                left_out,
                k=settings.recall,
                min_similarity=settings.recall_min_similarity,
            )
        except Exception as exc:  # the turn goes on without recall
            detail["recall_error"] = f"{type(exc).__name__}: {exc}"
            return ""
        detail["recall_ms"] = round((time.perf_counter() - started) * 1000, 2)
        detail["recalled"] = len(recalled)
        return render_recalled(recalled)

    def _noted(
        self,
        state: TurnState,
        memory: ConversationMemory | None,
        history: list[Message],
        detail: dict[str, Any],
    ) -> tuple[ConversationMemory | None, list[Message]]:
        """Record the memory pinned this turn in the trace, and hand it on."""
        if memory is not None:
            detail.update(covered=memory.covered, items=len(memory.items), tokens=memory.tokens())
        if detail:
            state.trace[self.name].detail["memory"] = detail
        return memory, history

    def _recall(self, asked: Sequence[Message]) -> ConversationMemory | None:
        """The memory this stage made for the longest start of `asked`, if any."""
        with self._lock:
            if not self._known:
                return None
            digests = prefix_digests(asked)
            for end in range(len(asked) - 1, 0, -1):
                found = self._known.get(digests[end])
                if found is not None and found.covered == end:
                    self._known.move_to_end(found.digest)
                    return found
        return None

    async def _summarise(
        self,
        state: TurnState,
        memory: ConversationMemory | None,
        span: list[Message],
        bound: int,
        detail: dict[str, Any],
    ) -> ConversationMemory:
        """The memory with notes on `span` merged in: one cheap-model call per part that fits.

        Raises what the model raises, and ValueError when its notes are not the JSON asked for.
        """
        noted = memory or ConversationMemory()
        window = self.models.model(CHEAP).context_window
        room = window - SUMMARY_MAX_TOKENS - text_tokens(SUMMARY_INSTRUCTIONS) - bound - 32
        parts: list[list[Message]] = [[]]
        used = 0
        for message in span:
            cost = message_cost(message)
            if parts[-1] and used + cost > room:
                parts.append([])
                used = 0
            parts[-1].append(message)
            used += cost
        if len(parts) > MAX_SUMMARY_CALLS:
            # The start sets the conversation's goal; the end is what the reply leans on.
            middle = parts[1 : len(parts) - MAX_SUMMARY_CALLS + 1]
            detail["skipped"] = sum(len(part) for part in middle)
            parts = [parts[0], *parts[len(parts) - MAX_SUMMARY_CALLS + 1 :]]
        prompt_tokens = completion_tokens = 0
        prompt = state.system_prompt  # a note that echoes it is left out
        for part in parts:
            routed = await self.models.complete(
                CHEAP, _notes_request(summary_messages(noted, part))
            )
            usage = routed.completion.usage
            state.add_usage(usage, model=routed.role)
            prompt_tokens += usage.prompt_tokens
            completion_tokens += usage.completion_tokens
            detail["calls"] = detail.get("calls", 0) + 1
            detail.update(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
            items = parse_summary(routed.completion.text)
            source = "\n".join(message.content for message in part)
            noted = noted.merged(items, max_tokens=bound, persona=prompt, source=source)
        return noted

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

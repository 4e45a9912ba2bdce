"""One turn's tool use: ask the model for its next call, check it, run it, feed back, repeat.

Each step asks the chat model for its next calls as schema-forced JSON,
`{"calls": [{"tool": NAME, "arguments": {...}}, ...]}`: each item one of the offered tools
with arguments matching that tool's schema (several when the request asks for several
things: parallel calls), none when it is done. Then, for each call, in code:
1. the arguments are validated against the tool's JSON Schema (an invalid call is fed back
   with the reason and retried, at most `max_retries` times); a percentage of the request
   is given in the form its parameter takes (`convert_percentages`, see `percent.py`), and
   so is an ISO date where the parameter states another layout (`convert_dates`, `dates.py`);
2. a call identical to an earlier one this turn is not run again; a step that only repeats
   earlier calls is a loop: the loop stops; a call with a number, date or account that
   nobody gave (`tool_limits.grounded_arguments`, see `provenance.py`) in a required
   argument is not run, and the model is told which values and to use the request's own
   words or ask instead of guessing; such a value in an optional argument is left out and
   the call runs without it; once the turn has made as many calls as its first decision
   said, a further call of a tool already called runs only if it brings a value of the
   request or a tool result that no earlier call used (`provenance.nothing_new`);
3. a `dangerous` tool does not run: `approve` files a request for a human's approval and
   the model is told the action awaits it;
4. the tool runs on a worker thread with its timeout; an error is fed back and retried;
5. the result passes the result guard before the model sees it (a tool result is untrusted
   text: indirect injection); a flagged result is withheld.
After a decision's calls, the values of the request that no call has used are pointed out
to the model (`remind_unused`, see `coverage.py`), again only while that list shrinks.
Steps are bounded by `max_calls`, `max_seconds`, `max_tokens` and (with a price) `max_cost`;
a decision over budget is not acted on.

The tools stage runs this with the charter's tools; the `tools` eval suite runs it with BFCL's
functions (recorded, not executed), so the benchmark measures the code that serves users.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from charter.errors import ModelError
from charter.guards.base import Subject
from charter.guards.normalize import views
from charter.models.base import ChatRequest, Message, Usage, latest_user
from charter.tools import dates
from charter.tools.bounds import bounded
from charter.tools.coverage import unused
from charter.tools.percent import convert
from charter.tools.provenance import (
    Sources,
    ground_arguments,
    nothing_new,
    redundant,
    variants,
)
from charter.tools.registry import InvalidArguments, ToolError

if TYPE_CHECKING:
    from charter.guards.base import Guard
    from charter.models.base import ChatModel
    from charter.spec.models import Price, ToolLimits
    from charter.tools.registry import LoadedTool

RESULT_CHARS = 2000


def decision_schema(
    tools: dict[str, LoadedTool], max_calls: int = 4, min_calls: int = 0
) -> dict[str, Any]:
    """`{"calls": [{"tool": NAME, "arguments": {...}}, ...]}`: one item per call the model
    wants now (several when the question asks for several), none when it is done (unless
    `min_calls`: a caller's `tool_choice: required`)."""
    options: list[dict[str, Any]] = [
        {
            "type": "object",
            "properties": {"tool": {"const": name}, "arguments": tool.spec.parameters},
            "required": ["tool", "arguments"],
        }
        for name, tool in tools.items()
    ]
    calls: dict[str, Any] = {"type": "array", "items": {"anyOf": options}, "maxItems": max_calls}
    if min_calls:
        calls["minItems"] = min_calls
    return {"type": "object", "properties": {"calls": calls}, "required": ["calls"]}


def counted_decision_schema(
    tools: dict[str, LoadedTool], max_calls: int = 4, min_calls: int = 0
) -> dict[str, Any]:
    """`{"count": N, "calls": [...]}` with exactly N calls: one branch per N (from
    `min_calls`), so the grammar holds the model to the count it wrote first. Asked for the
    turn's first decision: the 0.5B model, asked only for a list, stops after the first of
    several calls."""
    call = decision_schema(tools, max_calls)["properties"]["calls"]["items"]
    return {
        "$defs": {"call": call},
        "anyOf": [
            {
                "type": "object",
                "properties": {
                    "count": {"const": n},
                    "calls": {
                        "type": "array",
                        "items": {"$ref": "#/$defs/call"},
                        "minItems": n,
                        "maxItems": n,
                    },
                },
                "required": ["count", "calls"],
            }
            for n in range(min(min_calls, max_calls), max_calls + 1)
        ],
    }


FIRST_DECISION = (
    'Reply with JSON only: {"count": N, "calls": [{"tool": NAME, "arguments": {...}}, ...]}. '
    "First N, the number of tool calls the request needs now: one for each item, place, "
    "person, value or step the request names (for example, 'the weather in Paris, Rome and "
    "Oslo' needs 3 calls, 'the weather in Paris' needs 1); 0 when no tool fits, a required "
    "value is missing, or you already have what you need. Then exactly N calls."
)
NEXT_DECISION = (
    'Reply with JSON only: {"calls": [{"tool": NAME, "arguments": {...}}]} with one item per '
    "call you need now (several when the request asks for several things), or "
    '{"calls": []} when no tool fits, a required value is missing, or you already have what '
    "you need."
)
REQUIRED_DECISION = (
    " The caller requires a tool call now: make at least one call, with the values the "
    "conversation gives."
)


def parse_decision(parsed: Any) -> list[dict[str, Any]]:
    """The calls of a decision: `{"calls": [...]}`, or a single `{"tool": NAME, ...}` (which
    `{"tool": "none"}` makes an empty list)."""
    if isinstance(parsed, dict) and isinstance(parsed.get("calls"), list):
        items = parsed["calls"]
    elif isinstance(parsed, dict) and "tool" in parsed:
        items = [parsed]
    else:
        items = []
    calls: list[dict[str, Any]] = []
    for item in items:
        # The same call twice in one answer is one call.
        if isinstance(item, dict) and item.get("tool") not in (None, "none") and item not in calls:
            calls.append(item)
    return calls


def tool_menu(tools: dict[str, LoadedTool]) -> str:
    lines = []
    for name, tool in tools.items():
        params = json.dumps(tool.spec.parameters.get("properties", {}))
        note = " (needs a human's approval)" if tool.spec.dangerous else ""
        lines.append(f"- {name}: {tool.spec.description}{note}. Arguments: {params}")
    return "\n".join(lines)


_EMPTY = ("[]", "{}", "null", '""')
"""Results that return nothing: another option may be worth a try after them."""


class UnreadableDecision(ModelError):
    """The model's decision was not JSON (cut off by the token limit, or not grammar-forced)."""


@dataclass
class LoopOutcome:
    steps: list[dict[str, Any]] = field(default_factory=list)
    results: list[str] = field(default_factory=list)
    """`name({args}) → result` for each call that ran (or awaits approval, or failed last)."""
    reason: str | None = None
    """Why the loop stopped, when it did not stop because the model was done."""
    usage: Usage = field(default_factory=Usage)
    count: int | None = None
    """How many calls the first decision said the request needs (with `count_calls`)."""
    unused: list[str] = field(default_factory=list)
    """The values of the request no call had used, as last pointed out to the model."""

    @property
    def calls(self) -> list[dict[str, Any]]:
        """The calls made (run, or filed for approval), in order: {"tool", "arguments"}."""
        return [
            s["decision"]
            for s in self.steps
            if s.get("action") in ("ran", "withheld", "awaiting_approval")
        ]


class ToolLoop:
    def __init__(
        self,
        model: ChatModel,
        tools: dict[str, LoadedTool],
        limits: ToolLimits,
        *,
        result_guard: Guard | None = None,
        approve: Callable[[str], str] | None = None,
        max_tokens: int = 512,
        price: Price | None = None,
        require: bool = False,
    ) -> None:
        """`require` (a gateway caller's `tool_choice: required`): the first decision must
        hold at least one call (the grammar, or the backend's own `tool_choice`)."""
        self.model = model
        self.require = require
        self.tools = tools
        self.limits = limits
        self.result_guard = result_guard
        self.approve = approve
        self.max_tokens = max_tokens
        self.price = price

    async def run(self, system_prompt: str, messages: list[Message]) -> LoopOutcome:
        out = LoopOutcome()
        transcript: list[Message] = []
        seen: set[str] = set()
        evidence: list[str] = []
        answered: list[dict[str, Any]] = []  # calls that ran and returned something
        request = latest_user(messages)
        retries = 0
        cut_off = False
        started = time.perf_counter()
        while len(out.results) < self.limits.max_calls and out.reason is None:
            if time.perf_counter() - started > self.limits.max_seconds:
                out.reason = f"stopped: the {self.limits.max_seconds:g} s tool budget is spent"
                break
            try:
                calls = await self._decide(system_prompt, messages, transcript, out, bound=cut_off)
            except UnreadableDecision as exc:
                # Grammar-forced JSON breaks only when cut off by max_tokens (too many calls
                # at once, or a runaway value): say so and let the model try again, within
                # the retry budget, with each string and list bounded (`bounds.py`).
                out.steps.append({"decision": None, "action": "invalid", "error": str(exc)})
                cut_off = True
                retries += 1
                if retries > self.limits.max_retries:
                    out.reason = "stopped: the tool decisions could not be read"
                    break
                transcript += [
                    Message(
                        role="user",
                        content="(Note: your last answer was cut off or was not JSON. Make "
                        "fewer calls at once.)",
                    )
                ]
                continue
            spent = self._over_budget(out)
            if spent is not None:
                out.reason = spent
                break
            if not calls:
                out.steps.append({"decision": {"tool": "none"}, "action": "answer"})
                break
            progressed = False
            # What the user and the system prompt said, and what tools returned: not the
            # model's own earlier calls, which would vouch for their own guesses.
            sources = Sources("\n".join([system_prompt, *(m.content for m in messages), *evidence]))
            fanned = self._variants(
                calls, sources, messages, answered, made=out.calls, count=out.count
            )
            for index, decision in enumerate(calls):
                if len(out.results) >= self.limits.max_calls:
                    out.reason = f"stopped: {self.limits.max_calls} calls is this turn's limit"
                    break
                step: dict[str, Any] = {"decision": decision}
                out.steps.append(step)
                checked = self._check(decision, fanned.get(index), sources, request, step)
                name = str(decision.get("tool"))
                call = f"{name}({json.dumps(step['decision'].get('arguments'), sort_keys=True)})"
                if isinstance(checked, str):  # not run: the model is told why
                    if step["action"] != "variant":
                        retries += 1
                    transcript += feedback(call, checked)
                    continue
                arguments, tool = checked, self.tools[name]
                if call in seen:
                    step["action"] = "loop"
                    continue
                seen.add(call)
                progressed = True
                if tool.spec.dangerous:
                    self._dangerous(call, step, out)
                    break
                outcome = await self._run(tool, arguments, step)
                if outcome is None:
                    retries += 1
                    if retries > self.limits.max_retries:
                        out.results.append(f"{call} → failed: {step['error']}")
                    else:
                        transcript += feedback(call, f"failed: {step['error']}")
                    continue
                out.results.append(f"{call} → {outcome}")
                evidence.append(outcome)
                if outcome not in _EMPTY:
                    answered.append({"tool": name, "arguments": arguments})
                transcript += feedback(call, outcome)
            if out.reason is not None:
                break
            if progressed:
                transcript += self._remind(request, out)
            if retries > self.limits.max_retries:
                out.reason = "stopped: too many invalid or failed calls"
            elif not progressed and any(s.get("action") == "loop" for s in out.steps):
                out.reason = "stopped: the model repeated calls it already made (loop)"
        return out

    async def _decide_native(
        self,
        system_prompt: str,
        messages: list[Message],
        transcript: list[Message],
        out: LoopOutcome,
    ) -> list[dict[str, Any]]:
        """The backend's own tool calling: the offered tools as `tools`, the answer's
        `tool_calls` as the calls (no calls: the model is done)."""
        request = ChatRequest(
            messages=[Message(role="system", content=system_prompt), *messages, *transcript],
            max_tokens=self.max_tokens,
            temperature=0.0,
            tool_choice="required" if self.require and not transcript else "auto",
            tools=[
                {
                    "name": name,
                    "description": tool.spec.description,
                    "parameters": tool.spec.parameters,
                }
                for name, tool in self.tools.items()
            ],
        )
        completion = await self.model.acomplete(request)
        out.usage = out.usage + completion.usage
        calls = [{"tool": c["name"], "arguments": c["arguments"]} for c in completion.tool_calls]
        return parse_decision({"calls": calls})

    async def propose(
        self, system_prompt: str, messages: list[Message]
    ) -> tuple[list[dict[str, Any]], LoopOutcome]:
        """Calls checked but not run, for a caller that runs its tools itself (the gateway's
        client-side tools). Invalid calls, and calls with a required value nobody gave, are
        left out (the trace says why); optional such values are dropped. When the request
        names values no call used (`remind_unused`), the model is told and decides again,
        while that list shrinks, within `max_calls`. A decision cut off by `max_tokens` is
        asked once more with each value bounded (`bounds.py`)."""
        out = LoopOutcome()
        sources = Sources("\n".join([system_prompt, *(m.content for m in messages)]))
        request = latest_user(messages)
        calls: list[dict[str, Any]] = []
        transcript: list[Message] = []
        cut_off = False
        while len(calls) < self.limits.max_calls:
            try:
                decided = await self._decide(
                    system_prompt, messages, transcript, out, bound=cut_off
                )
            except UnreadableDecision as exc:
                out.steps.append({"decision": None, "action": "invalid", "error": str(exc)})
                if cut_off:
                    break
                cut_off = True  # once more, with each value bounded (see `run`)
                continue
            earlier = [{"tool": c["name"], "arguments": c["arguments"]} for c in calls]
            fanned = self._variants(
                decided, sources, messages, earlier, made=earlier, count=out.count
            )
            before = len(calls)
            for index, decision in enumerate(decided[: self.limits.max_calls - len(calls)]):
                step: dict[str, Any] = {"decision": decision}
                out.steps.append(step)
                checked = self._check(decision, fanned.get(index), sources, request, step)
                if isinstance(checked, str):
                    continue
                proposed = {"name": str(decision.get("tool")), "arguments": checked}
                if proposed in calls:
                    step["action"] = "loop"
                else:
                    step["action"] = "proposed"
                    calls.append(proposed)
            if len(calls) == before:
                break
            transcript += [
                message
                for c in calls[before:]
                for message in feedback(
                    f"{c['name']}({json.dumps(c['arguments'], sort_keys=True)})",
                    "sent to the caller to run",
                )
            ]
            note = self._remind(request, out, [{"arguments": c["arguments"]} for c in calls])
            if not note:
                break
            transcript += note
        return calls, out

    def _check(
        self,
        decision: dict[str, Any],
        variant: str | None,
        sources: Sources,
        request: str,
        step: dict[str, Any],
    ) -> dict[str, Any] | str:
        """One decided call, checked before it runs (or is proposed): the arguments it runs
        with (`step["decision"]` then carries them: percentages in their parameter's form,
        optional values nobody gave left out), or, when it must not run, what to tell the
        model (the step says why: a variant, an unknown tool, invalid arguments, a required
        value nobody gave)."""
        name = str(decision.get("tool"))
        if variant is not None:
            step.update(action="variant", error=variant)
            return f"not run: {variant}"
        tool = self.tools.get(name)
        if tool is None:
            step.update(action="invalid", error=f"no tool named {name}")
            return f"not run: there is no tool named {name}"
        try:
            arguments = tool.validate(decision.get("arguments"))
        except InvalidArguments as exc:
            step.update(action="invalid", error=str(exc))
            return f"not run, invalid arguments: {exc}"
        if (converted := self._forms(tool, arguments, request, step)) is not None:
            arguments = converted
            step["decision"] = {**decision, "arguments": arguments}
        if self.limits.grounded_arguments:
            grounded = ground_arguments(arguments, tool.spec.parameters, sources, request)
            if grounded.refused:
                values = grounded.refused
                step.update(action="invalid", error=f"values nobody gave: {values}")
                return (
                    f"not run: {', '.join(values)} appear nowhere in the conversation. "
                    "If the request gives these values in other words, call again with "
                    'its words; if it does not, reply {"calls": []} and ask the user.'
                )
            if grounded.dropped:  # optional values nobody gave: the call runs without
                arguments = grounded.arguments
                step["dropped"] = grounded.dropped
                step["decision"] = {**decision, "arguments": arguments}
        return arguments

    def _variants(
        self,
        calls: list[dict[str, Any]],
        sources: Sources,
        messages: list[Message],
        earlier: list[dict[str, Any]],
        *,
        made: list[dict[str, Any]],
        count: int | None,
    ) -> dict[int, str]:
        """Calls that only fan out over options nobody asked for (`provenance.variants`;
        "both", "all", … count only in what the user wrote, not in tool results), ask
        nothing an earlier call did not (`provenance.redundant`), or, once the turn has
        `made` the `count` of calls its first decision said the request needs, bring no
        value of the sources the earlier calls lacked (`provenance.nothing_new`), checked
        with `grounded_arguments`."""
        if not self.limits.grounded_arguments:
            return {}
        schemas = {name: tool.spec.parameters for name, tool in self.tools.items()}
        request = "\n".join(m.content for m in messages if m.role == "user")
        found = redundant(calls, schemas, earlier)
        fanned = variants(calls, schemas, sources.text, request=request, earlier=earlier)
        done = nothing_new(calls, schemas, sources, made) if count and len(made) >= count else {}
        return done | fanned | found

    def _forms(
        self, tool: LoadedTool, arguments: dict[str, Any], request: str, step: dict[str, Any]
    ) -> dict[str, Any] | None:
        """The arguments with values in the form each parameter takes: the request's
        percentages (`convert_percentages`, `percent.convert`: 8 → 0.08 for a rate) and ISO
        dates in a stated layout (`convert_dates`, `dates.convert`), the rewrites recorded
        in the step; None when nothing changes."""
        converted, notes = arguments, list[str]()
        if self.limits.convert_percentages:
            converted, notes = convert(converted, tool.spec.parameters, request)
        if self.limits.convert_dates:
            converted, dated = dates.convert(converted, tool.spec.parameters)
            notes += dated
        if not notes:
            return None
        try:
            converted = tool.validate(converted)
        except InvalidArguments:  # the schema's bounds disagree: the model's values stand
            return None
        step["converted"] = notes
        return converted

    def _remind(
        self, request: str, out: LoopOutcome, calls: list[dict[str, Any]] | None = None
    ) -> list[Message]:
        """With `remind_unused`: the values of the request that no call (by default the
        turn's calls so far) has used yet (`coverage.unused`), for the model to make the
        calls it left out. Said again after a decision only while the list shrinks (the
        model is working through it)."""
        if not self.limits.remind_unused:
            return []
        left = unused(request, out.calls if calls is None else calls, self.tools)
        if not left or (out.unused and not set(left) < set(out.unused)):
            return []
        out.unused = left
        named = ", ".join(left)
        note = f"(Note: no call so far used {named} from the request. Make the calls for them now.)"
        return [Message(role="user", content=note)]

    def _over_budget(self, out: LoopOutcome) -> str | None:
        """Why the turn's tool budget is spent (tokens, or cost at the model's price)."""
        used = out.usage.total_tokens
        if used > self.limits.max_tokens:
            limit = self.limits.max_tokens
            return f"stopped: {used} tokens spent on tool decisions (limit {limit})"
        if self.limits.max_cost is not None and self.price is not None:
            cost = self.price.cost(out.usage.prompt_tokens, out.usage.completion_tokens)
            if cost > self.limits.max_cost:
                return f"stopped: tool decisions cost {cost:.6f} (limit {self.limits.max_cost:g})"
        return None

    def _dangerous(self, call: str, step: dict[str, Any], out: LoopOutcome) -> None:
        if self.approve is None:
            step.update(action="refused", error="dangerous and nobody can approve it")
            out.results.append(f"{call} → not run: needs a human's approval")
        else:
            reference = self.approve(call)
            step.update(action="awaiting_approval", reference=reference)
            out.results.append(f"{call} → not run: awaits a human's approval ({reference})")
        out.reason = "stopped: a dangerous action awaits approval"

    async def _decide(
        self,
        system_prompt: str,
        messages: list[Message],
        transcript: list[Message],
        out: LoopOutcome,
        *,
        bound: bool = False,
    ) -> list[dict[str, Any]]:
        """The model's next calls. `bound`: after a decision was cut off, the grammar holds
        each string and list of the arguments to `bounds.MAX_CHARS` / `bounds.MAX_ITEMS`."""
        if self.model.native_tools:
            return await self._decide_native(system_prompt, messages, transcript, out)
        # The turn's first decision counts its calls before making them (`count_calls`);
        # later ones, after results or feedback, only list them.
        counted = self.limits.count_calls and not transcript
        required = self.require and not transcript
        schema = (counted_decision_schema if counted else decision_schema)(
            self.tools, self.limits.max_calls, 1 if required else 0
        )
        if bound:
            schema = bounded(schema)
        system = f"{system_prompt}\n\nYou can call these tools:\n{tool_menu(self.tools)}\n" + (
            FIRST_DECISION if counted else NEXT_DECISION
        )
        if required:
            system += REQUIRED_DECISION
        request = ChatRequest(
            messages=[Message(role="system", content=system), *messages, *transcript],
            max_tokens=self.max_tokens,
            temperature=0.0,
            json_schema=schema,
        )
        completion = await self.model.acomplete(request)
        out.usage = out.usage + completion.usage
        try:
            parsed = json.loads(completion.text)
        except ValueError as exc:
            raise UnreadableDecision(f"{exc}: {completion.text[:200]}") from None
        if counted and isinstance(parsed, dict) and isinstance(parsed.get("count"), int):
            out.count = parsed["count"]
        return parse_decision(parsed)

    async def _run(
        self, tool: LoadedTool, arguments: dict[str, Any], step: dict[str, Any]
    ) -> str | None:
        started = time.perf_counter()
        try:
            result = await asyncio.wait_for(
                asyncio.to_thread(tool.call, arguments), tool.spec.timeout_s
            )
        except TimeoutError:
            step.update(action="failed", error=f"timed out after {tool.spec.timeout_s:g} s")
            return None
        except ToolError as exc:
            step.update(action="failed", error=str(exc))
            return None
        finally:
            step["ms"] = round((time.perf_counter() - started) * 1000, 2)
        text = json.dumps(result, ensure_ascii=False)[:RESULT_CHARS]
        if self.result_guard is not None:
            readings, _ = views(text)
            subject = Subject(direction="input", text=text, views=tuple(readings))
            verdict = await asyncio.to_thread(self.result_guard.check, subject)
            if verdict.action == "block":
                step.update(action="withheld", error=f"result flagged: {verdict.reason}")
                return "result withheld: it looked like an attempt to instruct the assistant"
        step.update(action="ran", result_chars=len(text))
        return text


def feedback(call: str, outcome: str) -> list[Message]:
    return [
        Message(role="assistant", content=f"(I called {call})"),
        Message(role="user", content=f"(Tool result, not from the customer: {outcome})"),
    ]

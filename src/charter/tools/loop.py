"""One turn's tool use: ask the model for its next calls, check and act on them, feed back, repeat.

Each decision asks the chat model for its next calls as schema-forced JSON,
`{"calls": [{"tool": NAME, "arguments": {...}}, ...]}`: each item one of the offered tools
with arguments matching that tool's schema (several when the request asks for several
things: parallel calls), none when it is done (or, with a backend's own tool calling, its
`tool_calls`). Then, for each call, in code:
1. the checks of the `decision` stage (`tool_limits.checks`, see `checks.py`): a call that
   only fans out over options nobody asked for, or asks nothing an earlier call did not, is
   not acted on (`variant`);
2. the arguments are validated against the tool's JSON Schema (an invalid call is fed back
   with the reason and retried, at most `max_retries` times); a percentage of the request
   is given in the form its parameter takes (`convert_percentages`, see `percent.py`), and
   so is an ISO date where the parameter states another layout (`convert_dates`, `dates.py`);
3. the checks of the `arguments` stage: a call with a number, date, account or name that
   nobody gave in a required argument is not acted on, and the model is told which values
   and to use the request's own words or ask instead of guessing; such a value in an
   optional argument, or an option nobody named, is left out and the call goes on without;
4. a call identical to an earlier one this turn is not acted on again; a decision that only
   repeats earlier calls is a loop: the loop stops;
5. the executor acts on the call (`executors.py`): `RunHere` runs the charter's tool (a
   dangerous one waits for a human's approval; the result guard reads each result before
   the model does), `ProposeToCaller` collects it for a gateway caller that runs its tools
   itself.
After a decision's calls, the values of the request that no call has used are pointed out
to the model (`remind_unused`, see `coverage.py`), again only while that list shrinks.
Decisions are bounded by `max_calls` and, when the tools run here, by `max_seconds`,
`max_tokens` and (with a price) `max_cost`; a decision over budget is not acted on.

`charter.tools.service.ToolUse` puts the relevance gate in front of this: the tools stage,
the gateway's client tools and the `tools` eval suite (BFCL's functions, recorded, not
executed) all go through it, so the benchmark measures the code that serves users.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from charter.errors import ModelError
from charter.models.base import ChatRequest, Message, latest_user
from charter.tools import dates
from charter.tools.bounds import bounded
from charter.tools.checks import CheckContext, Drop, Withhold, checks_for, withheld_as_decided
from charter.tools.coverage import unused
from charter.tools.executors import (
    Checked,
    Executor,
    ProposeToCaller,
    RunHere,
    Turn,
    call_text,
)
from charter.tools.percent import convert
from charter.tools.provenance import Sources
from charter.tools.registry import InvalidArguments
from charter.tools.steps import Call, LoopOutcome, Step

if TYPE_CHECKING:
    from charter.models.base import ChatModel
    from charter.spec.models import Price, ToolLimits
    from charter.tools.checks import CallCheck
    from charter.tools.registry import LoadedTool


def decision_schema(
    tools: dict[str, LoadedTool], max_calls: int = 4, min_calls: int = 0
) -> dict[str, Any]:
    """The JSON Schema of a decision: `{"calls": [{"tool": NAME, "arguments": {...}}, ...]}`.

    One item per call the model wants now (several when the question asks for several), none when it
    is done (unless `min_calls`: a caller's `tool_choice: required`).
    """
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
    """`{"count": N, "calls": [...]}` with exactly N calls: one branch per N (from `min_calls`).

    So the grammar holds the model to the count it wrote first. Asked for the turn's first decision:
    the 0.5B model, asked only for a list, stops after the first of several calls.
    """
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
    """The calls of a decision: `{"calls": [...]}`, or a single `{"tool": NAME, ...}`.

    `{"tool": "none"}` makes an empty list; the same call twice in one answer is one call.
    """
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
    """The tools as lines of the system prompt: name, description, approval note, arguments."""
    lines = []
    for name, tool in tools.items():
        params = json.dumps(tool.spec.parameters.get("properties", {}))
        note = " (needs a human's approval)" if tool.spec.dangerous else ""
        lines.append(f"- {name}: {tool.spec.description}{note}. Arguments: {params}")
    return "\n".join(lines)


class UnreadableDecision(ModelError):
    """The model's decision was not JSON (cut off by the token limit, or not grammar-forced)."""


class ToolLoop:
    """One turn's tool use over `tools`: decide, check, act, feed back (`turn`)."""

    def __init__(
        self,
        model: ChatModel,
        tools: dict[str, LoadedTool],
        limits: ToolLimits,
        *,
        max_tokens: int = 512,
        price: Price | None = None,
        require: bool = False,
    ) -> None:
        """A tool loop of `model` over `tools`, within `limits`.

        `max_tokens`: of each decision. `price`: the model's, for `max_cost`. `require`: for
        `propose` (`ProposeToCaller.require`).
        """
        self.model = model
        self.tools = tools
        self.limits = limits
        self.max_tokens = max_tokens
        self.price = price
        self.require = require
        self.checks: tuple[CallCheck, ...] = checks_for(limits)

    async def run(self, system_prompt: str, messages: list[Message]) -> LoopOutcome:
        """The tools run here, with no result guard and no approval (`RunHere()`)."""
        return await self.turn(system_prompt, messages, RunHere())

    async def propose(
        self, system_prompt: str, messages: list[Message]
    ) -> tuple[list[dict[str, Any]], LoopOutcome]:
        """The calls proposed to a caller that runs its tools itself (`ProposeToCaller`).

        Returns them as {"name", "arguments"}, and the outcome.
        """
        out = await self.turn(system_prompt, messages, ProposeToCaller(require=self.require))
        return out.proposals, out

    async def turn(
        self, system_prompt: str, messages: list[Message], executor: Executor
    ) -> LoopOutcome:
        """Decide, check, act (`executor`) and feed back, in rounds, until the turn is over.

        It is over when the model is done, the executor stops, or a limit is reached.
        """
        turn = Turn(system_prompt, messages, self.limits, latest_user(messages))
        out, limits = turn.out, self.limits
        while len(out.results) < limits.max_calls and out.reason is None:
            if executor.budgeted and turn.over_time:
                out.reason = f"stopped: the {limits.max_seconds:g} s tool budget is spent"
                break
            try:
                calls = await self._decide(turn, require=executor.require)
            except UnreadableDecision as exc:
                out.steps.append(Step(None, "invalid", error=str(exc)))
                if executor.unreadable(turn):
                    continue
                break
            if executor.budgeted and (spent := self._over_budget(out)) is not None:
                out.reason = spent
                break
            if not calls:
                executor.done(turn)
                break
            progressed = await self._act_on(turn, calls, executor)
            if out.reason is not None:
                break
            note = self._remind(turn) if progressed else []
            turn.transcript += note
            if not executor.after(turn, progressed, bool(note)):
                break
        return out

    async def _act_on(self, turn: Turn, calls: list[Call], executor: Executor) -> bool:
        """Check each call of a decision and act on those that pass.

        Returns whether any was acted on (not a loop).
        """
        out, limits = turn.out, self.limits
        context = CheckContext(
            schemas={name: tool.spec.parameters for name, tool in self.tools.items()},
            sources=Sources(
                "\n".join([turn.system_prompt, *(m.content for m in turn.messages), *turn.evidence])
            ),
            request=turn.request,
            said="\n".join(m.content for m in turn.messages if m.role == "user"),
            answered=list(turn.answered),
        )
        room = limits.max_calls - len(out.results)
        progressed = False
        for index, decision in enumerate(calls):
            if not executor.budgeted and index >= room:
                break
            if len(out.results) >= limits.max_calls:
                out.reason = f"stopped: {limits.max_calls} calls is this turn's limit"
                break
            withheld = withheld_as_decided(
                self.checks, decision, replace(context, before=calls[:index])
            )
            checked = self._check(decision, withheld, context)
            if not isinstance(checked, Checked):
                step, told = checked
                out.steps.append(step)
                executor.withheld(turn, step, call_text(step.decision or {}), told)
                continue
            key = executor.key(checked)
            if key in turn.done:
                out.steps.append(checked.step("loop"))
                continue
            turn.done.append(key)
            progressed = True
            out.steps.append(await executor.act(turn, checked))
            if out.reason is not None:
                break
        return progressed

    def _check(
        self, decision: Call, withheld: Withhold | None, context: CheckContext
    ) -> Checked | tuple[Step, str]:
        """One decided call, checked before it is acted on.

        Returns what it is acted on with (percentages and dates in their parameter's form, values
        nobody gave or named left out), or, when it must not be, its step and what to tell the model
        (`withheld` by a check of the decision stage, an unknown tool, invalid arguments, a finding
        of the arguments stage).
        """
        name = str(decision.get("tool"))
        if withheld is not None:
            return Step(decision, withheld.action, error=withheld.error), withheld.told
        tool = self.tools.get(name)
        if tool is None:
            step = Step(decision, "invalid", error=f"no tool named {name}")
            return step, f"not run: there is no tool named {name}"
        try:
            arguments = tool.validate(decision.get("arguments"))
        except InvalidArguments as exc:
            return Step(decision, "invalid", error=str(exc)), f"not run, invalid arguments: {exc}"
        converted = self._forms(tool, arguments, context.request)
        if converted is not None:
            arguments = converted[0]
            decision = {**decision, "arguments": arguments}
        notes = None if converted is None else converted[1]
        dropped: list[str] = []
        for check in self.checks:
            if check.stage != "arguments":
                continue
            found = check.check({"tool": name, "arguments": arguments}, context)
            if isinstance(found, Withhold):
                step = Step(decision, found.action, error=found.error, converted=notes)
                return step, found.told
            if isinstance(found, Drop):
                arguments = found.arguments
                dropped += found.dropped
        if dropped:
            decision = {**decision, "arguments": arguments}
        return Checked(decision, tool, arguments, notes, dropped or None)

    def _forms(
        self, tool: LoadedTool, arguments: dict[str, Any], request: str
    ) -> tuple[dict[str, Any], list[str]] | None:
        """The arguments with values in the form each parameter takes, and the rewrites.

        The request's percentages (`convert_percentages`, `percent.convert`: 8 → 0.08 for a rate)
        and ISO dates in a stated layout (`convert_dates`, `dates.convert`); the rewrites are the
        step's `converted`. None when nothing changes.
        """
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
        return converted, notes

    def _remind(self, turn: Turn) -> list[Message]:
        """With `remind_unused`: a note of the request's values no call of the turn has used yet.

        The note (`coverage.unused`) is for the model to make the calls it left out. It is said
        again after a decision only while the list shrinks (the model is working through it).
        """
        if not self.limits.remind_unused:
            return []
        out = turn.out
        left = unused(turn.request, out.calls, self.tools)
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

    async def _decide(self, turn: Turn, *, require: bool) -> list[Call]:
        """The model's next calls.

        After a decision was cut off (`turn.cut_off`), the grammar holds each string and list of the
        arguments to `bounds.MAX_CHARS` / `bounds.MAX_ITEMS`. `require`: the turn's first decision
        must hold a call.
        """
        transcript, out = turn.transcript, turn.out
        required = require and not transcript
        if self.model.native_tools:
            return await self._decide_native(turn, required=required)
        # The turn's first decision counts its calls before making them (`count_calls`);
        # later ones, after results or feedback, only list them.
        counted = self.limits.count_calls and not transcript
        schema = (counted_decision_schema if counted else decision_schema)(
            self.tools, self.limits.max_calls, 1 if required else 0
        )
        if turn.cut_off:
            schema = bounded(schema)
        system = f"{turn.system_prompt}\n\nYou can call these tools:\n{tool_menu(self.tools)}\n"
        system += FIRST_DECISION if counted else NEXT_DECISION
        if required:
            system += REQUIRED_DECISION
        request = ChatRequest(
            messages=[Message(role="system", content=system), *turn.messages, *transcript],
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

    async def _decide_native(self, turn: Turn, *, required: bool) -> list[Call]:
        """The backend's own tool calling: the offered tools as `tools`, `tool_calls` as the calls.

        No calls: the model is done.
        """
        request = ChatRequest(
            messages=[
                Message(role="system", content=turn.system_prompt),
                *turn.messages,
                *turn.transcript,
            ],
            max_tokens=self.max_tokens,
            temperature=0.0,
            tool_choice="required" if required else "auto",
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
        turn.out.usage = turn.out.usage + completion.usage
        calls = [{"tool": c["name"], "arguments": c["arguments"]} for c in completion.tool_calls]
        return parse_decision({"calls": calls})

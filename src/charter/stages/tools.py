"""Tools stage: let the model call the charter's tools, safely, before it answers.

Tools are offered most relevant first (MiniLM cosine between the message and each tool's
name and description), and only those at or above `tool_limits.min_relevance`; a message
no tool resembles skips tool use at no model cost. Each step asks the chat model for its
next action as schema-forced JSON: one of the offered tools
with arguments matching that tool's schema, or `{"tool": "none"}`. Then, in code:
1. the arguments are validated against the tool's JSON Schema (an invalid call is fed back
   with the reason and retried, at most `tool_limits.max_retries` times);
2. a call identical to an earlier one this turn is a loop: the loop stops;
3. a `dangerous` tool does not run: an escalation record asks a human to approve it, and
   the model is told the action awaits approval;
4. the tool runs on a worker thread with its timeout; an error is fed back and retried;
5. the result passes the charter's injection guard before the model sees it (a tool result
   is untrusted text: indirect injection); a flagged result is withheld.
Steps are bounded by `tool_limits.max_calls` and `max_seconds`. The results go into the
system prompt for the final answer (and into the grounding check's sources). Every step,
argument, error, result size and millisecond is in the trace.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import TYPE_CHECKING, Any

from charter.errors import ModelError
from charter.guards.base import Subject
from charter.guards.normalize import views
from charter.models.base import ChatRequest, Message
from charter.stages.escalate import handoff_message
from charter.tools.registry import InvalidArguments, ToolError

if TYPE_CHECKING:
    from charter.guards.base import Guard
    from charter.models.base import ChatModel
    from charter.pipeline import CallNext, StageRecord, TurnState
    from charter.spec.models import ModelSpec, ToolLimits
    from charter.tools.registry import LoadedTool

RESULT_CHARS = 2000


def decision_schema(tools: dict[str, LoadedTool]) -> dict[str, Any]:
    options: list[dict[str, Any]] = [
        {
            "type": "object",
            "properties": {"tool": {"const": name}, "arguments": tool.spec.parameters},
            "required": ["tool", "arguments"],
        }
        for name, tool in tools.items()
    ]
    options.append(
        {"type": "object", "properties": {"tool": {"const": "none"}}, "required": ["tool"]}
    )
    return {"anyOf": options}


def tool_menu(tools: dict[str, LoadedTool]) -> str:
    lines = []
    for name, tool in tools.items():
        params = json.dumps(tool.spec.parameters.get("properties", {}))
        note = " (needs a human's approval)" if tool.spec.dangerous else ""
        lines.append(f"- {name}: {tool.spec.description}{note}. Arguments: {params}")
    return "\n".join(lines)


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
    ) -> None:
        self.model = model
        self.spec = spec
        self.tools = tools
        self.limits = limits
        self.result_guard = result_guard

    async def __call__(self, state: TurnState, call_next: CallNext) -> TurnState:
        record = state.trace[self.name]
        scores = await asyncio.to_thread(self._relevance, state.messages[-1].content)
        record.detail["relevance"] = {name: round(score, 3) for name, score in scores.items()}
        offered = {
            name: self.tools[name]
            for name, score in sorted(scores.items(), key=lambda kv: -kv[1])
            if score >= self.limits.min_relevance
        }
        if not offered:
            record.reason = "no tool relevant to this message: no tool call asked"
            return await call_next(state)
        record.detail["offered"] = list(offered)
        steps: list[dict[str, Any]] = []
        record.detail["steps"] = steps
        transcript: list[Message] = []
        results: list[str] = []
        seen: set[str] = set()
        retries = 0
        started = time.perf_counter()
        while len(results) < self.limits.max_calls:
            if time.perf_counter() - started > self.limits.max_seconds:
                record.reason = f"stopped: the {self.limits.max_seconds:g} s tool budget is spent"
                break
            decision = await self._decide(state, transcript, record, offered)
            step: dict[str, Any] = {"decision": decision}
            steps.append(step)
            name = decision.get("tool") if isinstance(decision, dict) else None
            if name in (None, "none") or name not in offered:
                step["action"] = "answer"
                break
            tool = offered[str(name)]
            call = f"{name}({json.dumps(decision.get('arguments'), sort_keys=True)})"
            try:
                arguments = tool.validate(decision.get("arguments"))
            except InvalidArguments as exc:
                step.update(action="invalid", error=str(exc))
                retries += 1
                if retries > self.limits.max_retries:
                    record.reason = "stopped: too many invalid calls"
                    break
                transcript += self._feedback(call, f"not run, invalid arguments: {exc}")
                continue
            if call in seen:
                step["action"] = "loop"
                record.reason = f"stopped: {call} repeated (loop)"
                break
            seen.add(call)
            if tool.spec.dangerous:
                reference = self._approval(state, call)
                step.update(action="awaiting_approval", reference=reference)
                results.append(f"{call} → not run: awaits a human's approval ({reference})")
                break
            outcome = await self._run(tool, arguments, step)
            if outcome is None:
                retries += 1
                if retries > self.limits.max_retries:
                    record.reason = "stopped: the tool kept failing"
                    results.append(f"{call} → failed: {step['error']}")
                    break
                transcript += self._feedback(call, f"failed: {step['error']}")
                continue
            results.append(f"{call} → {outcome}")
            transcript += self._feedback(call, outcome)
        record.detail["calls"] = len([s for s in steps if s.get("action") == "ran"])
        if results:
            state.tool_results = results
            state.system_prompt += (
                "\n\nTool results for this reply (state values exactly as given; never invent "
                "one):\n" + "\n".join(f"- {r}" for r in results)
            )
            record.verdict = "pass"
        return await call_next(state)

    def _relevance(self, message: str) -> dict[str, float]:
        """MiniLM cosine between the message and each tool's name and description. Tools are
        offered most relevant first, and only those above `min_relevance`: a small model
        picks the right tool more often from a short, ordered menu."""
        if self.limits.min_relevance <= -1:
            return dict.fromkeys(self.tools, 1.0)
        from charter.guards.embedder import shared_embedder

        texts = [f"{t.name.replace('_', ' ')}: {t.spec.description}" for t in self.tools.values()]
        vectors = shared_embedder().embed([message, *texts])
        scores = vectors[1:] @ vectors[0]
        return {name: float(score) for name, score in zip(self.tools, scores, strict=True)}

    async def _decide(
        self,
        state: TurnState,
        transcript: list[Message],
        record: StageRecord,
        offered: dict[str, LoadedTool],
    ) -> dict[str, Any]:
        system = (
            f"{state.system_prompt}\n\nYou can call these tools:\n{tool_menu(offered)}\n"
            'Reply with JSON only: {"tool": NAME, "arguments": {...}} to call one, or '
            '{"tool": "none"} when no tool is needed or you already have what you need.'
        )
        request = ChatRequest(
            messages=[Message(role="system", content=system), *state.messages, *transcript],
            max_tokens=200,
            temperature=0.0,
            json_schema=decision_schema(offered),
        )
        completion = await self.model.acomplete(request)
        state.add_usage(completion.usage)
        record.prompt_tokens += completion.usage.prompt_tokens
        record.completion_tokens += completion.usage.completion_tokens
        try:
            parsed = json.loads(completion.text)
        except ValueError as exc:
            raise ModelError(
                f"the tool decision is not JSON: {exc}: {completion.text[:200]}"
            ) from None
        return parsed if isinstance(parsed, dict) else {"tool": "none"}

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

    @staticmethod
    def _feedback(call: str, outcome: str) -> list[Message]:
        return [
            Message(role="assistant", content=f"(I called {call})"),
            Message(role="user", content=f"(Tool result, not from the customer: {outcome})"),
        ]

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
